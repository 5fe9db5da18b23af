"""Meissonic's text features (models/meissonic_text.py) against transformers run by the reference recipe
(viiika/Meissonic ``src/pipeline.py`` ``Pipeline.__call__``: tokenizer(prompt, padding="max_length", max_length=77,
truncation=True).input_ids → text_encoder(input_ids, return_dict=True, output_hidden_states=True) →
``text_embeds`` and ``hidden_states[-2]``; the negative prompt the same way, in its own batch).

The encoder is a tiny random ``CLIPTextModelWithProjection`` (3 blocks, width 32, with non-trivial LayerNorms and a
text projection) and a tiny CLIP BPE vocabulary written in Meissonic's tokenizer layout (pad token "!" = id 0),
in a temporary Meissonic-like folder (text_encoder/, tokenizer/).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import sys

import pytest
import torch
from arsample.errors import CheckpointError, ConfigError
from arsample.models import meissonic_text
from arsample.models.meissonic_text import (
    MEISSONIC_NEGATIVE_PROMPT,
    MeissonicTextFeatures,
    encode_meissonic_prompts,
    find_meissonic_text_folders,
    load_meissonic_text_encoder,
)
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers", reason="transformers is not installed (the optional 'star' "
                                                          "extra: pip install \"comfyui-arsample[star]\")")

from test_clip_text import tiny_clip_vocab, tiny_text_model, write_tokenizer

torch.set_num_threads(1)

WIDTH = 32
BLOCKS = 3
WORDS = ["a", "photo", "of", "red", "fox", "in", "the", "snow", "cat", "on", "mat", "worst", "quality", "low",
         "blurry", "text", "ugly", "res", "logo"]
PROMPTS = ["A photo of a red fox in the snow", "the cat on the mat!", "fox"]
TOL = 1e-5


def tiny_meissonic_encoder(vocab_size: int, seed: int = 0, width: int = WIDTH, blocks: int = BLOCKS):
    """A random CLIPTextModelWithProjection with Meissonic's config conventions (gelu, 77 positions, legacy
    eos_token_id 2, projection as wide as the model), LayerNorms moved off their (1, 0) start."""
    config = transformers.CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                                         num_hidden_layers=blocks, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act="gelu", projection_dim=width, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1)
    torch.manual_seed(seed)
    model = transformers.CLIPTextModelWithProjection(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def hf_state(model) -> dict:
    """The state dict as Meissonic's text_encoder/model.safetensors has it: 'text_model.*' and
    'text_projection.weight' (transformers 5.x leaves the prefix off CLIPTextModel's keys: put back)."""
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v.contiguous()
            for k, v in model.state_dict().items()}


