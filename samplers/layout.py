"""Where each sampled token sits in the picture: one raster grid, or a pyramid of scales.

A layout is the list of token maps ``((h0, w0), (h1, w1), ...)`` in the order the
tokens are stored: one map for next-token and masked models (a raster grid), one
per scale, coarse to fine, for next-scale models. Families give theirs as plain
tuples; results, entropy maps and previews read them through this class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import SamplingError


@dataclass(frozen=True)
class TokenLayout:
    """Token maps (height, width) in storage order; ``scales`` has one entry for a plain grid."""

    scales: tuple[tuple[int, int], ...]

    def __post_init__(self):
        if not self.scales or any(h < 1 or w < 1 for h, w in self.scales):
            raise SamplingError(f"A token layout needs maps of at least 1x1; got {self.scales}.")

    @classmethod
    def grid(cls, height: int, width: int | None = None) -> "TokenLayout":
        return cls(((int(height), int(width or height)),))

    @property
    def num_tokens(self) -> int:
        return sum(h * w for h, w in self.scales)

    @property
    def final(self) -> tuple[int, int]:
        """The finest map: the one an image is decoded from."""
        return self.scales[-1]

    def maps(self, values: torch.Tensor) -> list[torch.Tensor]:
        """Per-token values (B, N) → one (B, h, w) tensor per map, in storage order."""
        if values.shape[-1] != self.num_tokens:
            raise SamplingError(f"Got {values.shape[-1]} values per sample for a layout of {self.num_tokens} "
                                f"tokens {self.scales}.")
        out, start = [], 0
        for h, w in self.scales:
            out.append(values[..., start:start + h * w].reshape(*values.shape[:-1], h, w))
            start += h * w
        return out

    def final_map(self, values: torch.Tensor) -> torch.Tensor:
        """The values of the finest map, (B, h, w)."""
        return self.maps(values)[-1]
