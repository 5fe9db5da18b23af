"""Model families, registered in one place so that hosts (nodes, CLI) never import a family package.

A family (``Family``) declares its name and decoding order; recognises its checkpoints (model
or tokenizer) from their keys; loads them; builds conditions from class ids or prompt
features; checks that a condition and a tokenizer fit a model; decodes tokens to images
through the result's layout and makes cheap previews from a sampler's ``SamplingState``;
and names its default entropy preset and its embedded models. Each family lives in its own
package (``models/<family>/family.py``, exporting ``FAMILY``) and is listed in ``_FAMILIES``.

Hosts use the lookup functions here (``load_model``, ``load_tokenizer``, ``family``,
``family_of_file``, ``embedded_files``) and the checks (``require_kind``, ``check_pair``,
``check_order``, ``check_prompt_width``, ``parse_classes``). What they pass along is
family-neutral: ``ModelInfo``, ``TokenizerInfo`` and ``Condition`` (whose ``value`` is the
family's own condition object). Pure torch; layouts and sampling states are duck-typed
(``samplers.layout.TokenLayout``, ``samplers.protocols.SamplingState``), so no family
imports the samplers.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, SamplingError
from .checkpoint import read_checkpoint

ORDERS = ("next-token", "masked", "next-scale")
CLASS, PROMPT = "class", "prompt"  # what a model is conditioned on
MODEL, TOKENIZER = "model", "tokenizer"  # the two roles of a family's files
EMBEDDED_PREFIX = "embedded:"  # how hosts list the models shipped inside the pack

# Packages under models/ with a family.py exporting FAMILY. A folder is read by the first family whose ``read_file``
# claims it: "janus" claims folders whose config.json is a Janus one, "meissonic" diffusers folders (a transformer/ or
# vqvae/ inside, or a diffusion_pytorch_model file).
_FAMILIES = ("llamagen", "var", "star", "janus", "meissonic")

# The kind check's words: what each kind of model is, what it takes, and how each host gives it.
_KIND_WORDS = {CLASS: ("class-to-image", "classes"), PROMPT: ("text-to-image", "a text prompt")}
_HOST_HINTS = {
    "node": {CLASS: "'Class Condition'", "t5": "'Text Condition (T5)'", "clip": "'Text Condition (CLIP)'",
             "own": "'Text Condition (Janus-Pro)' (the model reads the prompt itself, no text encoder)"},
    "cli": {CLASS: "--classes", "t5": "--prompt with --t5", "clip": "--prompt with --clip",
            "own": "--prompt (no text encoder)"},
}


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt model reads: ``length`` feature rows of ``width``, the prompt's rows at the
    ``align`` end (the rest masked), from the text encoder named in ``encoder`` (for messages) of
    ``encoder_kind`` (what hosts load: ``t5`` or ``clip``)."""

    length: int
    width: int
    encoder: str
    align: str = "left"
    # which text encoder hosts must load: "t5" (FLAN-T5-XL), "clip" (CLIP ViT-H/14), or "own": none, the model
    # tokenises prompt strings itself (Janus-Pro) and hosts build its condition with ``Family.text_condition``
    encoder_kind: str = "t5"
    clip_features: str = ""  # which CLIP-H features: "" (STAR's, SD-2.1) or "meissonic" (hidden_states[-2] + projection)


@dataclass(frozen=True)
class ModelInfo:
    """What hosts know about a loaded model without touching its weights (made by its family).

    ``layout`` is the model's token maps ((h, w), ...) in storage order; ``preset`` its default
    entropy-temperature preset; ``class_names`` (class models) one name per class id, or None.
    """

    family: str
    name: str
    kind: str  # CLASS | PROMPT
    vocab_size: int
    layout: tuple[tuple[int, int], ...]
    num_classes: int = 0
    class_names: tuple[str, ...] | None = None
    prompt: PromptSpec | None = None
    preset: str = "llamagen"


@dataclass(frozen=True)
class TokenizerInfo:
    """What hosts know about a loaded tokenizer: its family, name and codebook size."""

    family: str
    name: str
    codebook_size: int