def write_encoder(model, folder, name: str = "model.safetensors") -> None:
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    save_file(hf_state(model), str(folder / name), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def vocab():
    return tiny_clip_vocab(WORDS)


@pytest.fixture(scope="module")
def encoder_model(vocab):
    return tiny_meissonic_encoder(len(vocab[0]))


@pytest.fixture(scope="module")
def meissonic(tmp_path_factory, vocab, encoder_model):
    """A Meissonic-like folder: text_encoder/ (config.json + model.safetensors), tokenizer/ (pad "!")."""
    root = tmp_path_factory.mktemp("meissonic") / "Meissonic"
    write_tokenizer(root / "tokenizer", *vocab)
    write_encoder(encoder_model, root / "text_encoder")
    return root


def reference(folder, prompts, negative, model):
    """The reference recipe, straight on transformers: Meissonic's tokenizer (CLIPTokenizer of tokenizer/), the text
    model (the in-memory one that was saved, so that a mis-read file shows); prompts in one batch, negative prompts in
    another, no attention mask. (text_embeds, hidden_states[-2]) of each, and the prompts' input ids."""
    tok = transformers.CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer")
    result = []
    for texts in (list(prompts), list(negative)):
        ids = tok(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=77).input_ids
        with torch.no_grad():
            out = model(ids, return_dict=True, output_hidden_states=True)
        result.append((out.text_embeds, out.hidden_states[-2], ids))
    return result


def _close(a, b, tol=TOL):
    torch.testing.assert_close(a, b, rtol=0, atol=tol)


@pytest.mark.parametrize("negative", ["", MEISSONIC_NEGATIVE_PROMPT])
def test_features_equal_the_reference_recipe(meissonic, encoder_model, negative):
    cond, neg = encode_meissonic_prompts(meissonic, PROMPTS, negative)
    (pooled, states, _), (neg_pooled, neg_states, _) = reference(meissonic, PROMPTS, [negative] * len(PROMPTS),
                                                                 encoder_model)
    b = len(PROMPTS)
    for feats, s, p in ((cond, states, pooled), (neg, neg_states, neg_pooled)):
        assert isinstance(feats, MeissonicTextFeatures)
        assert feats.states.shape == (b, 77, WIDTH) and feats.states.dtype == torch.float32
        assert feats.pooled.shape == (b, WIDTH) and feats.pooled.dtype == torch.float32
        _close(feats.states, s)
        _close(feats.pooled, p)
    assert cond.prompts == tuple(PROMPTS) and neg.prompts == (negative,) * b
    assert len(cond) == b and cond.width == WIDTH


def test_what_the_features_are(meissonic, encoder_model, vocab):
    """Pads are "!" (id 0, also a typed "!"); states are the second-to-last block's output without the final
    LayerNorm, computed without attention mask; pooled is the final LayerNorm at the end token, projected."""
    cond, _ = encode_meissonic_prompts(meissonic, PROMPTS)
    (_, _, ids), _ = reference(meissonic, PROMPTS, [""], encoder_model)
    bos, eos = vocab[0]["<|startoftext|>"], vocab[0]["<|endoftext|>"]
    assert vocab[0]["!"] == 0
    text_model = encoder_model.text_model
    ln = text_model.final_layer_norm
    truncated = copy.deepcopy(encoder_model)  # the same model without its last block
    truncated.text_model.encoder.layers = truncated.text_model.encoder.layers[:-1]
    with torch.no_grad():
        before_last = truncated(ids).last_hidden_state  # final LayerNorm of block n-1's output, no mask
        ends = (ids == eos).int().argmax(dim=1, keepdim=True)  # the end token of each row
        real = torch.arange(77)[None] <= ends  # start .. end token (a typed "!" is 0 too: not ids != 0)
        masked = encoder_model(ids, attention_mask=real.long(), output_hidden_states=True).hidden_states[-2]
        last = encoder_model(ids, output_hidden_states=True)
    _close(ln(cond.states), before_last)
    for row in range(len(PROMPTS)):
        n = int((ids[row] == eos).int().argmax()) + 1  # start .. end token
        assert ids[row, 0] == bos and (ids[row, n:] == 0).all()
        expected = encoder_model.text_projection(last.last_hidden_state[row, n - 1])
        _close(cond.pooled[row], expected.detach())
        _close(cond.states[row, :n], masked[row, :n])  # causal: the real tokens do not see the padding
        assert (cond.states[row, n:] - masked[row, n:]).abs().max() > 1e-3  # padding positions: no mask was used
    assert ids[1, int((ids[1] == eos).int().argmax()) - 1] == 0  # the typed "!" of "the cat on the mat!"
    assert (cond.states - ln(cond.states)).abs().max() > 1e-2  # no final LayerNorm on the states
    assert (cond.states - last.hidden_states[-1]).abs().max() > 1e-2  # not the last block


def test_negative_prompts(meissonic):
    """No negative prompt is the empty prompt, encoded (not zeros); one negative per prompt is accepted; the same
    negative gives the same rows as encoding it as a prompt."""
    _, neg = encode_meissonic_prompts(meissonic, PROMPTS)
    _, none = encode_meissonic_prompts(meissonic, PROMPTS, None)
    empty, _ = encode_meissonic_prompts(meissonic, [""])
    for row in range(len(PROMPTS)):
        _close(neg.states[row], empty.states[0])
        _close(neg.pooled[row], empty.pooled[0])
    _close(none.states, neg.states, 0)
    assert neg.states.abs().max() > 0.1 and neg.pooled.abs().max() > 0.1
    encoder = load_meissonic_text_encoder(meissonic)
    mixed = ["", MEISSONIC_NEGATIVE_PROMPT, "blurry"]
    _, per = encoder.encode(PROMPTS, mixed)
    direct, _ = encoder.encode(mixed)
    assert per.prompts == tuple(mixed)
    _close(per.states, direct.states)
    _close(per.pooled, direct.pooled)


def test_long_prompts_are_cut_to_77_tokens_with_a_warning(meissonic, encoder_model, caplog):
    long = " ".join(["fox"] * 100)
    with caplog.at_level(logging.WARNING, logger="arsample"):
        cond, _ = encode_meissonic_prompts(meissonic, [long])
    (pooled, states, ids), _ = reference(meissonic, [long], [""], encoder_model)
    assert (ids != 0).all()
    _close(cond.states, states)
    _close(cond.pooled, pooled)
    assert "longer than 75 CLIP tokens" in caplog.text and "25 tokens were dropped" in caplog.text


def test_other_layouts_and_tokenizers_give_the_same_features(meissonic, tmp_path):
    """The flat folder (config, weights and tokenizer in one place, as laion's CLIP-H repository), the text_encoder/
    folder with tokenizer/ beside it, the pair of folders; a tokenizer padding with <|endoftext|> (laion's) still
    pads with Meissonic's "!"."""
    expected, _ = encode_meissonic_prompts(meissonic, PROMPTS)
    flat = tmp_path / "flat"
    shutil.copytree(meissonic / "text_encoder", flat)
    for f in (meissonic / "tokenizer").iterdir():
        shutil.copy(f, flat / f.name)
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        data = json.loads((flat / name).read_text())
        (flat / name).write_text(json.dumps(dict(data, pad_token="<|endoftext|>")))
    assert transformers.CLIPTokenizer.from_pretrained(str(flat)).pad_token == "<|endoftext|>"
    for folder in (flat, meissonic / "text_encoder", (meissonic / "text_encoder", meissonic / "tokenizer")):
        got, _ = encode_meissonic_prompts(folder, PROMPTS)
        _close(got.states, expected.states, 0)
        _close(got.pooled, expected.pooled, 0)
    assert find_meissonic_text_folders(flat) == (flat, flat)
    assert find_meissonic_text_folders(meissonic) == (meissonic / "text_encoder", meissonic / "tokenizer")


def test_dtypes_and_the_fp16_file(meissonic, encoder_model, tmp_path):
    expected, _ = encode_meissonic_prompts(meissonic, PROMPTS)
    encoder = load_meissonic_text_encoder(meissonic, dtype="bf16")
    assert next(encoder.model.parameters()).dtype == torch.bfloat16
    got, _ = encoder.encode(PROMPTS)
    assert got.states.dtype == torch.float32 and got.pooled.dtype == torch.float32
    _close(got.states, expected.states, 0.1)
    half = tmp_path / "half"
    shutil.copytree(meissonic / "tokenizer", half / "tokenizer")
    (half / "text_encoder").mkdir()
    shutil.copy(meissonic / "text_encoder" / "config.json", half / "text_encoder")
    save_file({k: v.half() for k, v in hf_state(encoder_model).items()},
              str(half / "text_encoder" / "model.fp16.safetensors"), metadata={"format": "pt"})
    got, _ = encode_meissonic_prompts(half, PROMPTS)  # fp16 weights, fp32 compute
    _close(got.states, expected.states, 0.05)


def test_a_loaded_encoder_encodes_several_batches(meissonic):
    encoder = load_meissonic_text_encoder(meissonic, expected_width=WIDTH)
    assert encoder.width == WIDTH
    a, _ = encoder.encode(PROMPTS)
    b, _ = encoder.encode(PROMPTS[1])
    _close(b.states[0], a.states[1])


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_clear_errors(meissonic, vocab, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError) as exc:
        encode_meissonic_prompts(tmp_path / "nowhere", PROMPTS)
    assert "not found" in _one_line(exc) and "MeissonFlow/Meissonic" in str(exc.value)

    only_transformer = tmp_path / "only_transformer"
    (only_transformer / "transformer").mkdir(parents=True)
    with pytest.raises(CheckpointError) as exc:
        encode_meissonic_prompts(only_transformer, PROMPTS)
    assert "has no text_encoder/" in _one_line(exc) and "huggingface.co/MeissonFlow/Meissonic" in str(exc.value)

    no_tok = tmp_path / "no_tokenizer"
    shutil.copytree(meissonic / "text_encoder", no_tok / "text_encoder")
    with pytest.raises(CheckpointError) as exc:
        encode_meissonic_prompts(no_tok, PROMPTS)
    assert "Tokenizer files missing" in _one_line(exc) and "tokenizer" in str(exc.value)

    no_weights = tmp_path / "no_weights"
    shutil.copytree(meissonic / "tokenizer", no_weights / "tokenizer")
    (no_weights / "text_encoder").mkdir()
    shutil.copy(meissonic / "text_encoder" / "config.json", no_weights / "text_encoder")
    with pytest.raises(CheckpointError) as exc:
        encode_meissonic_prompts(no_weights, PROMPTS)
    assert "No text encoder weights" in _one_line(exc)

    # SD-2.x's text encoder: a CLIPTextModel without projection (23 blocks in the real one)
    sd2 = tmp_path / "stable-diffusion-2-1"
    shutil.copytree(meissonic / "tokenizer", sd2 / "tokenizer")
    sd2_model = tiny_text_model(len(vocab[0]))
    sd2_model.save_pretrained(sd2 / "text_encoder")
    for precheck in (True, False):  # the safetensors keys; transformers' loading report (other weight formats)
        if not precheck:
            monkeypatch.setattr(meissonic_text, "_has_projection_key", lambda *a: None)
        with pytest.raises(ConfigError) as exc:
            encode_meissonic_prompts(sd2, PROMPTS)
        text = _one_line(exc)
        assert "no text projection" in text and "wrong encoder" in text and "MeissonFlow/Meissonic" in text

    with pytest.raises(ConfigError) as exc:
        encode_meissonic_prompts(meissonic, PROMPTS, expected_width=1024)
    assert "32-wide text" in _one_line(exc) and "1024" in str(exc.value)

    with pytest.raises(ConfigError) as exc:
        encode_meissonic_prompts(meissonic, [])
    assert "at least one prompt" in _one_line(exc)

    with pytest.raises(ConfigError) as exc:
        encode_meissonic_prompts(meissonic, PROMPTS, ["a", "b"])
    assert "one string per prompt (3)" in _one_line(exc)

    with pytest.raises(ConfigError):
        encode_meissonic_prompts(meissonic, PROMPTS, dtype="int8")


def test_missing_transformers_says_how_to_install(meissonic, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers → ImportError
    with pytest.raises(ConfigError) as exc:
        encode_meissonic_prompts(meissonic, PROMPTS)
    assert "Meissonic" in _one_line(exc) and "pip install transformers" in str(exc.value)


def test_features_refuse_mismatched_parts():
    ok = {"states": torch.zeros(2, 77, 8), "pooled": torch.zeros(2, 8), "prompts": ("a", "b")}
    MeissonicTextFeatures(**ok)
    for bad in ({"pooled": torch.zeros(3, 8)}, {"prompts": ("a",)}, {"states": torch.zeros(2, 77, 8).double()},
                {"pooled": torch.zeros(2, 8).half()}, {"states": torch.zeros(2, 8)}):
        with pytest.raises(ConfigError):
            MeissonicTextFeatures(**(ok | bad))
