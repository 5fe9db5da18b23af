"""Our LlamaGen and samplers against data produced by the official code (see fixtures/golden/README.md)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from arsample.models.llamagen import LlamaGenCondition, load_gpt, load_vq
from arsample.samplers import SamplerSettings, preset, sample_ar, token_distribution

TINY = {"n_head": 4, "grid_size": 8}  # the fixtures' config; not inferable from shapes


def _rows(pair):
    """A session's (cond, uncond) logits as the reference's [cond; uncond] rows."""
    cond, uncond = pair
    return cond if uncond is None else torch.cat([cond, uncond])


def _session_logits(model, cond, tokens):
    session = model.start_session(cond, guidance=True, max_new_tokens=32)
    prefill = _rows(session.prefill(all_positions=True))
    fed = tokens  # the reference feeds [tokens; tokens] rows; the session doubles them itself
    one_by_one = torch.stack([_rows(session.extend(fed[:, i:i + 1]))[:, -1] for i in range(tokens.shape[1])], dim=1)
    session.truncate(0)
    multi = _rows(session.extend(fed))
    return prefill, one_by_one, multi


@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_logits_match_reference(golden, kind):
    model = load_gpt(golden / f"gpt_{kind}.safetensors", override=TINY)
    io = load_file(golden / f"gpt_{kind}_io.safetensors")
    if kind == "c2i":
        cond = LlamaGenCondition(labels=io["labels"])
    else:
        cond = LlamaGenCondition(caption=io["caption"], caption_mask=io["emb_mask"])
    prefill, one_by_one, multi = _session_logits(model, cond, io["decode_tokens"])
    assert prefill.dtype == torch.float32
    torch.testing.assert_close(prefill, io["prefill_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(one_by_one, io["decode_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(multi, io["multi_decode_logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind,key,cfg,interval", [
    ("c2i", "greedy_tokens", 4.0, -1),
    ("c2i", "greedy_tokens_nocfg", 1.0, -1),
    ("c2i", "greedy_tokens_cfg_interval", 4.0, 5),
    ("t2i", "greedy_tokens", 7.5, -1),
    ("t2i", "greedy_tokens_nocfg", 1.0, -1),
])
def test_greedy_tokens_match_reference(golden, kind, key, cfg, interval):
    model = load_gpt(golden / f"gpt_{kind}.safetensors", override=TINY)
    io = load_file(golden / f"gpt_{kind}_io.safetensors")
    if kind == "c2i":
        cond = LlamaGenCondition(labels=io["labels"])
    else:
        cond = LlamaGenCondition(caption=io["caption"], caption_mask=io["emb_mask"])
    settings = SamplerSettings(cfg_scale=cfg, cfg_interval=interval, temperature=0.0)
    result = sample_ar(model, cond, settings, num_tokens=32)
    assert result.tokens.dtype == torch.int64
    assert torch.equal(result.tokens, io[key])


def test_t2i_padding_mask_matters(golden):
    """Dropping the caption mask must change the logits (the test would not see a broken mask otherwise)."""
    model = load_gpt(golden / "gpt_t2i.safetensors", override=TINY)
    io = load_file(golden / "gpt_t2i_io.safetensors")
    unmasked = LlamaGenCondition(caption=io["caption"])
    logits = _rows(model.start_session(unmasked, guidance=True, max_new_tokens=32).prefill(all_positions=True))
    assert (logits - io["prefill_logits"]).abs().max() > 0.1


def test_vq_decode_and_encode_match_reference(golden):
    vq = load_vq(golden / "vq.safetensors")
    io = load_file(golden / "vq_io.safetensors")
    assert vq.downsample == 4 and vq.codebook_size == 64
    torch.testing.assert_close(vq.decode_codes(io["codes"]), io["decoded"], atol=5e-5, rtol=1e-5)
    assert torch.equal(vq.encode(io["image"]), io["encoded_codes"])
    latent = vq.codes_to_latent(io["encoded_codes"])
    torch.testing.assert_close(latent, io["encoded_quant"], atol=1e-6, rtol=0)


SETTINGS = [(1.0, 0, 1.0), (1.4, 0, 1.0), (1.0, 50, 1.0), (1.0, 0, 0.9), (0.7, 100, 0.8)]


@pytest.mark.parametrize("t,k,p", SETTINGS)
@pytest.mark.parametrize("kind", ["entropy", "plain"])
def test_sampling_distribution_matches_reference(golden, kind, t, k, p):
    """Entropy: ARsample's sample(); plain: LlamaGen's sample(); same fixed logits."""
    io = load_file(golden / "arsample_sample.safetensors")
    logits = io["logits"]
    before = logits.clone()
    settings = SamplerSettings(top_k=k, top_p=p, temperature=t,
                               entropy=preset("llamagen") if kind == "entropy" else None)
    dist = token_distribution(logits, settings, torch.full((logits.shape[0], 1), t))
    torch.testing.assert_close(dist.probs, io[f"{kind}_probs_t{t}_k{k}_p{p}"], atol=1e-6, rtol=1e-5)
    assert torch.equal(logits, before), "the caller's logits were modified"


@pytest.mark.parametrize("k,p", [(0, 1.0), (50, 1.0), (0, 0.9), (100, 0.8)])
def test_filtered_entropy_matches_reference(golden, k, p):
    from arsample.samplers import entropy, filter_top_k_top_p

    io = load_file(golden / "arsample_sample.safetensors")
    h = entropy(filter_top_k_top_p(io["logits"], k, p))
    torch.testing.assert_close(h, io[f"entropy_nats_k{k}_p{p}"], atol=1e-5, rtol=1e-5)
