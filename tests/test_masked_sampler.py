"""The masked sampler: schedule values, seeding, known tokens, "+Prob." and "+Masking", batches, progress,
cancel, the recorded maps, edge cases and bad settings. Parity with the references: test_masked_parity.py."""

from __future__ import annotations

import math

import pytest
import torch
from arsample.errors import SamplingError
from arsample.samplers import EntropyTemperature, SamplerSettings, entropy, preset
from arsample.samplers.masked import (
    Masked,
    MaskedOptions,
    choice_temperatures,
    mask_lengths,
    sample_masked,
)

V, MASK = 10, 99


class Seeded:
    """A masked predictor whose logits (B, N, V) are seeded random numbers of (step, row): the tokens are ignored.

    Per-position scales spread the entropies from nearly 0 to nearly log V. ``nan_at`` puts a NaN logit
    at one (step, row, position).
    """

    def __init__(self, batch=2, grid=(4, 4), rows=None, nan_at=None):
        self.rows = list(range(batch)) if rows is None else rows
        self.batch_size, self.vocab_size, self.mask_id = len(self.rows), V, MASK
        self.num_image_tokens, self.token_layout = grid[0] * grid[1], (grid,)
        self.device, self.step, self.inputs, self.nan_at, self.guided = torch.device("cpu"), 0, [], nan_at, None

    def start_session(self, cond, guidance):
        self.guided = guidance
        return self

    def logits(self, step):
        out = []
        for r in self.rows:
            g = torch.Generator().manual_seed(1000 * step + r)
            scale = torch.empty(self.num_image_tokens, 1).uniform_(0.2, 6.0, generator=g)
            out.append(torch.stack([torch.randn(self.num_image_tokens, V, generator=g) * scale for _ in range(2)]))
        both = torch.stack(out, 1)  # (2, B, N, V): cond, uncond
        if self.nan_at is not None and self.nan_at[0] == step:
            both[0, self.nan_at[1], self.nan_at[2], 0] = float("nan")
        return both[0], both[1]

    def predict(self, tokens, step, num_steps):
        assert step == len(self.inputs)  # the sampler says which step this is
        self.inputs.append(tokens.clone())
        cond, uncond = self.logits(self.step)
        self.step += 1
        return cond, (uncond if self.guided else None)


def _sample(settings=None, steps=6, seed=0, model=None, callback=None, **options):
    model = Seeded() if model is None else model
    settings = SamplerSettings(cfg_scale=3.0) if settings is None else settings
    return sample_masked(model, None, settings, options=MaskedOptions(steps=steps, **options), seed=seed,
                         callback=callback)


def _entropy_settings(t=None, **kw):
    return SamplerSettings(cfg_scale=3.0, entropy=t or preset("meissonic"), **kw)


def _steps(model, settings, steps=6, seed=0, **options):
    """(candidates, known) after every step, from the progress callback."""
    seen = []
    _sample(settings, steps, seed, model, lambda s: seen.append((s.tokens.clone(), s.known.clone())), **options)
    return seen


def test_schedule_values():
    # float32, step by step as the reference: cos(π/3)·16 rounds to 7.9999995, so 7 (float64 would give 8)
    assert mask_lengths(16, 6) == [15, 13, 11, 7, 4]
    assert mask_lengths(256, 12) == [253, 247, 236, 221, 203, 181, 155, 127, 97, 66, 33]
    assert mask_lengths(16, 5, "linear") == [12, 9, 6, 3]
    assert mask_lengths(16, 1) == []
    for s, n in enumerate(mask_lengths(1024, 64)):  # the paper's setting: within one of the exact cosine
        assert abs(n - math.floor(1024 * math.cos(math.pi / 2 * (s + 1) / 64))) <= 1
    assert choice_temperatures(5).tolist() == [2.0, 1.5, 1.0, 0.5, 0.0]
    assert choice_temperatures(3, 1.0, 0.5).tolist() == [1.0, 0.75, 0.5]


def test_masked_count_follows_the_schedule_and_known_tokens_are_kept():
    model = Seeded()
    result = _sample(model=model)
    assert result.stats.forward_passes == 6 == len(model.inputs)
    assert torch.equal(model.inputs[0], torch.full((2, 16), MASK))
    counts = [(x == MASK).sum(-1).tolist() for x in model.inputs[1:]]
    assert counts == [[15, 15], [13, 13], [11, 11], [7, 7], [4, 4]]
    for before, after in zip(model.inputs, model.inputs[1:] + [result.tokens]):
        known = before != MASK
        assert torch.equal(after[known], before[known])  # a committed token never changes or is masked again
    assert ((result.tokens >= 0) & (result.tokens < V)).all()


