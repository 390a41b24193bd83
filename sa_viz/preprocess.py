"""The old address of image preparation: see `sa_viz.data.preprocess`."""

import warnings

from sa_viz.data.preprocess import ImageError, Limits, PreparedImage, load_image, prepare_image

warnings.warn(
    "sa_viz.preprocess is an old address: import from sa_viz.data.preprocess "
    "(prepare_image: from sa_viz)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ImageError", "Limits", "PreparedImage", "load_image", "prepare_image"]
