"""Load Janus-Pro's generation path from either release, reading only what generation needs.

Accepted sources:

- the release folder, original layout (``deepseek-ai/Janus-Pro-1B`` / ``-7B``: ``config.json``,
  ``tokenizer.json``, ``pytorch_model.bin`` or the shards named in ``pytorch_model.bin.index.json``, or their
  safetensors variant ``model.safetensors`` / ``model.safetensors.index.json``);
- the transformers-format folder (``JanusForConditionalGeneration``: ``config.json`` with ``text_config`` and
  ``vq_config``, ``tokenizer.json``, ``model.safetensors`` or its shards), key names mapped by ``keys.py``;
- one weight file of either layout, whose configuration is the ``config.json`` beside it or the file's own
  ``config`` metadata entry (a safetensors header holding the config.json text).

Pickles are read only with ``torch.load(weights_only=True)`` (``models.checkpoint.read_pickle``, memory-mapped),
and from safetensors only the wanted tensors are read, so the understanding tower, the text ``lm_head`` and
the VQ encoder never reach memory on the folder path. Every load is strict (``models.checkpoint.build_strict``):
one error names every missing, unexpected or mis-shaped key. Weights: fp32, bf16 or fp16.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Mapping

import torch

from ...errors import CheckpointError, ConfigError
from ..checkpoint import SAFETENSORS_SUFFIXES, build_strict, clean_state_dict, read_pickle
from ..dtypes import parse_dtype
from ..llamagen.config import infer_vq_config
from .config import DEFAULT_DOWNSAMPLE, DEFAULT_GRID, is_janus_config, janus_config, parse_config_json
from .keys import has_generation_parts, looks_like_janus, model_key, original_name, vq_downsample, vq_key, wanted
from .model import JanusGenerator
from .prompt import JanusPromptTokenizer
from .vq import JanusVQ

DOWNLOAD = "huggingface.co/deepseek-ai/Janus-Pro-1B (or Janus-Pro-7B)"
CONFIG_KEY = "config"  # metadata entry holding the config.json text
TOKENIZER_KEY = "janus_tokenizer"  # metadata entry holding the path of tokenizer.json
DOWNSAMPLE_KEY = "janus_vq_downsample"  # metadata entry: pixels per token of the release's VQ
RELEASE_KEY = "janus_release"  # metadata entry: the folder a state was read from (``read_release``)
# In order of preference: the safetensors variant, then the original pickles.
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                "pytorch_model.bin")
MODEL, TOKENIZER = "model", "tokenizer"  # the registry's role names
_SHARD = re.compile(r"-\d{5}-of-(\d{5})\.", re.I)
_ROLE_KEYS: dict[str, Callable[[str], str | None]] = {MODEL: model_key, TOKENIZER: vq_key}


def is_release_folder(path: str | os.PathLike) -> bool:
    """True for a folder (or a weight index json) of a Janus release: its config.json is a Janus one, or, with no
    config.json, its weights have Janus key names (so that the missing file is what the error names)."""
    path = Path(path)
    folder = path.parent if path.is_file() and path.name.endswith(".index.json") else path
    if not folder.is_dir():
        return False
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            return is_janus_config(json.loads(cfg.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return False
    try:
        return looks_like_janus(_stored_keys(folder))
    except CheckpointError:
        return False


def read_release(path: str | os.PathLike, role: str = MODEL) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state, metadata) of the ``role`` part (MODEL: language model + gen embed/aligner/head; TOKENIZER: the VQ
    decoder) of a release folder (or its weight index json). The state is in the original release's names and
    holds only that part; the metadata holds the config.json text, the tokenizer.json path (MODEL) and the VQ's
    pixels per token. CheckpointError names what is missing and where to download it."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise CheckpointError(f"'{path}' does not exist. Give the Janus-Pro folder as downloaded from {DOWNLOAD}.")
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"'{folder.name}' has no config.json (the model's heads, RoPE θ and sizes are read from "
                              f"it): download the whole folder from {DOWNLOAD}.")
    tokenizer = folder / "tokenizer.json"
    if role == MODEL and not tokenizer.is_file():
        raise CheckpointError(f"'{folder.name}' has no tokenizer.json (Janus-Pro tokenises its prompts with it): "
                              f"download the whole folder from {DOWNLOAD}.")
    files, all_keys = _weight_files(path if path.is_file() else folder)
    metadata = {CONFIG_KEY: cfg.read_text(encoding="utf-8"), RELEASE_KEY: str(folder)}
    if tokenizer.is_file():
        metadata[TOKENIZER_KEY] = str(tokenizer)
    state: dict[str, torch.Tensor] = {}
    stored: list[str] = []
    for file in files:
        part, keys = _read_part(file, role)
        state.update(part)
        stored += keys
    names = [original_name(k) for k in (all_keys if all_keys is not None else stored)]
    downsample = vq_downsample(names)
    if downsample:
        metadata[DOWNSAMPLE_KEY] = str(downsample)
    return state, metadata


def complete_metadata(path: str | os.PathLike, metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata of a single weight file completed from its folder: config.json and tokenizer.json beside it."""
    folder = Path(path).parent
    out = dict(metadata)
    cfg, tokenizer = folder / "config.json", folder / "tokenizer.json"
    if cfg.is_file():
        out[CONFIG_KEY] = cfg.read_text(encoding="utf-8")
    if tokenizer.is_file() and TOKENIZER_KEY not in out:
        out[TOKENIZER_KEY] = str(tokenizer)
    return out


