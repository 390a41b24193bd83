"""SA-Viz: see what Shuffle Attention changes. ResNet-50 and SA-ResNet-50 side by side:
predictions, Grad-CAM and every SA unit's channel and spatial gates."""

__version__ = "0.1.0"
