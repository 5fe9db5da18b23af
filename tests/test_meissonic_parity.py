"""Meissonic golden parity (fp32, CPU) against the official code on tiny random weights.

The golden files (fixtures/golden/README.md, Meissonic section) were made with MeissonFlow/Meissonic's
``src/transformer.py``, ``src/pipeline.py`` and ``src/scheduler.py`` on diffusers 0.32.2: transformer
logits with and without the negative-prompt rows, the RoPE table, VQ decode/encode, and three
end-to-end pipeline runs (per-step tokens). The end-to-end check drives our predictor with a
transcription of the reference scheduler written here (the pack's masked sampler is tested elsewhere).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from arsample.models.meissonic import (MeissonicCondition, MeissonicPredictor, meissonic_from_state_dict,
                                       vq_from_state_dict)
from arsample.models.meissonic.transformer import rope_table

TOL = 1e-5


@pytest.fixture(scope="module")
def meta(golden):
    with safe_open(str(golden / "meissonic_tiny.safetensors"), "pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "meissonic_tiny_io.safetensors")


@pytest.fixture(scope="module")
def model(golden, meta):
    return meissonic_from_state_dict(load_file(golden / "meissonic_tiny.safetensors"), json.loads(meta["config"]))


@pytest.fixture(scope="module")
def vq(golden, meta):
    return vq_from_state_dict(load_file(golden / "meissonic_vqvae_tiny.safetensors"), json.loads(meta["vq_config"]))


def _close(a, b):
    assert a.shape == b.shape
    err = (a.float() - b.float()).abs().max().item()
    assert err <= TOL, err


def test_rope_table(io):
    cos, sin = rope_table(5, (4, 4), (2, 4, 2))
    _close(cos, io["rope_cos"])
    _close(sin, io["rope_sin"])


@pytest.mark.parametrize("t", [3, 0])
def test_transformer_logits(model, io, t):
    with torch.no_grad():
        out = model(io["tokens"], io["pos_states"], io["pos_pooled"], io["micro_conds"], t)
    _close(out, io[f"logits_t{t}"])
    assert not torch.allclose(io["logits_t3"], io["logits_t0"], atol=1e-3)  # the timestep matters


def test_guided_rows(model, io):
    """Rows [negative; positive] in one batch (the pipeline's layout), forward and through the predictor."""
    ref = io["guided_logits_t5"]
    with torch.no_grad():
        out = model(torch.cat([io["tokens"]] * 2), torch.cat([io["neg_states"], io["pos_states"]]),
                    torch.cat([io["neg_pooled"], io["pos_pooled"]]), torch.cat([io["micro_conds"]] * 2), 5)
    _close(out, ref)
    cond = MeissonicCondition(io["pos_states"], io["pos_pooled"], io["neg_states"], io["neg_pooled"], io["micro_conds"])
    pred = MeissonicPredictor(model, cond, grid=(8, 8), guidance=True)
    c, u = pred.predict(io["tokens"].reshape(2, 64), 0, 6)  # step 0 of 6: timestep 5
    assert c.dtype == torch.float32 and c.shape == (2, 64, 64)
    _close(c, ref[2:].flatten(2).transpose(1, 2))
    _close(u, ref[:2].flatten(2).transpose(1, 2))
    solo = MeissonicPredictor(model, cond, grid=(8, 8), guidance=False)
    c2, u2 = solo.predict(io["tokens"].reshape(2, 64), timestep=3)
    assert u2 is None
    _close(c2, io["logits_t3"].flatten(2).transpose(1, 2))


def test_vq_decode_and_encode(vq, io):
    with torch.no_grad():
        _close(vq.decode(io["vq_tokens"]), io["vq_decoded"])
        _close(vq.decode(io["vq_tokens"], clamp=True), io["vq_decoded"].clamp(0, 1))
        _close(vq.encode(io["vq_image"]), io["vq_latents"])


def _reference_steps(pred, steps, seed, cfg, temperature):
    """A transcription of the reference ``Scheduler.step`` loop (float32 ops in the reference's order)."""
    g = torch.Generator().manual_seed(seed)
    b, n, mask_id = pred.batch_size, pred.num_image_tokens, pred.mask_id
    lat = torch.full((b, n), mask_id, dtype=torch.long)
    temps = torch.linspace(temperature[0], temperature[1], steps)
    out = []
    for i in range(steps):
        cond, uncond = pred.predict(lat, i, steps)
        logits = cond if uncond is None else uncond + cfg * (cond - uncond)
        probs = logits.softmax(-1)
        unknown = lat == mask_id
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=g)[:, 0].view(b, n)
        drawn = torch.where(unknown, drawn, lat)
        if i == steps - 1:
            lat = drawn
        else:
            ratio = torch.tensor([[i + 1]]) / steps
            mask_len = (n * torch.cos(ratio * math.pi / 2)).floor()
            mask_len = torch.max(torch.tensor([1]), torch.min(unknown.sum(-1, keepdim=True) - 1, mask_len))
            sel = torch.gather(probs, -1, drawn[:, :, None])[:, :, 0]
            sel = torch.where(unknown, sel, torch.finfo(sel.dtype).max)
            noise = torch.zeros_like(sel).uniform_(0, 1, generator=g)
            gumbel = -torch.log((-torch.log(noise.clamp(1e-20))).clamp(1e-20))
            conf = torch.log(sel.clamp(1e-20)) + temps[i] * gumbel
            cut = torch.gather(torch.sort(conf, dim=-1).values, 1, mask_len.long())
            lat = torch.where(conf < cut, mask_id, drawn)
        out.append(lat.clone())
    return torch.stack(out, 1)


@pytest.mark.parametrize("run", ["run0", "run1", "run2"])
def test_pipeline_tokens(model, io, meta, run):
    spec = json.loads(meta["runs"])[run]
    rows = spec["batch"]
    guided = spec["guidance_scale"] > 1.0
    cond = MeissonicCondition(io["pos_states"][:rows], io["pos_pooled"][:rows], io["neg_states"][:rows],
                              io["neg_pooled"][:rows], tuple(spec["micro_conds"]))
    pred = MeissonicPredictor(model, cond, grid=(8, 8), guidance=guided)
    steps = _reference_steps(pred, spec["steps"], spec["seed"], spec["guidance_scale"], spec["temperature"])
    ref = io[f"{run}_steps"].reshape(rows, spec["steps"], 64)
    assert torch.equal(steps, ref)
    assert torch.equal(steps[:, -1], io[f"{run}_tokens"].reshape(rows, 64))
    assert (steps[:, -1] != pred.mask_id).all()
