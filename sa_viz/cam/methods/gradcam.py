"""Grad-CAM (Selvaraju et al., ICCV 2017) from the forward pass's own head gradient: no pass of
its own, the numbers of pytorch-grad-cam's `GradCAM` (`sa_viz.cam.forward`)."""

from sa_viz.cam.base import CamMethod

METHOD = CamMethod(
    "gradcam", "Grad-CAM", "gradient-weighted channels (head-only gradient)", order=0
)
