"""Previews for families whose tokens form one raster grid (next-token and masked models).

A preview decodes every position: unknown tokens take the token of the nearest known
position in raster order (for a next-token prefix: the last token sampled), and the
pixels of unknown tokens are faded towards light grey, so the picture shows what is final.
"""

from __future__ import annotations

import numpy as np
import torch


def fill_unknown(tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Tokens (N,) with each unknown position set to the token of the nearest known one (ties: the earlier).

    ``known`` (N,) bool must mark at least one position.
    """
    where = known.nonzero().flatten()
    positions = torch.arange(tokens.shape[0], device=tokens.device)
    right = torch.searchsorted(where, positions).clamp(max=where.numel() - 1)
    left = (right - 1).clamp(min=0)
    take_left = (positions - where[left]).abs() <= (where[right] - positions).abs()
    return tokens[torch.where(take_left, where[left], where[right])]


def fade_unknown(image: np.ndarray, known_map: torch.Tensor, strength: float = 0.65) -> np.ndarray:
    """RGB uint8 (H, W, 3) with the pixels of unknown tokens (``known_map`` (h, w) bool) faded to light grey."""
    height, width = image.shape[:2]
    grid_h, grid_w = known_map.shape
    known = known_map.cpu().numpy()
    pixels = known[np.arange(height) * grid_h // height][:, np.arange(width) * grid_w // width]
    out = image.copy()
    faded = image[~pixels].astype(np.float32) * (1 - strength) + 160
    out[~pixels] = faded.clip(0, 255).astype(np.uint8)
    return out
