"""Meissonic through the registry: the diffusers folder read by role, the reference pipeline's tokens through
the pack's own path (folder → registry → catalog masked sampler → VQ decode), class-table models, and
the refusals (missing part, wrong kind of condition, codebook mismatch, step counts)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from arsample.errors import CheckpointError, ConfigError, SamplingError
from arsample.models.meissonic import MeissonicConfig
from arsample.models.meissonic.class_table import PREFIX
from arsample.models.meissonic.generator import GRID_KEY, MeissonicGenerator
from arsample.models.registry import (CLASS, MODEL, PROMPT, TOKENIZER, check_order, check_pair, family_of_file,
                                      load_model, load_tokenizer, recognise, require_kind)
from arsample.samplers import SamplerSettings, named_sampler
from arsample.samplers.masked import Masked, MaskedOptions


@pytest.fixture(scope="module")
def meta(golden):
    with safe_open(str(golden / "meissonic_tiny.safetensors"), "pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "meissonic_tiny_io.safetensors")


@pytest.fixture
def folder(tmp_path, golden, meta):
    """A Meissonic diffusers folder with the golden tiny transformer and VQ (2 px per token)."""
    root = tmp_path / "Meissonic"
    for part, name, cfg in (("transformer", "meissonic_tiny", meta["config"]),
                            ("vqvae", "meissonic_vqvae_tiny", meta["vq_config"])):
        (root / part).mkdir(parents=True)
        (root / part / "config.json").write_text(cfg)
        save_file(load_file(golden / f"{name}.safetensors"), str(root / part / "diffusion_pytorch_model.safetensors"))
    return root


def test_folder_loads_by_role(folder):
    tokenizer = load_tokenizer(folder)
    assert tokenizer.family.name == "meissonic" and tokenizer.info.codebook_size == 64
    model = load_model(folder, tokenizer=tokenizer, image_size=16)
    assert isinstance(model.module, MeissonicGenerator) and model.module.grid == (8, 8)
    info = model.info
    assert (info.family, info.kind, info.vocab_size, info.layout, info.preset) == \
        ("meissonic", PROMPT, 64, ((8, 8),), "meissonic")
    assert info.prompt.encoder_kind == "clip" and info.prompt.clip_features == "meissonic"
    assert info.prompt.width == 12 and info.prompt.length == 77
    # the component files themselves (config.json beside them or not) are recognised by role
    assert family_of_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")[1] == MODEL
    assert family_of_file(folder / "vqvae" / "diffusion_pytorch_model.safetensors")[1] == TOKENIZER
    # a component file alone reads the config.json beside it (the tiny model's RoPE axes are not guessable)
    single = load_model(folder / "transformer" / "diffusion_pytorch_model.safetensors", image_size=16,
                        tokenizer=tokenizer)
    assert single.module.config.axes_dims_rope == (2, 4, 2)
    # no image size: Meissonic's 1024 px at the VQ's pixels per token
    assert load_model(folder, tokenizer=tokenizer).module.grid == (512, 512)


def test_reference_pipeline_tokens_through_the_registry(folder, io, meta):
    """run0 of the golden data (6 steps, guidance 9, seed 7): the reference pipeline's final tokens, from the
    folder through the catalog's plain masked sampler, and the VQ decode of them."""
    spec = json.loads(meta["runs"])["run0"]
    tokenizer = load_tokenizer(folder)
    model = load_model(folder, tokenizer=tokenizer, image_size=16)
    entry = model.family
    cond = entry.prompt_condition(model.info, io["pos_states"][:1], None, ["a prompt"], pooled=io["pos_pooled"][:1],
                                  null=(io["neg_states"][:1], None, io["neg_pooled"][:1]))
    cond.value.micro_conds = tuple(spec["micro_conds"])  # the golden run's (1024, 1024, 0, 0, 6) on an 8×8 grid
    sampler = named_sampler("masked", SamplerSettings(cfg_scale=spec["guidance_scale"]),
                            masked=MaskedOptions(steps=spec["steps"]))
    check_order(model.info, sampler.method)
    result = sampler.run(entry.sampling_model(model.module, tokenizer.module), cond.value, seed=spec["seed"])
    assert torch.equal(result.tokens, io["run0_tokens"].reshape(1, 64))
    images = entry.decode(tokenizer.module, result.tokens, result.layout)
    assert images.shape == (1, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    # the micro-conditioning a text model gets by default is the pipeline's for its image size
    assert model.module.text_condition(entry.prompt_condition(
        model.info, io["pos_states"][:1], None, ["p"], pooled=io["pos_pooled"][:1]).value).micro_conds == \
        (16.0, 16.0, 0.0, 0.0, 6.0)


def test_class_table_model(golden, tmp_path, meta):
    state = load_file(golden / "meissonic_tiny.safetensors")
    cfg = json.loads(meta["config"])
    state[PREFIX + "states"] = torch.randn(4, 2, cfg["joint_attention_dim"])  # 3 classes + the null class
    state[PREFIX + "pooled"] = torch.randn(4, cfg["pooled_projection_dim"])
    path = tmp_path / "class_meissonic.safetensors"
    metadata = {GRID_KEY: "8,8", **MeissonicConfig.from_diffusers(cfg).to_metadata()}
    save_file(state, str(path), metadata)
    model = load_model(path)
    assert model.info.kind == CLASS and model.info.num_classes == 3 and model.module.grid == (8, 8)
    cond = model.family.class_condition(model.info, [0, 2])
    sampler = named_sampler("masked-prob-masking", SamplerSettings(cfg_scale=3.0), "meissonic",
                            masked=MaskedOptions(steps=4))
    a = sampler.run(model.module, cond.value, seed=1)
    assert a.tokens.shape == (2, 64) and a.stats.forward_passes == 4
    assert torch.equal(a.tokens, sampler.run(model.module, cond.value, seed=1).tokens)
    with pytest.raises(SamplingError, match="class-to-image model; use .Class Condition."):
        require_kind(model.info, PROMPT, "node")
    with pytest.raises(SamplingError, match="Class id out of range"):
        model.family.class_condition(model.info, [3])
    # a table whose widths do not match the transformer is refused
    state[PREFIX + "pooled"] = torch.randn(4, cfg["pooled_projection_dim"] + 1)
    save_file(state, str(path), metadata)
    with pytest.raises(CheckpointError, match="class table"):
        load_model(path)


def test_refusals(folder, io):
    tokenizer = load_tokenizer(folder)
    model = load_model(folder, tokenizer=tokenizer, image_size=16)
    with pytest.raises(SamplingError, match="text-to-image"):
        require_kind(model.info, CLASS, "cli")
    with pytest.raises(SamplingError, match="pooled"):
        model.family.prompt_condition(model.info, io["pos_states"][:1], None, ["p"])
    with pytest.raises(SamplingError, match="do not fit"):
        model.family.prompt_condition(model.info, torch.zeros(1, 77, 5), None, ["p"], pooled=io["pos_pooled"][:1])
    cond = model.family.prompt_condition(model.info, io["pos_states"][:1], None, ["p"], pooled=io["pos_pooled"][:1],
                                         null=(io["neg_states"][:1], None, io["neg_pooled"][:1]))
    target = model.family.sampling_model(model.module, tokenizer.module)
    with pytest.raises(SamplingError, match="65 steps is more than the 64 image tokens"):
        Masked(MaskedOptions(steps=65)).run(target, cond.value, SamplerSettings(cfg_scale=2.0))
    with pytest.raises(SamplingError, match="at least 1 step"):
        MaskedOptions(steps=0)
    # a next-token sampler on the masked model
    with pytest.raises(SamplingError, match="decodes masked"):
        check_order(model.info, named_sampler("plain", SamplerSettings()).method)
    # a VQ whose codebook is not the transformer's
    fake = type(tokenizer.info)("meissonic", "other-vq", 128)
    with pytest.raises(ConfigError, match="64 token ids but other-vq has 128 codes"):
        check_pair(model.info, fake)


def test_missing_part_says_where_it_goes(folder):
    (folder / "vqvae" / "diffusion_pytorch_model.safetensors").unlink()
    load_model(folder, image_size=32)  # the transformer part is there
    with pytest.raises(CheckpointError, match="vqvae"):
        load_tokenizer(folder)
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="transformer"):
        load_model(folder)
    import shutil

    shutil.rmtree(folder / "vqvae")  # the whole part gone: still named, with where it comes from
    with pytest.raises(CheckpointError, match="has no vqvae/.*MeissonFlow/Meissonic"):
        load_tokenizer(folder)


def test_other_families_vqs_are_not_taken_for_meissonics(golden):
    from arsample.models.llamagen import LlamaGenVQ, VQConfig

    vq = LlamaGenVQ(VQConfig(codebook_size=16, codebook_embed_dim=4, z_channels=32, base_channels=32, ch_mult=(1, 2),
                             num_res_blocks=1))
    assert recognise(vq.state_dict(), {})[0].name == "llamagen"
    assert recognise(load_file(golden / "meissonic_vqvae_tiny.safetensors"), {})[0].name == "meissonic"
