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
# Wrappers nest at most a few levels deep (e.g. {"model": {"module": ...}}); deeper is not a checkpoint.
_MAX_WRAPPER_DEPTH = 8
# At most this many offending keys are named when weights are not finite.
_NONFINITE_SHOWN = 4


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
        state, metadata = read_pickle(path), {}
    else:
        raise CheckpointError(
            f"Unsupported checkpoint type '{path.suffix}' for '{path.name}': "
            f"use .safetensors or a PyTorch .pt/.pth file."
        )
    return clean_state_dict(state, source=path.name), metadata


def clean_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap training containers and normalise key names (see read_checkpoint).

    A wrapper (``model``, ``module``, ``state_dict``, then ``ema``, the order of
    LlamaGen's own scripts) that holds weights wins over the level around it, so
    optimiser state, step counters, RNG-state tensors or ``args`` beside it do not
    matter. Key prefixes ``module.`` and ``_orig_mod.`` are stripped in any order
    and number; tensors only, ``freqs_cis`` dropped.
    """
    state = _find_state_dict(obj)
    if state is None:
        raise CheckpointError(
            f"'{source}' holds no model weights (expected a dict of tensors, or one under "
            f"'model'/'module'/'state_dict'/'ema'). Is this a model checkpoint?"
        )
    cleaned: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        name = strip_wrapper_prefixes(key)
        if name in _DROPPED_KEYS:
            continue
        if name in cleaned:
            raise CheckpointError(f"'{source}' holds '{name}' twice (as '{original[name]}' and '{key}'): it mixes "
                                  f"two models. Re-save only the state dict of the one you want.")
        cleaned[name], original[name] = value, key
    return cleaned


def strip_wrapper_prefixes(key: str) -> str:
    """``key`` without the ``module.``/``_orig_mod.`` prefixes of DDP and torch.compile, in any order."""
    while True:
        prefix = next((p for p in _STRIPPED_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            return key
        key = key[len(prefix):]


def _find_state_dict(obj: object, depth: int = 0) -> Mapping | None:
    """The state dict inside ``obj``: the first wrapper entry that holds one, else ``obj`` if it holds tensors."""
    if not isinstance(obj, Mapping) or depth > _MAX_WRAPPER_DEPTH:
        return None
    for key in _WRAPPER_KEYS:
        found = _find_state_dict(obj.get(key), depth + 1)
        if found is not None:
            return found
    return obj if _looks_like_state_dict(obj) else None


def _looks_like_state_dict(mapping: Mapping) -> bool:
    """True when some string key of ``mapping`` holds a tensor."""
    return any(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


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


def read_pickle(path: Path) -> object:
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

    Non-string metadata values are JSON-encoded. Inside ``outputs.batch()`` the file appears only
    when the whole batch is written.
    """
    from safetensors.torch import save_file

    from ..outputs import write_file

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _make_readable(path) -> None:
    """mkstemp creates 0600 files; give the final file the usual permissions (0666 minus umask)."""
    from ..outputs import make_readable

    make_readable(path)


def build_strict(cls, config, state: Mapping[str, torch.Tensor], filename: str, dtype: torch.dtype = torch.float32):
    """Instantiate ``cls(config)`` and load ``state`` into it (see check_state_matches).

    The module is built on the meta device first, so nothing is allocated twice;
    floating-point tensors are checked to be finite (see check_finite) and cast to
    ``dtype`` on the way in.
    """
    with torch.device("meta"):
        model = cls(config)
    check_state_matches(model, state, filename, config.name)
    check_finite(state, filename)
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


def check_finite(state: Mapping[str, torch.Tensor], filename: str) -> None:
    """Raise a CheckpointError when a floating-point tensor of ``state`` holds NaN or inf.

    Torch does not verify the checksums of a ``.pt`` archive, so flipped bytes load
    silently; overflowed fp16 conversions look the same. One vectorised
    ``isfinite().all()`` per tensor, read back in a single sync.
    """
    keys = [k for k, v in state.items() if v.is_floating_point() and v.numel()]
    if not keys:
        return
    flags = torch.stack([torch.isfinite(state[k]).all().cpu() for k in keys]).tolist()
    bad = [k for k, ok in zip(keys, flags) if not ok]
    if bad:
        raise CheckpointError(f"'{filename or 'checkpoint'}' holds NaN or infinite weights "
                              f"({_short(bad, _NONFINITE_SHOWN)}): the file is corrupted, or overflowed when it was "
                              f"converted to fp16. Download it again, or convert it from the original in bf16 or fp32.")


def _short(items: list[str], limit: int = 6) -> str:
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")
