"""STAR transformer: the official key layout, configuration inference, training-snapshot and safetensors
loading, the cross-attention modes, text conditions and bad input.

Weights are the golden tiny model (fixtures/golden/README.md, STAR section); the official layouts of d16
(256 px) and d30 (1024 px) come from the reference's own constructor (``star_official_keys.json``).
"""

from __future__ import annotations

import datetime
import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from arsample.errors import CheckpointError, ConfigError, SamplingError
from arsample.models.checkpoint import save_safetensors_atomic
from arsample.models.star import (CROSS_ATTN_MODES, StarCondition, StarConfig, StarTransformer, detect_star_kind,
                                  load_star, read_star_file, star_config, star_from_state_dict)
from arsample.models.star.config import resolve_star_config
from arsample.models.star.rope import rope_table
from arsample.models.var import PATCH_NUMS, load_vqvae, vqvae_from_state_dict
from arsample.samplers import SamplerSettings
from arsample.samplers.next_scale import sample_next_scale

PATCH = (1, 2, 3, 4)
SNAPSHOT_CONFIG = {"patch_nums": PATCH, "resos": tuple(16 * p for p in PATCH), "label_smooth": 0.0, "prog_it": 0,
                   "last_prog_si": -1, "first_prog": True}


@pytest.fixture(scope="module")
def official(golden):
    return json.loads((golden / "star_official_keys.json").read_text())


@pytest.fixture(scope="module")
def state(golden):
    return {k: v.float() for k, v in load_file(golden / "star_tiny.safetensors").items()}


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "star_tiny_io.safetensors")


@pytest.fixture(scope="module")
def vae(golden):
    return load_vqvae(golden / "var_vqvae_tiny.safetensors")


def _model(state, mode="per-row", **override) -> StarTransformer:
    return star_from_state_dict(state, "star_tiny", override={"patch_nums": PATCH, "cross_attn_mode": mode, **override})


def _cond(io, prompts=(0, 1), null=True) -> StarCondition:
    rows = list(prompts)
    extra = (io["text_states"][[2]], io["text_mask"][[2]], io["pooled"][[2]]) if null else ()
    return StarCondition(io["text_states"][rows], io["text_mask"][rows], io["pooled"][rows], *extra)


def _layout(module: torch.nn.Module) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in module.state_dict().items()}


# -- layout and sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,depth,size", [("star_d16_256", 16, 256), ("star_d30_1024", 30, 1024)])
def test_key_layout_is_the_official_one(official, name, depth, size):
    with torch.device("meta"):
        model = StarTransformer(star_config(depth, size))
    assert _layout(model) == official[name]
    buffers = {k for k, _ in model.named_buffers()}
    assert all(k.endswith("zero_k_bias") for k in buffers)  # no scale index, mask or RoPE table is stored


def test_parameter_counts_follow_the_official_layout(official):
    for name, depth, size in (("star_d16_256", 16, 256), ("star_d30_1024", 30, 1024)):
        with torch.device("meta"):
            model = StarTransformer(star_config(depth, size))
        want = sum(torch.Size(shape).numel() for key, (shape, _) in official[name].items() if "zero_k_bias" not in key)
        assert sum(p.numel() for p in model.parameters()) == want
    assert star_config(30).patch_nums == PATCH_NUMS[1024] and star_config(16, 256).patch_nums == PATCH_NUMS[256]


def test_rope_table_first_scale_is_identity_and_positions_span_the_norm():
    cos, sin = rope_table((1, 2, 4), head_dim=16, theta=10000.0, norm=64.0)
    assert cos.shape == (21, 8)
    assert torch.equal(cos[0], torch.ones(8)) and torch.equal(sin[0], torch.zeros(8))
    # the last token of every map sits at (norm, norm): equal angles whatever the map size
    torch.testing.assert_close(cos[4], cos[20], atol=0, rtol=0)
    torch.testing.assert_close(sin[4], sin[20], atol=0, rtol=0)
    # the first 4 pairs follow x (column), the last 4 y (row): token 1 of the 2×2 map is (x=64, y=0)
    assert torch.equal(cos[2, 4:], torch.ones(4)) and not torch.equal(cos[2, :4], torch.ones(4))


# -- configuration ------------------------------------------------------------------------------
def test_config_checks():
    with pytest.raises(ConfigError, match="cross_attn_mode"):
        StarConfig(cross_attn_mode="row0")
    with pytest.raises(ConfigError, match="divisible by 4"):
        StarConfig(embed_dim=60, num_heads=10)
    with pytest.raises(ConfigError, match="coarse to fine"):
        StarConfig(patch_nums=(2, 1))
    assert set(CROSS_ATTN_MODES) == {"per-row", "per-prompt", "row0-broadcast"}
    assert StarConfig().cross_attn_mode == "per-prompt"  # the released sampling code's result, per prompt


