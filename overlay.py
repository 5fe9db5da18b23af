"""Entropy heatmaps at any image size, laid over any ComfyUI IMAGE batch (torch + numpy, no ComfyUI).

A ComfyUI IMAGE is a float tensor (batch, height, width, channels) in [0, 1]. Nodes
make 3 channels (RGB), 4 (RGBA, e.g. "Join Image with Alpha") and sometimes 1
(grey); images of any height and width. Map i is laid over image i, or one image
over every map.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import SamplingError
from .imaging import colorize

CELL_PIXELS = 16  # heatmap pixels per token when no image gives the size


def entropy_overlay(entropy: torch.Tensor, grid_size: int, image: torch.Tensor | None = None,
                    overlay: float = 0.0, max_entropy: float = 0.0) -> torch.Tensor:
    """Per-token entropy (B, grid²) → heatmaps (B, H, W, 3) float32 in [0, 1], on the CPU.

    Without ``image`` the maps are ``grid_size * 16`` pixels square. With it they take
    its height and width, and ``overlay`` (0..1) is how much of image i shows through
    map i (an image batch of 1 goes under every map). ``max_entropy`` is the entropy
    drawn brightest (0 = the batch maximum).
    """
    check_overlay_settings(overlay, max_entropy)
    count = entropy.shape[0]
    rgb = None if image is None else match_batch(as_rgb(image), count)
    height, width = (grid_size * CELL_PIXELS,) * 2 if rgb is None else tuple(rgb.shape[1:3])
    maps = entropy_heatmaps(entropy, grid_size, height, width, max_entropy or None)
    if rgb is None or overlay <= 0:
        return maps
    return (maps * (1 - overlay) + rgb * overlay).clamp_(0, 1)


def check_overlay_settings(overlay: float, max_entropy: float) -> None:
    """Refuse an overlay outside 0..1 and a negative or non-finite max_entropy (NaN included)."""
    if not 0.0 <= overlay <= 1.0:
        raise SamplingError(f"overlay is {overlay}; use a value from 0 (heatmap only) to 1 (image only).")
    if not 0.0 <= max_entropy < float("inf"):
        raise SamplingError(f"max_entropy is {max_entropy}; use 0 (the batch maximum) or a positive entropy in nats.")


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """An IMAGE batch (B, H, W, C) → (B, H, W, 3) float32 on the CPU: grey (C 1, or 2 with alpha) is repeated,
    RGBA loses its alpha."""
    if image.dim() != 4 or 0 in image.shape:
        raise SamplingError(f"The image to overlay has shape {tuple(image.shape)}, not (batch, height, width, "
                            f"channels): connect an IMAGE, such as the output of VQ Decode.")
    x = image.detach().float().cpu()
    channels = x.shape[3]
    if channels < 3:
        return x[..., :1].expand(-1, -1, -1, 3)
    return x[..., :3]


def match_batch(images: torch.Tensor, count: int) -> torch.Tensor:
    """``images`` paired with ``count`` maps: as they are, or one image repeated; any other batch is refused."""
    if images.shape[0] == count:
        return images
    if images.shape[0] == 1:
        return images.expand(count, -1, -1, -1)
    raise SamplingError(f"The image batch has {images.shape[0]} images but the tokens have {count} entropy maps: "
                        f"connect the images decoded from these tokens, or a single image to lay under every map.")


def entropy_heatmaps(entropy: torch.Tensor, grid_size: int, height: int, width: int,
                     vmax: float | None = None) -> torch.Tensor:
    """Per-token entropy (B, grid²) → RGB heatmaps (B, height, width, 3) float32 in [0, 1].

    Each token covers its share of the picture (rows ``y * grid // height``), so any
    size works and every token shows once the picture has ``grid`` pixels a side. All
    maps share one colour scale (0 to ``vmax``, default the batch maximum).
    """
    grid = entropy_grid(entropy, grid_size)
    rgb = colorize(grid, 0.0, vmax if vmax is not None else float(grid.max()))
    rows = np.arange(height) * grid_size // height
    cols = np.arange(width) * grid_size // width
    return torch.from_numpy(rgb[:, rows][:, :, cols].astype(np.float32) / 255)


def entropy_grid(entropy: torch.Tensor, grid_size: int) -> np.ndarray:
    """(B, grid²) entropy → (B, grid, grid) float32 numpy; refuses non-finite values and a wrong token count."""
    ent = entropy.detach().float().cpu()
    if ent.dim() != 2 or ent.shape[1] != grid_size * grid_size:
        raise SamplingError(f"The entropy has shape {tuple(ent.shape)}, not (batch, {grid_size * grid_size}) for a "
                            f"{grid_size}x{grid_size} token grid: connect the tokens of one sampler run.")
    if not bool(torch.isfinite(ent).all()):
        raise SamplingError("The entropy holds NaN or infinite values: the model's logits overflowed (likely fp16 "
                            "weights). Load the GPT in bf16 or fp32 and sample again.")
    return ent.reshape(-1, grid_size, grid_size).numpy()
