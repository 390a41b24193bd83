"""The models SA-Viz explains: the registry (`list_models`, `get_model`) and the builders.

Builders return untrained models, as torchvision's do with `weights=None`; `sa_viz.models.weights`
loads checkpoints into them.
"""

from sa_viz.models.registry import (
    DEFAULT_PAIR,
    MAX_MODELS,
    ModelEntry,
    ModelMeta,
    Preprocessing,
    WeightsSpec,
    get_model,
    list_models,
    parse_models,
    parse_pair,
    register_model,
)
from sa_viz.models.resnet import (
    SA_GROUPS,
    SA_UNIT_NAMES,
    STAGE_DEPTHS,
    SABottleneck,
    resnet50,
    sa_resnet50,
)
from sa_viz.models.senet import se_resnet50

__all__ = [
    "DEFAULT_PAIR",
    "MAX_MODELS",
    "SA_GROUPS",
    "SA_UNIT_NAMES",
    "STAGE_DEPTHS",
    "ModelEntry",
    "ModelMeta",
    "Preprocessing",
    "SABottleneck",
    "WeightsSpec",
    "get_model",
    "list_models",
    "parse_models",
    "parse_pair",
    "register_model",
    "resnet50",
    "sa_resnet50",
    "se_resnet50",
]
