"""HiResCAM (Draelos and Carin, 2020), pytorch-grad-cam's."""

from sa_viz.cam.base import CamMethod
from sa_viz.cam.library import LibraryCam, library_class

METHOD = CamMethod(
    "hirescam",
    "HiResCAM",
    "element-wise gradient × activation",
    LibraryCam(library_class("HiResCAM")),
    order=2,
)
