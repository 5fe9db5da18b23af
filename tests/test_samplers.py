"""Logits processing, entropy temperature and the AR loop."""

from __future__ import annotations

import math

import pytest
import torch

from arsample.errors import SamplingError
from arsample.models.llamagen import LlamaGenCondition
from arsample.samplers import (EntropyTemperature, SamplerSettings, apply_cfg, entropy, filter_top_k_top_p,
                               make_generator, preset, sample_ar, sample_categorical, token_distribution)


def test_entropy_in_nats():
    assert entropy(torch.zeros(1, 8)).item() == pytest.approx(math.log(8), abs=1e-6)
    peaked = torch.tensor([[0.0, float("-inf"), float("-inf")]])
    assert entropy(peaked).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name,h,expected", [
    ("llamagen", 0, 3.10), ("llamagen", 3, 1.52), ("llamagen", 9, 0.72),
    ("lumina-mgpt", 4, 1.00), ("meissonic", 2, 1.98), ("star", 5, 0.97), ("lumina-mgpt-code", 0, 2.00),
])
def test_temperature_map_values(name, h, expected):
    assert preset(name).temperature(torch.tensor(float(h))).item() == pytest.approx(expected, abs=0.006)


def test_clamp_and_validation():
    cfg = EntropyTemperature(2.5, 3.0, 0.6, clamp_min=0.8, clamp_max=2.0)
    t = cfg.temperature(torch.tensor([0.0, 20.0]))
    assert t.tolist() == pytest.approx([2.0, 0.8])
    with pytest.raises(SamplingError):
        EntropyTemperature(alpha=0)
    with pytest.raises(SamplingError):
        preset("nope")


def test_cfg_combination_and_interval():
    cond, uncond = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert apply_cfg(cond, uncond, 3.0).tolist() == [[4.0, -2.0]]
    assert apply_cfg(cond, uncond, 3.0, enabled=False).tolist() == [[2.0, 0.0]]
    assert apply_cfg(cond, None, 3.0).tolist() == [[2.0, 0.0]]
    two = (torch.stack([cond, cond], 1), torch.stack([uncond, uncond], 1))  # (1, 2 positions, V)
    mixed = apply_cfg(*two, 3.0, enabled=torch.tensor([[True, False]]))
    assert mixed.tolist() == [[[4.0, -2.0], [2.0, 0.0]]]
    s = SamplerSettings(cfg_scale=4.0, cfg_interval=2)
    assert [s.cfg_active(i) for i in range(6)] == [True, True, True, True, False, False]
    assert not SamplerSettings(cfg_scale=1.0).cfg_active(0)


def test_filters_keep_the_right_tokens_and_do_not_modify_input():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, 2.0]])
    before = logits.clone()
    kept = filter_top_k_top_p(logits, top_k=2).isfinite()
    assert kept.tolist() == [[True, False, True, False, True]]  # ties with the k-th survive
    probs = logits.softmax(-1)[0].tolist()  # sorted mass: 0.43, 0.59(2), 0.75(4)...
    p = (probs[0] + probs[2]) - 1e-3  # crossing happens at the second token → keep two
    kept = filter_top_k_top_p(logits, top_p=p).isfinite()[0]
    assert kept.sum() == 2 and kept[0]
    assert torch.equal(logits, before)


def test_token_distribution_entropy_temperature_uses_filtered_entropy():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0)) * 3
    cfg = preset("llamagen")
    s = SamplerSettings(top_k=10, entropy=cfg)
    dist = token_distribution(logits, s, torch.ones(3, 1))
    h = entropy(filter_top_k_top_p(logits, 10))
    torch.testing.assert_close(dist.temperature, cfg.temperature(h))
    torch.testing.assert_close(dist.model_entropy, entropy(logits))
    raw = token_distribution(logits, SamplerSettings(top_k=10, entropy=preset("llamagen", source="raw")),
                             torch.ones(3, 1))
    torch.testing.assert_close(raw.temperature, cfg.temperature(entropy(logits)))
    assert (dist.probs[filter_top_k_top_p(logits, 10).isinf()] == 0).all()


def test_sample_categorical_follows_probs():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(40000, 4)
    draws = sample_categorical(probs, make_generator(0, "cpu"))
    freq = torch.bincount(draws, minlength=4).float() / 40000
    assert freq[1] == 0
    assert torch.allclose(freq, torch.tensor([0.1, 0.0, 0.6, 0.3]), atol=0.01)


def test_sampling_is_seeded_and_independent_of_global_rng(tiny_c2i):
    cond = LlamaGenCondition(labels=torch.tensor([1, 2, 3]))
    s = SamplerSettings(cfg_scale=2.0, entropy=preset("llamagen"))
    torch.manual_seed(123)
    a = sample_ar(tiny_c2i, cond, s, seed=7)
    torch.manual_seed(999)
    torch.rand(10)
    b = sample_ar(tiny_c2i, cond, s, seed=7)
    c = sample_ar(tiny_c2i, cond, s, seed=8)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)


