"""Entropy heatmaps at any image size, laid over any ComfyUI IMAGE batch (torch + numpy, no ComfyUI).

A ComfyUI IMAGE is a float tensor (batch, height, width, channels) in [0, 1]. Nodes
make 3 channels (RGB), 4 (RGBA, e.g. "Join Image with Alpha") and sometimes 1
(grey); images of any height and width. Map i is laid over image i, or one image
over every map. A token grid is ``grid`` tokens a side, or (rows, columns); a token
layout of several scales gives one map per scale, side by side (``layout_overlay``).
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import SamplingError
from .imaging import colorize

CELL_PIXELS = 16  # heatmap pixels per token when no image gives the size


def layout_overlay(entropy: torch.Tensor, layout, image: torch.Tensor | None = None, overlay: float = 0.0,
                   max_entropy: float = 0.0) -> torch.Tensor:
    """Per-token entropy (B, N) in a token layout (samplers.TokenLayout) → heatmaps (B, H, W', 3).

    One map: as ``entropy_overlay``. Several (next-scale models): one heatmap per scale, coarse to fine,
    side by side, each over the image, all on one colour scale.
    """
    if len(layout.scales) == 1:
        return entropy_overlay(entropy, layout.final, image, overlay, max_entropy)
    parts = [m.flatten(1) for m in layout.maps(entropy)]
    vmax = max_entropy or max(float(entropy_grid(p, scale).max()) for p, scale in zip(parts, layout.scales))
    return torch.cat([entropy_overlay(p, scale, image, overlay, vmax) for p, scale in zip(parts, layout.scales)],
                     dim=2)


def entropy_overlay(entropy: torch.Tensor, grid_size: int | tuple[int, int], image: torch.Tensor | None = None,
                    overlay: float = 0.0, max_entropy: float = 0.0) -> torch.Tensor:
    """Per-token entropy (B, h·w) → heatmaps (B, H, W, 3) float32 in [0, 1], on the CPU.

    ``grid_size`` is the token grid: one side, or (h, w). Without ``image`` the maps are 16 pixels
    per token. With it they take
    its height and width, and ``overlay`` (0..1) is how much of image i shows through
    map i (an image batch of 1 goes under every map). ``max_entropy`` is the entropy
    drawn brightest (0 = the batch maximum).
    """
    check_overlay_settings(overlay, max_entropy)
    count = entropy.shape[0]
    rgb = None if image is None else match_batch(as_rgb(image), count)
    rows, cols = _grid(grid_size)
    height, width = (rows * CELL_PIXELS, cols * CELL_PIXELS) if rgb is None else tuple(rgb.shape[1:3])
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


def entropy_heatmaps(entropy: torch.Tensor, grid_size: int | tuple[int, int], height: int, width: int,
                     vmax: float | None = None) -> torch.Tensor:
    """Per-token entropy (B, h·w) → RGB heatmaps (B, height, width, 3) float32 in [0, 1].

    Each token covers its share of the picture (rows ``y * h // height``), so any
    size works and every token shows once the picture has h×w pixels. All
    maps share one colour scale (0 to ``vmax``, default the batch maximum).
    """
    grid = entropy_grid(entropy, grid_size)
    rgb = colorize(grid, 0.0, vmax if vmax is not None else float(grid.max()))
    rows = np.arange(height) * grid.shape[1] // height
    cols = np.arange(width) * grid.shape[2] // width
    return torch.from_numpy(rgb[:, rows][:, :, cols].astype(np.float32) / 255)


def entropy_grid(entropy: torch.Tensor, grid_size: int | tuple[int, int]) -> np.ndarray:
    """(B, h·w) entropy → (B, h, w) float32 numpy; refuses non-finite values and a wrong token count."""
    rows, cols = _grid(grid_size)
    ent = entropy.detach().float().cpu()
    if ent.dim() != 2 or ent.shape[1] != rows * cols:
        raise SamplingError(f"The entropy has shape {tuple(ent.shape)}, not (batch, {rows * cols}) for a "
                            f"{rows}x{cols} token grid: connect the tokens of one sampler run.")
    if not bool(torch.isfinite(ent).all()):
        raise SamplingError("The entropy holds NaN or infinite values: the model's logits overflowed (likely fp16 "
                            "weights). Load the model in bf16 or fp32 and sample again.")
    return ent.reshape(-1, rows, cols).numpy()


def _grid(grid_size: int | tuple[int, int]) -> tuple[int, int]:
    """A grid given as one side or as (rows, columns) → (rows, columns)."""
    if isinstance(grid_size, int):
        return grid_size, grid_size
    rows, cols = grid_size
    return int(rows), int(cols)
