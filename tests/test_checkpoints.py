"""Checkpoint reading, config resolution and refusal of bad files."""

from __future__ import annotations

import argparse
import itertools
import pickle
from pathlib import Path

import pytest
import torch

from arsample.errors import CheckpointError, ConfigError
from arsample.models.checkpoint import read_checkpoint, save_safetensors_atomic
from arsample.models.llamagen import LlamaGenGPT, gpt_config, load_gpt, load_vq
from arsample.models.llamagen.config import parse_gpt_filename, parse_vq_filename, resolve_gpt_config

TINY = {"n_head": 4, "grid_size": 4}


def test_pt_wrappers_and_prefixes_are_handled(tmp_path, tiny_c2i):
    sd = tiny_c2i.state_dict()
    messy = {f"module._orig_mod.{k}": v for k, v in sd.items()}
    messy["freqs_cis"] = torch.zeros(3)
    path = tmp_path / "weights.pt"
    torch.save({"model": messy, "steps": 10}, path)
    loaded = load_gpt(path, override=TINY)
    for k, v in sd.items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_training_checkpoint_with_argparse_namespace_loads(tmp_path, tiny_c2i):
    import argparse

    path = tmp_path / "train.pt"
    torch.save({"model": tiny_c2i.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    assert load_gpt(path, override=TINY).config.dim == 64


class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("touch " + str(_Evil.marker),)


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, tiny_c2i):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": tiny_c2i.state_dict(), "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        load_gpt(path, override=TINY)
    assert not _Evil.marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    _Evil.marker = tmp_path / "pwned2"
    path = tmp_path / "legacy.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not _Evil.marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file_gives_clear_error(tmp_path, tiny_c2i, suffix):
    path = tmp_path / f"model{suffix}"
    if suffix == ".pt":
        torch.save({"model": tiny_c2i.state_dict()}, path)
    else:
        save_safetensors_atomic(tiny_c2i.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_gpt(path, override=TINY)


def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_gpt(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_gpt(tmp_path / "empty.pt")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="Unsupported"):
        load_gpt(tmp_path / "notes.txt")


def test_vq_as_gpt_and_gpt_as_vq_are_refused(tiny_files):
    gpt_path, vq_path = tiny_files
    with pytest.raises(CheckpointError, match="VQ tokenizer, not a GPT"):
        load_gpt(vq_path)
    with pytest.raises(CheckpointError, match="class-to-image GPT, not a VQ"):
        load_vq(gpt_path)


def test_strict_load_reports_missing_and_unexpected(tmp_path, tiny_c2i):
    sd = dict(tiny_c2i.state_dict())
    sd.pop("norm.weight")
    sd["extra.weight"] = torch.zeros(2)
    path = tmp_path / "broken.safetensors"
    save_safetensors_atomic(sd, path)
    with pytest.raises(CheckpointError, match=r"missing keys: norm.weight.*unexpected keys: extra.weight"):
        load_gpt(path, override=TINY)


def test_safetensors_metadata_carries_the_config(tiny_files, tiny_c2i):
    gpt_path, vq_path = tiny_files
    model = load_gpt(gpt_path)
    assert model.config == tiny_c2i.config
    assert load_vq(vq_path).config.ch_mult == (1, 2)


@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)])
def test_weight_dtype(tiny_files, dtype, torch_dtype):
    model = load_gpt(tiny_files[0], dtype=dtype)
    assert model.tok_embeddings.weight.dtype == torch_dtype
    assert model.cls_embedding.embedding_table.weight.dtype == torch_dtype