@dataclass(frozen=True)
class Condition:
    """What to generate, one image per row: ``value`` is the family's own condition object."""

    family: str
    kind: str  # CLASS | PROMPT
    value: Any
    names: tuple[str, ...]  # one display name per sample (class name or prompt)

    @property
    def batch_size(self) -> int:
        return len(self.names)


@dataclass
class Loaded:
    """A loaded model or tokenizer (``module``) with its family and info."""

    family: "Family"
    module: torch.nn.Module
    info: ModelInfo | TokenizerInfo


class Family:
    """One model family's registry entry. Subclasses implement the methods that raise here."""

    name = ""  # registry key, e.g. "llamagen"
    title = ""  # for messages, e.g. "LlamaGen"
    order = "next-token"  # one of ORDERS
    preset = "llamagen"  # default entropy preset
    needs_tokenizer = False  # True when sampling itself needs the tokenizer (next-scale models)
    tokenizer_family = ""  # the family whose tokenizer decodes this family's tokens ("" = this one)
    embedded_roles: dict[str, str] = {}  # {MODEL: key, TOKENIZER: key} of its files in models.embedded, if any

    def tokenizer_families(self) -> tuple[str, ...]:
        """The families whose tokenizers decode this family's tokens (default: ``tokenizer_family`` or this one)."""
        return (self.tokenizer_family or self.name,)

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str | None:
        """MODEL, TOKENIZER, or None when the state dict is not one of this family's."""
        raise NotImplementedError

    def read_file(self, path: str | os.PathLike, role: str = MODEL) -> tuple[dict, dict] | None:
        """(state, metadata) of a file or folder the generic reader refuses but this family knows how to open
        (a training snapshot that nests the weights deeper, a diffusers folder whose ``role`` part is asked
        for), else None."""
        return None

    def complete_metadata(self, path: str | os.PathLike, state: Mapping[str, torch.Tensor],
                          metadata: dict[str, str]) -> dict[str, str]:
        """``metadata`` of a file the generic reader read, completed from files beside it if this family keeps
        its configuration there (a diffusers ``config.json``); unchanged by default."""
        return metadata

    def build_model(self, state, metadata, filename: str, *, dtype, device, image_size: int | None = None,
                    tokenizer: torch.nn.Module | None = None, override: Mapping | None = None) -> torch.nn.Module:
        """The model from a state dict; ``image_size`` overrides its size (``tokenizer`` gives the scale);
        ``override``: configuration fields by the family's own names, taken as they are (``arsample convert``)."""
        raise NotImplementedError

    def build_tokenizer(self, state, metadata, filename: str, *, dtype, device) -> torch.nn.Module:
        raise NotImplementedError

    def model_info(self, model: torch.nn.Module, name: str, path: str | os.PathLike | None) -> ModelInfo:
        """Facts about ``model``; ``path`` (its source file) decides class names and preset."""
        raise NotImplementedError

    def tokenizer_info(self, tokenizer: torch.nn.Module, name: str) -> TokenizerInfo:
        raise NotImplementedError

    def embedded_models(self) -> tuple[str, ...]:
        """Names of the models of this family shipped inside the pack."""
        from . import embedded  # the embedded package imports this module

        return embedded.embedded_names(self.name) if self.embedded_roles else ()

    def embedded_files(self, name: str) -> dict[str, Path]:
        """{MODEL: path, TOKENIZER: path} of an embedded model."""
        if not self.embedded_roles:
            raise CheckpointError(f"{self.title} ships no embedded model '{name}'.")
        from . import embedded

        paths = embedded.embedded_paths(name)
        return {role: paths[key] for role, key in self.embedded_roles.items()}

    def embedded_source(self, path: str | os.PathLike | None) -> str | None:
        """The embedded model whose model file ``path`` is (links resolved), or None."""
        if path is None:
            return None
        real = os.path.realpath(path)
        return next((n for n in self.embedded_models() if os.path.realpath(self.embedded_files(n)[MODEL]) == real),
                    None)

    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info: ModelInfo, ids: Sequence[int], names: Sequence[str] | None = None) -> Condition:
        raise NotImplementedError

    def prompt_condition(self, info: ModelInfo, features: torch.Tensor, mask: torch.Tensor,
                         prompts: Sequence[str], pooled: torch.Tensor | None = None, null=None) -> Condition:
        """Prompt features (B, length, width) aligned as ``info.prompt.align`` says, with their mask (B, length);
        ``pooled`` (B, width) and ``null`` (the empty prompt's (states, mask, pooled)) for encoders that give them
        and models that read them (STAR)."""
        raise NotImplementedError

    def text_condition(self, model: torch.nn.Module, info: ModelInfo, prompts: Sequence[str], host: str = "cli",
                       **options) -> Condition:
        """A condition from plain prompt strings (one per image), for models that tokenise prompts themselves
        (``info.prompt.encoder_kind`` "own", e.g. Janus-Pro); ``model`` is the loaded module, ``host`` ('node' or
        'cli') picks the words of the kind check, ``options`` are the family's own. Models that read text-encoder
        features build theirs with ``prompt_condition`` instead, so by default this refuses."""
        require_kind(info, PROMPT, host)
        raise SamplingError(f"{info.name} reads {info.prompt.encoder} features, not prompt text: encode the prompt "
                            f"with that text encoder first.")

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        """Family-specific check that a condition of the right kind fits the model (ids, shapes)."""

    def check_condition(self, info: ModelInfo, cond: Condition, host: str) -> None:
        """Refuse a condition made for another family, of the other kind, or that does not fit."""
        if cond.family != info.family:
            raise SamplingError(f"The conditioning was made for a {family(cond.family).title} model but {info.name} "
                                f"is a {self.title} model: build the conditioning from this model.")
        require_kind(info, cond.kind, host)
        self.check_fit(info, cond)

    # -- tokens and pictures ----------------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        """Refuse a tokenizer whose codebook is not the model's vocabulary."""
        raise NotImplementedError

    def decode(self, tokenizer: torch.nn.Module, tokens: torch.Tensor, layout) -> torch.Tensor:
        """Tokens (B, N) in ``layout`` order → images (B, 3, H, W) float32, nominally [-1, 1]."""
        raise NotImplementedError

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        """The token maps of ``num_tokens`` tokens saved without their layout (e.g. a tokens .npy file)."""
        raise NotImplementedError

    def preview(self, tokenizer: torch.nn.Module, state, layout) -> np.ndarray | None:
        """A cheap RGB uint8 (H, W, 3) picture of the first sample of a SamplingState, or None."""
        return None

    def sampling_model(self, model: torch.nn.Module, tokenizer: torch.nn.Module | None = None):
        """What the sampler of this family's order drives (next-scale families add the tokenizer)."""
        return model


