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
    faded), only while their total cost stays under 8% of the sampling time.
    """

    def __init__(self, total: int, grid: int, vq=None):
        self.bar = comfy.utils.ProgressBar(total)
        self.grid = grid
        self.vq = vq
        self.throttle = imaging.PreviewThrottle(max_share=0.08)

    @torch.no_grad()
    def __call__(self, done: int, total: int, tokens: torch.Tensor) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = None
        if self.vq is not None and done < total and self.throttle.due():
            from PIL import Image

            t0 = time.perf_counter()
            preview = ("JPEG", Image.fromarray(imaging.partial_preview(self.vq, tokens[0], done, self.grid)), None)
            self.throttle.spent(time.perf_counter() - t0)
        self.bar.update_absolute(done, total, preview)
