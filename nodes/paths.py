"""Model folders: models/autoregressive (models) and models/vq (tokenizers), plus the embedded models.

A diffusers model folder kept whole in models/autoregressive/ (Meissonic: ``Meissonic/transformer/``,
``Meissonic/vqvae/``, ...) is listed file by file by ComfyUI. The tokenizer loader offers its ``vqvae/`` files
too (the entry is the path under models/autoregressive/, e.g. ``Meissonic/vqvae/diffusion_pytorch_model.safetensors``),
so nobody has to copy the VQ into models/vq/; the model loader refuses its ``vqvae/`` and ``text_encoder/`` files
with a message that says which loader reads them.

A Janus-Pro release folder (``config.json`` + ``tokenizer.json`` + weights, as downloaded from Hugging Face) is ONE
entry in both loaders, ``Janus-Pro-1B/`` (its model and its VQ are read from the same folder), found in
models/autoregressive/ and in models/Janus-Pro/ (the folder the ComfyUI-Janus-Pro pack of CY-CHENYUE downloads to,
key ``Janus-Pro``), so a download made for that pack is reused as it is. Entries are paths under one of those roots,
searched in that order; the files inside a listed folder are not listed again.
"""

from __future__ import annotations

import json
import os
import re

import folder_paths

from ..errors import CheckpointError
from ..models import registry
from ..models.registry import EMBEDDED_PREFIX, MODEL, TOKENIZER
from ..models.sources import MEISSONIC_DOWNLOAD as MEISSONIC_REPO
from ..models.sources import not_in_folder, require_file_name

GPT_FOLDER = "autoregressive"
VQ_FOLDER = "vq"
JANUS_FOLDER = "Janus-Pro"  # models/Janus-Pro/<name>/: where CY-CHENYUE/ComfyUI-Janus-Pro keeps its downloads
JANUS_DOWNLOAD = ("huggingface-cli download deepseek-ai/Janus-Pro-1B --local-dir "
                  "ComfyUI/models/autoregressive/Janus-Pro-1B (or Janus-Pro-7B)")
_FOLDER_DEPTH = 2  # model folders are looked for this deep under each root (e.g. deepseek-ai/Janus-Pro-7B/)
_WEIGHT_FILE_PREFIXES = ("model.safetensors", "model-", "pytorch_model")  # a listed folder's own weight files
_ROLES = {GPT_FOLDER: ("gpt", MODEL), VQ_FOLDER: ("vq", TOKENIZER)}  # folder → (message role, registry role)
VQ_PART = "vqvae"  # the VQ component folder of a diffusers model folder (Meissonic's, aMUSEd's)
TEXT_PART = "text_encoder"  # its text encoder, which ComfyUI's own 'Load CLIP' reads from models/text_encoders/


def register_folders() -> None:
    """Register our folders with the usual checkpoint extensions, merging with extra_model_paths.yaml."""
    for name in (GPT_FOLDER, VQ_FOLDER):
        default = os.path.join(folder_paths.models_dir, name)
        exts = set(folder_paths.supported_pt_extensions)
        if name in folder_paths.folder_names_and_paths:
            paths, old_exts = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            folder_paths.folder_names_and_paths[name] = (paths, set(old_exts) | exts)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], exts)


def _folders(choice: str) -> list[str]:
    """The folder components of an entry (ComfyUI lists sub-folders with the OS separator)."""
    return [part for part in re.split(r"[\\/]+", choice) if part][:-1]


def in_part(choice: str, part: str) -> bool:
    """Whether the entry ``choice`` lies in a ``part`` folder (e.g. ``Meissonic/vqvae/...``)."""
    return part in _folders(choice)


def folder_roots() -> list[str]:
    """Where model folders (Janus-Pro releases) are looked for, in order: every models/autoregressive/ path, then
    every models/Janus-Pro/ path (registered by another pack or extra_model_paths.yaml, and the default one)."""
    roots = list(folder_paths.get_folder_paths(GPT_FOLDER))
    if JANUS_FOLDER in folder_paths.folder_names_and_paths:
        roots += folder_paths.get_folder_paths(JANUS_FOLDER)
    roots.append(os.path.join(folder_paths.models_dir, JANUS_FOLDER))
    return list(dict.fromkeys(roots))


