"""VAR transformer and VQ-VAE: the official key layout, configuration inference, loading, bad input,
and a d16 checkpoint (official names and shapes, random weights) that loads, samples and decodes at 256 px."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from arsample.errors import CheckpointError, ConfigError, SamplingError
from arsample.models.checkpoint import save_safetensors_atomic
from arsample.models.var import (PATCH_NUMS, VARConfig, VARTransformer, VARVQVAE, VQVAEConfig, detect_kind, load_var,
                                 load_vqvae, var_config)
from arsample.models.var.transformer import block_causal_mask, scale_index
from arsample.samplers import SamplerSettings
from arsample.samplers.next_scale import sample_next_scale

# Keys of the official models with the mask buffer our module rebuilds instead of storing.
_DROPPED = {"attn_bias_for_masking"}


@pytest.fixture(scope="module")
def official(golden):
    return json.loads((golden / "var_official_keys.json").read_text())


def _layout(module: torch.nn.Module) -> dict[str, tuple[list[int], str]]:
    return {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name,make", [
    ("var_d16", lambda: VARTransformer(var_config(16))),
    ("var_d36", lambda: VARTransformer(var_config(36))),
    ("vae_ch160v4096z32", lambda: VARVQVAE(VQVAEConfig())),
])
def test_key_layout_is_the_official_one(official, name, make):
    with torch.device("meta"):
        module = make()
    want = {k: (shape, dtype) for k, (shape, dtype) in official[name].items() if k not in _DROPPED}
    assert _layout(module) == want


def test_parameter_counts():
    with torch.device("meta"):
        counts = {d: sum(p.numel() for p in VARTransformer(var_config(d)).parameters()) for d in (16, 20, 24, 30, 36)}
        vae = sum(p.numel() for p in VARVQVAE(VQVAEConfig()).parameters())
    assert round(counts[16] / 1e6, 2) == 310.28 and round(counts[36] / 1e6, 1) == 2353.9
    assert round(vae / 1e6, 2) == 108.95
    assert var_config(36).patch_nums == PATCH_NUMS[512] and var_config(36).shared_aln


def _random_official_state(spec: dict, seed: int, patch_nums) -> dict[str, torch.Tensor]:
    """A state dict with the official names and shapes (from the fixture, not from our classes)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in spec.items():
        if key == "lvl_1L":
            state[key] = scale_index(patch_nums)[None]
        elif key == "attn_bias_for_masking":
            state[key] = block_causal_mask(scale_index(patch_nums))
        elif key.endswith(("zero_k_bias", "ema_vocab_hit_SV")) or key.endswith(".bias"):
            state[key] = torch.zeros(shape)
        elif key.endswith("scale_mul_1H11"):
            state[key] = torch.full(shape, math.log(4.0))
        elif ".norm" in key or key.endswith("norm_out.weight"):
            state[key] = torch.ones(shape)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            std = 0.02 if not key.startswith(("encoder.", "decoder.", "quant", "post_quant")) else fan_in ** -0.5
            state[key] = torch.randn(shape, generator=g) * std
    return state


