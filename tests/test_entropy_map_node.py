"""The Entropy Map node's picture (arsample.overlay): any IMAGE ComfyUI makes, any size, matched batches.

The node itself (nodes/decode.py) only calls ``entropy_overlay``; it is run inside a
real ComfyUI in tests/comfyui/test_pack_in_comfyui.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arsample.errors import SamplingError
from arsample.imaging import colorize, entropy_heatmaps as square_heatmaps
from arsample.overlay import entropy_heatmaps, entropy_overlay

GRID = 4


def _entropy(batch: int = 2, grid: int = GRID) -> torch.Tensor:
    """Distinct entropy for every token of every sample (so each cell has its own colour)."""
    return torch.arange(batch * grid * grid, dtype=torch.float32).reshape(batch, grid * grid) / 7


def _images(batch: int, height: int = 64, width: int = 64, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def _expected_blend(entropy, image_rgb, overlay) -> torch.Tensor:
    maps = entropy_heatmaps(entropy, GRID, image_rgb.shape[1], image_rgb.shape[2])
    return maps * (1 - overlay) + image_rgb * overlay


def test_rgba_image_uses_rgb_and_ignores_alpha():
    ent, rgba = _entropy(), _images(2, channels=4)
    out = entropy_overlay(ent, GRID, image=rgba, overlay=0.5)
    assert out.shape == (2, 64, 64, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, _expected_blend(ent, rgba[..., :3], 0.5))
    other_alpha = torch.cat([rgba[..., :3], torch.zeros_like(rgba[..., :1])], dim=-1)
    torch.testing.assert_close(entropy_overlay(ent, GRID, image=other_alpha, overlay=0.5), out)


@pytest.mark.parametrize("channels", [1, 2])
def test_grey_image_is_broadcast_to_rgb(channels):
    ent, grey = _entropy(), _images(2, channels=channels)
    out = entropy_overlay(ent, GRID, image=grey, overlay=0.25)
    torch.testing.assert_close(out, _expected_blend(ent, grey[..., :1].expand(-1, -1, -1, 3), 0.25))


def test_image_i_goes_under_map_i():
    ent = _entropy(batch=3)
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    images = colours[:, None, None, :].expand(3, 32, 32, 3)
    only_image = entropy_overlay(ent, GRID, image=images, overlay=1.0)
    torch.testing.assert_close(only_image, images.contiguous())
    half = entropy_overlay(ent, GRID, image=images, overlay=0.5)
    for i in range(3):
        map_i = entropy_heatmaps(ent, GRID, 32, 32)[i]
        torch.testing.assert_close(half[i], 0.5 * map_i + 0.5 * images[i])


def test_one_image_goes_under_every_map():
    ent, one = _entropy(batch=3), _images(1, channels=4)
    out = entropy_overlay(ent, GRID, image=one, overlay=0.5)
    maps = entropy_heatmaps(ent, GRID, 64, 64)
    for i in range(3):
        torch.testing.assert_close(out[i], 0.5 * maps[i] + 0.5 * one[0, ..., :3])


@pytest.mark.parametrize("images,maps", [(2, 3), (3, 2), (4, 2)])
@pytest.mark.parametrize("overlay", [0.0, 0.5])
def test_unmatched_batch_is_refused_with_both_sizes(images, maps, overlay):
    with pytest.raises(SamplingError) as info:
        entropy_overlay(_entropy(batch=maps), GRID, image=_images(images), overlay=overlay)
    message = str(info.value)
    assert f"{images} images" in message and f"{maps} entropy maps" in message
    assert "single image" in message and "\n" not in message


@pytest.mark.parametrize("height,width", [(50, 37), (37, 50), (20, 20), (7, 300), (64, 64)])
def test_heatmap_takes_any_image_size_and_every_token_shows(height, width):
    ent = _entropy(batch=1)
    out = entropy_overlay(ent, GRID, image=_images(1, height, width), overlay=0.0)
    assert out.shape == (1, height, width, 3)
    cells = torch.from_numpy(colorize(ent.reshape(1, GRID, GRID).numpy(), 0.0, float(ent.max())) / 255).float()
    for y in range(height):
        for x in range(width):
            r, c = y * GRID // height, x * GRID // width
            assert torch.equal(out[0, y, x], cells[0, r, c]), (y, x)
    # every token gets a share of the rows and columns (sizes differ by at most one pixel)
    rows = np.bincount(np.arange(height) * GRID // height, minlength=GRID)
    cols = np.bincount(np.arange(width) * GRID // width, minlength=GRID)
    assert rows.min() >= 1 and rows.max() - rows.min() <= 1 and cols.min() >= 1 and cols.max() - cols.min() <= 1


def test_last_token_shows_when_the_image_is_not_a_multiple_of_the_grid():
    ent = _entropy(batch=1, grid=16)
    ent[0, -1] = 100.0  # the bottom-right token is the brightest
    out = entropy_overlay(ent, 16, image=_images(1, 20, 20), overlay=0.0)
    brightest = torch.from_numpy(colorize(np.array([100.0]), 0.0, 100.0) / 255).float()[0]
    assert torch.equal(out[0, -1, -1], brightest)


def test_without_image_the_maps_are_sixteen_pixels_per_token_as_before():
    ent = _entropy(batch=2)
    out = entropy_overlay(ent, GRID, max_entropy=3.0)
    assert out.shape == (2, GRID * 16, GRID * 16, 3)
    old = torch.from_numpy(square_heatmaps(ent, (GRID * 16, GRID * 16), vmax=3.0).astype(np.float32) / 255)
    torch.testing.assert_close(out, old)


def test_half_precision_image_and_overlay_zero_give_the_map():
    ent, img = _entropy(), _images(2).half()
    out = entropy_overlay(ent, GRID, image=img, overlay=0.0)
    torch.testing.assert_close(out, entropy_heatmaps(ent, GRID, 64, 64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_entropy_is_a_clear_error(bad):
    ent = _entropy()
    ent[1, 3] = bad
    with pytest.raises(SamplingError, match="NaN or infinite.*bf16 or fp32"):
        entropy_overlay(ent, GRID)


@pytest.mark.parametrize("shape", [(64, 64, 3), (2, 64, 64), (0, 64, 64, 3), (2, 0, 64, 3), (2, 64, 64, 0)])
def test_not_an_image_batch_is_refused(shape):
    with pytest.raises(SamplingError, match="not \\(batch, height, width, channels\\)"):
        entropy_overlay(_entropy(), GRID, image=torch.zeros(shape), overlay=0.5)


@pytest.mark.parametrize("overlay,max_entropy", [(float("nan"), 0.0), (1.5, 0.0), (-0.1, 0.0), (0.5, -1.0),
                                                 (0.5, float("nan")), (0.5, float("inf"))])
def test_bad_settings_are_refused(overlay, max_entropy):
    with pytest.raises(SamplingError):
        entropy_overlay(_entropy(), GRID, image=_images(2), overlay=overlay, max_entropy=max_entropy)


def test_wrong_token_count_is_refused():
    with pytest.raises(SamplingError, match="4x4 token grid"):
        entropy_overlay(torch.zeros(2, 15), GRID)
