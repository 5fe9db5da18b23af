"""Janus-Pro against the official deepseek-ai/Janus code (golden data, tests/fixtures/golden/README.md "Janus-Pro"):
prompt ids and guidance rows, teacher-forced and per-step logits, the plain sampler's tokens with the reference's
RNG use, the VQ decode; the transformers-format copy gives the same model; reduced-precision loads."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from arsample.models import registry
from arsample.models.janus import PLAIN_ROLES, JanusGenerator, JanusVQ, format_prompt, load_janus
from arsample.samplers import SamplerSettings, named_sampler, sample_ar

PROMPTS = ("A red cube on a wooden table",
           "  a close-up photo of a small cat under a blue night sky, with yellow stars.  ")
IMAGE_SIZE = 8  # the tiny VQ: 2 px per token, a 4×4 grid


def make_folder(root, golden, hf: bool = False):
    """A release folder of the tiny model: config.json (from the file's metadata), tokenizer.json, model.safetensors."""
    name = "janus_tiny_hf" if hf else "janus_tiny"
    with safe_open(str(golden / f"{name}.safetensors"), "pt") as f:
        config = f.metadata()["config"]
    root.mkdir(parents=True)
    (root / "config.json").write_text(config)
    shutil.copy(golden / "janus_tiny_tokenizer.json", root / "tokenizer.json")
    shutil.copy(golden / f"{name}.safetensors", root / "model.safetensors")
    return root


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "janus_tiny_io.safetensors")