def test_d16_checkpoint_loads_samples_and_decodes_at_256(official, tmp_path):
    """Official names and shapes, random weights, saved as `.pth` and read back with weights_only."""
    var_path, vae_path = tmp_path / "var_d16.pth", tmp_path / "vae_ch160v4096z32.pth"
    torch.save(_random_official_state(official["var_d16"], 0, PATCH_NUMS[256]), var_path)
    torch.save(_random_official_state(official["vae_ch160v4096z32"], 1, PATCH_NUMS[256]), vae_path)
    var, vae = load_var(var_path), load_vqvae(vae_path)
    assert var.config == var_config(16) and var.config.name == "VAR-d16"
    assert vae.config.name == "vae_ch160v4096z32" and vae.downsample == 16
    pair = var.bind(vae)
    assert pair.token_layout == tuple((p, p) for p in PATCH_NUMS[256])
    seen = []
    # Guidance off keeps this under ~20 s on two CPU cores (one row instead of two); the guided path
    # is checked against the reference on the tiny models (test_var_parity.py).
    result = sample_next_scale(pair, [207], SamplerSettings(cfg_scale=0.0, top_k=900, top_p=0.95), seed=0,
                               callback=lambda s: seen.append((s.done, s.total, int(s.known.sum()))))
    assert result.tokens.shape == (1, 680) and int(result.tokens.max()) < 4096
    assert seen[-1] == (10, 10, 680) and [d for d, _, _ in seen] == list(range(1, 11))
    assert result.stats.forward_passes == 10 and math.isfinite(result.stats.mean_entropy)
    image = pair.decode(result.tokens)
    assert image.shape == (1, 3, 256, 256) and bool(torch.isfinite(image).all())
    assert float(image.abs().max()) <= 1.0


# -- configuration --------------------------------------------------------------------------------
def _tiny(**overrides) -> VARConfig:
    base = dict(depth=2, embed_dim=64, num_heads=4, mlp_hidden=128, num_classes=5, vocab_size=32, cvae=8,
                patch_nums=(1, 2, 4))
    base.update(overrides)
    return VARConfig(**base)


def _tiny_vae(**overrides) -> VQVAEConfig:
    base = dict(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 1), num_res_blocks=1, ema_rows=3)
    base.update(overrides)
    return VQVAEConfig(**base)


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale, shift = (0.3 if p.dim() > 1 else 0.1), (1.0 if "norm" in name else 0.0)
            p.copy_(torch.randn(p.shape, generator=g) * scale + shift)
    return module.eval()


def test_safetensors_metadata_carries_what_shapes_cannot(tmp_path):
    """Without l2 attention the head count is not in the shapes: the converted file's metadata gives it."""
    model = _randomised(VARTransformer(_tiny(attn_l2_norm=False, num_heads=2, norm_eps=1e-5)), 0)
    path = tmp_path / "renamed.safetensors"
    save_safetensors_atomic(model.state_dict(), path, model.config.to_metadata())
    assert load_var(path).config == model.config
    bare = tmp_path / "bare.safetensors"
    save_safetensors_atomic(model.state_dict(), bare)
    assert load_var(bare).config.num_heads == 1  # width 64 / head_dim 64: a guess, noted in the log
    vae = _randomised(VARVQVAE(_tiny_vae(quant_resi=0.25)), 1)
    vpath = tmp_path / "vae.safetensors"
    save_safetensors_atomic(vae.state_dict(), vpath, vae.config.to_metadata())
    assert load_vqvae(vpath).config == vae.config


def test_file_name_gives_heads_and_size():
    from arsample.models.var.config import parse_var_filename

    assert parse_var_filename("var_d30.pth") == {"depth": 30, "num_heads": 30, "image_size": 256, "name": "VAR-d30"}
    assert parse_var_filename("/x/var_d36.pth")["image_size"] == 512
    assert parse_var_filename("gpt.pt") == {}


def test_phi_ticks_follow_the_reference():
    """Four φ's on 10 scales: indices [0,0,1,1,1,2,2,3,3,3] (families-research §4.2)."""
    with torch.device("meta"):
        q = VARVQVAE(VQVAEConfig()).quantize
    picked = [q._phis.index(q.phi(si, 10)) for si in range(10)]
    assert picked == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("layout", ["shared", "nonshared", "none"])
def test_other_phi_layouts_load(tmp_path, layout):
    vae = _randomised(VARVQVAE(_tiny_vae(phi_layout=layout, phi_count={"shared": 1, "nonshared": 3, "none": 0}[layout],
                                         quant_resi=0.5 if layout != "none" else 0.0)), 2)
    path = tmp_path / "vae.safetensors"
    save_safetensors_atomic(vae.state_dict(), path, vae.config.to_metadata())
    loaded = load_vqvae(path)
    assert loaded.config.phi_layout == layout
    tokens = torch.randint(0, 32, (1, 21))
    torch.testing.assert_close(loaded.decode_tokens(tokens, ((1, 1), (2, 2), (4, 4))),
                               vae.decode_tokens(tokens, ((1, 1), (2, 2), (4, 4))))