# -- lookups -----------------------------------------------------------------------------------
_loaded: dict[str, Family] = {}


def families() -> dict[str, Family]:
    """Every registered family by name (imported on first use, so no family imports another)."""
    if not _loaded:
        for package in _FAMILIES:
            entry = importlib.import_module(f"{__package__}.{package}.family").FAMILY
            _loaded[entry.name] = entry
    return _loaded


def family(name: str) -> Family:
    """The family registered under ``name``."""
    known = families()
    if name not in known:
        raise ConfigError(f"Unknown model family '{name}'. Known: {', '.join(known)}.")
    return known[name]


def recognise(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[Family, str] | None:
    """(family, MODEL or TOKENIZER) of a state dict, or None when no family knows it."""
    for entry in families().values():
        role = entry.recognise(state, metadata)
        if role is not None:
            return entry, role
    return None


def family_of_file(path: str | os.PathLike) -> tuple[Family, str]:
    """(family, role) of a checkpoint file; CheckpointError when no family recognises it."""
    state, metadata = read_model_file(path)
    return _recognised(state, metadata, Path(path).name)


def read_model_file(path: str | os.PathLike, role: str = MODEL) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state, metadata) of a checkpoint: the generic reader (``checkpoint.read_checkpoint``), or, for a file or
    folder it refuses, the first family that knows the layout (``Family.read_file``, asked for the ``role``
    part); else the generic error."""
    try:
        state, metadata = read_checkpoint(path)
    except CheckpointError as error:
        for entry in families().values():
            found = entry.read_file(path, role)
            if found is not None:
                return found
        raise error
    for entry in families().values():
        metadata = entry.complete_metadata(path, state, metadata)
    return state, metadata


def _recognised(state, metadata, filename: str) -> tuple[Family, str]:
    found = recognise(state, metadata)
    if found is None:
        titles = ", ".join(f.title for f in families().values())
        raise CheckpointError(f"'{filename}' is not a model or tokenizer of any family this pack knows ({titles}). "
                              f"Check that it is the file you meant to load.")
    return found


def load_model(path: str | os.PathLike, *, dtype="fp32", device="cpu", image_size: int | None = None,
               tokenizer: Loaded | None = None, name: str | None = None) -> Loaded:
    """Read a checkpoint once, find its family, build the model and its info.

    ``name`` is how hosts show it (default: the file name); a tokenizer file given as a model
    is refused by its family with a message that says which loader to use, and a ``tokenizer`` of
    another family is refused before the model is built.
    """
    state, metadata = read_model_file(path)
    entry, _ = _recognised(state, metadata, Path(path).name)
    if tokenizer is not None and tokenizer.family.name not in entry.tokenizer_families():
        raise ConfigError(f"{tokenizer.info.name} is a {tokenizer.family.title} tokenizer but {Path(path).name} is a "
                          f"{entry.title} model: use the tokenizer the model was trained with.")
    module = entry.build_model(state, metadata, Path(path).name, dtype=dtype, device=device, image_size=image_size,
                               tokenizer=None if tokenizer is None else tokenizer.module)
    del state
    return Loaded(entry, module, entry.model_info(module, name or Path(path).name, path))


def load_tokenizer(path: str | os.PathLike, *, dtype="fp32", device="cpu", name: str | None = None) -> Loaded:
    """Read a tokenizer checkpoint (or the tokenizer part of a folder a family knows) once, find its family,
    build it and its info."""
    state, metadata = read_model_file(path, TOKENIZER)
    entry, _ = _recognised(state, metadata, Path(path).name)
    module = entry.build_tokenizer(state, metadata, Path(path).name, dtype=dtype, device=device)
    del state
    return Loaded(entry, module, entry.tokenizer_info(module, name or Path(path).name))


def embedded_names() -> list[str]:
    """Names of every embedded model (e.g. ['tiny']); hosts list them as ``embedded:<name>``."""
    return [n for entry in families().values() for n in entry.embedded_models()]


def embedded_files(name: str) -> tuple[Family, dict[str, Path]]:
    """(family, {MODEL: path, TOKENIZER: path}) of an embedded model (``tiny`` or ``embedded:tiny``)."""
    key = name[len(EMBEDDED_PREFIX):] if name.startswith(EMBEDDED_PREFIX) else name
    for entry in families().values():
        if key.lower() in entry.embedded_models():
            return entry, entry.embedded_files(key.lower())
    raise CheckpointError(f"Unknown embedded model '{name}'. Known: {', '.join(embedded_names())}.")


# -- checks shared by every host ---------------------------------------------------------------
def require_kind(info: ModelInfo, kind: str, host: str) -> None:
    """The one kind check: a class model needs classes, a prompt model a prompt; ``host`` ('node' or
    'cli') picks the words that say what to give instead."""
    if kind == info.kind:
        return
    what, _ = _KIND_WORDS[info.kind]
    hint = _HOST_HINTS[host][CLASS if info.kind == CLASS else info.prompt.encoder_kind]
    raise SamplingError(f"{info.name} is a {what} model; use {hint}, not {_KIND_WORDS[kind][1]}.")


def check_pair(source, tokenizer: TokenizerInfo) -> None:
    """Refuse a tokenizer that cannot decode ``source``'s tokens (a ModelInfo, or anything with
    ``family`` and ``vocab_size``, such as sampled tokens): another family, or another codebook."""
    if tokenizer.family not in family(source.family).tokenizer_families():
        raise ConfigError(f"{tokenizer.name} is a {family(tokenizer.family).title} tokenizer but the tokens come from "
                          f"a {family(source.family).title} model: use the tokenizer the model was trained with.")
    family(source.family).check_vocab(source.vocab_size, tokenizer)


def check_order(info: ModelInfo, method) -> None:
    """Refuse a sampler (a method value with ``.order``) made for another decoding order than the model's."""
    entry = family(info.family)
    if method.order != entry.order:
        raise SamplingError(f"The sampler '{method.label(False)}' decodes {method.order} but {info.name} is a "
                            f"{entry.title} model that decodes {entry.order}: connect a {entry.order} sampler.")


