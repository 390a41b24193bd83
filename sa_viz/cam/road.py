"""ROAD (Rong et al., ICML 2022), pytorch-grad-cam's implementation, with a fixed seed: the
numbers behind the `road` analysis (`sa_viz.analyses.road`)."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

ROAD_PERCENTILES = (80, 20)  # pytorch-grad-cam's defaults: MoRF at percentile 80, LeRF at 20
ROAD_SEED = 0  # the imputation noise's seed: ROAD's numbers repeat
_ROAD_LOCK = threading.Lock()


def road(model: nn.Module, x: torch.Tensor, cam: np.ndarray, target: int) -> dict[str, float]:
    """The change of the target's probability when the pixels the CAM ranks most relevant (MoRF)
    or least relevant (LeRF) are removed and filled in by noisy linear imputation, which leaves no
    shape of the removed region for the model to see. `cam` (H, W) at `x`'s size.

    The imputation's noise is drawn from torch's generator seeded with `ROAD_SEED`, forked so
    that the caller's random state is left as it was: the same inputs give the same numbers
    (the page's table and a study's rows agree run after run)."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    most, least = ROAD_PERCENTILES
    targets = [ClassifierOutputSoftmaxTarget(target)]
    cams = np.asarray(cam, dtype=np.float32)[None]
    devices = [x.device] if x.device.type == "cuda" else []
    # torch's generator is the process's: one ROAD at a time, or threads would share draws
    with _ROAD_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(ROAD_SEED)
        morf = ROADMostRelevantFirst(percentile=most)(x, cams, targets, model)
        lerf = ROADLeastRelevantFirst(percentile=least)(x, cams, targets, model)
    return {"road_morf": float(morf[0]), "road_lerf": float(lerf[0])}
