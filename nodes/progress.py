"""Per-step progress, live previews and Cancel for the sampler nodes."""

from __future__ import annotations

import time
from typing import Callable

import comfy.model_management as mm
import comfy.utils
import numpy as np
import torch

from .. import imaging


class SamplingProgress:
    """Sampler callback (takes a samplers.SamplingState): checks Cancel every step, moves the progress bar,
    sends throttled previews.

    ``preview(state)`` (the family's preview with its tokenizer, or None) gives an RGB picture of the first
    sample so far; previews are made only while their total cost stays under 8% of the sampling time.
    """

    def __init__(self, total: int, preview: Callable[[object], np.ndarray | None] | None = None):
        self.bar = comfy.utils.ProgressBar(total)
        self.preview = preview
        self.throttle = imaging.PreviewThrottle(max_share=0.08)

    @torch.no_grad()
    def __call__(self, state) -> None:
        mm.throw_exception_if_processing_interrupted()
        image = None
        if self.preview is not None and state.done < state.total and self.throttle.due():
            from PIL import Image

            started = time.perf_counter()
            picture = self.preview(state)
            image = None if picture is None else ("JPEG", Image.fromarray(picture), None)
            self.throttle.spent(time.perf_counter() - started)
        self.bar.update_absolute(state.done, state.total, image)
