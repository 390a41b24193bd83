"""The model registry: each model SA-Viz can explain is one `ModelEntry`.

An entry names the architecture's builder, where its pretrained weights come from (file names,
URL and published hash, how to get them offline), the preprocessing it was trained with, its
published figures, the layers a CAM can read and which kind of attention units it has. The
CLI's and the app's weight flags, the app's model choices and the registry tests are generated
from it.

Adding a model: its builder, one entry in `ENTRIES`; for a new attention type, one probe file
in `sa_viz/probes/`. Limits of today's seam: every entry shares one preprocessing (`IMAGENET`:
one prepared image feeds both models, and `check_models` refuses a pair whose transforms
differ), and CAM layers are named `layer1` … `layer4` (`sa_viz.cam.LAYERS`), as in every
ResNet here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from sa_viz.data.imagenet import INPUT_SIZE, MEAN, RESIZE_SIZE, STD
from sa_viz.models.resnet import resnet50, sa_resnet50
from sa_viz.models.senet import se_resnet50

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class Preprocessing:
    """The input transform a model was trained and evaluated with."""

    resize: int = RESIZE_SIZE  # shorter side, then a centre crop of `crop`
    crop: int = INPUT_SIZE
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD


IMAGENET = Preprocessing()


@dataclass(frozen=True)
class WeightsSpec:
    """Where one model's pretrained weights come from, and how a person gets them."""

    model: str
    filenames: tuple[str, ...]  # looked up in the weights folder, in this order
    env_var: str  # a path to a checkpoint file, overriding the folder look-up
    source: str
    url: str | None = None
    hash_prefix: str | None = None  # the published sha256 begins with this (torch.hub's scheme)
    how_to_get: str = ""

    @property
    def title(self) -> str:
        return get_model(self.model).title

    @property
    def flag(self) -> str:
        """The command-line flag that names this model's checkpoint file."""
        return "--" + self.model.replace("_", "-")


@dataclass(frozen=True)
class ModelMeta:
    """Published figures and provenance, shown beside the model."""

    top1: float  # ImageNet-1k validation top-1 (%), as published for these weights
    parameters: int
    paper: str
    source: str
    licence: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    builder: Callable[[], nn.Module]
    weights: WeightsSpec
    meta: ModelMeta
    preprocessing: Preprocessing = IMAGENET
    cam_layers: tuple[str, ...] = RESNET_LAYERS
    # The kind of attention units it has ("SA", "SE"; None: none). The probe whose unit type
    # the model's modules are (sa_viz/probes/) reads them; tests check the two agree.
    gates: str | None = None


_TORCHVISION_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
SA_NET_REPO = "https://github.com/wofmanaf/SA-Net"
SA_NET_BAIDU_URL = "https://pan.baidu.com/s/1-TEXeMjprUDyx013l3vZIQ"
SA_NET_BAIDU_CODE = "474p"
SA_CONVERTED_FILE = "sa_resnet50.pth"
SA_OFFICIAL_FILE = "sa_resnet50.pth.tar"
SE_URL = (
    "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
    "se_resnet50-ce0d4300.pth"
)


def _offline_copy(url: str) -> str:
    return (
        f"Downloaded automatically when online. Offline: fetch {url} on a machine with internet "
        "access and copy it into the weights folder (`sa-viz weights` shows where that is)."
    )


def _published(url: str) -> str:
    return Path(url).stem.rsplit("-", 1)[1]


ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="resnet50",
        title="ResNet-50",
        builder=resnet50,
        weights=WeightsSpec(
            model="resnet50",
            filenames=(Path(_TORCHVISION_URL).name,),
            env_var="SA_VIZ_RESNET50",
            source="torchvision ResNet50_Weights.IMAGENET1K_V1 (ImageNet-1k top-1 76.13%)",
            url=_TORCHVISION_URL,
            hash_prefix=_published(_TORCHVISION_URL),
            how_to_get=_offline_copy(_TORCHVISION_URL),
        ),
        meta=ModelMeta(
            76.13,
            25_557_032,
            "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
            "torchvision ResNet50_Weights.IMAGENET1K_V1",
            "BSD-3-Clause (torchvision)",
        ),
    ),
    ModelEntry(
        name="sa_resnet50",
        title="SA-ResNet-50",
        builder=sa_resnet50,
        weights=WeightsSpec(
            model="sa_resnet50",
            filenames=(SA_CONVERTED_FILE, SA_OFFICIAL_FILE),
            env_var="SA_VIZ_SA_RESNET50",
            source=f"official SA-Net checkpoint ({SA_NET_REPO}, ImageNet-1k top-1 77.88%)",
            how_to_get=(
                f"Download {SA_OFFICIAL_FILE} from the official repository's Baidu Drive share "
                f"{SA_NET_BAIDU_URL} (extraction code {SA_NET_BAIDU_CODE}; linked from "
                f"{SA_NET_REPO}), then run: sa-viz weights import /path/to/sa_resnet50.pth.tar"
            ),
        ),
        meta=ModelMeta(
            77.88,
            25_557_740,
            "Zhang & Yang, SA-Net: Shuffle Attention for Deep CNNs, ICASSP 2021",
            SA_NET_REPO,
            "MIT (SA-Net)",
        ),
        gates="SA",
    ),
    ModelEntry(
        name="se_resnet50",
        title="SE-ResNet-50",
        builder=se_resnet50,
        weights=WeightsSpec(
            model="se_resnet50",
            filenames=(Path(SE_URL).name,),
            env_var="SA_VIZ_SE_RESNET50",
            source="SENet authors' weights as ported by Cadene and timm "
            "(legacy_seresnet50, ImageNet-1k top-1 77.65%)",
            url=SE_URL,
            hash_prefix=_published(SE_URL),
            how_to_get=_offline_copy(SE_URL),
        ),
        meta=ModelMeta(
            77.65,
            28_088_024,
            "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
            "timm legacy_seresnet50 (Cadene's port of the authors' Caffe model)",
            "Apache-2.0 (timm); weights: the SENet authors'",
        ),
        gates="SE",
    ),
)

_BY_NAME = {entry.name: entry for entry in ENTRIES}
DEFAULT_PAIR = ("resnet50", "sa_resnet50")


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add a model to the registry (after the built-in ones), so that the app, the CLI, studies
    and analyses offer it like those; a name already registered for another entry is refused."""
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"register_model takes a ModelEntry; got {type(entry).__name__}")
    if _BY_NAME.get(entry.name, entry) is not entry:
        raise ValueError(f"a model named {entry.name!r} is registered already")
    _BY_NAME[entry.name] = entry
    return entry


def list_models() -> list[str]:
    """Every registered model's name, in the registry's order."""
    return list(_BY_NAME)


def get_model(name: str) -> ModelEntry:
    """The registry entry of `name`; a ValueError that lists the models otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(_BY_NAME)}") from None


def parse_pair(text: str | None) -> tuple[str, ...]:
    """ "a,b" → ("a", "b"): the models to compare, in order; checked against the registry."""
    if not text:
        return DEFAULT_PAIR
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    for name in names:
        get_model(name)
    if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise ValueError(
            f"give one or two different models, as in 'resnet50,sa_resnet50'; got {text!r}"
        )
    return names
