"""The Shuffle Attention (SA) unit of SA-Net (Zhang & Yang, ICASSP 2021, arXiv:2102.00240).

Parameter names and shapes follow the official checkpoint (`cweight`, `cbias`, `sweight`, `sbias`,
`gn.*`), so it loads strictly. The two gates are dedicated `nn.Sigmoid` submodules, called exactly
once per forward, so a forward hook on `channel_gate` or `spatial_gate` reads that gate.
"""

from __future__ import annotations

import torch
from torch import nn

from sa_viz.pipeline.fast import fast_path_applies, no_observers


class ShuffleAttention(nn.Module):
    """Per-group channel gate and spatial gate, then a 2-group channel shuffle.

    With `groups` = G and `channels` = C, each group holds C/G channels split into two halves of
    c = C/(2G): the first half is gated per channel from its spatial mean, the second per pixel
    from its GroupNorm-ed values. Gate outputs have shape (B·G, c, 1, 1) and (B·G, c, H, W).
    """

    fast_inference = False  # see sa_viz.pipeline.fast.set_fast_inference

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        g, c = self.groups, self.channels_per_half
        if not g % 2 and fast_path_applies(self) and no_observers([self.gn], allowed=set()):
            return self._fast_forward(x)
        grouped = x.reshape(b * g, 2 * c, h, w)
        x1, x2 = grouped.chunk(2, dim=1)
        channel_gate = self.channel_gate(self.cweight * x1.mean((2, 3), keepdim=True) + self.cbias)
        spatial_gate = self.spatial_gate(self.sweight * self.gn(x2) + self.sbias)
        if torch.is_grad_enabled() or g % 2:
            out = torch.cat([x1 * channel_gate, x2 * spatial_gate], dim=1)
            return self.shuffle(out.reshape(b, 2 * g * c, h, w))
        # Without autograd (and with G even), the products are written straight to where the
        # concatenation and the 2-group shuffle would put them (half `half`, channel j of group
        # t·G/2 + k lands on channel 4c·k + 2c·half + 2j + t): the same values, two copies fewer.
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        slots = out.view(b, g // 2, 2, c, 2, h, w).permute(0, 4, 1, 2, 3, 5, 6)
        grid = (b, 2, g // 2, c)
        torch.mul(x1.view(*grid, h, w), channel_gate.view(*grid, 1, 1), out=slots[:, :, :, 0])
        torch.mul(x2.view(*grid, h, w), spatial_gate.view(*grid, h, w), out=slots[:, :, :, 1])
        return out

    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The folded inference path (`sa_viz.pipeline.fast`): the same gates and output up to float
        rounding, at about four fifths of the cost (measured on this project's CPU: 8.3–8.9 →
        6.5–7.8 ms for the 16 units at 224²). The unit is cheap in FLOPs; what it spends is per-op
        overhead, so this path runs fewer ops: the outer affine `sweight, sbias` folded into
        GroupNorm's own (cached with the unit's parameter versions), one addcmul for the
        channel logits, views instead of reshape/chunk/indexing. The gates still run as
        modules, so their hooks fire; `gn` does not, so this path is taken only when nothing
        hooks it."""
        b, _, h, w = x.shape
        g, c = self.groups, self.channels_per_half
        cweight, cbias, gn_weight, gn_bias = self._folded()
        grouped = x.reshape(b * g, 2 * c, h, w)
        x1, x2 = grouped[:, :c], grouped[:, c:]
        channel_gate = self.channel_gate(torch.addcmul(cbias, cweight, x1.mean((2, 3), True)))
        spatial_gate = self.spatial_gate(
            torch.group_norm(x2, c, gn_weight, gn_bias, self.gn.eps, False)
        )
        # As in `forward`: the products go straight to their shuffled places.
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        slots = out.view(b, g // 2, 2, c, 2, h, w).permute(0, 4, 1, 2, 3, 5, 6).unbind(3)
        grid = (b, 2, g // 2, c)
        torch.mul(x1.view(*grid, h, w), channel_gate.view(*grid, 1, 1), out=slots[0])
        torch.mul(x2.view(*grid, h, w), spatial_gate.view(*grid, h, w), out=slots[1])
        return out

    def _folded(self) -> tuple[torch.Tensor, ...]:
        # The unit's six tensors named directly: `sa_viz.pipeline.fast.state_key` walks the module tree,
        # which costs as much as the ops this path saves.
        tensors = (self.cweight, self.cbias, self.sweight, self.sbias, self.gn.weight, self.gn.bias)
        key = tuple((id(t), t._version) for t in tensors)
        cached = self.__dict__.get("_folded_affine")
        if cached is None or cached[0] != key:
            with torch.no_grad():
                c = self.channels_per_half
                sweight = self.sweight.view(c)
                folded = (
                    self.cweight.detach(),
                    self.cbias.detach(),
                    (sweight * self.gn.weight).detach(),
                    torch.addcmul(self.sbias.view(c), sweight, self.gn.bias).detach(),
                )
            cached = (key, folded)
            self.__dict__["_folded_affine"] = cached  # derived data, never in the state dict
        return cached[1]

    def extra_repr(self) -> str:
        return f"groups={self.groups}, c={self.channels_per_half}"