@pytest.mark.parametrize("filename,name,model_type,size", [
    ("c2i_B_256.pt", "GPT-B", "c2i", 256), ("c2i_L_384.pt", "GPT-L", "c2i", 384),
    ("c2i_XL_384.pt", "GPT-XL", "c2i", 384), ("c2i_XXL_384.pt", "GPT-XXL", "c2i", 384),
    ("c2i_3B_384.pt", "GPT-3B", "c2i", 384), ("t2i_XL_stage1_256.pt", "GPT-XL", "t2i", 256),
    ("t2i_XL_stage2_512.pt", "GPT-XL", "t2i", 512),
])
def test_official_file_names_give_the_config(filename, name, model_type, size):
    assert parse_gpt_filename(filename) == {"name": name, "model_type": model_type, "image_size": size}
    with torch.device("meta"):
        sd = LlamaGenGPT(gpt_config(name, model_type=model_type)).state_dict()
    config, notes = resolve_gpt_config(sd, filename, {})
    assert (config.name, config.model_type, config.grid_size) == (name, model_type, size // 16)
    assert config.n_head == gpt_config(name).n_head
    assert config.cls_token_num == (120 if model_type == "t2i" else 1)
    assert config.num_classes == 1000 or model_type == "t2i"
    assert notes == []


def test_vq_file_names():
    assert parse_vq_filename("vq_ds16_c2i.pt") == {"name": "VQ-16", "downsample": 16}
    assert parse_vq_filename("vq_ds8_c2i.pt") == {"name": "VQ-8", "downsample": 8}
    assert parse_vq_filename("vq_ds16_t2i.pt") == {"name": "VQ-16", "downsample": 16}


@pytest.mark.parametrize("name,mult", [("VQ-16", (1, 1, 2, 2, 4)), ("VQ-8", (1, 2, 2, 4))])
def test_official_vq_layout_is_inferred_from_shapes(name, mult):
    from arsample.models.llamagen import LlamaGenVQ, VQConfig
    from arsample.models.llamagen.config import infer_vq_config

    with torch.device("meta"):
        sd = LlamaGenVQ(VQConfig(ch_mult=mult)).state_dict()
    cfg = infer_vq_config(sd, {})
    assert (cfg.name, cfg.ch_mult, cfg.base_channels, cfg.num_res_blocks, cfg.codebook_size) == (name, mult, 128, 2, 16384)
    assert len(sd) == (344 if name == "VQ-16" else 300)


def test_unknown_head_count_is_a_noted_guess_and_overridable(tiny_c2i):
    config, notes = resolve_gpt_config(tiny_c2i.state_dict(), "mystery.pt", {})
    assert config.n_head == 1 and any("head" in n for n in notes)
    config, _ = resolve_gpt_config(tiny_c2i.state_dict(), "mystery.pt", {}, {"n_head": 4, "image_size": 64,
                                                                              "downsample": 16})
    assert config.n_head == 4 and config.grid_size == 4


def test_image_size_must_be_multiple_of_downsample(tiny_c2i):
    with pytest.raises(ConfigError, match="not a multiple"):
        resolve_gpt_config(tiny_c2i.state_dict(), "x.pt", {}, {"image_size": 250, "downsample": 16})


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, tiny_c2i):
    import safetensors.torch

    def boom(*a, **k):
        Path(a[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_safetensors_atomic(tiny_c2i.state_dict(), tmp_path / "out.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_garbage_pt_file_is_called_corrupted(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_checkpoint(path)


# --- training-checkpoint wrappers and key prefixes (issue 10, kind 3) -----------------------------------------------

_PREFIX_PARTS = ("module.", "_orig_mod.")
# Every sequence of up to three wrapper prefixes, in every order, repeats included (1 + 2 + 4 + 8 = 15).
_PREFIXES = ["".join(p) for n in range(4) for p in itertools.product(_PREFIX_PARTS, repeat=n)]


def _assert_same_weights(model, expected: dict) -> None:
    loaded = model.state_dict()
    for k, v in expected.items():
        assert torch.equal(loaded[k], v), k


@pytest.mark.parametrize("prefix", _PREFIXES, ids=lambda p: p or "none")
def test_every_combination_of_wrapper_prefixes_loads(tmp_path, tiny_c2i, prefix):
    sd = tiny_c2i.state_dict()
    path = tmp_path / "prefixed.pt"
    torch.save({"model": {prefix + k: v for k, v in sd.items()}}, path)
    _assert_same_weights(load_gpt(path, override=TINY), sd)


def _training_extras() -> dict:
    """What training scripts save beside the weights: optimiser state, counters, RNG tensors, args."""
    return {
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 4),
                                    "exp_avg_sq": torch.rand(4, 4)}},
                      "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.95), "params": [0]}]},
        "steps": 1000, "epoch": 3,
        "rng_state": torch.get_rng_state(),  # a top-level tensor
        "cuda_rng_state": [torch.zeros(16, dtype=torch.uint8)],
        "args": argparse.Namespace(lr=1e-4, gpt_model="GPT-B"),
    }


@pytest.mark.parametrize("wrapper", ["model", "module", "state_dict", "ema"])
def test_wrapper_beside_optimizer_rng_tensor_and_args_loads(tmp_path, tiny_c2i, wrapper):
    sd = tiny_c2i.state_dict()
    path = tmp_path / "train.pt"
    torch.save({wrapper: {"_orig_mod.module." + k: v for k, v in sd.items()}, **_training_extras()}, path)
    _assert_same_weights(load_gpt(path, override=TINY), sd)


def test_issue_example_orig_mod_then_module_prefix(tmp_path, tiny_c2i):
    sd = tiny_c2i.state_dict()
    path = tmp_path / "compiled_ddp.pt"
    torch.save({"model": {"_orig_mod.module." + k: v for k, v in sd.items()}}, path)
    _assert_same_weights(load_gpt(path, override=TINY), sd)


def test_nested_wrappers_load(tmp_path, tiny_c2i):
    sd = tiny_c2i.state_dict()
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": {"module": {"module." + k: v for k, v in sd.items()}}, "global_step": 5}, path)
    _assert_same_weights(load_gpt(path, override=TINY), sd)


def _marked(value: float) -> dict:
    return {"w": torch.full((2,), value)}


