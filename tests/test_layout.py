"""Token layouts: one raster grid or a pyramid of scales, and results that carry them."""

from __future__ import annotations

import pytest
import torch

from arsample.errors import SamplingError
from arsample.models.llamagen import LlamaGenCondition
from arsample.samplers import SamplerSettings, SJDSettings, TokenLayout, sample_ar, sample_sjd


def test_grid_maps_in_raster_order():
    layout = TokenLayout.grid(2, 3)
    values = torch.arange(12.0).reshape(2, 6)
    (grid,) = layout.maps(values)
    assert grid.shape == (2, 2, 3) and grid[1].tolist() == [[6, 7, 8], [9, 10, 11]]
    assert layout.num_tokens == 6 and layout.final == (2, 3)


def test_pyramid_maps_each_scale_and_final_is_the_finest():
    layout = TokenLayout(((1, 1), (2, 2), (3, 3)))
    values = torch.arange(14.0)[None]
    maps = layout.maps(values)
    assert [m.shape[1:] for m in maps] == [(1, 1), (2, 2), (3, 3)]
    assert maps[1].flatten().tolist() == [1, 2, 3, 4]
    assert torch.equal(layout.final_map(values), maps[-1])


def test_wrong_sizes_are_refused():
    with pytest.raises(SamplingError, match="layout of 4 tokens"):
        TokenLayout.grid(2).maps(torch.zeros(1, 5))
    with pytest.raises(SamplingError):
        TokenLayout(())


@pytest.mark.parametrize("sampler", ["ar", "sjd"])
def test_results_carry_the_models_grid(tiny_c2i, sampler):
    cond = LlamaGenCondition(labels=torch.tensor([1]))
    settings = SamplerSettings(cfg_scale=2.0)
    result = sample_ar(tiny_c2i, cond, settings) if sampler == "ar" else sample_sjd(tiny_c2i, cond, settings,
                                                                                      SJDSettings(window=4))
    assert result.layout == TokenLayout.grid(tiny_c2i.grid_size)
    assert result.layout.final_map(result.entropy).shape == (1, 4, 4)
    partial = sample_ar(tiny_c2i, cond, settings, num_tokens=5)
    assert partial.layout == TokenLayout(((1, 5),))