def test_scale_list_from_the_scale_count_and_hints(state):
    def with_scales(n):
        s = dict(state)
        s["lvl_embed.weight"] = torch.zeros(n, 32)
        return s

    config, notes = resolve_star_config(with_scales(14), "star.pth")
    assert config.patch_nums == PATCH_NUMS[1024] and not notes and config.image_size == 1024
    config, notes = resolve_star_config(with_scales(10), "star.pth")
    assert config.patch_nums == PATCH_NUMS[256] and "pass image_size" in notes[0]
    config, notes = resolve_star_config(with_scales(10), "star-d30-512.pth")
    assert config.patch_nums == PATCH_NUMS[512] and not notes
    config, _ = resolve_star_config(with_scales(10), "star.pth", override={"image_size": 512})
    assert config.patch_nums == PATCH_NUMS[512]
    config, _ = resolve_star_config(with_scales(10), "star.pth", snapshot_patch_nums=list(PATCH_NUMS[512]))
    assert config.patch_nums == PATCH_NUMS[512]
    with pytest.raises(ConfigError, match="cannot make 1024 px"):
        resolve_star_config(with_scales(10), "star.pth", override={"image_size": 1024})
    with pytest.raises(ConfigError, match="matches none"):
        resolve_star_config(state, "star.pth")


def test_safetensors_metadata_round_trip(tmp_path, state, io):
    model = _model(state, rope_theta=100.0, rope_norm=32.0, cross_attn_mode="row0-broadcast")
    path = tmp_path / "star_tiny_converted.safetensors"
    save_safetensors_atomic(model.state_dict(), path, model.config.to_metadata())
    loaded = load_star(path)  # no override: the metadata carries the scale list and the RoPE settings
    assert loaded.config.patch_nums == PATCH and loaded.config.rope_theta == 100.0 and loaded.config.rope_norm == 32.0
    assert loaded.config.cross_attn_mode == "per-prompt"  # a run-time choice, not stored: the default
    rows = [0, 1]
    args = (io["text_states"][rows], io["text_mask"][rows], io["pooled"][rows], io["tf_input"])
    torch.testing.assert_close(loaded.with_cross_attn_mode("row0-broadcast")(*args), io["tf_logits_theta100_norm32"],
                               atol=1e-5, rtol=0)


