"""The next-scale sampler's options: guidance schedules, filters, the entropy temperature per token
("+Prob."), the per-scale factor ("+Scale-wise"), progress, cancel and bad settings."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from arsample.errors import SamplingError
from arsample.models.var import VARConfig, VARTransformer, VARVQVAE, VQVAEConfig
from arsample.samplers import SamplerSettings, entropy, preset
from arsample.samplers.next_scale import (NextScale, NextScaleOptions, ScaleTemperature, filter_top_k_top_p_var,
                                          sample_next_scale)

SCALES = ((1, 1), (2, 2), (3, 3), (4, 4), (6, 6))


class Replay:
    """A scale session over the reference's recorded logits (fixtures/golden var_tiny_io, run0)."""

    def __init__(self, io):
        self.io, self.scales, self.batch_size, self.vocab_size = io, SCALES, 2, 64
        self.device, self.si, self.passes = torch.device("cpu"), 0, 0

    def start_session(self, cond, guidance):
        self.guided = guidance
        return self

    def _logits(self):
        self.passes += 1
        rows = self.io[f"run0_logits_s{self.si}"]
        return (rows[:2], rows[2:]) if self.guided else (rows[:2], None)

    def first(self):
        return self._logits()

    def next(self, tokens):
        self.si += 1
        return self._logits()


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "var_tiny_io.safetensors")


def _guided(io, si, cfg):
    rows = io[f"run0_logits_s{si}"]
    t = cfg * si / (len(SCALES) - 1)
    return (1 + t) * rows[:2] - t * rows[2:]


def _per_scale(values):
    out, begin = [], 0
    for h, w in SCALES:
        out.append(values[:, begin:begin + h * w])
        begin += h * w
    return out


def test_recorded_entropy_is_of_the_guided_unfiltered_map(io):
    result = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, top_k=20, top_p=0.9), seed=0)
    for si, h in enumerate(_per_scale(result.entropy)):
        torch.testing.assert_close(h, entropy(_guided(io, si, 4.0)), atol=1e-6, rtol=0)
    assert torch.equal(result.temperature, torch.ones_like(result.temperature))


@pytest.mark.parametrize("source", ["filtered", "raw"])
def test_entropy_temperature_per_token(io, source):
    """+Prob.: T = T(H) per token of each map, H of VAR-filtered (or raw) guided logits."""
    ent = preset("star", source=source)
    settings = SamplerSettings(cfg_scale=4.0, top_k=20, top_p=0.9, entropy=ent)
    result = sample_next_scale(Replay(io), [3, 7], settings, seed=0)
    for si, temp in enumerate(_per_scale(result.temperature)):
        guided = _guided(io, si, 4.0)
        h = entropy(filter_top_k_top_p_var(guided, 20, 0.9)) if source == "filtered" else entropy(guided)
        torch.testing.assert_close(temp, ent.temperature(h), atol=1e-5, rtol=0)
    plain = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, top_k=20, top_p=0.9), seed=0)
    assert not torch.equal(result.tokens, plain.tokens)


def test_scale_wise_factor_multiplies_each_scale(io):
    sw = ScaleTemperature()  # centered-normalized, beta 0.3, clamp [0.5, 1.5]
    factors = sw.factors_for(5)
    options = NextScaleOptions(scale_temperature=sw)
    plain = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, temperature=2.0), seed=0,
                              options=options)
    for si, temp in enumerate(_per_scale(plain.temperature)):
        assert torch.allclose(temp, torch.full_like(temp, 2.0 * factors[si]))
    ent = preset("star")
    both = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, entropy=ent), seed=0, options=options)
    for si, temp in enumerate(_per_scale(both.temperature)):
        torch.testing.assert_close(temp, ent.temperature(entropy(_guided(io, si, 4.0))) * factors[si], atol=1e-5,
                                   rtol=1e-6)


def test_scale_wise_forms():
    assert ScaleTemperature(clamp_min=None, clamp_max=None).factors_for(10)[0] == pytest.approx(1.12)
    assert ScaleTemperature(clamp_min=None, clamp_max=None).factors_for(10)[-1] == pytest.approx(0.85)
    centered = ScaleTemperature(form="centered").factors_for(10)
    assert centered == pytest.approx([1.5, 1.5, 1.5, 1.3, 1.0, 0.7, 0.5, 0.5, 0.5, 0.5])
    assert ScaleTemperature(form="table", factors=(2, 1, 0.5), clamp_max=None).factors_for(3) == [2.0, 1.0, 0.5]
    assert ScaleTemperature(form="table", factors=(2, 1, 0.5)).factors_for(3) == [1.5, 1.0, 0.5]  # clamped too
    with pytest.raises(SamplingError, match="clamp_min > 0"):
        ScaleTemperature(form="centered", clamp_min=None)
    with pytest.raises(SamplingError, match="one per scale"):
        ScaleTemperature(form="table", factors=(1.0, 1.0)).factor(0, 3)
    with pytest.raises(SamplingError, match="finite"):
        ScaleTemperature(beta=float("nan"))
    with pytest.raises(SamplingError, match="Unknown scale-wise form"):
        ScaleTemperature(form="exp")


