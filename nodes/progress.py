"""Per-step progress, live previews and Cancel for the sampler nodes."""

from __future__ import annotations

import time

import comfy.model_management as mm
import comfy.utils
import torch

from .. import imaging


class SamplingProgress:
    """Sampler callback: checks Cancel every step, moves the progress bar, sends throttled previews.

    Previews decode the first sample's tokens so far through the VQ (unfinished rows
    greyed). They are sent only while their total cost stays under ``max_share``
    of the elapsed sampling time, so they never slow sampling by more than that.
    """

    def __init__(self, total: int, grid: int, vq=None, max_share: float = 0.08):
        self.bar = comfy.utils.ProgressBar(total)
        self.grid = grid
        self.vq = vq
        self.max_share = max_share
        self.started = time.perf_counter()
        self.preview_seconds = 0.0
        self.previews = 0

    def __call__(self, done: int, total: int, tokens: torch.Tensor) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = None
        if self.vq is not None and done < total and self._preview_due():
            t0 = time.perf_counter()
            preview = ("JPEG", self._render(tokens[0], done), None)
            self.preview_seconds += time.perf_counter() - t0
            self.previews += 1
        self.bar.update_absolute(done, total, preview)

    def _preview_due(self) -> bool:
        elapsed = time.perf_counter() - self.started
        return self.preview_seconds <= self.max_share * max(elapsed - self.preview_seconds, 0.0)

    @torch.no_grad()
    def _render(self, row: torch.Tensor, done: int):
        from PIL import Image

        n = self.grid * self.grid
        full = torch.empty(n, dtype=torch.long, device=row.device)
        full[:done] = row[:done]
        full[done:] = row[done - 1]
        image = imaging.to_uint8(self.vq.decode_codes(full[None]))[0].copy()
        finished_rows = done // self.grid
        pixel_row = finished_rows * (image.shape[0] // self.grid)
        image[pixel_row:] = (image[pixel_row:] * 0.35 + 160).astype(image.dtype)
        return Image.fromarray(image)
