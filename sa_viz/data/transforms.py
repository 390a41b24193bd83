"""The input transform a model was evaluated with, as data: one `Preprocessing` per registered
model (the built-in ones share ImageNet's; timm's come from their `pretrained_cfg`), applied by
`sa_viz.data.preprocess`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sa_viz.data.imagenet import INPUT_SIZE, MEAN, RESIZE_SIZE, STD

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocessing:
    """The input transform a model was evaluated with: the shorter side resized to `resize`
    with `interpolation`, a centre crop of `crop` × `crop`, then `mean` and `std`."""

    resize: int = RESIZE_SIZE  # shorter side, then a centre crop of `crop`
    crop: int = INPUT_SIZE
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}"
            )
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"a crop of {self.crop} px does not fit a resize to {self.resize} px")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def crop_fraction(self) -> float:
        """The share of the resized shorter side the crop keeps (timm's `crop_pct`)."""
        return self.crop / self.resize

    @classmethod
    def from_timm(cls, cfg: Any) -> Preprocessing:
        """From a timm `pretrained_cfg` (an object or a dict): timm's own arithmetic, a resize
        to floor(input size / crop_pct) and a centre crop of the input size."""

        def get(key: str, default: Any = None) -> Any:
            return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)

        size = int(get("input_size", (3, INPUT_SIZE, INPUT_SIZE))[-1])
        crop_pct = float(get("crop_pct", None) or 0.875)
        mode = get("crop_mode", "center") or "center"
        if mode != "center":
            raise ValueError(f"timm crop mode {mode!r}: SA-Viz follows centre crops only")
        return cls(
            resize=math.floor(size / crop_pct),
            crop=size,
            mean=tuple(get("mean", MEAN)),
            std=tuple(get("std", STD)),
            interpolation=get("interpolation", "bilinear") or "bilinear",
        )

    def describe(self) -> str:
        """ "resize 256 bilinear, centre crop 224, ImageNet mean/std" """
        norm = "ImageNet mean/std"
        if (self.mean, self.std) != (MEAN, STD):
            mean, std = (tuple(round(v, 3) for v in values) for values in (self.mean, self.std))
            norm = f"mean {mean}, std {std}"
        return f"resize {self.resize} {self.interpolation}, centre crop {self.crop}, {norm}"


IMAGENET = Preprocessing()
