"""Turning decoder output and entropy maps into pictures (numpy + Pillow, no ComfyUI)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .outputs import make_readable, write_file

# A perceptually ordered dark-to-bright ramp (approximately "inferno"), for entropy heatmaps.
_RAMP = np.array([
    [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
    [252, 255, 164],
], dtype=np.float32)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Decoder output (B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3): clamp, then map to 0..255."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """Decoder output (B, 3, H, W) in [-1, 1] → (B, H, W, 3) float32 in [0, 1] (ComfyUI IMAGE)."""
    return images.detach().float().clamp(-1, 1).add(1).div(2).permute(0, 2, 3, 1).contiguous().cpu()


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map an array of scalars to RGB uint8 (..., 3) along the heatmap ramp."""
    v = np.asarray(values, dtype=np.float32)
    lo = float(np.min(v)) if vmin is None else vmin
    hi = float(np.max(v)) if vmax is None else vmax
    t = np.clip((v - lo) / max(hi - lo, 1e-8), 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    frac = (t - i)[..., None]
    return (_RAMP[i] * (1 - frac) + _RAMP[i + 1] * frac).round().astype(np.uint8)


def entropy_heatmaps(entropy: torch.Tensor, image_size: tuple[int, int], vmax: float | None = None) -> np.ndarray:
    """Per-token entropy (B, N) on a square grid → RGB heatmaps (B, H, W, 3) uint8 at image size.

    All samples share one colour scale (0 to ``vmax``, default the batch maximum),
    so maps side by side are comparable.
    """
    ent = entropy.detach().float().cpu().numpy()
    b, n = ent.shape
    side = math.isqrt(n)
    grid = ent.reshape(b, side, side)
    rgb = colorize(grid, 0.0, vmax if vmax is not None else float(grid.max()))
    h, w = image_size
    rep_h, rep_w = -(-h // side), -(-w // side)
    big = rgb.repeat(rep_h, axis=1).repeat(rep_w, axis=2)
    return big[:, :h, :w]


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (B, H, W, 3) uint8 images row by row (in order) into one image."""
    b, h, w, _ = images.shape
    cols = columns or min(b, 8)
    rows = -(-b // cols)
    canvas = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), 255, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = images[i]
    return canvas


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Save an RGB uint8 array as PNG via a temporary file (no half-written file on failure).

    Inside ``outputs.batch()`` the file appears only when the whole batch is written.
    """
    from PIL import Image

    write_file(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def save_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    """Save a numpy array (no pickles) via a temporary file (see save_png)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would add '.npy' to a bare name
            np.save(f, array, allow_pickle=False)

    write_file(path, write)


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (B, H, W, 3) images."""
    return images.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else images


def labelled_sheet(rows: list[tuple[str, list[np.ndarray]]], column_titles: list[str], cell: int,
                   pad: int = 4, label_width: int = 150) -> np.ndarray:
    """A white sheet: one titled row per entry, cells (cell x cell RGB uint8) left to right.

    ``column_titles`` label the cells of every row (e.g. the class of each image).
    """
    from PIL import Image, ImageDraw

    cols = max(len(cells) for _, cells in rows)
    title_h = 16
    width = label_width + cols * (cell + pad) + pad
    height = title_h + len(rows) * (cell + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(column_titles[:cols]):
        draw.text((label_width + c * (cell + pad), 2), title, fill=(0, 0, 0))
    for r, (name, cells) in enumerate(rows):
        y = title_h + r * (cell + pad)
        for i, line in enumerate(name.split("\n")):
            draw.text((4, y + 4 + 12 * i), line, fill=(0, 0, 0))
        for c, img in enumerate(cells):
            sheet.paste(Image.fromarray(img), (label_width + c * (cell + pad), y))
    return np.asarray(sheet)


class PreviewThrottle:
    """Decides when a live preview may be made so that previews cost at most ``max_share`` of the time.

    Call ``due()`` before a preview and ``spent(seconds)`` after it; ``clock`` is injectable for tests.
    """

    def __init__(self, max_share: float = 0.08, clock=None):
        import time

        self.clock = clock or time.perf_counter
        self.max_share = max_share
        self.started = self.clock()
        self.preview_seconds = 0.0

    def due(self) -> bool:
        working = self.clock() - self.started - self.preview_seconds
        return self.preview_seconds <= self.max_share * max(working, 0.0)

    def spent(self, seconds: float) -> None:
        self.preview_seconds += seconds


def partial_preview(vq, row: torch.Tensor, done: int, grid: int) -> np.ndarray:
    """Decode the first ``done`` tokens of one sample (rest filled with the last token), unfinished rows faded."""
    n = grid * grid
    full = torch.empty(n, dtype=torch.long, device=row.device)
    full[:done] = row[:done]
    full[done:] = row[done - 1]
    image = to_uint8(vq.decode_codes(full[None]))[0].copy()
    pixel_row = (done // grid) * (image.shape[0] // grid)
    image[pixel_row:] = (image[pixel_row:] * 0.35 + 160).astype(image.dtype)
    return image


def _make_readable(path) -> None:
    """mkstemp creates 0600 files; give the final file the usual permissions (0666 minus umask)."""
    make_readable(path)
