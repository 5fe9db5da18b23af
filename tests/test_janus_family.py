"""Janus-Pro through the registry: release folders read by role (only generation keys), pickles and shards, the
"own" prompt hook, every next-token catalog sampler at batch 2, padded and ragged rows, and the refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from arsample.errors import ARSampleError, CheckpointError, ConfigError, SamplingError
from arsample.models import registry
from arsample.models.janus import JanusCondition
from arsample.models.janus.keys import MODEL_PREFIXES
from arsample.models.llamagen import LlamaGenCondition
from arsample.models.registry import CLASS, MODEL, PROMPT, TOKENIZER, Condition, ModelInfo, PromptSpec
from arsample.samplers import SAMPLER_NAMES, NextToken, SamplerSettings, named_sampler

PROMPTS = ("A red cube on a wooden table", "a small cat")
IMAGE_SIZE = 8  # 4×4 tokens with the tiny 2 px-per-token VQ


@pytest.fixture(scope="module")
def parts(golden):
    """(state dict, config.json text) of the tiny Janus in the original layout."""
    with safe_open(str(golden / "janus_tiny.safetensors"), "pt") as f:
        config = f.metadata()["config"]
    return load_file(golden / "janus_tiny.safetensors"), config


def _folder(root, golden, config: str | None, weights: dict[str, dict] | None = None, tokenizer: bool = True):
    """A release folder: config.json (unless None), tokenizer.json, and ``weights`` {file name: state}
    (default: model.safetensors = the golden tiny file)."""
    root.mkdir(parents=True)
    if config is not None:
        (root / "config.json").write_text(config)
    if tokenizer:
        shutil.copy(golden / "janus_tiny_tokenizer.json", root / "tokenizer.json")
    if weights is None:
        shutil.copy(golden / "janus_tiny.safetensors", root / "model.safetensors")
    for name, state in (weights or {}).items():
        if name.endswith(".safetensors"):
            save_file(state, str(root / name))
        elif name.endswith(".json"):
            (root / name).write_text(json.dumps(state))
        else:
            torch.save(state, root / name)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory, golden, parts):
    return _folder(tmp_path_factory.mktemp("janus") / "Janus-Tiny", golden, parts[1])


@pytest.fixture(scope="module")
def loaded(folder):
    vq = registry.load_tokenizer(folder)
    return registry.load_model(folder, image_size=IMAGE_SIZE, tokenizer=vq), vq


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and isinstance(error.value, ARSampleError)
    return text


# -- files --------------------------------------------------------------------------------------
def test_folder_is_read_by_role_with_generation_keys_only(folder):
    janus = registry.family("janus")
    model_state, metadata = registry.read_model_file(folder, MODEL)
    assert model_state and all(k.startswith(MODEL_PREFIXES) for k in model_state)
    assert "config" in metadata and metadata["janus_tokenizer"].endswith("tokenizer.json")
    vq_state, _ = registry.read_model_file(folder, TOKENIZER)
    assert vq_state and all(k.startswith(("gen_vision_model.decoder.", "gen_vision_model.post_quant_conv.",
                                          "gen_vision_model.quantize.embedding.")) for k in vq_state)
    for never in ("vision_model.", "aligner.", "language_model.lm_head.", "gen_vision_model.encoder.",
                  "gen_vision_model.quant_conv."):
        assert not any(k.startswith(never) for k in (*model_state, *vq_state)), never
    assert registry.family_of_file(folder) == (janus, MODEL)
    assert registry.family_of_file(folder / "model.safetensors") == (janus, MODEL)
    # a weight file inside the folder reads config.json and tokenizer.json beside it
    single = registry.load_model(folder / "model.safetensors", image_size=IMAGE_SIZE).module
    assert single.prompt_tokenizer is not None and single.config.grid_size == 4


def test_pickled_and_sharded_releases_load_the_same_weights(tmp_path, golden, parts, loaded):
    state, config = parts
    reference = loaded[0].module.state_dict()
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"a": {k: state[k] for k in keys[:half]}, "b": {k: state[k] for k in keys[half:]}}
    layouts = {
        "bin": {"pytorch_model.bin": state},
        "bin-sharded": {"pytorch_model-00001-of-00002.bin": shards["a"],
                        "pytorch_model-00002-of-00002.bin": shards["b"],
                        "pytorch_model.bin.index.json": {"weight_map": {
                            **{k: "pytorch_model-00001-of-00002.bin" for k in shards["a"]},
                            **{k: "pytorch_model-00002-of-00002.bin" for k in shards["b"]}}}},
        "st-sharded": {"model-00001-of-00002.safetensors": shards["a"], "model-00002-of-00002.safetensors": shards["b"],
                       "model.safetensors.index.json": {"weight_map": {
                           **{k: "model-00001-of-00002.safetensors" for k in shards["a"]},
                           **{k: "model-00002-of-00002.safetensors" for k in shards["b"]}}}},
    }
    for name, weights in layouts.items():
        root = _folder(tmp_path / name, golden, config, weights)
        vq = registry.load_tokenizer(root)
        model = registry.load_model(root, image_size=IMAGE_SIZE, tokenizer=vq).module
        assert model.config.downsample == 2 and model.config.grid_size == 4, name
        for key, tensor in reference.items():
            assert torch.equal(model.state_dict()[key], tensor), (name, key)
        torch.testing.assert_close(vq.module.quantize.embedding.weight, loaded[1].module.quantize.embedding.weight)
    # the index json itself is accepted; one shard alone is refused with what to give instead
    assert registry.load_model(tmp_path / "bin-sharded" / "pytorch_model.bin.index.json",
                               image_size=IMAGE_SIZE).family.name == "janus"
    with pytest.raises(CheckpointError) as error:
        registry.load_model(tmp_path / "st-sharded" / "model-00002-of-00002.safetensors", image_size=IMAGE_SIZE)
    assert "one shard" in _one_line(error)


# -- info, conditions and the "own" prompt hook ----------------------------------------------------
def test_model_info_tokenizer_pairing_and_text_condition(loaded):
    model, vq = loaded
    info = model.info
    assert (info.family, info.kind, info.vocab_size, info.layout, info.preset) == ("janus", PROMPT, 64, ((4, 4),),
                                                                                   "llamagen")
    assert (info.prompt.encoder_kind, info.prompt.length, info.prompt.width) == ("own", 256 - 16, 64)
    assert vq.info.family == "janus" and vq.info.codebook_size == 64
    registry.check_pair(info, vq.info)
    registry.check_order(info, NextToken())
    cond = model.family.text_condition(model.module, info, list(PROMPTS))
    assert cond.family == "janus" and cond.kind == PROMPT and cond.names == PROMPTS and cond.batch_size == 2
    assert isinstance(cond.value, JanusCondition) and cond.value.lengths[0] > cond.value.lengths[1]
    model.family.check_condition(info, cond, "node")
    with pytest.raises(ConfigError) as error:  # a T5 encoder offered to Janus-Pro
        registry.check_text_encoder(info, "t5", "node")
    assert "tokenises it itself" in _one_line(error)


def test_text_condition_hook_refuses_models_that_read_encoder_features():
    llamagen = registry.family("llamagen")
    t2i = ModelInfo("llamagen", "t2i.pt", PROMPT, 64, ((4, 4),), prompt=PromptSpec(12, 16, "FLAN-T5-XL (2048)"))
    with pytest.raises(SamplingError) as error:
        llamagen.text_condition(None, t2i, ["a cat"])
    assert "FLAN-T5-XL" in _one_line(error)
    c2i = ModelInfo("llamagen", "c2i.pt", CLASS, 64, ((4, 4),), num_classes=10)
    with pytest.raises(SamplingError, match="class-to-image model; use --classes"):
        llamagen.text_condition(None, c2i, ["a cat"])


def test_class_conditions_are_refused(loaded):
    model, _ = loaded
    info, family = model.info, model.family
    with pytest.raises(SamplingError) as error:
        family.class_condition(info, [1])
    assert "text prompt" in _one_line(error)
    with pytest.raises(SamplingError) as error:
        registry.require_kind(info, CLASS, "node")
    assert "text-to-image model; use 'Text Condition (Janus-Pro)'" in _one_line(error)
    labels = Condition("janus", CLASS, LlamaGenCondition(labels=torch.tensor([1])), ("1",))
    with pytest.raises(SamplingError, match="use --prompt"):
        family.check_condition(info, labels, "cli")
    with pytest.raises(SamplingError) as error:
        model.module.start_session(LlamaGenCondition(labels=torch.tensor([1])), guidance=True)
    assert "text prompt" in _one_line(error)
    with pytest.raises(SamplingError):
        family.prompt_condition(info, torch.zeros(1, 12, 64), torch.ones(1, 12), ["a cat"])


# -- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_next_token_sampler_runs_at_batch_two(loaded, name):
    model, vq = loaded
    cond = model.family.text_condition(model.module, model.info, list(PROMPTS)).value
    states = []
    sampler = named_sampler(name, SamplerSettings(cfg_scale=5.0), model.info.preset)
    result = sampler.run(model.module, cond, seed=3, callback=states.append)
    assert result.tokens.shape == (2, 16) and int(result.tokens.max()) < 64 and int(result.tokens.min()) >= 0
    assert result.stats.forward_passes >= 1 and bool(torch.isfinite(result.entropy).all())
    preview = model.family.preview(vq.module, states[len(states) // 2], result.layout)
    assert preview is None or preview.shape == (8, 8, 3)
    images = model.family.decode(vq.module, result.tokens, result.layout)
    assert images.shape == (2, 3, 8, 8)
    again = sampler.run(model.module, cond, seed=3)
    assert torch.equal(again.tokens, result.tokens)


def test_padded_and_ragged_rows_compute_what_each_prompt_computes_alone(loaded):
    model = loaded[0].module
    cond = model.condition(list(PROMPTS))
    tokens = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(5))
    alone = []  # teacher-forced logits of each sample on its own: (cond, uncond) × (8, 64)
    for ids, uncond, toks in zip(cond.input_ids, cond.uncond_ids, tokens):
        rows = torch.tensor([ids, uncond])
        alone.append(model.teacher_forced_logits(rows, toks[None].expand(2, -1)))
    session = model.start_session(cond, guidance=True, max_new_tokens=16)
    first = session.prefill()
    for k in range(2):
        torch.testing.assert_close(first[0][k], alone[k][0, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(first[1][k], alone[k][1, 0], atol=1e-5, rtol=0)
    out = session.extend(tokens[:, :3])  # uniform: positions 1..3 predicted
    for k in range(2):
        torch.testing.assert_close(out[0][k], alone[k][0, 1:4], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[1][k], alone[k][1, 1:4], atol=1e-5, rtol=0)
    session.truncate([1, 2])  # ragged: sample 0 keeps 1 image token, sample 1 keeps 2
    assert session.cached_image_tokens() == [1, 2]
    feed = torch.stack([tokens[0, 1:4], tokens[1, 2:5]])
    out = session.extend(feed)
    for k, start in ((0, 2), (1, 3)):
        torch.testing.assert_close(out[0][k], alone[k][0, start:start + 3], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[1][k], alone[k][1, start:start + 3], atol=1e-5, rtol=0)
    unguided = model.start_session(cond, guidance=False, max_new_tokens=16)
    logits, none = unguided.prefill()
    assert none is None and logits.shape == (2, 64)
    torch.testing.assert_close(logits[1], alone[1][0, 0], atol=1e-5, rtol=0)


def test_sampling_never_imports_transformers(folder):
    script = f"""
