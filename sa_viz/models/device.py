"""Where the models run: "auto" (a CUDA GPU when there is one, else the CPU), "cpu" or "cuda"."""

from __future__ import annotations

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(RuntimeError):
    """The requested device is not there; the message says what to do."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """ "auto" → cuda if available, else cpu; "cpu", "cuda" or "cuda:1" as given, checked."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(
            f"unknown device {name!r}; choose {', '.join(DEVICES)} (or cuda:N)"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceUnavailable(f"unknown device {name!r}; choose {', '.join(DEVICES)}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                "--device cuda: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is "
                "False). Use --device cpu, or install a CUDA build of PyTorch on a machine "
                "with an NVIDIA GPU."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"{name}: there are {torch.cuda.device_count()} CUDA devices (0 … "
                f"{torch.cuda.device_count() - 1})"
            )
    return device


def device_of(model: nn.Module) -> torch.device:
    """The device a model's parameters are on (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
