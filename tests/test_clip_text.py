"""STAR's text features from the SD-2.1 text encoder (models/clip_text.py) against transformers run by the reference
recipe (STAR-T2I ``Text_Model.extract_text_features`` on ``prompts + [""] * B``).

The encoder is a tiny random ``CLIPTextModel`` (2 blocks, width 32, SD-2.1's config conventions) and a tiny CLIP
BPE vocabulary written in the SD-2.1 tokenizer layout (pad token "!" = id 0, 77 tokens), in a temporary folder.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest
import torch
from arsample.errors import CheckpointError, ConfigError
from arsample.models.clip_text import (
    TextFeatures,
    encode_sd21_prompts,
    find_sd21_folders,
    load_sd21_text_encoder,
    require_transformers,
)
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers", reason="transformers is not installed (the optional 'star' "
                                                          "extra: pip install \"comfyui-arsample[star]\")")

torch.set_num_threads(1)

WIDTH = 32
WORDS = ["a", "photo", "of", "red", "fox", "in", "the", "snow", "cat", "on", "mat"]
PROMPTS = ["A photo of a red fox in the snow", "the cat on the mat!", "fox"]


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins of bytes used by byte-level BPE (the printable Latin-1 bytes keep their own
    character, the others are moved to 256 + n), in the order of CLIP's vocabulary ('!' first)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    moved = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep} | {b: chr(256 + n) for n, b in enumerate(moved)}
    return [table[b] for b in keep + moved]


def tiny_clip_vocab(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """A small CLIP-style BPE vocabulary: the byte symbols, the same with '</w>', merges building each word left to
    right, then <|startoftext|> and <|endoftext|> as the two largest ids (as in CLIP's 49408-token vocabulary)."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = f"{pieces[0]} {pieces[1]}"
            merged = pieces[0] + pieces[1]
            if pair not in merges:
                merges.append(pair)
            if merged not in tokens:
                tokens.append(merged)
            pieces = [merged] + pieces[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer(folder, vocab: dict[str, int], merges: list[str]) -> None:
    """The SD-2.1 tokenizer layout: vocab.json, merges.txt, special tokens with "!" as the pad token, 77 tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "!"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    config = dict(special, tokenizer_class="CLIPTokenizer", model_max_length=77, do_lower_case=True,
                  add_prefix_space=False, errors="replace")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def tiny_text_model(vocab_size: int, seed: int = 0, width: int = WIDTH):
    """A random 2-block CLIPTextModel with SD-2.1's conventions (gelu, 77 positions, legacy eos_token_id 2)."""
    config = transformers.CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act="gelu", projection_dim=width, bos_token_id=0, eos_token_id=2,
                                         pad_token_id=1)
    torch.manual_seed(seed)
    model = transformers.CLIPTextModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorms, so that "after the final LayerNorm" is tested
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def write_text_encoder(model, folder) -> None:
    """config.json + model.safetensors as the SD-2.1 repository has them: keys under 'text_model.' (as transformers
    4.x wrote them; 5.x writes them without the prefix) and the 'position_ids' buffer."""
    model.save_pretrained(folder)
    state = {("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
             for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def sd21_model():
    return tiny_text_model(len(tiny_clip_vocab(WORDS)[0]))


@pytest.fixture(scope="module")
def sd21(tmp_path_factory, sd21_model):
    """An SD-2.1-style folder: text_encoder/ (config.json + model.safetensors) and tokenizer/."""
    root = tmp_path_factory.mktemp("clip") / "stable-diffusion-2-1"
    write_tokenizer(root / "tokenizer", *tiny_clip_vocab(WORDS))
    write_text_encoder(sd21_model, root / "text_encoder")
    return root


def reference(folder, prompts, model):
    """STAR's recipe, straight on transformers: the folder's tokenizer (CLIPTokenizer of tokenizer/) and the text
    model (the in-memory one that was saved, so that a mis-read file shows), prompts and as many empty prompts in
    one batch, padding max_length (tokenizer.model_max_length), truncation, the attention mask passed to the model;
    (last_hidden_state, attention_mask, pooler_output, input_ids)."""
    tok = transformers.CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer")
    batch = tok(list(prompts) + [""] * len(prompts), padding="max_length", max_length=tok.model_max_length,
                truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return out.last_hidden_state, batch["attention_mask"], out.pooler_output, batch["input_ids"]


def test_features_equal_the_reference_recipe(sd21, sd21_model):
    cond, null = encode_sd21_prompts(sd21, PROMPTS)
    states, mask, pooled, _ = reference(sd21, PROMPTS, sd21_model)
    b = len(PROMPTS)
    for feats, rows in ((cond, slice(0, b)), (null, slice(b, 2 * b))):
        assert isinstance(feats, TextFeatures)
        assert feats.states.shape == (b, 77, WIDTH) and feats.states.dtype == torch.float32
        assert feats.mask.shape == (b, 77) and feats.mask.dtype == torch.bool
        assert feats.pooled.shape == (b, WIDTH) and feats.pooled.dtype == torch.float32
        torch.testing.assert_close(feats.states, states[rows], rtol=0, atol=1e-6)
        torch.testing.assert_close(feats.pooled, pooled[rows], rtol=0, atol=1e-6)
        assert torch.equal(feats.mask, mask[rows].bool())
    assert cond.prompts == tuple(PROMPTS) and null.prompts == ("",) * b
    assert len(cond) == b and cond.width == WIDTH


def test_empty_prompt_rows_are_the_empty_prompt(sd21):
    _, null = encode_sd21_prompts(sd21, PROMPTS)
    one, _ = encode_sd21_prompts(sd21, [""])
    for row in range(len(PROMPTS)):
        torch.testing.assert_close(null.states[row], one.states[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(null.pooled[row], one.pooled[0], rtol=0, atol=1e-6)
    assert null.mask.sum(dim=1).tolist() == [2] * len(PROMPTS)  # start and end tokens only


def test_tokens_padding_mask_and_pooled_position(sd21, sd21_model):
    """SD-2.x pads with "!" (id 0) and also encodes a typed "!" as 0; the mask covers start..end; pooled is the
    state at the end token; the states are after the final LayerNorm and computed with the padding mask."""
    cond, _ = encode_sd21_prompts(sd21, PROMPTS)
    _, _, _, ids = reference(sd21, PROMPTS, sd21_model)
    vocab = json.loads((sd21 / "tokenizer" / "vocab.json").read_text())
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    assert vocab["!"] == 0
    for row in range(len(PROMPTS)):
        n = int(cond.mask[row].sum())
        assert cond.mask[row, :n].all() and not cond.mask[row, n:].any()
        assert ids[row, 0] == bos and ids[row, n - 1] == eos and (ids[row, n:] == 0).all()
        torch.testing.assert_close(cond.pooled[row], cond.states[row, n - 1], rtol=0, atol=0)
    assert ids[1, int(cond.mask[1].sum()) - 2] == 0  # the typed "!" of "the cat on the mat!"

    model = sd21_model
    with torch.no_grad():
        unmasked = model(input_ids=ids[: len(PROMPTS)]).last_hidden_state
        ln = getattr(model, "text_model", model).final_layer_norm  # transformers 4.x: under text_model
        raw = model(input_ids=ids[: len(PROMPTS)], attention_mask=cond.mask.long(),
                    output_hidden_states=True).hidden_states[-1]
    real = cond.mask
    torch.testing.assert_close(cond.states[real], unmasked[real], rtol=0, atol=1e-5)  # causal: real tokens agree
    assert (cond.states[~real] - unmasked[~real]).abs().max() > 1e-3  # padding positions see the mask
    torch.testing.assert_close(cond.states, ln(raw), rtol=0, atol=1e-5)
    assert (cond.states - raw).abs().max() > 1e-2


def test_long_prompts_are_cut_to_77_tokens_with_a_warning(sd21, sd21_model, caplog):
    long = " ".join(["fox"] * 100)
    with caplog.at_level(logging.WARNING, logger="arsample"):
        cond, _ = encode_sd21_prompts(sd21, [long])
    states, _, pooled, _ = reference(sd21, [long], sd21_model)
    assert cond.mask.all()
    torch.testing.assert_close(cond.states, states[:1], rtol=0, atol=1e-6)
    torch.testing.assert_close(cond.pooled, pooled[:1], rtol=0, atol=1e-6)
    assert "longer than 75 CLIP tokens" in caplog.text and "25 tokens were dropped" in caplog.text


def test_other_folder_layouts_give_the_same_features(sd21, tmp_path):
    import shutil

    flat = tmp_path / "flat"
    shutil.copytree(sd21 / "text_encoder", flat)
    for f in (sd21 / "tokenizer").iterdir():
        shutil.copy(f, flat / f.name)
    expected, _ = encode_sd21_prompts(sd21, PROMPTS[:1])
    for folder in (flat, sd21 / "text_encoder"):  # one folder; the text_encoder/ folder with tokenizer/ beside it
        got, _ = encode_sd21_prompts(folder, PROMPTS[:1])
        torch.testing.assert_close(got.states, expected.states, rtol=0, atol=0)
    assert find_sd21_folders(flat) == (flat, flat)
    assert find_sd21_folders(sd21) == (sd21 / "text_encoder", sd21 / "tokenizer")


def test_a_loaded_encoder_encodes_several_batches(sd21):
    encoder = load_sd21_text_encoder(sd21, expected_width=WIDTH)
    assert encoder.width == WIDTH
    a, _ = encoder.encode(PROMPTS)
    b, _ = encoder.encode(PROMPTS[1])
    torch.testing.assert_close(b.states[0], a.states[1], rtol=0, atol=1e-6)


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_clear_errors(sd21, tmp_path):
    with pytest.raises(CheckpointError) as exc:
        encode_sd21_prompts(tmp_path / "nowhere", PROMPTS)
    assert "not found" in _one_line(exc) and "nowhere" in str(exc.value)

    with pytest.raises(CheckpointError) as exc:
        encode_sd21_prompts(tmp_path, PROMPTS)
    assert "text_encoder/config.json" in _one_line(exc)

    import shutil

    no_tok = tmp_path / "no_tokenizer"
    shutil.copytree(sd21 / "text_encoder", no_tok / "text_encoder")
    with pytest.raises(CheckpointError) as exc:
        encode_sd21_prompts(no_tok, PROMPTS)
    assert "Tokenizer files missing" in _one_line(exc) and "vocab.json" in str(exc.value)

    no_weights = tmp_path / "no_weights"
    shutil.copytree(sd21 / "tokenizer", no_weights / "tokenizer")
    (no_weights / "text_encoder").mkdir()
    shutil.copy(sd21 / "text_encoder" / "config.json", no_weights / "text_encoder")
    with pytest.raises(CheckpointError) as exc:
        encode_sd21_prompts(no_weights, PROMPTS)
    assert "No text encoder weights" in _one_line(exc)

    with pytest.raises(ConfigError) as exc:
        encode_sd21_prompts(sd21, PROMPTS, expected_width=1024)
    assert "32-wide" in _one_line(exc) and "1024" in str(exc.value)

    with pytest.raises(ConfigError) as exc:
        encode_sd21_prompts(sd21, [])
    assert "at least one prompt" in _one_line(exc)


def test_missing_transformers_says_how_to_install(sd21, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers → ImportError
    with pytest.raises(ConfigError) as exc:
        require_transformers()
    assert 'pip install "comfyui-arsample[star]"' in _one_line(exc) and "pip install transformers" in str(exc.value)
    with pytest.raises(ConfigError):
        encode_sd21_prompts(sd21, PROMPTS)


def test_text_features_refuse_mismatched_parts():
    ok = {"states": torch.zeros(2, 77, 8), "mask": torch.ones(2, 77, dtype=torch.bool), "pooled": torch.zeros(2, 8),
          "prompts": ("a", "b")}
    TextFeatures(**ok)
    for bad in ({"pooled": torch.zeros(2, 4)}, {"mask": torch.ones(2, 76, dtype=torch.bool)}, {"prompts": ("a",)},
                {"mask": torch.ones(2, 77)}, {"states": torch.zeros(2, 77, 8).double()}):
        with pytest.raises(ConfigError):
            TextFeatures(**(ok | bad))