def test_result_shapes_and_stats(tiny_c2i):
    cond = LlamaGenCondition(labels=torch.tensor([0, 5]))
    r = sample_ar(tiny_c2i, cond, SamplerSettings(cfg_scale=3.0, top_k=20, entropy=preset("llamagen")), seed=0)
    n = tiny_c2i.num_image_tokens
    assert r.tokens.shape == (2, n) and r.tokens.dtype == torch.int64
    assert r.entropy.shape == (2, n) and r.temperature.shape == (2, n)
    assert r.stats.forward_passes == n and r.stats.num_tokens == n and r.stats.batch_size == 2
    assert 0 < r.stats.mean_entropy <= math.log(64)
    assert ((r.temperature >= 0.6) & (r.temperature <= 3.1)).all()
    assert "forward passes" in r.stats.summary()


def test_per_sample_temperature_zero_is_greedy(tiny_c2i):
    cond = LlamaGenCondition(labels=torch.tensor([4, 4]))
    mixed = sample_ar(tiny_c2i, cond, SamplerSettings(cfg_scale=2.0, temperature=[0.0, 1.5]), seed=3)
    greedy = sample_ar(tiny_c2i, LlamaGenCondition(labels=torch.tensor([4])),
                       SamplerSettings(cfg_scale=2.0, temperature=0.0), seed=99)
    assert torch.equal(mixed.tokens[0], greedy.tokens[0])
    assert not torch.equal(mixed.tokens[1], greedy.tokens[0])


def test_entropy_sampler_differs_from_plain_and_matches_its_distribution(tiny_c2i):
    """Token 0's empirical distribution under each sampler equals the computed one."""
    labels = torch.full((3000,), 2)
    cond = LlamaGenCondition(labels=labels)
    logits = tiny_c2i.start_session(LlamaGenCondition(labels=labels[:1]), guidance=True).prefill()
    for settings in (SamplerSettings(cfg_scale=2.0), SamplerSettings(cfg_scale=2.0, entropy=preset("llamagen"))):
        expected = token_distribution(logits, settings, torch.ones(1, 1), True).probs[0]
        tokens = sample_ar(tiny_c2i, cond, settings, num_tokens=1, seed=1).tokens[:, 0]
        freq = torch.bincount(tokens, minlength=64).float() / len(tokens)
        assert (freq - expected).abs().max() < 0.035


def test_callback_sees_progress_and_can_cancel(tiny_c2i):
    seen = []

    class Cancelled(Exception):
        pass

    def cb(state):
        seen.append((state.done, state.total, int(state.known[0].sum())))
        if state.done == 5:
            raise Cancelled

    with pytest.raises(Cancelled):
        sample_ar(tiny_c2i, LlamaGenCondition(labels=torch.tensor([1])), SamplerSettings(), callback=cb)
    assert seen == [(i, 16, i) for i in range(1, 6)]


@pytest.mark.parametrize("kwargs,match", [
    (dict(top_k=65), "larger than the vocabulary"),
    (dict(cfg_scale=-1.0), "cfg must be"),
    (dict(temperature=-0.5), "temperature must be"),
    (dict(top_p=0.0), "top-p"),
])
def test_bad_settings_are_refused(tiny_c2i, kwargs, match):
    with pytest.raises(SamplingError, match=match):
        sample_ar(tiny_c2i, LlamaGenCondition(labels=torch.tensor([1])), SamplerSettings(**kwargs))


def test_class_out_of_range_and_wrong_condition_kind(tiny_c2i, tiny_t2i):
    with pytest.raises(SamplingError, match="Class id out of range"):
        sample_ar(tiny_c2i, LlamaGenCondition(labels=torch.tensor([10])), SamplerSettings())
    with pytest.raises(SamplingError, match="text-to-image model"):
        sample_ar(tiny_t2i, LlamaGenCondition(labels=torch.tensor([1])), SamplerSettings())
    with pytest.raises(SamplingError, match="class-to-image model"):
        sample_ar(tiny_c2i, LlamaGenCondition(caption=torch.zeros(1, 1, 16)), SamplerSettings())
    with pytest.raises(SamplingError, match="Caption features must have shape"):
        sample_ar(tiny_t2i, LlamaGenCondition(caption=torch.zeros(1, 12, 8)), SamplerSettings())


def test_rescaled_preset_gives_a_typical_token_the_reference_temperature():
    from arsample.samplers.entropy import PRESETS, REFERENCE_ENTROPY, rescaled

    base = PRESETS["llamagen"]
    small = rescaled(base, mean=0.7, std=0.6)
    ref_mean, ref_std = REFERENCE_ENTROPY
    for z in (-1.5, 0.0, 2.0):  # the same number of standard deviations from the mean
        h_small = torch.tensor(0.7 + z * 0.6)
        h_ref = torch.tensor(ref_mean + z * ref_std)
        torch.testing.assert_close(small.temperature(h_small), base.temperature(h_ref))
    assert small.theta == base.theta and small.alpha < base.alpha
