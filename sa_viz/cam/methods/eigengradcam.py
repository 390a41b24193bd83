"""EigenGradCAM: EigenCAM of gradient × activation, pytorch-grad-cam's, with the bounded
projection of `sa_viz.cam.methods.eigencam`."""

from sa_viz.cam.base import CamMethod
from sa_viz.cam.library import LibraryCam
from sa_viz.cam.methods.eigencam import bounded_eigen_cam

METHOD = CamMethod(
    "eigengradcam",
    "EigenGradCAM",
    "principal component of grad × act",
    LibraryCam(lambda: bounded_eigen_cam("EigenGradCAM")),
    order=6,
)
