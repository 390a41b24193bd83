"""Your own model in SA-Viz: a file that registers it, given to `--model-file`.

    sa-viz explain photo.jpg --out out/ --model-file examples/my_model.py \
        --models resnet50,small_cbam_net
    sa-viz serve --model-file examples/my_model.py --models small_cbam_net

This one is a small CNN written here, with its own attention module (CBAM, Woo et al., ECCV 2018:
a channel gate, then a one-map spatial gate) in every block, and a probe that tells SA-Viz where
its gates are. Put the checkpoint you trained beside this file as small_cbam_net.pth, or set
SA_VIZ_SMALL_CBAM_NET=/path/to/it: a state dict or a training checkpoint holding one
({"state_dict": ...}, {"model": ...}, DataParallel's "module." prefix), read with
torch.load(weights_only=True) and loaded strictly. Without one the model runs untrained and every
panel says so.

Any `nn.Module` that classifies ImageNet's 1000 classes works. Attention SA-Viz knows (SE, ECA,
CBAM, Global Context, split attention, SK, SA, as timm writes them) needs no probe; CAM layers
default to `layer1` ... `layer4` (else `cam_layers=[...]`), preprocessing to ImageNet's (else
`preprocessing=sa_viz.Preprocessing(resize=..., crop=..., mean=..., std=..., interpolation=...)`).
"""

from pathlib import Path

import torch
from torch import nn

import sa_viz
from sa_viz.probes.base import GateLayout, Probe, Tap, block_of, stage_of

CHECKPOINT = Path(__file__).with_name("small_cbam_net.pth")


class ChannelSpatialAttention(nn.Module):
    """CBAM: out = x · a · s, a = σ(MLP(avg x) + MLP(max x)) per channel, then
    s = σ(conv7×7([mean, max] over channels)) per position."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
        )
        self.channel_gate = nn.Sigmoid()
        self.where = nn.Conv2d(2, 1, 7, padding=3)
        self.spatial_gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        x = x * self.channel_gate(pooled)
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * self.spatial_gate(self.where(maps))


class Block(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.attn = ChannelSpatialAttention(outputs)
        self.shortcut = nn.Sequential(
            nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.attn(self.bn2(self.conv2(y)))
        return torch.relu(y + self.shortcut(x))


class SmallCbamNet(nn.Module):
    """A stem, four stages of two blocks (32 → 256 channels, stride 32 in all), a linear head."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        inputs = widths[0]
        for index, width in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            stage = nn.Sequential(Block(inputs, width, stride), Block(width, width, 1))
            self.add_module(f"layer{index}", stage)
            inputs = width
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


class ChannelSpatialProbe(Probe):
    """Where SA-Viz reads this module's gates: the outputs of its two sigmoids."""

    kind = "MyCBAM"
    unit_type = ChannelSpatialAttention

    def unit_name(self, path: str) -> str:
        return block_of(path)  # "layer3.0.attn" → "layer3.0"

    def taps(self, unit: nn.Module) -> list[Tap]:
        return [Tap("channel", unit.channel_gate), Tap("spatial", unit.spatial_gate)]

    def layout(self, name: str, unit: nn.Module) -> GateLayout:
        return GateLayout(
            self.kind,
            stage_of(name),
            groups=1,
            channels=unit.channels,
            spatial=True,
            spatial_channels=1,
            gated="the block's features before the residual add: each channel, then each position",
        )


sa_viz.register_probe(ChannelSpatialProbe())
sa_viz.register_model(
    "small_cbam_net",
    SmallCbamNet,
    title="Small CBAM net (mine)",
    checkpoint=CHECKPOINT if CHECKPOINT.is_file() else None,
    paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
)