@pytest.fixture(scope="module")
def io_meta(golden):
    with safe_open(str(golden / "janus_tiny_io.safetensors"), "pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, golden):
    return make_folder(tmp_path_factory.mktemp("janus") / "Janus-Tiny", golden)


@pytest.fixture(scope="module")
def loaded(folder):
    vq = registry.load_tokenizer(folder)
    return registry.load_model(folder, image_size=IMAGE_SIZE, tokenizer=vq), vq


def test_template_and_prompt_ids_match_the_reference(loaded, io, io_meta):
    import json

    model = loaded[0].module
    runs = json.loads(io_meta["runs"])
    for k, prompt in enumerate(PROMPTS):
        assert format_prompt(prompt) == runs[k]["sft_text"]
        cond = model.condition([prompt, prompt])
        assert torch.equal(torch.tensor(cond.input_ids[0]), io[f"p{k}_input_ids"])
        # the guidance rows, interleaved (cond, uncond, cond, uncond) with the pad id by name
        session = model.start_session(cond, guidance=True, max_new_tokens=16)
        assert torch.equal(session.row_ids.cpu(), io[f"p{k}_rows"])
    assert format_prompt(PROMPTS[0], PLAIN_ROLES) == io_meta["plain_roles_text"]
    plain = model.condition(PROMPTS[0], roles=PLAIN_ROLES)
    assert torch.equal(torch.tensor(plain.input_ids[0]), io["plain_roles_input_ids"])
    special = json.loads(io_meta["processor"])
    tok = model.prompt_tokenizer
    assert (tok.pad_id, tok.image_start_id) == (special["pad_id"], special["image_start_id"])


def test_teacher_forced_logits_match(loaded, io):
    model = loaded[0].module
    for k in range(2):
        rows = io[f"p{k}_rows"][:2]  # cond, uncond
        logits = model.teacher_forced_logits(rows, io[f"p{k}_tf_tokens"][None].expand(2, -1))
        torch.testing.assert_close(logits[0], io[f"p{k}_tf_cond_logits"], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[1], io[f"p{k}_tf_uncond_logits"], atol=1e-5, rtol=0)


def test_cached_session_logits_match_every_step_of_the_reference_loop(loaded, io):
    model = loaded[0].module
    for k, prompt in enumerate(PROMPTS):
        ref, tokens = io[f"p{k}_sample_logits"], io[f"p{k}_sample_tokens"]
        session = model.start_session(model.condition([prompt, prompt]), guidance=True, max_new_tokens=16)
        cond, uncond = session.prefill()
        torch.testing.assert_close(cond, ref[0, 0::2], atol=1e-5, rtol=0)
        torch.testing.assert_close(uncond, ref[0, 1::2], atol=1e-5, rtol=0)
        for step in range(15):
            cond, uncond = session.extend(tokens[:, step:step + 1])
            torch.testing.assert_close(cond[:, 0], ref[step + 1, 0::2], atol=1e-5, rtol=0)
            torch.testing.assert_close(uncond[:, 0], ref[step + 1, 1::2], atol=1e-5, rtol=0)


def test_plain_sampler_reproduces_the_reference_tokens_and_images(loaded, io):
    loaded_model, vq = loaded
    family = loaded_model.family
    for k, prompt in enumerate(PROMPTS):
        cond = family.text_condition(loaded_model.module, loaded_model.info, [prompt, prompt])
        sampler = named_sampler("plain", SamplerSettings(cfg_scale=5.0, temperature=1.0))
        result = sampler.run(loaded_model.module, cond.value, seed=100 + k)  # the reference: torch.manual_seed(100 + k)
        assert torch.equal(result.tokens, io[f"p{k}_sample_tokens"])
        images = family.decode(vq.module, result.tokens, result.layout)
        torch.testing.assert_close(images, io[f"p{k}_decoded"], atol=1e-4, rtol=0)
        # the reference's pixels: clip((x + 1) / 2 · 255, 0, 255) truncated into uint8
        ours = np.clip((images.permute(0, 2, 3, 1).numpy() + 1) / 2 * 255, 0, 255).astype(np.uint8)
        assert np.array_equal(ours, io[f"p{k}_image_uint8"].numpy())


def test_vq_decodes_the_reference_codes(loaded, io):
    vq = loaded[1].module
    assert isinstance(vq, JanusVQ) and not hasattr(vq, "encoder")
    torch.testing.assert_close(vq.decode_codes(io["vq_codes"], grid=(4, 4)), io["vq_decoded"], atol=1e-4, rtol=0)


def test_transformers_format_release_loads_to_the_same_model(tmp_path, golden, loaded, io):
    hf = make_folder(tmp_path / "Janus-Tiny-hf", golden, hf=True)
    vq = registry.load_tokenizer(hf)
    model = registry.load_model(hf, image_size=IMAGE_SIZE, tokenizer=vq).module
    assert model.config.layout == "transformers"
    ours = loaded[0].module
    assert model.config == type(model.config)(**{**ours.config.__dict__, "layout": "transformers"})
    for name, tensor in ours.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    for key, tensor in loaded[1].module.state_dict().items():
        assert torch.equal(vq.module.state_dict()[key], tensor), key
    logits = model.teacher_forced_logits(io["p1_rows"][:2], io["p1_tf_tokens"][None].expand(2, -1))
    torch.testing.assert_close(logits[0], io["p1_tf_cond_logits"], atol=1e-5, rtol=0)
    # a single transformers-format file with its config in the header loads as well
    single = load_janus(golden / "janus_tiny_hf.safetensors", image_size=IMAGE_SIZE)
    assert torch.equal(single.gen_head.vision_head.weight, ours.gen_head.vision_head.weight)


@pytest.mark.parametrize("dtype, atol", [("bf16", 0.15), ("fp16", 0.02)])
def test_reduced_precision_loads_stay_close(folder, io, dtype, atol):
    model = registry.load_model(folder, image_size=IMAGE_SIZE, dtype=dtype).module
    assert isinstance(model, JanusGenerator) and model.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    logits = model.teacher_forced_logits(io["p0_rows"][:2], io["p0_tf_tokens"][None].expand(2, -1))
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits[0], io["p0_tf_cond_logits"], atol=atol, rtol=0)
    session = model.start_session(model.condition(PROMPTS[0]), guidance=True, max_new_tokens=4)
    cond, uncond = session.prefill()
    assert cond.dtype == torch.float32 and bool(torch.isfinite(cond).all() and torch.isfinite(uncond).all())
    tokens = sample_ar(model, model.condition(PROMPTS[0]), SamplerSettings(cfg_scale=5.0), num_tokens=4).tokens
    assert tokens.shape == (1, 4)
