"""Meissonic: the official key layout and parameter counts (transformer and VQ), configuration from
config.json / tensors, diffusers-folder and single-file loading, and the errors for bad input.

The official layouts come from the reference constructors on the meta device
(``meissonic_official_keys.json``, fixtures/golden/README.md, Meissonic section).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from arsample.errors import CheckpointError, ConfigError, SamplingError
from arsample.models.meissonic import (MeissonicCondition, MeissonicConfig, MeissonicPredictor, MeissonicTransformer,
                                       MeissonicVQConfig, MeissonicVQModel, detect_meissonic_kind, load_meissonic,
                                       load_meissonic_transformer, load_meissonic_vqvae, meissonic_from_state_dict,
                                       resolve_meissonic_config)

OFFICIAL_TRANSFORMER_JSON = {
    "_class_name": "Transformer2DModel", "_diffusers_version": "0.30.0.dev0", "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56], "codebook_size": 8192, "downsample": True, "guidance_embeds": False,
    "in_channels": 64, "joint_attention_dim": 1024, "num_attention_heads": 8, "num_layers": 14,
    "num_single_layers": 28, "patch_size": 1, "pooled_projection_dim": 1024, "upsample": True, "vocab_size": 8256}
OFFICIAL_VQ_JSON = {
    "_class_name": "VQModel", "act_fn": "silu", "block_out_channels": [128, 256, 256, 512, 768],
    "down_block_types": ["DownEncoderBlock2D"] * 5, "force_upcast": True, "in_channels": 3, "latent_channels": 64,
    "layers_per_block": 2, "lookup_from_codebook": True, "mid_block_add_attention": False, "norm_num_groups": 32,
    "norm_type": "group", "num_vq_embeddings": 8192, "out_channels": 3, "sample_size": 32,
    "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 5, "vq_embed_dim": None}


@pytest.fixture(scope="module")
def official(golden):
    return json.loads((golden / "meissonic_official_keys.json").read_text())


@pytest.fixture(scope="module")
def meta(golden):
    with safe_open(str(golden / "meissonic_tiny.safetensors"), "pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def state(golden):
    return load_file(golden / "meissonic_tiny.safetensors")


@pytest.fixture(scope="module")
def vq_state(golden):
    return load_file(golden / "meissonic_vqvae_tiny.safetensors")


def _layout(model):
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}


def test_official_transformer_layout_and_size(official):
    config = MeissonicConfig.from_diffusers(OFFICIAL_TRANSFORMER_JSON)
    assert config == MeissonicConfig(name=config.name) and config.mask_id == 8255
    with torch.device("meta"):
        model = MeissonicTransformer(config)
    assert _layout(model) == official["meissonic_transformer"]
    assert sum(p.numel() for p in model.parameters()) == official["params"]["meissonic_transformer"] == 1006946304


def test_official_vq_layout_and_size(official):
    config = MeissonicVQConfig.from_diffusers(OFFICIAL_VQ_JSON)
    assert config.downsample == 16 and config.embed_dim == 64
    with torch.device("meta"):
        model = MeissonicVQModel(config)
    assert _layout(model) == official["meissonic_vqvae"]
    assert sum(p.numel() for p in model.parameters()) == official["params"]["meissonic_vqvae"] == 146244675


def test_config_from_tensors(state, meta):
    fields = json.loads(meta["config"])
    assert detect_meissonic_kind(state) == "meissonic"
    with pytest.raises(ConfigError, match="axes cannot be guessed"):
        resolve_meissonic_config(state)
    config = resolve_meissonic_config(state, override={"axes_dims_rope": fields["axes_dims_rope"]})
    assert config == MeissonicConfig.from_diffusers(fields, name=config.name)
    assert config.inner_dim == 16 and config.num_layers == 1 and config.num_single_layers == 1


def test_config_errors():
    with pytest.raises(ConfigError, match="guidance_embeds"):
        MeissonicConfig.from_diffusers({**OFFICIAL_TRANSFORMER_JSON, "guidance_embeds": True})
    with pytest.raises(ConfigError, match="does not know: foo"):
        MeissonicConfig.from_diffusers({**OFFICIAL_TRANSFORMER_JSON, "foo": 1})
    with pytest.raises(ConfigError, match="axes_dims_rope"):
        MeissonicConfig(axes_dims_rope=(16, 56, 48))
    with pytest.raises(ConfigError, match="pooled_projection_dim"):
        MeissonicConfig(pooled_projection_dim=768)
    with pytest.raises(ConfigError, match="mid-block attention"):
        MeissonicVQConfig.from_diffusers({**OFFICIAL_VQ_JSON, "mid_block_add_attention": True})
    with pytest.raises(ConfigError, match="block types"):
        MeissonicVQConfig.from_diffusers({**OFFICIAL_VQ_JSON, "up_block_types": ["AttnUpDecoderBlock2D"] * 5})


def _folder(tmp_path, state, vq_state, meta, fp16_only=False):
    for part, tensors, cfg in (("transformer", state, meta["config"]), ("vqvae", vq_state, meta["vq_config"])):
        (tmp_path / part).mkdir(parents=True)
        (tmp_path / part / "config.json").write_text(cfg)
        name = "diffusion_pytorch_model.fp16.safetensors" if fp16_only else "diffusion_pytorch_model.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / part / name))
    return tmp_path


def test_load_diffusers_folder(tmp_path, state, vq_state, meta):
    folder = _folder(tmp_path / "Meissonic", state, vq_state, meta)
    models = load_meissonic(folder)
    assert models.transformer.config.axes_dims_rope == (2, 4, 2) and not models.transformer.training
    assert models.vqvae.config.norm_num_groups == 4
    for k, v in models.transformer.state_dict().items():
        assert torch.equal(v, state[k].float()), k
    half = load_meissonic_transformer(folder / "transformer", dtype="fp16")
    assert half.dtype == torch.float16
    vq = load_meissonic_vqvae(folder / "vqvae" / "diffusion_pytorch_model.safetensors")  # single file + config.json
    assert vq.config == models.vqvae.config


def test_load_fp16_variant_only(tmp_path, state, vq_state, meta):
    folder = _folder(tmp_path / "M", state, vq_state, meta, fp16_only=True)
    assert load_meissonic(folder, dtype="bf16").transformer.dtype == torch.bfloat16


def test_missing_parts_and_wrong_files(tmp_path, state, vq_state, meta):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no transformer/ \(Meissonic's MMDiT.*huggingface.co/MeissonFlow"):
        load_meissonic(tmp_path / "empty")
    folder = _folder(tmp_path / "M", state, vq_state, meta)
    (folder / "vqvae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no diffusion_pytorch_model.safetensors .* for vqvae/"):
        load_meissonic(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_meissonic(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="VQ model"):
        meissonic_from_state_dict(vq_state, json.loads(meta["vq_config"]), filename="vq.safetensors")
    broken = {k: v for k, v in state.items() if k != "mlm_layer.layer_norm.weight"}
    broken["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="missing keys: mlm_layer.layer_norm.weight; unexpected keys: extra"):
        meissonic_from_state_dict(broken, json.loads(meta["config"]))


def test_bad_inputs(state, vq_state, meta, golden):
    model = meissonic_from_state_dict(state, json.loads(meta["config"]))
    io = load_file(golden / "meissonic_tiny_io.safetensors")
    tok, st, po, mc = io["tokens"], io["pos_states"], io["pos_pooled"], io["micro_conds"]
    with pytest.raises(SamplingError, match="even sides"):
        model(tok[:, :7], st, po, mc, 0)
    with pytest.raises(SamplingError, match="text hidden states"):
        model(tok, st[..., :8], po, mc, 0)
    with pytest.raises(SamplingError, match="micro-conditioning"):
        model(tok, st, po, mc[:, :4], 0)
    with pytest.raises(SamplingError, match="negative prompt"):
        MeissonicPredictor(model, MeissonicCondition(st, po), grid=(8, 8), guidance=True)
    pred = MeissonicPredictor(model, MeissonicCondition(st, po), grid=(8, 8), guidance=False)
    with pytest.raises(SamplingError, match=r"tokens must be \(2, 64\)"):
        pred.predict(tok.reshape(2, -1)[:, :60])
    vq = MeissonicVQModel(MeissonicVQConfig.from_diffusers(json.loads(meta["vq_config"])))
    with pytest.raises(SamplingError, match="mask tokens"):
        vq.decode(torch.full((1, 2, 2), 64))