def _is_janus_folder(path: str) -> bool:
    """Whether ``path`` holds the config.json of a Janus release, original (``model_type`` "multi_modality", with
    ``language_config``) or transformers (``model_type`` "janus", with ``text_config`` and ``vq_config``). A cheap
    look at one small file, for listing only: loading checks the folder fully (models/janus)."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("model_type") in ("multi_modality", "janus")
                                       or "language_config" in data or "gen_head_config" in data
                                       or ("text_config" in data and "vq_config" in data))


def model_folders() -> list[str]:
    """The model-folder entries (``Janus-Pro-1B/``, ``deepseek-ai/Janus-Pro-7B/``): folders under a root of
    ``folder_roots`` (at most two levels down) that hold a Janus config.json, each once."""
    found: list[str] = []
    for root in folder_roots():
        stack = [((), 0)]
        while stack:
            parts, depth = stack.pop()
            here = os.path.join(root, *parts)
            try:
                children = sorted(os.listdir(here), reverse=True)
            except OSError:
                continue
            for child in children:
                path = os.path.join(here, child)
                if child.startswith(".") or not os.path.isdir(path):
                    continue
                if _is_janus_folder(path):
                    found.append("/".join((*parts, child)) + "/")
                elif depth + 1 < _FOLDER_DEPTH:
                    stack.append(((*parts, child), depth + 1))
    return sorted(dict.fromkeys(found), key=str.lower)


def choices(folder: str) -> list[str]:
    """Dropdown entries: the embedded models first, then the model folders (Janus-Pro, one entry each), then every
    checkpoint file in the folder (without the weight files of a listed folder); for the tokenizer loader also the
    files of models/autoregressive/ that lie in a ``vqvae/`` folder (a diffusers model folder kept whole there, as
    Meissonic's), under their path there."""
    embedded = [EMBEDDED_PREFIX + name for name in registry.embedded_names()]
    folders = model_folders()
    names = [n for n in folder_paths.get_filename_list(folder) if not _in_listed_folder(n, folders)]
    if folder == VQ_FOLDER:
        known = set(names)
        names += [n for n in folder_paths.get_filename_list(GPT_FOLDER) if in_part(n, VQ_PART) and n not in known]
    return embedded + folders + names


def _in_listed_folder(name: str, folders: list[str]) -> bool:
    """Whether the file entry ``name`` is a weight file (or shard) directly inside a listed model folder."""
    parent, base = os.path.split(name.replace("\\", "/"))
    return parent + "/" in folders and base.startswith(_WEIGHT_FILE_PREFIXES)


def resolve_folder(folder: str, choice: str) -> str:
    """Absolute path of a model-folder entry (``Janus-Pro-1B/``), searched in ``folder_roots`` order; a readable error
    (where the folder goes and how to download it) when it is in none of them."""
    role = _ROLES[folder][0]
    parts = [p for p in re.split(r"[\\/]+", choice) if p]
    safe = bool(parts) and not any(p in (".", "..") or ":" in p for p in parts) and not os.path.isabs(choice)
    if safe:
        for root in folder_roots():
            path = os.path.join(root, *parts)
            if os.path.isdir(path):
                return path
    raise _missing_folder(choice, role)


def resolve(folder: str, choice: str | None) -> str:
    """Absolute path of a dropdown entry; a readable error (what is missing, where it goes, where to download it)
    when the entry is None, blank or not in ``folder`` (e.g. a workflow from another machine). A tokenizer entry
    in a ``vqvae/`` folder is looked up in models/autoregressive/ too; a model entry in a ``vqvae/`` or
    ``text_encoder/`` folder is refused with the loader that reads it."""
    role, registry_role = _ROLES[folder]
    choice = require_file_name(choice, role)
    if choice.startswith(EMBEDDED_PREFIX):
        return str(registry.embedded_files(choice)[1][registry_role])
    if choice.endswith(("/", "\\")):  # a model folder (Janus-Pro): its model and its VQ both come from it
        return resolve_folder(folder, choice)
    if folder == GPT_FOLDER:
        _refuse_other_parts(choice)
    path = folder_paths.get_full_path(folder, choice)
    if path is None and folder == VQ_FOLDER and in_part(choice, VQ_PART):
        path = folder_paths.get_full_path(GPT_FOLDER, choice)
        if path is None:
            raise _missing_vq_part(choice)
    if path is None:
        raise not_in_folder(choice, role)
    return path


def _root(choice: str, part: str) -> str:
    """The model folder above the ``part`` folder of an entry, as a path under models/autoregressive/."""
    folders = _folders(choice)
    return "/".join(folders[:folders.index(part)])


def _refuse_other_parts(choice: str) -> None:
    """A model-loader entry in the ``vqvae/`` or ``text_encoder/`` folder of a diffusers folder: which loader reads
    it, and which file of the folder this loader takes."""
    for part in (VQ_PART, TEXT_PART):
        if not in_part(choice, part):
            continue
        root = _root(choice, part)
        here = f"{root}/transformer/diffusion_pytorch_model.safetensors" if root else "the transformer/ file"
        if part == VQ_PART:
            where = "pick it in 'Load VQ Tokenizer' (vq_name)"
        else:
            where = ("put it in models/text_encoders/ and load it with ComfyUI's own 'Load CLIP' (type "
                     "stable_diffusion)")
        raise CheckpointError(f"'{choice}' (ckpt_name) is the {part}/ part of a model folder, not a model: {where}; "
                              f"here pick the folder's transformer ({here}).")


def _missing_folder(choice: str, role: str) -> CheckpointError:
    """The error for a model-folder entry that is in no root: the usual 'not in folder' message (what goes in the
    loader's folder, from where) and where a Janus-Pro folder goes."""
    janus = (f"a Janus-Pro folder goes whole, as downloaded, into models/{GPT_FOLDER}/ (or models/{JANUS_FOLDER}/, "
             f"shared with the ComfyUI-Janus-Pro pack): {JANUS_DOWNLOAD}")
    if "janus" in choice.lower():
        input_name = "ckpt_name" if role == "gpt" else "vq_name"
        return CheckpointError(f"The Janus-Pro folder '{choice}' ({input_name}) is not in models/{GPT_FOLDER}/ nor "
                               f"models/{JANUS_FOLDER}/: {janus}; then press R, or pick another model (e.g. "
                               f"embedded:tiny).")
    return CheckpointError(f"{not_in_folder(choice, role)} For a model folder: {janus}.")


def _missing_vq_part(choice: str) -> CheckpointError:
    """The error for a ``vqvae/`` entry that is not in models/autoregressive/: its folder, or the folder's
    ``vqvae/``, is missing."""
    root = _root(choice, VQ_PART)
    shown = f"models/{GPT_FOLDER}/{root}/" if root else f"models/{GPT_FOLDER}/"
    bases = folder_paths.get_folder_paths(GPT_FOLDER)
    has_root = bool(root) and any(os.path.isdir(os.path.join(base, root)) for base in bases)
    if has_root:
        what = (f"{shown} has no {VQ_PART}/ with this file (the folder's VQ model: diffusion_pytorch_model.safetensors "
                f"+ config.json). A Meissonic folder needs its {VQ_PART}/ beside transformer/: download it from "
                f"{MEISSONIC_REPO} into {shown}{VQ_PART}/")
    else:
        what = (f"there is no {shown}. Download the Meissonic folder (its transformer/ and {VQ_PART}/) from "
                f"{MEISSONIC_REPO} into {shown}")
    return CheckpointError(f"The VQ model '{choice}' (vq_name) is not there: {what} and press R, or pick another "
                           f"tokenizer (or embedded:tiny).")
