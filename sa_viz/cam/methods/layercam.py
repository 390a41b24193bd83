"""LayerCAM (Jiang et al., IEEE TIP 2021), pytorch-grad-cam's."""

from sa_viz.cam.base import CamMethod
from sa_viz.cam.library import LibraryCam, library_class

METHOD = CamMethod(
    "layercam",
    "LayerCAM",
    "positive gradients per location",
    LibraryCam(library_class("LayerCAM")),
    order=4,
)
