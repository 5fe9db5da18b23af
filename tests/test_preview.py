"""Live-preview helpers used by the ComfyUI sampler nodes (pure parts)."""

from __future__ import annotations

import torch

from arsample.imaging import PreviewThrottle, partial_preview


def test_throttle_keeps_previews_under_the_share():
    now = [0.0]
    throttle = PreviewThrottle(max_share=0.08, clock=lambda: now[0])
    previews = 0
    for _ in range(1000):  # 1000 steps of 10 ms; a preview costs 20 ms
        now[0] += 0.010
        if throttle.due():
            now[0] += 0.020
            throttle.spent(0.020)
            previews += 1
    total = now[0]
    assert throttle.preview_seconds / total < 0.10
    assert previews > 10  # but previews do happen regularly


def test_partial_preview_shows_done_rows_and_fades_the_rest(tiny_vq):
    grid = 4  # tiny VQ: 2x downsampling, 8x8 pixels
    row = torch.randint(0, 64, (16,))
    img = partial_preview(tiny_vq, row, done=8, grid=grid)
    assert img.shape == (8, 8, 3)
    assert img[4:].min() >= 160  # unfinished rows are faded towards light grey
    assert img[:4].min() < 160  # finished rows are shown as decoded