def janus_from_state_dict(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None,
                          filename: str = "", *, dtype="fp32", device="cpu", image_size: int | None = None,
                          downsample: int | None = None, tokenizer: str | os.PathLike | None = None,
                          override: Mapping | None = None) -> JanusGenerator:
    """The generator (``model.JanusGenerator``) from a state dict of either layout, strictly, in eval mode.

    ``image_size`` (px; default: 24 tokens per side, 384 px with VQ-16) over ``downsample`` (pixels per token:
    given, else the metadata's, else counted from the VQ decoder's keys, else 16) sets the grid; ``override``
    may give ``image_size`` or ``grid_size``. ``tokenizer`` (else the metadata's tokenizer.json path) is loaded
    for prompts. ConfigError for an understanding-only model or a config that cannot work; CheckpointError for
    a missing config or keys that do not match it.
    """
    metadata = dict(metadata or {})
    override = dict(override or {})
    unknown = set(override) - {"image_size", "grid_size"}
    if unknown:
        raise ConfigError(f"Janus-Pro takes only image_size or grid_size as overrides; got "
                          f"{', '.join(sorted(unknown))}.")
    image_size = override.get("image_size", image_size)
    names = [original_name(k) for k in state]
    label = filename or "checkpoint"
    _refuse_shard(label)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"'{label}' comes without its config.json (heads, RoPE θ and sizes are read from it): "
                              f"load the release folder, or put config.json beside the file.")
    data = parse_config_json(metadata[CONFIG_KEY], f"the config.json of '{label}'")
    ds = int(downsample or metadata.get(DOWNSAMPLE_KEY) or 0) or vq_downsample(names) or DEFAULT_DOWNSAMPLE
    grid = int(override["grid_size"]) if "grid_size" in override else \
        DEFAULT_GRID if image_size is None else _grid(int(image_size), ds)
    config = janus_config(data, grid_size=grid, downsample=ds, source=f"the config.json of '{label}'")
    if not any(n.startswith("language_model.model.") for n in names):
        raise CheckpointError(f"'{label}' holds no Janus-Pro language model (only its VQ?): load it with the "
                              f"tokenizer loader, or give the whole release.")
    if not has_generation_parts(names):
        raise ConfigError(f"'{label}' has no generation weights (gen_embed, gen_aligner, gen_head): it is an "
                          f"understanding-only model and cannot generate images. Use Janus-Pro-1B or -7B.")
    own = _role_state(state, MODEL)
    model = build_strict(JanusGenerator, config, own, label, dtype=parse_dtype(dtype))
    model = model.to(device=device).eval().requires_grad_(False)
    path = tokenizer or metadata.get(TOKENIZER_KEY)
    model.prompt_tokenizer = JanusPromptTokenizer(path) if path else None
    return model


def vq_from_state_dict(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None,
                       filename: str = "", *, dtype="fp32", device="cpu") -> JanusVQ:
    """The generation VQ (``vq.JanusVQ``, decoder side) from the ``gen_vision_model.`` keys of either layout,
    strictly, in eval mode; its architecture from the tensor shapes (VQ-16 for the releases)."""
    own = _role_state(state, TOKENIZER)
    label = filename or "checkpoint"
    _refuse_shard(label)
    if "decoder.conv_in.weight" not in own or "quantize.embedding.weight" not in own:
        raise CheckpointError(f"'{label}' holds no Janus-Pro image decoder (gen_vision_model.decoder, "
                              f"quantize.embedding): give the whole release folder.")
    config = infer_vq_config(own, {})
    own.setdefault("quantize.codebook_used", torch.zeros(65536))  # a training-time tracker; not read
    model = build_strict(JanusVQ, config, own, label, dtype=parse_dtype(dtype))
    return model.to(device=device).eval().requires_grad_(False)


