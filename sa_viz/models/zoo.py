"""timm's attention ResNets, and any timm model by name, as registry entries.

Each entry is built by `timm.create_model(name)` and takes its preprocessing from timm's own
`pretrained_cfg` (input size, crop fraction, interpolation, mean and std), its CAM layers from
the model's `feature_info`, and its weights from the Hugging Face hub cache where timm keeps them
(`sa_viz.models.weights`). The zoo's models carry their published ImageNet-1k top-1 at that
preprocessing, from timm's `results/results-imagenet.csv` (commit aa4b585, August 2026).

`resolve(name)` makes the entry of a zoo name ("seresnet50.ra2_in1k") or of "timm:NAME" (any
timm model with a pretrained tag); `get_model` calls it for names it does not know, so these
models work by name anywhere; `register_model(get_model(name))` lists them too (the app offers
the models listed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from sa_viz.models.entry import (
    ModelEntry,
    ModelMeta,
    Preprocessing,
    WeightsSpec,
    default_cam_layers,
)

RESULTS = (
    "timm results/results-imagenet.csv (huggingface/pytorch-image-models, commit aa4b585), "
    "at the model's pretrained_cfg input size and crop"
)


@dataclass(frozen=True)
class ZooModel:
    title: str
    gates: str | None  # the probe kind that reads its units
    gates_note: str
    top1: float
    parameters: int
    paper: str


ZOO: dict[str, ZooModel] = {
    "seresnet50.ra2_in1k": ZooModel(
        "SE-ResNet-50 (timm RA2)",
        "SE",
        "one sigmoid gate per channel, from the channel's global average",
        80.260,
        28_088_024,
        "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
    ),
    "ecaresnet50d.miil_in1k": ZooModel(
        "ECA-ResNet-50-D (MIIL)",
        "ECA",
        "one sigmoid gate per channel, a 1-D convolution across neighbouring channels",
        80.634,
        25_576_350,
        "Wang et al., ECA-Net: Efficient Channel Attention, CVPR 2020",
    ),
    "gcresnet50t.ra2_in1k": ZooModel(
        "GC-ResNet-50-T (timm RA2)",
        "GC",
        "a softmax over positions (where the context is pooled from), added to every channel",
        80.944,
        25_897_080,
        "Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks, ICCVW 2019",
    ),
    "resnest50d.in1k": ZooModel(
        "ResNeSt-50-D",
        "SplAt",
        "a softmax over the radix splits, per channel (split attention)",
        80.958,
        27_483_240,
        "Zhang et al., ResNeSt: Split-Attention Networks, CVPRW 2022",
    ),
    "skresnext50_32x4d.ra_in1k": ZooModel(
        "SK-ResNeXt-50 32x4d",
        "SK",
        "a softmax over the kernel paths (3×3, dilated 3×3), per channel",
        80.168,
        27_479_784,
        "Li et al., Selective Kernel Networks, CVPR 2019",
    ),
    "resnet50.a1_in1k": ZooModel(
        "ResNet-50 (timm A1)",
        None,
        "",
        80.382,
        25_557_032,
        "Wightman et al., ResNet strikes back, NeurIPS 2021 workshop (plain ResNet-50 with a "
        "modern recipe: compare attention against it, not only against the 2015 recipe)",
    ),
}

PREFIX = "timm:"


def resolve(name: str) -> ModelEntry | None:
    """The entry of a zoo model or of "timm:NAME" (None for any other name); a timm name
    that timm does not know is a ValueError that says so."""
    if name in ZOO:
        return timm_entry(name)
    if name.startswith(PREFIX):
        return timm_entry(name.removeprefix(PREFIX))
    return None


def timm_entry(name: str) -> ModelEntry:
    """A registry entry for timm's `name` ("arch.tag"; an architecture alone takes timm's
    default tag)."""
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        raise ValueError(
            f"timm has no model {arch!r} (timm.list_models('*{arch[:6]}*') lists similar names)"
        )
    cfg = get_pretrained_cfg(name) if tag else None
    if cfg is None:
        cfg = get_pretrained_cfg(arch)
    if cfg is None:
        raise ValueError(f"timm has no pretrained weights named {name!r}")
    full = f"{arch}.{cfg.tag}" if cfg.tag else arch
    if cfg.num_classes != 1000:
        raise ValueError(
            f"{full} has {cfg.num_classes} classes; SA-Viz explains ImageNet-1k classifiers"
        )
    known = ZOO.get(full)
    builder = partial(_build, full)
    layers, parameters = _inspect(builder)
    return ModelEntry(
        name=full,
        title=known.title if known else full,
        builder=builder,
        weights=WeightsSpec(
            model=full,
            filenames=(f"{full}.safetensors", f"{full}.pth"),
            env_var="SA_VIZ_" + "".join(c if c.isalnum() else "_" for c in full.upper()),
            source=f"timm {full} (Hugging Face hub: {cfg.hf_hub_id or 'none'})",
            hf_hub_id=cfg.hf_hub_id,
            how_to_get=_how_to_get(full, cfg.hf_hub_id),
        ),
        meta=ModelMeta(
            top1=known.top1 if known else float("nan"),
            parameters=parameters,
            paper=known.paper if known else f"timm {arch}",
            source=f"timm {full}; top-1 from {RESULTS}" if known else f"timm {full}",
            licence=f"{cfg.license or 'see the model card'} (timm weights)",
        ),
        preprocessing=Preprocessing.from_timm(cfg),
        cam_layers=layers,
        gates=known.gates if known else None,
        gates_note=known.gates_note if known else "",
        extra={"timm": full},
    )


def _build(name: str) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False)


def _inspect(builder: Callable[[], nn.Module]) -> tuple[tuple[str, ...], int]:
    """Its CAM layers and its parameter count, from the model built on the meta device (no
    memory; a CPU build where timm can't build there)."""
    import torch

    try:
        with torch.device("meta"):
            model = builder()
    except (RuntimeError, NotImplementedError, TypeError):
        model = builder()
    parameters = sum(p.numel() for p in model.parameters())
    return default_cam_layers(model), parameters


def _how_to_get(name: str, hub_id: str | None) -> str:
    if not hub_id:
        return (
            f"timm publishes no hub file for {name}; put {name}.safetensors in the weights folder."
        )
    return (
        f"Downloaded by timm into the Hugging Face cache when online. Offline: on a machine with "
        f"internet access run `hf download {hub_id} model.safetensors` (or "
        f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"`) and copy "
        f"its cache folder models--{hub_id.replace('/', '--')} into this machine's "
        f"Hugging Face cache (HF_HUB_CACHE), or the file itself to {name}.safetensors in the "
        "weights folder (`sa-viz weights` shows where that is)."
    )
