"""The Shuffle Attention unit (sa_viz/models/attention.py) against DESIGN.md's math, computed by
hand element by element."""

from __future__ import annotations

import torch

from sa_viz.models.attention import ShuffleAttention


def hand_computed_unit(unit: ShuffleAttention, x: torch.Tensor) -> torch.Tensor:
    """`hand_computed_sa` with `unit`'s own parameters."""
    return hand_computed_sa(
        x,
        unit.cweight.flatten(),
        unit.cbias.flatten(),
        unit.sweight.flatten(),
        unit.sbias.flatten(),
        unit.gn.weight,
        unit.gn.bias,
        groups=unit.groups,
    )


def hand_computed_sa(x, cweight, cbias, sweight, sbias, gn_weight, gn_bias, groups, eps=1e-5):
    """DESIGN.md's four steps, one element-wise loop at a time (independent of the module)."""
    b, ch = x.shape[:2]
    c = ch // (2 * groups)
    pre_shuffle = torch.empty_like(x)
    for n in range(b):
        for g in range(groups):
            for j in range(c):
                first = x[n, g * 2 * c + j]  # X1, channel j of group g
                s = first.mean()
                gate = torch.sigmoid(cweight[j] * s + cbias[j])
                pre_shuffle[n, g * 2 * c + j] = first * gate
                second = x[n, g * 2 * c + c + j]  # X2, channel j
                normed = (second - second.mean()) / torch.sqrt(second.var(unbiased=False) + eps)
                normed = normed * gn_weight[j] + gn_bias[j]
                gate = torch.sigmoid(sweight[j] * normed + sbias[j])
                pre_shuffle[n, g * 2 * c + c + j] = second * gate
    # channel shuffle, 2 groups: output channel 2m + t comes from channel t·C/2 + m
    out = torch.empty_like(x)
    for m in range(ch // 2):
        for t in range(2):
            out[:, 2 * m + t] = pre_shuffle[:, t * ch // 2 + m]
    return out


def test_sa_unit_matches_hand_computation():
    torch.manual_seed(0)
    unit = ShuffleAttention(channels=24, groups=3)  # c = 4
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(2, 24, 5, 7)
    expected = hand_computed_unit(unit, x)
    torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-5)


def test_sa_unit_with_and_without_autograd_is_the_same_computation():
    """One forward: inference and training compute the same values, bit for bit."""
    torch.manual_seed(1)
    unit = ShuffleAttention(channels=32, groups=4)  # c = 4, an even number of groups
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(torch.randn_like(p))
        x = torch.randn(2, 32, 6, 5)
        inference = unit(x)
    expected = hand_computed_unit(unit, x)
    torch.testing.assert_close(inference, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(inference, unit(x).detach())
