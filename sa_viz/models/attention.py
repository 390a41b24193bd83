"""The Shuffle Attention (SA) unit of SA-Net (Zhang & Yang, ICASSP 2021, arXiv:2102.00240).

Parameter names and shapes follow the official checkpoint (`cweight`, `cbias`, `sweight`, `sbias`,
`gn.*`), so it loads strictly. The two gates are dedicated `nn.Sigmoid` submodules, called exactly
once per forward, so a forward hook on `channel_gate` or `spatial_gate` reads that gate.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ShuffleAttention(nn.Module):
    """Per-group channel gate and spatial gate, then a 2-group channel shuffle.

    With `groups` = G and `channels` = C, each group holds C/G channels split into two halves of
    c = C/(2G): the first half is gated per channel from its spatial mean, the second per pixel
    from its GroupNorm-ed values. Gate outputs have shape (B·G, c, 1, 1) and (B·G, c, H, W).
    """

    def __init__(self, channels: int, groups: int = 64) -> None:
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(
                f"channels ({channels}) must be divisible by 2 * groups ({2 * groups})"
            )
        self.groups = groups
        c = channels // (2 * groups)
        # The paper's initialisation: weights 0 and biases 1, so an untrained unit gates by σ(1).
        self.cweight = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, c, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, c, 1, 1))
        self.gn = nn.GroupNorm(c, c)
        self.channel_gate = nn.Sigmoid()
        self.spatial_gate = nn.Sigmoid()
        self.shuffle = nn.ChannelShuffle(2)

    @property
    def channels_per_half(self) -> int:
        """c: channels in each half of a group (2, 4, 8, 16 in ResNet-50's four stages)."""
        return self.cweight.shape[1]

    KIND = "SA"  # what the weights status calls these units
    UNTRAINED_GATE = 1 / (1 + math.exp(-1))  # σ(1): every gate of an untrained unit

    @property
    def untrained(self) -> bool:
        """True while the gate weights are the paper's zero init (every gate is then σ(bias)):
        trained weights are never exactly zero."""
        return not (self.cweight.detach().any() or self.sweight.detach().any())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        g, c = self.groups, self.channels_per_half
        grouped = x.reshape(b * g, 2 * c, h, w)
        x1, x2 = grouped.chunk(2, dim=1)
        channel_gate = self.channel_gate(self.cweight * x1.mean((2, 3), keepdim=True) + self.cbias)
        spatial_gate = self.spatial_gate(self.sweight * self.gn(x2) + self.sbias)
        out = torch.cat([x1 * channel_gate, x2 * spatial_gate], dim=1)
        return self.shuffle(out.reshape(b, 2 * g * c, h, w))

    def extra_repr(self) -> str:
        return f"groups={self.groups}, c={self.channels_per_half}"