def test_guidance_ramp_starts_unguided(io):
    """Scale 0 has t = 0: the conditional logits alone, whatever the cfg."""
    a = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0), seed=5)
    b = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=0.0), seed=5)
    assert torch.equal(a.tokens[:, :1], b.tokens[:, :1])
    assert not torch.equal(a.tokens, b.tokens)
    replay = Replay(io)
    sample_next_scale(replay, [3, 7], SamplerSettings(cfg_scale=1.0), seed=0,
                      options=NextScaleOptions(cfg_schedule="constant"))
    assert replay.guided is False  # constant schedule: LlamaGen's convention, 1 = off


def test_llamagen_filter_rule_is_an_option(io):
    settings = SamplerSettings(cfg_scale=4.0, top_p=0.5)
    var = sample_next_scale(Replay(io), [3, 7], settings, seed=0)
    llamagen = sample_next_scale(Replay(io), [3, 7], settings, seed=0, options=NextScaleOptions(filter_rule="llamagen"))
    assert var.tokens.shape == llamagen.tokens.shape


def test_progress_and_cancel(io):
    seen = []
    replay = Replay(io)

    def callback(state):
        seen.append((state.done, state.total, state.known[0].sum().item(), state.tokens.shape))
        if state.done == 3:
            raise KeyboardInterrupt("cancel")

    with pytest.raises(KeyboardInterrupt):
        sample_next_scale(replay, [3, 7], SamplerSettings(cfg_scale=4.0), seed=0, callback=callback)
    assert seen == [(1, 5, 1, (2, 66)), (2, 5, 5, (2, 66)), (3, 5, 14, (2, 66))]
    assert replay.passes == 3  # stopped between scales


def test_greedy_ignores_the_seed(io):
    a = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, temperature=0.0), seed=0)
    b = sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, temperature=0.0), seed=9)
    assert torch.equal(a.tokens, b.tokens)
    for si, tok in enumerate(_per_scale(a.tokens)):
        assert torch.equal(tok, _guided(io, si, 4.0).argmax(-1))


def test_bad_settings(io):
    with pytest.raises(SamplingError, match="cfg_interval"):
        sample_next_scale(Replay(io), [3, 7], SamplerSettings(cfg_scale=4.0, cfg_interval=3))
    with pytest.raises(SamplingError, match="larger than the vocabulary"):
        sample_next_scale(Replay(io), [3, 7], SamplerSettings(top_k=65))
    with pytest.raises(SamplingError, match="Unknown filter rule"):
        NextScaleOptions(filter_rule="hf")
    with pytest.raises(SamplingError, match="Unknown guidance schedule"):
        NextScaleOptions(cfg_schedule="cosine")


def _tiny_pair(seed=0):
    torch.manual_seed(seed)
    var = VARTransformer(VARConfig(depth=2, embed_dim=64, num_heads=4, mlp_hidden=128, num_classes=5, vocab_size=32,
                                   cvae=8, patch_nums=(1, 2, 4))).eval()
    vae = VARVQVAE(VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 1), num_res_blocks=1)).eval()
    with torch.no_grad():
        for p in list(var.parameters()) + [vae.quantize.embedding.weight]:
            p.normal_(0, 0.5)
    return var.bind(vae)


def test_method_value_and_batches():
    pair = _tiny_pair()
    method = NextScale()
    assert method.order == "next-scale" and method.label(False) == "scale"
    assert NextScale(NextScaleOptions(scale_temperature=ScaleTemperature())).label(True) == "scale-entropy-scalewise"
    result = method.run(pair, [0, 1, 2, 4], SamplerSettings(cfg_scale=3.0, top_k=8, top_p=0.9), seed=1)
    assert result.tokens.shape == (4, 21) and result.layout.scales == ((1, 1), (2, 2), (4, 4))
    again = method.run(pair, [0, 1, 2, 4], SamplerSettings(cfg_scale=3.0, top_k=8, top_p=0.9), seed=1)
    assert torch.equal(result.tokens, again.tokens)
    with pytest.raises(SamplingError, match="every scale"):
        method.run(pair, [0], SamplerSettings(), num_tokens=5)


def test_session_decode_is_the_decoded_tokens():
    """The session's f̂ after the last scale is what the VQ-VAE rebuilds from all the tokens."""
    pair = _tiny_pair(1)
    session = pair.start_session([1, 3], guidance=True)
    logits = session.first()
    tokens = []
    for si, (h, w) in enumerate(pair.token_layout):
        tok = torch.randint(0, 32, (2, h * w))
        tokens.append(tok)
        if si + 1 < len(pair.token_layout):
            logits = session.next(tok)
            assert logits[0].shape == (2, pair.token_layout[si + 1][0] ** 2, 32)
        else:
            session.commit(tok)
    assert torch.equal(session.decode(), pair.decode(torch.cat(tokens, dim=1)))
    with pytest.raises(SamplingError, match="once"):
        session.commit(tokens[-1])
