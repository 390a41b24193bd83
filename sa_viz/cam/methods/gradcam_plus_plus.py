"""Grad-CAM++ (Chattopadhay et al., WACV 2018), pytorch-grad-cam's."""

from sa_viz.cam.base import CamMethod
from sa_viz.cam.library import LibraryCam, library_class

METHOD = CamMethod(
    "gradcam++",
    "Grad-CAM++",
    "second-order channel weights",
    LibraryCam(library_class("GradCAMPlusPlus")),
    order=1,
)
