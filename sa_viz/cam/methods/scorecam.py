"""Score-CAM (Wang et al., CVPR Workshops 2020), pytorch-grad-cam's, made to fit a server: the
masked inputs made batch by batch, only the most active channels scored, progress reported."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import CamMethod, CamTarget
from sa_viz.cam.library import LibraryCam
from sa_viz.hooks import report

# ScoreCAM scores this many channels of the target layer, the most active ones (by mean
# activation), with one forward pass each: all of layer4's 2048 took minutes per model on a
# CPU; 32 take seconds (benchmarks/README.md). The rest get weight 0.
SCORECAM_CHANNELS = 32


@cache
def bounded_score_cam() -> type:
    """pytorch-grad-cam's ScoreCAM, with each batch of masked inputs made when it is needed.

    Why by hand: the library multiplies the input by every upsampled channel at once, channels ×
    3 × H × W floats (1.9 GB per model for layer4's 2048 channels at 224×337) allocated before
    the first forward pass, where no time limit can stop it. Each channel's upsampling and
    min-max scaling is its own, so doing them per batch gives the same scores (tested). Batches
    shrink with the input's size, so memory stays that of a 224×224 input.

    `channels` (None: all, as the library) scores only that many channels per image, those with
    the highest mean activation; the others get weight 0 and the softmax runs over the scored
    ones. Each pass reports its progress (`sa_viz.hooks.report`).
    """
    from pytorch_grad_cam import ScoreCAM

    class BoundedScoreCAM(ScoreCAM):
        channels: int | None = None

        def get_cam_weights(
            self,
            input_tensor: torch.Tensor,
            target_layer: nn.Module,
            targets: Sequence[CamTarget],
            activations: np.ndarray,
            grads: np.ndarray,
        ) -> np.ndarray:
            upsample = nn.UpsamplingBilinear2d(size=input_tensor.shape[-2:])
            # 16 masked copies of a 224×224 input per pass, as the library does; fewer for a
            # larger input, so a pass needs no more memory than that (a 224×896 panorama with
            # 16 a pass took 3.1 GB more at layer1, measured with benchmarks/bench_methods.py).
            pixels = input_tensor.shape[-2] * input_tensor.shape[-1]
            batch_size = max(1, getattr(self, "batch_size", 16) * 224 * 224 // pixels)
            all_maps = torch.from_numpy(activations)
            b, c = all_maps.shape[:2]
            chosen = (
                torch.arange(c).expand(b, c)
                if self.channels is None or self.channels >= c
                else all_maps.mean(dim=(2, 3)).topk(self.channels, dim=1).indices
            )
            passes = b * -(-chosen.shape[1] // batch_size)
            done = 0
            weights = torch.zeros(b, c)
            with torch.no_grad():
                for n, (target, image, maps) in enumerate(
                    zip(targets, input_tensor, all_maps, strict=True)
                ):
                    scores = []
                    for i in range(0, chosen.shape[1], batch_size):
                        picked = maps[chosen[n, i : i + batch_size]]
                        masks = upsample(picked[None].to(self.device))[0]
                        flat = masks.flatten(1)
                        low = flat.min(-1)[0][:, None, None]
                        high = flat.max(-1)[0][:, None, None]
                        masks = (masks - low) / (high - low + 1e-8)
                        batch = image[None] * masks[:, None]
                        scores.extend(target(o).cpu().item() for o in self.model(batch))
                        # The library's hook on the target layer keeps every pass's activation
                        # (a batch's layer1 output at 224×896 is 51 MB; 3 GB before the time
                        # limit), long after the first pass's were read: drop them.
                        self.activations_and_grads.activations.clear()
                        done += 1
                        report(done / passes)
                    weights[n, chosen[n]] = torch.softmax(torch.tensor(scores), dim=0)
            return weights.numpy()

    return BoundedScoreCAM


def _score_channels(cam: object) -> None:
    cam.channels = SCORECAM_CHANNELS  # type: ignore[attr-defined]


METHOD = CamMethod(
    "scorecam",
    "ScoreCAM",
    f"the layer's {SCORECAM_CHANNELS} most active channels, one forward pass each "
    "(seconds on a CPU)",
    LibraryCam(bounded_score_cam, gradients=False, configure=_score_channels),
    long=True,
    order=7,
)