def check_prompt_width(info: ModelInfo, width: int, host: str, encoder_kind: str = "t5") -> None:
    """Refuse a class model (the kind check), a text encoder of another kind, and one whose features are not
    as wide as the model reads, before encoding."""
    check_text_encoder(info, encoder_kind, host)
    if width != info.prompt.width:
        raise ConfigError(f"The text encoder gives {width}-wide features but {info.name} reads "
                          f"{info.prompt.width}-wide captions. {family(info.family).title} prompt models need "
                          f"{info.prompt.encoder}.")


# How each host gives each kind of text encoder.
_ENCODER_HINTS = {
    "node": {"t5": "'Load T5 Text Encoder' into 'Text Condition (T5)'",
             "clip": "ComfyUI's 'Load CLIP' (type stable_diffusion, an SD 2.x text encoder) into 'Text Condition (CLIP)'",
             "own": "the prompt text alone (the model tokenises it itself; no text encoder)"},
    "cli": {"t5": "--t5 PATH (the flan-t5-xl folder, or one .safetensors of its encoder)",
            "clip": "--clip PATH (the Stable Diffusion 2.1 folder, or its text_encoder/ and tokenizer/)",
            "own": "--prompt alone (the model tokenises it itself; no text encoder)"},
}


def check_text_encoder(info: ModelInfo, encoder_kind: str, host: str) -> None:
    """Refuse a class model (the kind check) and a text encoder of another kind than the model reads
    ("t5" or "clip"), saying which one to give on this host."""
    require_kind(info, PROMPT, host)
    wanted = info.prompt.encoder_kind
    if encoder_kind != wanted:
        raise ConfigError(f"{info.name} reads {info.prompt.encoder}, not a {encoder_kind.upper()} text encoder: "
                          f"give {_ENCODER_HINTS[host][wanted]}.")