def test_seeded_reproducibility():
    a, b, c = _sample(seed=4), _sample(seed=4), _sample(seed=5)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.entropy, b.entropy)
    assert not torch.equal(a.tokens, c.tokens)
    e1, e2 = _sample(_entropy_settings(), seed=4), _sample(_entropy_settings(), seed=4)
    assert torch.equal(e1.tokens, e2.tokens)


def test_without_the_entropy_map_the_switches_do_nothing():
    plain = _sample(seed=2)
    for prob, masking in ((True, True), (False, True), (True, False)):
        assert torch.equal(_sample(seed=2, prob=prob, masking=masking).tokens, plain.tokens)
    # with the map but both switches off: plain too
    assert torch.equal(_sample(_entropy_settings(), seed=2, prob=False, masking=False).tokens, plain.tokens)


def test_prob_changes_the_draw_and_masking_only_the_ranking():
    plain = _steps(Seeded(), SamplerSettings(cfg_scale=3.0), seed=1)
    masking = _steps(Seeded(), _entropy_settings(), seed=1, prob=False)
    prob = _steps(Seeded(), _entropy_settings(), seed=1, masking=False)
    # step 1: the same candidates under "+Masking" (the draw is untouched), other ones under "+Prob."
    assert torch.equal(masking[0][0], plain[0][0])
    assert not torch.equal(prob[0][0], plain[0][0])
    # "+Masking" changes which of them are kept (at some step), never how many
    assert any(not torch.equal(m[1], p[1]) for m, p in zip(masking, plain))
    assert [m[1].sum(-1).tolist() for m in masking] == [p[1].sum(-1).tolist() for p in plain]


def test_prob_is_the_entropy_temperature_on_the_logits():
    """A constant map T ≡ 2 under "+Prob." is a base temperature of 2 (its draws and its confidences)."""
    const = EntropyTemperature(t0=0.0, alpha=1.0, theta=2.0)
    a = _sample(_entropy_settings(const), seed=3, masking=False)
    b = _sample(SamplerSettings(cfg_scale=3.0, temperature=2.0), seed=3)
    assert torch.equal(a.tokens, b.tokens)
    assert torch.all(a.temperature == 2.0)


def test_masking_multiplies_the_gumbel_term():
    """A constant map T ≡ 2 under "+Masking" is the choice temperature doubled: (τ·T)·G, draws unchanged."""
    const = EntropyTemperature(t0=0.0, alpha=1.0, theta=2.0)
    a = _sample(_entropy_settings(const), seed=3, prob=False)
    b = _sample(SamplerSettings(cfg_scale=3.0), seed=3, choice_temperature=(4.0, 0.0))
    assert torch.equal(a.tokens, b.tokens)
    assert torch.all(a.temperature == 1.0)  # the token temperature is untouched
    # with τ = 0 the noise is gone, so "+Masking" has nothing to scale
    c = _sample(_entropy_settings(), seed=3, prob=False, choice_temperature=(0.0, 0.0))
    d = _sample(SamplerSettings(cfg_scale=3.0), seed=3, choice_temperature=(0.0, 0.0))
    assert torch.equal(c.tokens, d.tokens)


def test_masking_uses_the_filtered_entropy():
    """With top-k, T(H) of "+Masking" comes from the filtered distribution (the "filtered" source), or the raw one."""
    def known(source, top_k):
        settings = SamplerSettings(top_k=top_k, entropy=preset("meissonic", source=source))
        return [k for _, k in _steps(Seeded(), settings, seed=2, prob=False)]

    differ = lambda a, b: any(not torch.equal(x, y) for x, y in zip(a, b))
    assert differ(known("filtered", 2), known("raw", 2))
    assert not differ(known("filtered", 0), known("raw", 0))  # without a filter the two entropies are one


def test_entropy_and_temperature_are_those_of_the_commit_step():
    model = Seeded()
    settings = _entropy_settings()
    seen = _steps(model, settings, seed=0, masking=False)
    result = _sample(settings, seed=0, masking=False)
    known_before = torch.zeros(2, 16, dtype=torch.bool)
    h_expected = torch.zeros(2, 16)
    t_expected = torch.zeros(2, 16)
    for step, (_, known) in enumerate(seen):
        cond, uncond = model.logits(step)
        guided = uncond + (cond - uncond) * 3.0
        new = known & ~known_before
        h = entropy(guided)
        h_expected[new] = h[new]
        t_expected[new] = settings.entropy.temperature(h)[new]
        known_before = known
    assert known_before.all()
    torch.testing.assert_close(result.entropy, h_expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.temperature, t_expected, rtol=0, atol=1e-6)
    assert result.stats.mean_entropy == pytest.approx(h_expected.mean().item(), abs=1e-5)


