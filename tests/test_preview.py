"""Live previews: the throttle the ComfyUI sampler nodes use, and the family preview from a SamplingState."""

from __future__ import annotations

import numpy as np
import torch

from arsample import imaging
from arsample.imaging import PreviewThrottle
from arsample.models import raster, registry
from arsample.samplers import SamplingState, TokenLayout

GRID = 4  # tiny VQ: 2x downsampling → 8x8 pixels for a 4x4 token grid


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


def test_unknown_tokens_take_the_nearest_known_one():
    tokens = torch.arange(10) + 100
    known = torch.zeros(10, dtype=torch.bool)
    known[[2, 7]] = True
    filled = raster.fill_unknown(tokens, known)
    # 0-4 are nearer to (or tied with) 2, 5-9 nearer to 7; known positions keep their token
    assert filled.tolist() == [102] * 5 + [107] * 5
    prefix = torch.arange(10) < 4  # a next-token prefix: the tail takes the last sampled token
    assert raster.fill_unknown(tokens, prefix).tolist() == [100, 101, 102, 103] + [103] * 6


def _state(known_counts: list[int], seed: int = 0) -> SamplingState:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 64, (len(known_counts), GRID * GRID), generator=gen)
    known = torch.arange(GRID * GRID)[None] < torch.tensor(known_counts)[:, None]
    return SamplingState(done=min(known_counts), total=GRID * GRID, tokens=tokens, known=known)


def test_preview_shows_known_tokens_and_fades_the_rest_of_a_ragged_batch(tiny_vq):
    family, layout = registry.family("llamagen"), TokenLayout.grid(GRID)
    state = _state([6, 11])  # ragged: sample 0 knows 6 tokens (1.5 rows), sample 1 knows 11
    img = family.preview(tiny_vq, state, layout)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    filled = raster.fill_unknown(state.tokens[0], state.known[0])
    decoded = imaging.to_uint8(tiny_vq.decode_codes(filled[None]))[0]
    known_pixels = np.zeros((8, 8), dtype=bool)
    known_pixels[:2, :] = True  # row 0 of tokens (4 tokens, 2 px each)
    known_pixels[2:4, :4] = True  # tokens 4 and 5 of row 1: the known mask, not whole rows
    assert np.array_equal(img[known_pixels], decoded[known_pixels])
    assert img[~known_pixels].min() >= 160  # unknown tokens are faded towards light grey
    expected = (decoded[~known_pixels].astype(np.float32) * 0.35 + 160).astype(np.uint8)
    assert np.array_equal(img[~known_pixels], expected)


def test_preview_of_a_finished_sample_is_the_decoded_image_and_of_nothing_is_none(tiny_vq):
    family, layout = registry.family("llamagen"), TokenLayout.grid(GRID)
    done = _state([16])
    img = family.preview(tiny_vq, done, layout)
    assert np.array_equal(img, imaging.to_uint8(tiny_vq.decode_codes(done.tokens[:1]))[0])
    assert family.preview(tiny_vq, _state([0]), layout) is None
