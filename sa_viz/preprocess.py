"""The old address of image preparation: see `sa_viz.data.preprocess`."""

from sa_viz.data.preprocess import ImageError, Limits, PreparedImage, load_image, prepare_image

__all__ = ["ImageError", "Limits", "PreparedImage", "load_image", "prepare_image"]