def test_progress_and_cancel():
    seen, model = [], Seeded()

    def callback(state):
        seen.append((state.done, state.total, state.known.sum(-1).tolist(), tuple(state.tokens.shape),
                     bool((state.tokens == MASK).any())))
        if state.done == 3:
            raise KeyboardInterrupt("cancel")

    with pytest.raises(KeyboardInterrupt):
        _sample(model=model, callback=callback)
    assert seen == [(1, 6, [1, 1], (2, 16), False), (2, 6, [3, 3], (2, 16), False), (3, 6, [5, 5], (2, 16), False)]
    assert model.step == 3  # stopped between steps


def test_batch_rows_equal_solo_runs_when_nothing_is_random():
    """Greedy tokens with τ = 0: nothing depends on the generator, so each row is its solo run.

    (With randomness a batch shares one generator, drawn over all rows at once as the reference does.)
    Greedy one-hot probabilities tie every confidence at log 1 = 0 and ``c < sort(c)[n]`` then masks
    nothing: as in the reference, everything is committed at the first step.
    """
    settings = SamplerSettings(cfg_scale=3.0, temperature=0.0, entropy=preset("meissonic"))
    batch = _sample(settings, model=Seeded(rows=[0, 1, 2]), choice_temperature=(0.0, 0.0), seed=1)
    for r in range(3):
        solo = _sample(settings, model=Seeded(rows=[r]), choice_temperature=(0.0, 0.0), seed=9)
        assert torch.equal(batch.tokens[r:r + 1], solo.tokens)
    cond, uncond = Seeded(rows=[0, 1, 2]).logits(0)
    assert torch.equal(batch.tokens, (uncond + (cond - uncond) * 3.0).argmax(-1))


def test_greedy_with_noise_ranks_randomly_and_keeps_argmax_tokens():
    model = Seeded(batch=1)
    result = _sample(SamplerSettings(cfg_scale=3.0, temperature=0.0), model=model, seed=0)
    assert model.step == 6
    for step, x in enumerate(model.inputs[1:] + [result.tokens]):
        cond, uncond = model.logits(step)
        new = (x != MASK) & (model.inputs[step] == MASK)
        assert torch.equal(x[new], (uncond + (cond - uncond) * 3.0).argmax(-1)[new])


def test_one_step_and_one_token_per_step():
    model = Seeded()
    one = _sample(model=model, steps=1)
    assert model.step == 1 and (one.tokens != MASK).all()
    model = Seeded(grid=(2, 3))
    seen = _steps(model, SamplerSettings(cfg_scale=3.0), steps=6)
    assert [k.sum(-1).tolist() for _, k in seen] == [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6]]


def test_unguided_runs_ask_for_no_uncond():
    model = Seeded()
    _sample(SamplerSettings(cfg_scale=1.0), model=model)
    assert model.guided is False


def test_non_finite_logits_fail_at_the_end():
    with pytest.raises(SamplingError, match="not finite"):
        _sample(model=Seeded(nan_at=(4, 1, 7)))


def test_method_value():
    method = Masked(MaskedOptions(steps=4))
    assert method.order == "masked" and method.label(False) == "masked"
    assert method.label(True) == "masked-prob-masking"
    assert Masked(MaskedOptions(masking=False)).label(True) == "masked-prob"
    assert Masked(MaskedOptions(prob=False)).label(True) == "masked-masking"
    model = Seeded()
    result = method.run(model, None, SamplerSettings(cfg_scale=2.0), seed=1)
    assert model.step == 4 and result.tokens.shape == (2, 16) and result.layout.scales == ((4, 4),)
    assert result.stats.extra == {"steps": 4}
    with pytest.raises(SamplingError, match="whole grid"):
        method.run(Seeded(), None, SamplerSettings(), num_tokens=5)


def test_bad_settings():
    with pytest.raises(SamplingError, match="at least 1 step"):
        MaskedOptions(steps=0)
    with pytest.raises(SamplingError, match="at least 1 step"):
        sample_masked(Seeded(), None, SamplerSettings(), steps=0)
    with pytest.raises(SamplingError, match="17 steps is more than the 16 image tokens"):
        _sample(steps=17)
    with pytest.raises(SamplingError, match="Unknown mask schedule"):
        MaskedOptions(schedule="exp")
    with pytest.raises(SamplingError, match="choice temperature must be ≥ 0"):
        MaskedOptions(choice_temperature=(-1.0, 0.0))
    with pytest.raises(SamplingError, match="finite"):
        MaskedOptions(choice_temperature=(float("nan"), 0.0))
    with pytest.raises(SamplingError, match="cfg_interval"):
        _sample(SamplerSettings(cfg_scale=3.0, cfg_interval=2))
    with pytest.raises(SamplingError, match="larger than the vocabulary"):
        _sample(SamplerSettings(top_k=11))
    inside = Seeded()
    inside.mask_id = 3
    with pytest.raises(SamplingError, match="inside the vocabulary"):
        _sample(model=inside)
