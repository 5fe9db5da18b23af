"""Reading and writing checkpoint files safely.

`.safetensors` files are read directly. Pickled `.pt`/`.pth`/`.bin` files are read
only through ``torch.load(weights_only=True)``, which refuses any pickle that
references something other than tensors and plain containers, so no code from
the file ever runs. The one extra type allowed is ``argparse.Namespace``, which
LlamaGen training checkpoints store under ``"args"``: it is a plain attribute
bag and builds no code.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import torch

from ..errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")

# Containers that training scripts wrap a state dict in, most specific first.
_WRAPPER_KEYS = ("model", "module", "state_dict", "ema")
# Prefixes left by DistributedDataParallel and torch.compile.
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")
# Non-persistent tensors some exports include; they are recomputed, never loaded.
_DROPPED_KEYS = ("freqs_cis",)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint into a flat, cleaned state dict and its string metadata.

    Unwraps ``{"model": ...}``-style containers, strips ``module.``/``_orig_mod.``
    prefixes and drops ``freqs_cis``. Metadata comes from the safetensors header
    (empty for pickles). Raises CheckpointError with an actionable message.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: '{path}'. Check the path and the file name.")
    if path.is_dir():
        raise CheckpointError(f"'{path}' is a folder; give the path of a .safetensors or .pt file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint '{path}' is empty (0 bytes); download or copy it again.")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        state, metadata = _read_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        state, metadata = _read_pickle(path), {}
    else:
        raise CheckpointError(
            f"Unsupported checkpoint type '{path.suffix}' for '{path.name}': "
            f"use .safetensors or a PyTorch .pt/.pth file."
        )
    return clean_state_dict(state, source=path.name), metadata


def clean_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap training containers and normalise key names (see read_checkpoint)."""
    state = obj
    while isinstance(state, Mapping) and not _looks_like_state_dict(state):
        inner = next((state[k] for k in _WRAPPER_KEYS if k in state and isinstance(state[k], Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not _looks_like_state_dict(state):
        raise CheckpointError(
            f"'{source}' holds no model weights (expected a dict of tensors, or one under "
            f"'model'/'module'/'state_dict'). Is this a model checkpoint?"
        )
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _STRIPPED_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        if key in _DROPPED_KEYS:
            continue
        cleaned[key] = value
    return cleaned


def _looks_like_state_dict(mapping: Mapping) -> bool:
    return any(isinstance(v, torch.Tensor) for v in mapping.values())


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"Cannot read '{path.name}' as safetensors ({exc}). The file is truncated or corrupted: "
            f"download or convert it again."
        ) from exc
    return state, metadata


def _read_pickle(path: Path) -> object:
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):
        raise CheckpointError(f"'{path.name}' is not a PyTorch checkpoint (neither a zip archive nor a pickle): "
                              f"the file is truncated or corrupted, or of another kind. Download it again.")
    if not zipfile.is_zipfile(path):
        # Legacy (pre-1.6) pickles cannot be memory-mapped; they are rare for these models.
        return _torch_load(path, mmap=False)
    try:
        return _torch_load(path, mmap=True)
    except CheckpointError:
        raise
    except RuntimeError:
        return _torch_load(path, mmap=False)


def _torch_load(path: Path, mmap: bool) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Refused to load '{path.name}': the pickle references Python objects other than tensors "
            f"({_first_line(exc)}). Loading it could run code, so it is not opened. Use a .safetensors "
            f"file, or re-save only the state dict from a trusted environment."
        ) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        if mmap and "mmap" in str(exc).lower():
            raise RuntimeError(str(exc)) from exc
        raise CheckpointError(
            f"Cannot read '{path.name}' ({_first_line(exc)}). The file is truncated or corrupted: "
            f"download it again."
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def save_safetensors_atomic(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                            metadata: Mapping[str, object] | None = None) -> None:
    """Write tensors to ``path`` via a temporary file, so a failure leaves nothing behind.

    Non-string metadata values are JSON-encoded.
    """
    from safetensors.torch import save_file

    path = Path(path)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent or "."))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        _make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_readable(path) -> None:
    """mkstemp creates 0600 files; give the final file the usual permissions (0666 minus umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def build_strict(cls, config, state: Mapping[str, torch.Tensor], filename: str, dtype: torch.dtype = torch.float32):
    """Instantiate ``cls(config)`` and load ``state`` into it (see check_state_matches).

    The module is built on the meta device first, so nothing is allocated twice;
    floating-point tensors are cast to ``dtype`` on the way in.
    """
    with torch.device("meta"):
        model = cls(config)
    check_state_matches(model, state, filename, config.name)
    floats = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(floats, strict=True, assign=True)
    return model


def check_state_matches(model: torch.nn.Module, state: Mapping[str, torch.Tensor], filename: str,
                        config_name: str = "") -> None:
    """Raise one CheckpointError listing every missing, unexpected or mis-shaped key of ``state``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        if wrong:
            parts.append("shape mismatch: " + _short([f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                                                      for k in wrong]))
        raise CheckpointError(f"'{filename or 'checkpoint'}' does not match the {config_name or 'inferred'} "
                              f"configuration ({'; '.join(parts)}). Pass the right config as an override.")


def _short(items: list[str], limit: int = 6) -> str:
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")
