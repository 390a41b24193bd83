"""XGrad-CAM (Fu et al., BMVC 2020), pytorch-grad-cam's."""

from sa_viz.cam.base import CamMethod
from sa_viz.cam.library import LibraryCam, library_class

METHOD = CamMethod(
    "xgradcam",
    "XGradCAM",
    "activation-normalised gradient weights",
    LibraryCam(library_class("XGradCAM")),
    order=3,
)
