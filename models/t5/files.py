"""Finding and reading a T5 encoder on disk: one weights file, or a Hugging Face model folder.

A Hugging Face folder (``config.json`` + ``model.safetensors`` or sharded
``model-0000N-of-0000M.safetensors`` / ``pytorch_model*.bin``, plus the tokenizer
files) may hold the whole encoder-decoder model; only the encoder weights are read,
tensor by tensor, so a 3 B-parameter FLAN-T5-XL folder costs the encoder's memory only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import CheckpointError
from ..checkpoint import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, read_checkpoint

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class T5Files:
    """Where a T5 encoder's weights, config and tokenizer are."""

    name: str
    weights: list[Path]
    hf_config: dict | None
    tokenizer: Path | None


def _is_encoder_key(key: str) -> bool:
    return key == "shared.weight" or (key.startswith("encoder.") and key != "encoder.embed_tokens.weight")


def find_t5_files(path: str | Path, tokenizer: str | Path | None = None) -> T5Files:
    """Locate the files of a T5 encoder given a weights file or a Hugging Face folder.

    The tokenizer is ``tokenizer`` when given, else ``tokenizer.json`` in the
    folder (or beside the single file), else None (the caller decides).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"T5 encoder not found: '{path}'. Give a .safetensors file or a Hugging Face "
                              f"folder such as flan-t5-xl/ (config.json + model weights + tokenizer.json).")
    if path.is_dir():
        weights = _folder_weights(path)
        config_file = path / "config.json"
        hf_config = json.loads(config_file.read_text()) if config_file.exists() else None
        folder = path
    else:
        weights, hf_config, folder = [path], _config_from_metadata(path), path.parent
    found = Path(tokenizer) if tokenizer else (folder / TOKENIZER_FILE)
    if tokenizer and not found.exists():
        raise CheckpointError(f"Tokenizer file not found: '{found}'.")
    return T5Files(path.name.rstrip("/"), weights, hf_config, found if found.exists() else None)


def _config_from_metadata(path: Path) -> dict | None:
    """The config `arsample convert` stores in a single encoder file (as Hugging Face names it), or None."""
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("t5_config")
    except Exception:  # noqa: BLE001 - unreadable files are reported when the weights are read
        return None
    if not raw:
        return None
    c = json.loads(raw)
    proj = ("gated-" if c["gated"] else "") + ("gelu" if c["activation"] == "gelu_tanh" else "relu")
    return {"vocab_size": c["vocab_size"], "d_model": c["d_model"], "d_kv": c["d_kv"], "num_heads": c["num_heads"],
            "d_ff": c["d_ff"], "num_layers": c["num_layers"], "feed_forward_proj": proj,
            "relative_attention_num_buckets": c["relative_buckets"],
            "relative_attention_max_distance": c["relative_max_distance"], "layer_norm_epsilon": c["eps"]}


def _folder_weights(folder: Path) -> list[Path]:
    for pattern in ("model.safetensors", "model-*-of-*.safetensors", "*.safetensors", "pytorch_model.bin",
                    "pytorch_model-*-of-*.bin"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    raise CheckpointError(f"No model weights in '{folder}': expected model.safetensors, "
                          f"model-0000N-of-0000M.safetensors or pytorch_model*.bin from the Hugging Face repo.")


def read_t5_encoder_state(files: T5Files) -> dict[str, torch.Tensor]:
    """The encoder's tensors (``shared.weight`` and ``encoder.*``) from all weight files; decoder keys are skipped."""
    state: dict[str, torch.Tensor] = {}
    for file in files.weights:
        if file.suffix.lower() in SAFETENSORS_SUFFIXES:
            state.update(_read_safetensors_keys(file))
        elif file.suffix.lower() in PICKLE_SUFFIXES:
            whole, _ = read_checkpoint(file)  # weights_only + mmap: untouched tensors are never read
            state.update({k: v for k, v in whole.items() if _is_encoder_key(k) or k == "encoder.embed_tokens.weight"})
        else:
            raise CheckpointError(f"Unsupported T5 weights file '{file.name}': use .safetensors or .bin.")
    # The input embedding is tied: some exports store it under the encoder's name only.
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    state.pop("encoder.embed_tokens.weight", None)
    if "shared.weight" not in state or not any(k.startswith("encoder.block.") for k in state):
        raise CheckpointError(f"'{files.name}' holds no T5 encoder (no 'shared.weight' / 'encoder.block.*' "
                              f"tensors). Is it a text encoder of another kind, or a GPT/VQ file?")
    return state


def _read_safetensors_keys(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            keys = [k for k in f.keys() if _is_encoder_key(k) or k == "encoder.embed_tokens.weight"]
            return {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"Cannot read '{file.name}' as safetensors ({exc}). The file is truncated or "
                              f"corrupted: download it again.") from exc
