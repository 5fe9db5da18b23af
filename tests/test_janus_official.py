"""Janus-Pro at the official sizes (tests/fixtures/golden/janus_official_keys.json): both configs read with
LlamaConfig's defaults, our modules have exactly the official generation keys and shapes, and a random checkpoint
with every official Janus-Pro-1B key (sharded pytorch_model.bin, bf16) loads and samples a few tokens.

The random 1B checkpoint is built in the test and never committed. To keep it small, every tensor of one shape
and kind shares one random storage (torch.save writes it once): about 0.6 GB on disk instead of 4.2 GB."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from arsample.models import registry
from arsample.models.janus import JanusGenerator, JanusVQ, janus_config
from arsample.models.janus.keys import model_key, vq_key, wanted
from arsample.models.llamagen.config import infer_vq_config
from arsample.samplers import SamplerSettings, sample_ar


@pytest.fixture(scope="module")
def official(golden):
    return json.loads((golden / "janus_official_keys.json").read_text())


def test_configs_take_llamas_defaults_where_the_release_leaves_them_out(official):
    one = janus_config(official["configs"]["janus_pro_1b"])
    assert (one.hidden_size, one.intermediate_size, one.num_layers, one.num_heads, one.num_kv_heads, one.head_dim) == \
        (2048, 5632, 24, 16, 16, 128)
    seven = janus_config(official["configs"]["janus_pro_7b"])  # its language_config gives layers, vocab, positions
    assert (seven.hidden_size, seven.intermediate_size, seven.num_layers, seven.num_heads, seven.num_kv_heads) == \
        (4096, 11008, 30, 32, 32)
    for c in (one, seven):
        assert (c.rms_norm_eps, c.rope_theta, c.max_positions, c.text_vocab_size) == (1e-6, 10000.0, 16384, 102400)
        assert (c.image_vocab_size, c.gen_embed_dim, c.aligner_depth, c.head_hidden) == (16384, 8, 2, c.hidden_size)
        assert (c.grid_size, c.downsample, c.num_image_tokens, c.image_size) == (24, 16, 576, 384)


@pytest.mark.parametrize("release", ["janus_pro_1b", "janus_pro_7b"])
def test_modules_have_exactly_the_official_generation_keys(official, release):
    shapes = {k: tuple(v[0]) for k, v in official[release].items()}
    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    with torch.device("meta"):
        model = JanusGenerator(janus_config(official["configs"][release]))
        vq = JanusVQ(infer_vq_config({ours: meta[k] for k, ours in wanted(meta, vq_key).items()}, {}))
    expected_model = {ours: shapes[k] for k, ours in wanted(shapes, model_key).items()}
    expected_vq = {ours: shapes[k] for k, ours in wanted(shapes, vq_key).items()}
    assert len(expected_model) + len(expected_vq) == len(shapes)  # every generation key is read by one part
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_model
    ours_vq = {k: tuple(v.shape) for k, v in vq.state_dict().items() if k != "quantize.codebook_used"}
    assert ours_vq == expected_vq and vq.config.name == "VQ-16" and vq.downsample == 16
    total = sum(v.numel() for v in model.state_dict().values()) + sum(
        v.numel() for k, v in vq.state_dict().items() if k != "quantize.codebook_used")
    assert total == official["params"][f"{release}_generation"]
    other = official.get(f"{release}_other", {})
    assert not wanted(other, model_key) and not wanted(other, vq_key)  # the understanding tower is never read


def _shared_random_state(keys: dict, dtype=torch.bfloat16) -> dict[str, torch.Tensor]:
    """Every key of ``keys`` ({name: [shape, dtype]}) with random values, one storage per (shape, kind)."""
    gen = torch.Generator().manual_seed(0)
    pool: dict[tuple, torch.Tensor] = {}
    state = {}
    for name, (shape, _) in keys.items():
        shape = tuple(shape)
        if len(shape) == 1:
            kind = "ones" if name.endswith("weight") and "codebook" not in name else "zeros"
        else:
            kind = "table" if "embed" in name or name.endswith(("lm_head.weight", "latent")) else "matrix"
        if (shape, kind) not in pool:
            if kind in ("ones", "zeros"):
                value = (torch.ones if kind == "ones" else torch.zeros)(shape, dtype=dtype)
            else:
                value = torch.randn(shape, generator=gen, dtype=dtype)
                if kind == "matrix":
                    value /= torch.tensor(shape[1:]).prod().item() ** 0.5
            pool[(shape, kind)] = value
        state[name] = pool[(shape, kind)]
    return state


@pytest.fixture
def release_dir(tmp_path):
    """A folder removed after the test (pytest keeps old temporary folders; this one holds 0.6 GB)."""
    root = tmp_path / "Janus-Pro-1B"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_random_official_1b_release_loads_and_samples(release_dir, golden, official):
    keys = {**official["janus_pro_1b"], **official["janus_pro_1b_other"]}
    assert len(keys) == official["params"]["janus_pro_1b_keys"]
    state = _shared_random_state(keys)
    root = release_dir
    root.mkdir()
    (root / "config.json").write_text(json.dumps(official["configs"]["janus_pro_1b"]))
    shutil.copy(golden / "janus_tiny_tokenizer.json", root / "tokenizer.json")  # ids < 312 fit the real vocabulary
    tables = [k for k in state if k.endswith(("embed_tokens.weight", "lm_head.weight"))]
    shards = {"pytorch_model-00001-of-00002.bin": {k: state[k] for k in tables},
              "pytorch_model-00002-of-00002.bin": {k: v for k, v in state.items() if k not in tables}}
    for name, part in shards.items():
        torch.save(part, root / name)
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (root / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    del state, shards

    vq = registry.load_tokenizer(root)  # fp32, as the VQ decodes in the reference
    assert isinstance(vq.module, JanusVQ) and vq.info.codebook_size == 16384 and vq.module.downsample == 16
    model = registry.load_model(root, dtype="bf16", tokenizer=vq)
    info = model.info
    assert (info.family, info.vocab_size, info.layout) == ("janus", 16384, ((24, 24),))  # 384 px, 576 tokens
    assert info.prompt.length == 16384 - 576 and model.module.dtype == torch.bfloat16
    cond = model.family.text_condition(model.module, info, ["a cat"])
    result = sample_ar(model.module, cond.value, SamplerSettings(cfg_scale=5.0), num_tokens=4, seed=1)
    assert result.tokens.shape == (1, 4) and 0 <= int(result.tokens.min()) and int(result.tokens.max()) < 16384
    assert bool(torch.isfinite(result.entropy).all()) and float(result.entropy.mean()) > 0
    image = vq.module.decode_codes(result.tokens, grid=(2, 2))
    assert image.shape == (1, 3, 32, 32) and bool(torch.isfinite(image).all())