def load_janus(path: str | os.PathLike, *, dtype="fp32", device="cpu", image_size: int | None = None
               ) -> JanusGenerator:
    """The generator from a release folder (either layout) or one weight file (see the module docstring)."""
    state, metadata, name = _read(path, MODEL)
    return janus_from_state_dict(state, metadata, name, dtype=dtype, device=device, image_size=image_size)


def load_janus_vq(path: str | os.PathLike, *, dtype="fp32", device="cpu") -> JanusVQ:
    """The generation VQ from a release folder (either layout) or one weight file."""
    state, metadata, name = _read(path, TOKENIZER)
    return vq_from_state_dict(state, metadata, name, dtype=dtype, device=device)


# -- reading ------------------------------------------------------------------------------------
def _read(path, role) -> tuple[dict, dict, str]:
    from ..checkpoint import read_checkpoint

    path = Path(path)
    if path.is_dir() or path.name.endswith(".index.json"):
        state, metadata = read_release(path, role)
        return state, metadata, path.name
    state, metadata = read_checkpoint(path)
    return state, complete_metadata(path, metadata), path.name


def _weight_files(path: Path) -> tuple[list[Path], list[str] | None]:
    """The weight files to read and, for a sharded checkpoint, every key name of its index."""
    if path.is_file():  # an index json given directly
        return _from_index(path)
    for name in WEIGHT_FILES:
        candidate = path / name
        if candidate.is_file():
            return _from_index(candidate) if name.endswith(".index.json") else ([candidate], None)
    raise CheckpointError(f"'{path.name}' has no weights (one of {', '.join(WEIGHT_FILES)}): download them from "
                          f"{DOWNLOAD}.")


def _stored_keys(folder: Path) -> list[str]:
    """Every key name of the folder's weights (index, safetensors header, or a memory-mapped pickle); [] if none."""
    try:
        files, keys = _weight_files(folder)
    except CheckpointError:
        return []
    if keys is not None:
        return keys
    file = files[0]
    if file.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                return list(f.keys())
        except (SafetensorError, OSError, ValueError, RuntimeError):
            return []
    return list(clean_state_dict(read_pickle(file), source=file.name))


def _from_index(index: Path) -> tuple[list[Path], list[str]]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"Cannot read the weight index '{index.name}' ({exc}); download it again.") from None
    files = []
    for name in dict.fromkeys(weight_map.values()):
        file = index.parent / name
        if not file.is_file():
            raise CheckpointError(f"'{index.parent.name}' lacks the shard '{name}' named in {index.name}: download "
                                  f"it from {DOWNLOAD}.")
        files.append(file)
    return files, list(weight_map)


def _read_part(file: Path, role: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of ``file`` that ``role`` reads (under their original-layout names), and every key it stores."""
    role_key = _ROLE_KEYS[role]
    if file.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                keys = list(f.keys())
                return {original_name(k): f.get_tensor(k) for k in wanted(keys, role_key)}, keys
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"Cannot read '{file.name}' as safetensors ({exc}): the file is truncated or "
                                  f"corrupted; download it again.") from None
    state = clean_state_dict(read_pickle(file), source=file.name)  # memory-mapped: unread tensors stay on disk
    return {original_name(k): state[k] for k in wanted(state, role_key)}, list(state)


# -- building -----------------------------------------------------------------------------------
def _role_state(state: Mapping[str, torch.Tensor], role: str) -> dict[str, torch.Tensor]:
    return {ours: state[k] for k, ours in wanted(state, _ROLE_KEYS[role]).items()}


def _refuse_shard(label: str) -> None:
    """CheckpointError for one file of a sharded checkpoint (``…-0000k-of-0000n.*``, n > 1) given alone."""
    found = _SHARD.search(Path(label).name)
    if found and int(found[1]) > 1:
        raise CheckpointError(f"'{label}' is one shard of a sharded checkpoint: give its folder (or its index json) "
                              f"instead.")


def _grid(image_size: int, downsample: int) -> int:
    if image_size <= 0 or image_size % downsample:
        raise ConfigError(f"Image size {image_size} px is not a positive multiple of the VQ's {downsample} px per "
                          f"token; pick e.g. {max(1, image_size // downsample) * downsample}.")
    return image_size // downsample