def test_fp16_and_bf16_weights_sample(tmp_path):
    model = _randomised(VARTransformer(_tiny()), 3)
    vae = _randomised(VARVQVAE(_tiny_vae()), 4)
    path, vpath = tmp_path / "m.safetensors", tmp_path / "v.safetensors"
    save_safetensors_atomic(model.state_dict(), path, model.config.to_metadata())
    save_safetensors_atomic(vae.state_dict(), vpath, vae.config.to_metadata())
    for dtype in ("bf16", "fp16"):
        pair = load_var(path, dtype=dtype).bind(load_vqvae(vpath, dtype=dtype))
        result = sample_next_scale(pair, [1, 2], SamplerSettings(cfg_scale=2.0), seed=0)
        assert result.tokens.shape == (2, 21)
        assert bool(torch.isfinite(pair.decode(result.tokens)).all())


# -- bad input ----------------------------------------------------------------------------------
@pytest.fixture
def tiny_files(tmp_path):
    model = _randomised(VARTransformer(_tiny()), 5)
    vae = _randomised(VARVQVAE(_tiny_vae()), 6)
    path, vpath = tmp_path / "var_tiny.pth", tmp_path / "vae_tiny.pth"
    torch.save(model.state_dict(), path)
    torch.save(vae.state_dict(), vpath)
    return path, vpath


def test_kinds_are_told_apart(tiny_files):
    path, vpath = tiny_files
    assert detect_kind(torch.load(path, weights_only=True)) == "var"
    assert detect_kind(torch.load(vpath, weights_only=True)) == "var-vqvae"
    with pytest.raises(CheckpointError, match="is a VAR VQ-VAE, not a VAR transformer.*tokenizer loader"):
        load_var(vpath)
    with pytest.raises(CheckpointError, match="is a VAR transformer, not a VAR VQ-VAE.*model loader"):
        load_vqvae(path)


def test_codebook_mismatch_is_refused(tiny_files):
    path, _ = tiny_files
    other = _randomised(VARVQVAE(_tiny_vae(vocab_size=64)), 7)
    with pytest.raises(ConfigError, match="predicts 32 token ids.*has 64 codes"):
        load_var(path).bind(other)


def test_image_size_without_scale_list(tiny_files):
    path, _ = tiny_files
    with pytest.raises(ConfigError, match="cannot make 512 px"):
        load_var(path, override={"image_size": 512})
    with pytest.raises(ConfigError, match="no scale list for 384 px"):
        var_config(16, image_size=384)


def test_corrupted_mask_and_scale_order_are_refused(tmp_path):
    model = _randomised(VARTransformer(_tiny()), 8)
    state = dict(model.state_dict())
    state["attn_bias_for_masking"] = block_causal_mask(model.lvl_1L[0])
    good = tmp_path / "good.pth"
    torch.save(state, good)
    assert load_var(good).config == model.config  # the official mask is checked and dropped
    bad = dict(state, attn_bias_for_masking=torch.zeros_like(state["attn_bias_for_masking"]))
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not VAR's block-causal mask"):
        load_var(tmp_path / "bad.pth")
    wrong = dict(state, lvl_1L=state["lvl_1L"].flip(-1))
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match="non-square|scale order"):
        load_var(tmp_path / "wrong.pth")


