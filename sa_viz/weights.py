"""The old address of checkpoint loading (`sa_viz.weights.load_checkpoint`, `python -m
sa_viz.weights`): see `sa_viz.models.weights` and `sa-viz weights`."""

import warnings

from sa_viz.models.weights import (
    CheckpointError,
    LoadedModel,
    WeightsStatus,
    load_checkpoint,
    load_model,
    load_models,
    read_checkpoint,
)

warnings.warn(
    "sa_viz.weights is an old address: import from sa_viz.models.weights "
    "(load_checkpoint and load_model: from sa_viz); the command is `sa-viz weights`",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "WeightsStatus",
    "load_checkpoint",
    "load_model",
    "load_models",
    "read_checkpoint",
]

if __name__ == "__main__":
    import sys

    from sa_viz.cli import weights_main

    sys.exit(weights_main())