# -- training snapshots -------------------------------------------------------------------------
def _optimizer_state(model: torch.nn.Module) -> dict:
    """An AdamW state after one step, with the extra per-group keys STAR's trainer adds."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()][:4]
    opt = torch.optim.AdamW([{"params": params[:2], "lr_sc": 1.0, "wd_sc": 0.0},
                             {"params": params[2:], "lr_sc": 1.0, "wd_sc": 1.0}], lr=1e-4, betas=(0.9, 0.95))
    sum(p.square().sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def _snapshot(state, vae_state, model, trainer_extra=None, drop_model=False) -> dict:
    trainer = {"config": dict(SNAPSHOT_CONFIG), "var_wo_ddp": dict(state), "vae_local": dict(vae_state),
               "var_opt": {"scaler": {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                      "growth_interval": 2000, "_growth_tracker": 17},
                           "optimizer": _optimizer_state(model)}}
    if drop_model:
        del trainer["var_wo_ddp"]
    trainer.update(trainer_extra or {})
    return {"epoch": 5, "iter": 0, "trainer": trainer}


def test_training_snapshot_loads_with_weights_only(tmp_path, golden, state, io):
    vae_state = load_file(golden / "var_vqvae_tiny.safetensors")
    model = _model(state)
    path = tmp_path / "ar-ckpt-last.pth"
    torch.save(_snapshot(state, vae_state, model), path)
    loaded = load_star(path, override={"cross_attn_mode": "row0-broadcast"})  # the scale list comes from trainer.config
    assert loaded.config.patch_nums == PATCH
    rows = [0, 1]
    logits = loaded(io["text_states"][rows], io["text_mask"][rows], io["pooled"][rows], io["tf_input"])
    torch.testing.assert_close(logits, io["tf_logits"], atol=1e-5, rtol=0)
    found = read_star_file(path)
    assert found.patch_nums == PATCH and set(found.state) == set(state)
    vqvae = vqvae_from_state_dict(found.vqvae_state, "vae_local")  # the VQ-VAE trained with it
    assert vqvae.codebook_size == 64


def test_snapshot_without_the_model_entry_is_named(tmp_path, golden, state):
    vae_state = load_file(golden / "var_vqvae_tiny.safetensors")
    path = tmp_path / "star-d30-1024.pth"
    torch.save(_snapshot(state, vae_state, _model(state), drop_model=True), path)
    with pytest.raises(CheckpointError) as err:
        load_star(path)
    assert str(err.value).startswith("star-d30-1024.pth looks like a STAR training snapshot but has no 'trainer' → "
                                     "'var_wo_ddp' entry")


def test_snapshot_with_python_objects_is_refused_unopened(tmp_path, golden, state):
    vae_state = load_file(golden / "var_vqvae_tiny.safetensors")
    path = tmp_path / "star.pth"
    torch.save(_snapshot(state, vae_state, _model(state), trainer_extra={"saved_at": datetime.datetime(2025, 3, 1)}),
               path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        load_star(path)


def test_plain_pickled_state_dict_loads(tmp_path, state):
    path = tmp_path / "star_weights.pt"
    torch.save({"model": state}, path)
    assert load_star(path, override={"patch_nums": PATCH}).config.depth == 2


# -- wrong files --------------------------------------------------------------------------------
def test_wrong_kinds_are_named(tmp_path, golden, state):
    assert detect_star_kind(state) == "star"
    sampler = dict(state, **{"head_logits2.weight": torch.zeros(64, 32),
                             "feat_extract_blocks.0.ffn.fc1.bias": torch.zeros(4)})
    assert detect_star_kind(sampler) == "star-sampler"
    with pytest.raises(CheckpointError, match="sampler"):
        star_from_state_dict(sampler, "star-1024-sampler.pth")
    with pytest.raises(CheckpointError, match="not a STAR transformer"):
        load_star(golden / "var_tiny.safetensors")
    no_cross = {k: v for k, v in state.items() if ".cross_attn." not in k}
    with pytest.raises(ConfigError, match="no cross-attention"):
        star_from_state_dict(no_cross, "star_ablation.pth", override={"patch_nums": PATCH})
    bad = dict(state)
    bad["head_logits.weight"] = bad["head_logits.weight"].clone()
    bad["head_logits.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        star_from_state_dict(bad, "star.pth", override={"patch_nums": PATCH})
    with pytest.raises(CheckpointError, match="shape mismatch|does not match"):
        star_from_state_dict(state, "star.pth", override={"patch_nums": PATCH, "num_heads": 4})


def test_vqvae_pairing(state, vae):
    _model(state).bind(vae)
    other_vocab = dict(state, **{"head_logits.weight": torch.zeros(32, 32), "head_logits.bias": torch.zeros(32)})
    with pytest.raises(ConfigError, match="vae_ch160v4096z32"):
        _model(other_vocab).bind(vae)


# -- conditions and sessions --------------------------------------------------------------------
def test_condition_errors(state, io, vae):
    pair = _model(state).bind(vae)
    with pytest.raises(SamplingError, match="empty prompt"):
        pair.start_session(_cond(io, null=False), guidance=True)
    pair.start_session(_cond(io, null=False), guidance=False)
    bad_mask = _cond(io)
    bad_mask.mask = bad_mask.mask.clone()
    bad_mask.mask[1] = 0
    with pytest.raises(SamplingError, match="no token"):
        pair.start_session(bad_mask, guidance=True)
    bad_mask.mask[1, 0] = 2
    with pytest.raises(SamplingError, match="only 0"):
        pair.start_session(bad_mask, guidance=True)
    narrow = StarCondition(io["text_states"][:2, :, :32], io["text_mask"][:2], io["pooled"][:2, :32])
    with pytest.raises(SamplingError, match="width 48"):
        pair.start_session(narrow, guidance=False)
    mismatched = StarCondition(io["text_states"][:2], io["text_mask"][:2], io["pooled"][:1])
    with pytest.raises(SamplingError, match="disagree"):
        pair.start_session(mismatched, guidance=False)
    three_null = StarCondition(*(t[:2] for t in (io["text_states"], io["text_mask"], io["pooled"])),
                               io["text_states"], io["text_mask"], io["pooled"])
    with pytest.raises(SamplingError, match="give 1 \\(shared\\) or 2"):
        pair.start_session(three_null, guidance=True)
    with pytest.raises(SamplingError, match="text-to-image"):
        pair.start_session(torch.tensor([1, 2]), guidance=False)
    as_dict = {"states": io["text_states"][:2], "mask": io["text_mask"][:2], "pooled": io["pooled"][:2]}
    assert pair.start_session(as_dict, guidance=False).batch_size == 2


def test_session_protocol_errors(state, io, vae):
    session = _model(state).bind(vae).start_session(_cond(io), guidance=True)
    with pytest.raises(SamplingError, match="commit"):
        session.commit(torch.zeros(2, 1, dtype=torch.long))
    cond, uncond = session.first()
    assert cond.shape == uncond.shape == (2, 1, 64) and cond.dtype == torch.float32
    with pytest.raises(SamplingError, match="once"):
        session.first()
    with pytest.raises(SamplingError, match="shape"):
        session.next(torch.zeros(2, 4, dtype=torch.long))


def test_forward_checks_scale_lengths(state, io):
    with pytest.raises(SamplingError, match="whole scales"):
        _model(state)(io["text_states"][:2], io["text_mask"][:2], io["pooled"][:2], io["tf_input"][:, :5])
    # a prefix of whole scales is fine (the first three scales: 1 + 4 + 9 tokens)
    logits = _model(state)(io["text_states"][:2], io["text_mask"][:2], io["pooled"][:2], io["tf_input"][:, :13])
    assert logits.shape == (2, 14, 64)


# -- cross-attention modes ----------------------------------------------------------------------
def _session_logits(model, vae, cond, tokens, guidance=True):
    session = model.bind(vae).start_session(cond, guidance=guidance)
    out, begin = [session.first()], 0
    for p in PATCH[:-1]:
        end = begin + p * p
        out.append(session.next(tokens[:, begin:end]))
        begin = end
    cond_l = torch.cat([c for c, _ in out], dim=1)
    return cond_l, (torch.cat([u for _, u in out], dim=1) if guidance else None)


def test_per_row_batch_equals_each_prompt_alone(state, io, vae):
    """Per-row (and per-prompt) rows never mix: a batch of two = each prompt run alone, cond and uncond."""
    tokens = io["run0_tokens"]
    for mode in ("per-row", "per-prompt"):
        model = _model(state, mode)
        both = _session_logits(model, vae, _cond(io, (0, 1)), tokens)
        for i in range(2):
            alone = _session_logits(model, vae, _cond(io, (i,)), tokens[i:i + 1])
            torch.testing.assert_close(both[0][i:i + 1], alone[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(both[1][i:i + 1], alone[1], atol=1e-5, rtol=0)


def test_modes_agree_for_one_prompt_without_guidance_and_differ_otherwise(state, io, vae):
    tokens = io["solo0_tokens"]
    unguided = [_session_logits(_model(state, mode), vae, _cond(io, (0,)), tokens, guidance=False)[0]
                for mode in CROSS_ATTN_MODES]
    for other in unguided[1:]:
        torch.testing.assert_close(other, unguided[0], atol=1e-5, rtol=0)
    guided = {mode: _session_logits(_model(state, mode), vae, _cond(io, (0,)), tokens) for mode in CROSS_ATTN_MODES}
    # cond rows agree in every mode; the uncond row is the empty prompt's own only in per-row mode
    for mode in CROSS_ATTN_MODES:
        torch.testing.assert_close(guided[mode][0], guided["per-row"][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(guided["per-prompt"][1], guided["row0-broadcast"][1], atol=1e-5, rtol=0)
    assert (guided["per-row"][1] - guided["row0-broadcast"][1]).abs().max() > 0.01


def test_mode_switch_in_place(state, io):
    model = _model(state, "per-row")
    rows = [0, 1]
    args = (io["text_states"][rows], io["text_mask"][rows], io["pooled"][rows], io["tf_input"])
    per_row = model(*args)
    row0 = model.with_cross_attn_mode("row0-broadcast")(*args)
    torch.testing.assert_close(row0, io["tf_logits"], atol=1e-5, rtol=0)
    assert (per_row[1] - row0[1]).abs().max() > 0.01
    with pytest.raises(ConfigError):
        model.with_cross_attn_mode("broadcast")


# -- precision ----------------------------------------------------------------------------------
def test_bf16_weights_sample_close_to_fp32(state, io, vae):
    model32 = _model(state)
    model16 = star_from_state_dict(state, "star_tiny", override={"patch_nums": PATCH}, dtype="bf16")
    assert model16.dtype == torch.bfloat16
    rows = [0, 1]
    args = (io["text_states"][rows], io["text_mask"][rows], io["pooled"][rows], io["tf_input"])
    l32, l16 = model32(*args), model16(*args)
    assert l16.dtype == torch.float32 and torch.isfinite(l16).all()
    assert (l16 - l32).abs().mean() < 0.1 * l32.std()
    settings = SamplerSettings(cfg_scale=4.0, top_k=20, top_p=0.9)
    result = sample_next_scale(model16.bind(vae), _cond(io), settings, seed=0)
    assert result.tokens.shape == (2, 30) and int(result.tokens.max()) < 64


def test_default_scale_note_is_logged(state, caplog):
    ten_scales = dict(state, **{"lvl_embed.weight": torch.zeros(10, 32)})
    with caplog.at_level(logging.WARNING):
        model = star_from_state_dict(ten_scales, "star.pth")
    assert model.config.patch_nums == PATCH_NUMS[256]
    assert any("assumed 256 px" in r.getMessage() for r in caplog.records)