def check_class_ids(info: ModelInfo, ids: Sequence[int]) -> None:
    """Refuse class ids the model does not know."""
    for idx in ids:
        if not 0 <= int(idx) < info.num_classes:
            raise SamplingError(f"Class id out of range: {int(idx)}; {info.name} knows 0..{info.num_classes - 1}.")


def parse_classes(text: str, info: ModelInfo) -> tuple[list[int], list[str]]:
    """'207, 360' or 'golden retriever, 360' → ids and display names (the model's class names if it has them)."""
    names = list(info.class_names or [])
    lookup = {n.lower(): i for i, n in enumerate(names)}
    ids = []
    for part in [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]:
        if part.lstrip("-").isdigit():
            ids.append(int(part))
        elif part.lower() in lookup:
            ids.append(lookup[part.lower()])
        else:
            hint = f" Known names include: {', '.join(names[:10])}..." if names else " Use class ids."
            raise SamplingError(f"Unknown class '{part}' for {info.name}.{hint}")
    if not ids:
        raise SamplingError("No class given: type one or more class ids or names, separated by commas.")
    check_class_ids(info, ids)
    return ids, [names[i] if i < len(names) else str(i) for i in ids]


def imagenet_class_names() -> tuple[str, ...] | None:
    """The 1000 ImageNet class names when torchvision is importable (ComfyUI installs it), else None."""
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except Exception:  # noqa: BLE001 - names are a convenience; ids always work
        return None
    return tuple(_IMAGENET_CATEGORIES)
