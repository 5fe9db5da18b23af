"""The FLAN-T5 text path against data made with LlamaGen's T5Embedder and Hugging Face transformers.

See fixtures/golden/README.md for how the data was made (tiny random T5s with the official layouts).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from arsample.errors import CheckpointError, ConfigError
from arsample.models.t5 import T5PromptTokenizer, clean_prompt, infer_t5_config, left_align, load_t5
from arsample.models.t5.files import find_t5_files, read_t5_encoder_state
from arsample.models.t5.text_encoder import check_width, t5_from_state_dict


@pytest.fixture(scope="module")
def t5_io(golden):
    path = golden / "t5_io.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    texts = (json.loads(meta[key]) for key in ("prompts", "cleaned", "doc_example_ids"))
    return (load_file(path), *texts)


def test_prompt_cleaning_matches_reference(t5_io):
    _, prompts, cleaned, _ = t5_io
    assert [clean_prompt(p) for p in prompts] == cleaned
    assert clean_prompt("A CAT, see https://x.com/p @me") == "a cat, see"


def test_bundled_tokenizer_is_the_t5_vocabulary(t5_io):
    io, _, cleaned, doc_ids = t5_io
    tok = T5PromptTokenizer()
    assert tok.vocab_size == 32100 and tok.eos_id == 1 and tok.pad_id == 0
    # The example from the T5 documentation, with its published ids.
    assert tok(["translate English to German: How old are you?"], 11).ids[0].tolist() == doc_ids
    out = tok(cleaned, 120)
    assert torch.equal(out.ids, io["input_ids"]) and torch.equal(out.mask, io["attention_mask"])
    assert out.dropped[:-1] == [0] * (len(cleaned) - 1) and out.dropped[-1] > 0  # the long prompt is cut


def test_encoder_matches_transformers_with_padding(golden, t5_io):
    io, *_ = t5_io
    encoder = load_t5(golden / "t5_tiny")
    hidden = encoder.model(io["input_ids"], io["attention_mask"])
    torch.testing.assert_close(hidden, io["last_hidden_state"], atol=1e-4, rtol=0)


def test_prompts_to_left_aligned_features_match_reference(golden, t5_io, caplog):
    io, prompts, *_ = t5_io
    encoder = load_t5(golden / "t5_tiny")
    with caplog.at_level(logging.WARNING, logger="arsample"):
        out = encoder.encode(prompts)
    torch.testing.assert_close(out.features, io["left_padded"], atol=1e-4, rtol=0)
    assert torch.equal(out.mask, io["left_padded_mask"])
    assert "longer than 120 T5 tokens" in caplog.text  # truncation is announced, not silent


def test_relu_layout_matches_transformers(golden):
    state = load_file(golden / "t5_relu.safetensors")
    io = load_file(golden / "t5_relu_io.safetensors")
    config = infer_t5_config(state)
    assert (config.gated, config.activation, config.num_layers, config.relative_buckets) == (False, "relu", 3, 16)
    hf = json.loads(safe_open(str(golden / "t5_relu.safetensors"), "pt").metadata()["config"])
    model = t5_from_state_dict(state, "relu", hf)  # the bucket distance (20) is only in the config
    torch.testing.assert_close(model(io["input_ids"], io["attention_mask"]), io["last_hidden_state"],
                               atol=1e-4, rtol=0)


def test_left_align_moves_valid_rows_to_the_end():
    feats = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1) + 1
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    out, new_mask = left_align(feats, mask)
    assert out[0, :, 0].tolist() == [0, 0, 0, 1, 2] and new_mask[0].tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(out[1], feats[1]) and new_mask[1].tolist() == [1] * 5


def test_single_file_and_full_model_folders_load(golden, tmp_path, t5_io):
    io, *_ = t5_io
    state = read_t5_encoder_state(find_t5_files(golden / "t5_tiny"))
    # One encoder-only file, config read off the shapes, bundled tokenizer.
    single = tmp_path / "flan-t5-tiny-encoder.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, single)
    a = load_t5(single)
    torch.testing.assert_close(a.model(io["input_ids"], io["attention_mask"]), io["last_hidden_state"],
                               atol=1e-4, rtol=0)
    # A whole encoder-decoder folder in shards: decoder keys are skipped, embed_tokens alias accepted.
    folder = tmp_path / "flan-t5-tiny"
    folder.mkdir()
    (folder / "config.json").write_text((golden / "t5_tiny" / "config.json").read_text())
    shard1 = {"encoder.embed_tokens.weight": state["shared.weight"], "decoder.final_layer_norm.weight": torch.ones(16)}
    shard2 = {k: v for k, v in state.items() if k != "shared.weight"} | {"lm_head.weight": torch.zeros(4, 16)}
    save_file(shard1, folder / "model-00001-of-00002.safetensors")
    save_file({k: v.contiguous() for k, v in shard2.items()}, folder / "model-00002-of-00002.safetensors")
    b = load_t5(folder)
    torch.testing.assert_close(b.model(io["input_ids"], io["attention_mask"]), io["last_hidden_state"],
                               atol=1e-4, rtol=0)


def test_bf16_encoder_stays_close(golden, t5_io):
    io, *_ = t5_io
    encoder = load_t5(golden / "t5_tiny", dtype="bf16")
    hidden = encoder.model(io["input_ids"], io["attention_mask"]).float()
    assert torch.isfinite(hidden).all()
    assert (hidden - io["last_hidden_state"]).abs().max() < 0.1 * io["last_hidden_state"].abs().max()


def test_bad_text_encoder_files_give_clear_errors(golden, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_t5(tmp_path / "missing.safetensors")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="No model weights"):
        load_t5(empty)
    not_t5 = tmp_path / "gpt.safetensors"
    save_file({"tok_embeddings.weight": torch.zeros(4, 4)}, not_t5)
    with pytest.raises(CheckpointError, match="holds no T5 encoder"):
        load_t5(not_t5)
    bad_tok = tmp_path / "tok.json"
    bad_tok.write_text("{not json")
    with pytest.raises(CheckpointError, match="Cannot read the T5 tokenizer"):
        load_t5(golden / "t5_tiny", tokenizer=bad_tok)
    with pytest.raises(ConfigError, match="2048"):
        check_width(16, 2048)


def test_convert_writes_one_encoder_file_that_loads_the_same(golden, tmp_path, capsys):
    from arsample.cli import main

    io = load_file(golden / "t5_relu_io.safetensors")
    # The ReLU model's bucket distance (20) is not in its shapes: it must survive via the metadata.
    folder = tmp_path / "t5-relu"
    folder.mkdir()
    state = load_file(golden / "t5_relu.safetensors")
    save_file(state | {"decoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(16, 16)},
              folder / "model.safetensors")
    hf = json.loads(safe_open(str(golden / "t5_relu.safetensors"), "pt").metadata()["config"])
    (folder / "config.json").write_text(json.dumps(hf))
    out = tmp_path / "t5-relu-encoder.safetensors"
    assert main(["convert", str(folder), str(out), "--dtype", "fp32"]) == 0
    assert "T5 encoder, 3 layers" in capsys.readouterr().out
    with safe_open(str(out), "pt") as f:
        assert not any(k.startswith("decoder.") for k in f.keys())
    files = find_t5_files(out)  # (load_t5 would refuse: the bundled tokenizer is larger than this toy vocabulary)
    model = t5_from_state_dict(read_t5_encoder_state(files), out.name, files.hf_config)
    torch.testing.assert_close(model(io["input_ids"], io["attention_mask"]), io["last_hidden_state"],
                               atol=1e-4, rtol=0)