import sys
from arsample.models import registry
from arsample.samplers import SamplerSettings, sample_ar
vq = registry.load_tokenizer({str(folder)!r})
m = registry.load_model({str(folder)!r}, image_size={IMAGE_SIZE}, tokenizer=vq)
cond = m.family.text_condition(m.module, m.info, ["a cat"]).value
result = sample_ar(m.module, cond, SamplerSettings(cfg_scale=5.0))
m.family.decode(vq.module, result.tokens, result.layout)
assert "transformers" not in sys.modules, "transformers was imported"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# -- refusals -----------------------------------------------------------------------------------
def test_folders_without_tokenizer_or_config_are_refused(tmp_path, golden, parts):
    no_tokenizer = _folder(tmp_path / "no-tokenizer", golden, parts[1], tokenizer=False)
    with pytest.raises(CheckpointError) as error:
        registry.load_model(no_tokenizer)
    assert "no tokenizer.json" in _one_line(error)
    registry.load_tokenizer(no_tokenizer)  # the VQ needs neither
    no_config = _folder(tmp_path / "no-config", golden, None)
    with pytest.raises(CheckpointError) as error:
        registry.load_model(no_config)
    assert "no config.json" in _one_line(error) and "Janus-Pro" in str(error.value)


def test_understanding_only_checkpoints_are_refused(tmp_path, golden, parts):
    state, config = parts
    data = json.loads(config)
    understanding = {k: v for k, v in data.items() if not k.startswith("gen_")}
    root = _folder(tmp_path / "config-only", golden, json.dumps(understanding))
    with pytest.raises(ConfigError) as error:
        registry.load_model(root)
    assert "understanding-only" in _one_line(error)
    weights = {k: v for k, v in state.items() if not k.startswith(("gen_embed.", "gen_aligner.", "gen_head."))}
    root = _folder(tmp_path / "weights-only", golden, config, {"model.safetensors": weights})
    with pytest.raises(ConfigError) as error:
        registry.load_model(root)
    assert "understanding-only" in _one_line(error)


def test_prompts_longer_than_the_context_are_refused(loaded, golden):
    model = loaded[0].module
    long = "cube " * 300
    with pytest.raises(SamplingError) as error:
        model.condition(long)
    assert "context" in _one_line(error)
    with pytest.raises(SamplingError) as error:
        loaded[0].family.text_condition(model, loaded[0].info, ["a cat", long])
    _one_line(error)
    ids = tuple(range(250))
    with pytest.raises(SamplingError) as error:  # a condition built elsewhere still meets the session's check
        model.start_session(JanusCondition((ids,), (ids,), ("x",)), guidance=True)
    assert "context of 256 positions" in _one_line(error)
    bare = registry.load_model(golden / "janus_tiny.safetensors", image_size=IMAGE_SIZE).module
    with pytest.raises(SamplingError) as error:  # a single file with nothing beside it: no tokenizer.json
        bare.condition("a cat")
    assert "tokenizer.json" in _one_line(error)
    with pytest.raises(ConfigError) as error:
        registry.load_model(golden / "janus_tiny.safetensors", image_size=9)
    assert "multiple" in _one_line(error)
