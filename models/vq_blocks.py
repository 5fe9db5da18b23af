"""Resampling layers shared by our VQ decoders and encoders (LlamaGen's VQ, VAR's VQ-VAE).

Parameter names (``conv``) follow both references' state dicts.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Downsample(nn.Module):
    """Pad one pixel right and bottom, then a stride-2 3×3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