def test_nan_weights_are_refused(tmp_path):
    model = _randomised(VARTransformer(_tiny()), 9)
    state = dict(model.state_dict())
    state["head.weight"] = state["head.weight"].clone()
    state["head.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_var(tmp_path / "nan.pth")


def test_class_out_of_range_and_prompt_condition(tiny_files):
    path, vpath = tiny_files
    pair = load_var(path).bind(load_vqvae(vpath))
    with pytest.raises(SamplingError, match="Class id out of range"):
        sample_next_scale(pair, [5], SamplerSettings(cfg_scale=1.0))

    class Prompt:
        caption = torch.zeros(1, 4, 8)

    with pytest.raises(SamplingError, match="class-to-image model"):
        sample_next_scale(pair, Prompt(), SamplerSettings())


def test_decode_checks_tokens(tiny_files):
    _, vpath = tiny_files
    vae = load_vqvae(vpath)
    with pytest.raises(SamplingError, match="shape"):
        vae.decode_tokens(torch.zeros(1, 5, dtype=torch.long), ((1, 1), (2, 2), (4, 4)))
    with pytest.raises(SamplingError, match="0..31"):
        vae.decode_tokens(torch.full((1, 21), 40), ((1, 1), (2, 2), (4, 4)))


def test_phi_tie_at_five_scales():
    """si/4 = 0.5 is halfway between two ticks; the reference's numpy picks the later one."""
    with torch.device("meta"):
        q = VARVQVAE(_tiny_vae(phi_count=4)).quantize
    assert [q._phis.index(q.phi(si, 5)) for si in range(5)] == [0, 1, 2, 2, 3]


# -- the registry entry (models/var/family.py) ------------------------------------------------------
def test_family_entry(golden):
    from arsample.models.checkpoint import read_checkpoint
    from arsample.models.registry import CLASS, MODEL, TOKENIZER
    from arsample.models.var.family import FAMILY
    from arsample.samplers import SamplingState

    state, meta = read_checkpoint(golden / "var_tiny.safetensors")
    vstate, vmeta = read_checkpoint(golden / "var_vqvae_tiny.safetensors")
    assert FAMILY.recognise(state, meta) == MODEL and FAMILY.recognise(vstate, vmeta) == TOKENIZER
    assert FAMILY.order == "next-scale" and FAMILY.needs_tokenizer
    vae = FAMILY.build_tokenizer(vstate, vmeta, "var_vqvae_tiny.safetensors", dtype="fp32", device="cpu")
    model = FAMILY.build_model(state, meta, "var_tiny.safetensors", dtype="fp32", device="cpu", tokenizer=vae)
    info = FAMILY.model_info(model, "tiny", None)
    assert info.kind == CLASS and info.layout == ((1, 1), (2, 2), (3, 3), (4, 4), (6, 6)) and info.num_classes == 10
    FAMILY.check_vocab(info.vocab_size, FAMILY.tokenizer_info(vae, "vae"))
    cond = FAMILY.class_condition(info, [3, 7])
    with pytest.raises(SamplingError, match="out of range"):
        FAMILY.class_condition(info, [10])
    with pytest.raises(SamplingError, match="connect the VQ-VAE"):
        FAMILY.sampling_model(model)
    pair = FAMILY.sampling_model(model, vae)
    states = []
    result = sample_next_scale(pair, cond.value, SamplerSettings(cfg_scale=4.0, top_k=20, top_p=0.9), seed=0,
                               callback=states.append)
    from arsample.samplers import TokenLayout

    layout = TokenLayout(info.layout)
    image = FAMILY.decode(vae, result.tokens, layout)
    assert image.shape == (2, 3, 12, 12)
    previews = [FAMILY.preview(vae, SamplingState(s.done, s.total, s.tokens.clone(), s.known.clone()), layout)
                for s in states]
    assert all(p.shape == (12, 12, 3) and p.dtype == np.uint8 for p in previews)
    from arsample import imaging

    assert np.array_equal(previews[-1], imaging.to_uint8(image)[0])  # the last preview is the final image
    assert not np.array_equal(previews[0], previews[-1])
    assert FAMILY.layout_for(680) == tuple((p, p) for p in PATCH_NUMS[256])
    with pytest.raises(SamplingError, match="not a VAR scale pyramid"):
        FAMILY.layout_for(100)