@pytest.mark.parametrize("checkpoint,expected", [
    ({"ema": _marked(4), "state_dict": _marked(3), "module": _marked(2), "model": _marked(1)}, 1),
    ({"ema": _marked(4), "state_dict": _marked(3), "module": _marked(2)}, 2),
    ({"ema": _marked(4), "state_dict": _marked(3), "rng_state": torch.zeros(3, dtype=torch.uint8)}, 3),
    ({"ema": _marked(4), "optimizer": {"state": {0: {"exp_avg": torch.zeros(2)}}}}, 4),
    ({"model": {"name": "no tensors here"}, "ema": _marked(4)}, 4),  # a wrapper without weights is skipped
])
def test_wrapper_preference_is_model_module_state_dict_then_ema(checkpoint, expected):
    from arsample.models.checkpoint import clean_state_dict

    state = clean_state_dict(checkpoint)
    assert list(state) == ["w"] and state["w"][0].item() == expected


def test_plain_state_dict_with_stray_non_tensors_still_loads(tmp_path, tiny_c2i):
    sd = tiny_c2i.state_dict()
    path = tmp_path / "plain.pt"
    torch.save({**sd, "version": 2}, path)
    _assert_same_weights(load_gpt(path, override=TINY), sd)


def test_key_present_with_and_without_prefix_is_refused():
    from arsample.models.checkpoint import clean_state_dict

    with pytest.raises(CheckpointError, match="holds 'w' twice"):
        clean_state_dict({"model": {"w": torch.zeros(1), "module.w": torch.ones(1)}}, source="mixed.pt")


def test_no_weights_anywhere_is_refused():
    from arsample.models.checkpoint import clean_state_dict

    with pytest.raises(CheckpointError, match="holds no model weights"):
        clean_state_dict({"optimizer": {"state": {0: {"exp_avg": torch.zeros(2)}}}, "steps": 3}, source="opt.pt")


# --- non-finite weights: corrupted bytes or fp16 overflow (issue 10, "Also") ----------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_gpt_pt_with_non_finite_weight_is_refused(tmp_path, tiny_c2i, bad):
    sd = {k: v.clone() for k, v in tiny_c2i.state_dict().items()}
    sd["layers.1.attention.wqkv.weight"][3, 5] = bad
    path = tmp_path / "c2i_corrupt.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError) as info:
        load_gpt(path, override=TINY)
    message = str(info.value)
    assert "'c2i_corrupt.pt'" in message and "layers.1.attention.wqkv.weight" in message
    assert "corrupted" in message and "bf16 or fp32" in message and "\n" not in message


def test_fp16_overflow_in_a_converted_file_is_refused(tmp_path, tiny_c2i):
    sd = {k: v.clone() for k, v in tiny_c2i.state_dict().items()}
    sd["output.weight"] *= 1e6  # beyond fp16's 65504
    path = tmp_path / "overflowed.safetensors"
    save_safetensors_atomic({k: v.half() for k, v in sd.items()}, path, tiny_c2i.config.to_metadata())
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights \(output.weight\).*fp16"):
        load_gpt(path)


def test_non_finite_message_names_a_few_keys(tmp_path, tiny_c2i):
    sd = {k: v.clone() for k, v in tiny_c2i.state_dict().items()}
    floats = [k for k, v in sd.items() if v.is_floating_point()]
    for k in floats:
        sd[k].view(-1)[0] = float("nan")
    path = tmp_path / "all_nan.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=f"and {len(floats) - 4} more"):
        load_gpt(path, override=TINY)


def test_vq_with_non_finite_weight_is_refused(tmp_path, tiny_vq):
    sd = {k: v.clone() for k, v in tiny_vq.state_dict().items()}
    sd["quantize.embedding.weight"][0, 0] = float("nan")
    path = tmp_path / "vq_ds16_c2i.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match="quantize.embedding.weight"):
        load_vq(path)


def test_t5_with_non_finite_weight_is_refused_by_both_readers(golden, tmp_path):
    from safetensors.torch import save_file

    from arsample.models.t5 import load_t5, read_t5_checked
    from arsample.models.t5.files import find_t5_files, read_t5_encoder_state

    state = read_t5_encoder_state(find_t5_files(golden / "t5_tiny"))
    key = next(k for k in state if k.startswith("encoder.block.0.") and state[k].dim() == 2)
    state = {k: v.clone().contiguous() for k, v in state.items()}
    state[key][0, 0] = float("inf")
    path = tmp_path / "t5_corrupt.safetensors"
    save_file(state, path)
    for reader in (read_t5_checked, load_t5):
        with pytest.raises(CheckpointError, match=f"'t5_corrupt.safetensors' holds NaN or infinite weights.*{key}"):
            reader(path)


def test_pt_with_flipped_bytes_is_refused(tmp_path, tiny_c2i):
    """Bytes of a tensor overwritten inside the .pt archive (torch does not check zip checksums)."""
    sd = tiny_c2i.state_dict()
    path = tmp_path / "c2i_flipped.pt"
    torch.save({"model": sd}, path)
    data = bytearray(path.read_bytes())
    target = sd["norm.weight"].numpy().tobytes()
    at = data.find(target)
    assert at > 0 and data.find(target, at + 1) < 0
    data[at + 8: at + 12] = b"\xff\xff\xff\xff"  # a NaN in float32
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"'c2i_flipped.pt' holds NaN or infinite weights \(norm.weight\)"):
        load_gpt(path, override=TINY)
