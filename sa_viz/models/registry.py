"""The model registry: each model SA-Viz can explain is one `ModelEntry`.

An entry names the architecture's builder, where its pretrained weights come from (file names,
URL and published hash, how to get them offline), the preprocessing it was trained with, its
published figures, the layers a CAM can read and which kind of attention units it has. The
CLI's and the app's weight flags, the app's model choices and the registry tests are generated
from it.

Adding a model: `register_model(name, builder, ...)` (a researcher's own network, with its
checkpoint), one entry in `ENTRIES` (built in), or a timm name (`sa_viz.models.zoo`: timm's
attention ResNets, and any timm model as "timm:NAME", made when first asked for). For a
new attention type, one probe file in `sa_viz/probes/` or `register_probe`.

Each entry carries its own preprocessing (resize, crop, interpolation, mean and std: timm's
`pretrained_cfg` for timm models) and its CAM layers, shallow to deep: the page's "layer1" …
"layer4" are the entry's first … fourth (`ModelEntry.layer_module`), so a network whose stages
are `stages.0` … `stages.3` is explained at the same depths as a torchvision ResNet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from sa_viz.data.transforms import IMAGENET, Preprocessing
from sa_viz.models.entry import (
    ModelEntry,
    ModelMeta,
    WeightsSpec,
    default_cam_layers,
)
from sa_viz.models.resnet import resnet50, sa_resnet50
from sa_viz.models.senet import se_resnet50

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
# Zoo and timm: models made when first asked for (by either of their names); listed by
# `list_models` only once registered (`sa-viz serve --models` registers them).
_RESOLVED: dict[str, ModelEntry] = {}
DEFAULT_PAIR = ("resnet50", "sa_resnet50")
MAX_MODELS = 4  # side by side, on the page, the CLI and the API


def register_model(
    name: str | ModelEntry,
    builder: Callable[[], nn.Module] | None = None,
    *,
    title: str | None = None,
    checkpoint: str | Path | None = None,
    preprocessing: Preprocessing | None = None,
    cam_layers: Sequence[str] | None = None,
    top1: float | None = None,
    paper: str = "",
    licence: str = "",
) -> ModelEntry:
    """Register a model so that the app, the CLI, the Python API, studies, analyses and
    exports offer it like the built-in ones; return its entry.

    `builder()` returns the `nn.Module` (ImageNet's 1000 classes; untrained is fine);
    `checkpoint`: a file loaded into it strictly with `torch.load(weights_only=True)` (a state
    dict or a training checkpoint holding one); `preprocessing`: its evaluation transform
    (default: ImageNet's, resize 256 bilinear, centre crop 224); `cam_layers`: the modules a
    CAM can read, shallow to deep (default: `layer1` … `layer4` when the model has them, else
    the last four children that hold convolutions). Its attention units are found by the
    probes (`sa_viz.register_probe` for a new kind). A name registered already is refused.

    `register_model(entry)` registers a complete `ModelEntry`.
    """
    if isinstance(name, ModelEntry):
        entry = name
    elif isinstance(name, str) and callable(builder):
        entry = _custom_entry(
            name, builder, title, checkpoint, preprocessing, cam_layers, top1, paper, licence
        )
    else:
        raise TypeError(
            "register_model takes a name and a builder (a function returning an nn.Module), or "
            f"a ModelEntry; got {type(name).__name__} and {type(builder).__name__}"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", entry.name):
        raise ValueError(
            f"model name {entry.name!r}: use letters, digits, '_', '.' and '-' (at most 64)"
        )
    if _BY_NAME.get(entry.name, entry) is not entry:
        raise ValueError(f"a model named {entry.name!r} is registered already")
    _BY_NAME[entry.name] = entry
    return entry


def _custom_entry(
    name: str,
    builder: Callable[[], nn.Module],
    title: str | None,
    checkpoint: str | Path | None,
    preprocessing: Preprocessing | None,
    cam_layers: Sequence[str] | None,
    top1: float | None,
    paper: str,
    licence: str,
) -> ModelEntry:
    model = builder()
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"the builder of {name!r} returned a {type(model).__name__}, not an nn.Module"
        )
    layers = tuple(cam_layers) if cam_layers else default_cam_layers(model)
    modules = dict(model.named_modules())
    unknown = [layer for layer in layers if layer not in modules]
    if unknown:
        raise ValueError(
            f"{name}: no module named {', '.join(map(repr, unknown))} for a CAM layer; its "
            f"top-level modules are {', '.join(n for n, _ in model.named_children())}"
        )
    path = Path(checkpoint).expanduser() if checkpoint else None
    env = "SA_VIZ_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
    return ModelEntry(
        name=name,
        title=title or name,
        builder=builder,
        weights=WeightsSpec(
            model=name,
            filenames=(path.name,) if path else (f"{name}.pth",),
            env_var=env,
            source=f"{path.name} (registered checkpoint)" if path else "registered by the user",
            checkpoint=str(path) if path else None,
            how_to_get=(
                f"Pass its checkpoint: register_model({name!r}, ..., checkpoint=PATH), or set "
                f"{env}=PATH, or put {name}.pth in the weights folder."
            ),
        ),
        meta=ModelMeta(
            top1=float("nan") if top1 is None else float(top1),
            parameters=sum(p.numel() for p in model.parameters()),
            paper=paper or "the researcher's own model",
            source=str(path) if path else "registered in Python",
            licence=licence or "the researcher's",
        ),
        preprocessing=preprocessing or IMAGENET,
        cam_layers=layers,
    )


def list_models() -> list[str]:
    """Every registered model's name, in the registry's order: the built-in ones and those
    registered since (`register_model`). The zoo's timm models work by name without being
    listed here (`sa_viz.models.zoo.ZOO` lists them)."""
    return list(_BY_NAME)


def get_model(name: str) -> ModelEntry:
    """The registry entry of `name`; a zoo model or "timm:NAME" is made on first use (and kept,
    not listed); a ValueError that lists the models otherwise."""
    if isinstance(name, str) and name not in _BY_NAME:
        if name in _RESOLVED:
            return _RESOLVED[name]
        from sa_viz.models.zoo import resolve

        entry = resolve(name)
        if entry is not None:
            entry = _BY_NAME.get(entry.name) or _RESOLVED.setdefault(entry.name, entry)
            _RESOLVED[name] = entry
            return entry
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        from sa_viz.models.zoo import ZOO

        raise ValueError(
            f"unknown model {name!r}; choose from {', '.join([*_BY_NAME, *ZOO])}, or any timm "
            "model as timm:NAME"
        ) from None


def parse_models(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "a,b,c" → ("a", "b", "c"): one to four different models to compare, in order; each
    checked against the registry (zoo and timm: models made on the way). "timm:NAME" is named
    by its entry's name."""
    if not text:
        return DEFAULT_PAIR
    parts = str(text).split(",") if isinstance(text, str) else list(text)
    names = tuple(get_model(part.strip()).name for part in parts if str(part).strip())
    if not 1 <= len(names) <= MAX_MODELS or len(set(names)) != len(names):
        raise ValueError(
            f"give one to {MAX_MODELS} different models, as in 'resnet50,sa_resnet50'; got {text!r}"
        )
    return names


def parse_pair(text: str | None) -> tuple[str, ...]:
    """`parse_models` (the name it had when two was the most)."""
    return parse_models(text)
