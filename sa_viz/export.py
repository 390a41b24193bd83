"""Everything about one explanation in one ZIP: the figures, a JSON, and the raw arrays as NPZ."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sa_viz import render, views
from sa_viz.explain import Explanation


def png_bytes(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG")
    return buffer.getvalue()


def arrays(result: Explanation) -> dict[str, np.ndarray]:
    """Raw and scaled CAMs of each model and every gate array, under flat names."""
    out: dict[str, np.ndarray] = {"input_image": result.image.display}
    for name, m in result.models.items():
        out[f"{name}/cam"] = m.cam
        out[f"{name}/cam_raw"] = m.cam_raw
        out[f"{name}/probabilities"] = m.probabilities
        for unit, gates in m.gates.items():
            out[f"{name}/{unit}/channel_gate"] = gates.channel[0].numpy()  # (64, c)
            out[f"{name}/{unit}/spatial_gate"] = gates.spatial[0].numpy()  # (64, c, h, w)
    return out


def write_zip(
    result: Explanation,
    path: str | Path,
    *,
    unit: str,
    group: int,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
    scale: str = "unit range",
) -> Path:
    """Write the ZIP for what is on screen: the same pictures with the same view settings."""
    path = Path(path)
    cams = views.cam_view(result, colormap=colormap, alpha=alpha, normalization=normalization)
    pictures = {f"cam_{name}.png": overlay for name, overlay in cams.overlays.items()}
    pictures["cam_difference.png"] = cams.difference
    settings: dict[str, Any] = {
        "colormap": colormap,
        "opacity": alpha,
        "cam_normalization": normalization,
        "gate_unit": unit,
        "gate_group": group,
        "gate_colour_scale": scale,
    }
    sa = result.models.get("sa_resnet50")
    if sa is not None and sa.gates:
        grid, heat, detail = views.gate_views(
            result, unit, group, colormap=colormap, alpha=alpha, scale=scale
        )
        pictures[f"gates_{unit}_spatial.png"] = grid
        pictures[f"gates_{unit}_channel.png"] = heat
        pictures[f"gates_{unit}_group{group}.png"] = detail
        pictures["gates_summary.png"] = views.summary_picture(result)
    report = result.to_json()
    report["view"] = settings
    report["agreement"] = {k: None if np.isnan(v) else v for k, v in cams.agreement.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays(result))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, picture in pictures.items():
            archive.writestr(name, png_bytes(picture))
        archive.writestr("explanation.json", json.dumps(report, indent=2))
        archive.writestr("arrays.npz", buffer.getvalue())
        archive.writestr("README.txt", _readme(result))
    return path


def _readme(result: Explanation) -> str:
    return (
        "SA-Viz export\n\n"
        "cam_<model>.png        CAM overlay of each model (see explanation.json for the class)\n"
        "cam_difference.png     SA-ResNet-50 minus ResNet-50 on one scale: red = SA looks more\n"
        "gates_*                SA unit gates: spatial mosaic, channel heatmap, a group, summary\n"
        "explanation.json       predictions, CAM targets, weights status, settings, agreement\n"
        "arrays.npz             numpy arrays: <model>/cam (H, W) in [0, 1], <model>/cam_raw\n"
        "                       (h, w) unscaled, <model>/<unit>/channel_gate (64, c),\n"
        "                       <model>/<unit>/spatial_gate (64, c, h, w), input_image (H, W, 3)\n"
        f"\nCAM method {result.method} at {result.layer}.\n"
    )
