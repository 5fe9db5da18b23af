"""Meissonic's text features from its CLIP ViT-H/14 text encoder (``CLIPTextModelWithProjection``, HF layout).

Meissonic (MeissonFlow/Meissonic) reads prompts with the ``text_encoder/`` (HF ``CLIPTextModelWithProjection``:
OpenCLIP ViT-H/14's text tower, 24 blocks, width 1024, with ``text_projection`` 1024 → 1024) and ``tokenizer/``
(``CLIPTokenizer``) folders of its diffusers repository. Facts from the reference (viiika/Meissonic
``src/pipeline.py``, ``Pipeline.__call__``; the same in ``train/dataset_utils.py`` ``tokenize_prompt`` /
``encode_prompt``):

- tokenize with ``padding="max_length"``, ``max_length=77`` (hard-coded), ``truncation=True``. Meissonic's
  ``tokenizer/special_tokens_map.json`` has ``"pad_token": "!"`` (id 0), as SD-2.x: padding is ``"!"``, not the
  end token, and a ``"!"`` typed in a prompt is also encoded as id 0. The tokenizer's pad token is set to ``"!"``
  here whatever the folder says (laion's CLIP-H tokenizer pads with ``<|endoftext|>``), so the features are those
  of Meissonic's tokenizer;
- run the text encoder on the token ids only: **no attention mask** (padding positions attend to each other under
  the causal mask, and their states are part of the features), ``output_hidden_states=True``;
- ``encoder_hidden_states = hidden_states[-2]``: the output of block 23 of 24, *without* the final LayerNorm;
  ``prompt_embeds = text_embeds``: the final LayerNorm's output at the end token (the first position of the
  largest id, 49407) times ``text_projection`` (no bias);
- no dtype handling: the features come out in the text encoder's dtype (fp32 in ``inference.py``, bf16 in
  ``inference_fp16.py``); here they are always returned as float32;
- with guidance (``guidance_scale > 1``) the negative prompt is encoded the same way, in its own batch; no negative
  prompt means ``""`` for every prompt, and ``""`` is *encoded* (start token, end token, 75 pads), not zeros.
  A string negative prompt is used once (one row, even for several prompts); here it is repeated once per
  prompt. The README/demo negative prompt is :data:`MEISSONIC_NEGATIVE_PROMPT`.

The reference scripts (``inference.py``, ``app.py``) read the text encoder from
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` ("using original text enc for stable sampling") and the tokenizer from
Meissonic's ``tokenizer/``; Meissonic's own ``text_encoder/`` has the same architecture. Either folder is accepted.

``nodes/clip_text_features.py`` (``meissonic_features_from_comfy_clip``) gives the same features from ComfyUI's
CLIP. Pure torch; ``transformers`` is needed only to read the folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError
from .clip_text import (
    _FP16_WEIGHT_FILES,
    _WEIGHT_FILES,
    CLIP_MAX_LENGTH,
    SD2_PAD_TOKEN,
    _first_line,
    _has_tokenizer_files,
    check_prompts,
    require_transformers,
    tokenize_clip,
)
from .dtypes import parse_dtype
from .meissonic.loader import HF_REPO

log = logging.getLogger("arsample")

MEISSONIC_WIDTH = 1024  # CLIP ViT-H/14 text width = projection width = Meissonic's text and pooled widths
MEISSONIC_BLOCKS = 24
MEISSONIC_PAD_TOKEN = SD2_PAD_TOKEN  # "!" (id 0): Meissonic's tokenizer/special_tokens_map.json
MEISSONIC_NEGATIVE_PROMPT = ("worst quality, low quality, low res, blurry, distortion, watermark, logo, signature, "
                             "text, jpeg artifacts, signature, sketch, duplicate, ugly, identifying mark")
_PURPOSE = "Reading Meissonic's text encoder"
_WHERE = f"the text_encoder/ and tokenizer/ folders of the Meissonic folder from {HF_REPO}"


@dataclass
class MeissonicTextFeatures:
    """What Meissonic's transformer reads from the text encoder for a batch of B prompts (tensors on the CPU).

    - ``states``: (B, 77, D) float32 — CLIP ``hidden_states[-2]`` (output of the second-to-last block, no final
      LayerNorm) at every position, padding included (the reference's ``encoder_hidden_states``).
    - ``pooled``: (B, P) float32 — CLIP ``text_embeds`` (final LayerNorm at the end token, then the text
      projection; the reference's ``prompt_embeds``, fed as ``pooled_projections``).
    - ``prompts``: the B prompts, as given.

    D = P = 1024 for Meissonic. Raises ConfigError when the parts disagree.
    """

    states: torch.Tensor
    pooled: torch.Tensor
    prompts: tuple[str, ...]

    def __post_init__(self) -> None:
        self.prompts = tuple(self.prompts)
        s, p = self.states, self.pooled
        if not (s.dim() == 3 and p.dim() == 2 and p.shape[0] == s.shape[0] == len(self.prompts)):
            raise ConfigError(f"Meissonic text features disagree: states {tuple(s.shape)}, pooled {tuple(p.shape)}, "
                              f"{len(self.prompts)} prompts; expected (B, T, D), (B, P), B.")
        if s.dtype != torch.float32 or p.dtype != torch.float32:
            raise ConfigError(f"Meissonic text features must be float32; got states {s.dtype}, pooled {p.dtype}.")

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def width(self) -> int:
        return int(self.states.shape[-1])


def negative_prompts(negative_prompt: str | Sequence[str] | None, count: int) -> list[str]:
    """The negative prompt once per prompt: a string (None: ``""``, the reference's default) repeated ``count``
    times, or a sequence of ``count`` strings. ConfigError otherwise."""
    if negative_prompt is None:
        negative_prompt = ""
    if isinstance(negative_prompt, str):
        return [negative_prompt] * count
    negs = list(negative_prompt)
    if len(negs) != count or not all(isinstance(n, str) for n in negs):
        raise ConfigError(f"Give one negative prompt (a string) or one string per prompt ({count}); got "
                          f"{len(negs)} item(s).")
    return negs


def find_meissonic_text_folders(folder: str | Path | Sequence[str | Path]) -> tuple[Path, Path]:
    """(text encoder folder, tokenizer folder) of Meissonic's text encoder on disk.

    ``folder``: the Meissonic folder (``text_encoder/`` with ``config.json`` + weights, ``tokenizer/`` with
    ``vocab.json`` + ``merges.txt``); the ``text_encoder/`` folder itself with ``tokenizer/`` beside it; one folder
    holding config, weights and tokenizer files (e.g. laion/CLIP-ViT-H-14-laion2B-s32B-b79K); or a pair
    (text encoder folder, tokenizer folder). Raises CheckpointError (one line: what is missing, where it goes).
    """
    if isinstance(folder, (tuple, list)):
        if len(folder) != 2:
            raise ConfigError(f"Give Meissonic's folder, or the pair (text_encoder folder, tokenizer folder); got "
                              f"{len(folder)} paths.")
        encoder, tokenizer = (Path(p).expanduser() for p in folder)
        if not (encoder / "config.json").is_file():
            raise CheckpointError(f"No config.json in the text encoder folder '{encoder}'; expected {_WHERE}.")
        if not (tokenizer.is_dir() and _has_tokenizer_files(tokenizer)):
            raise CheckpointError(f"Tokenizer files missing in '{tokenizer}': expected vocab.json and merges.txt "
                                  f"(or tokenizer.json), as in {_WHERE}.")
        return encoder, tokenizer
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise CheckpointError(f"Meissonic folder {what}: '{root}'. Give the Meissonic folder (with text_encoder/ and "
                              f"tokenizer/), downloaded from {HF_REPO}.")
    if (root / "text_encoder" / "config.json").is_file():
        encoder = root / "text_encoder"
    elif (root / "config.json").is_file():
        encoder = root
    else:
        raise CheckpointError(f"'{root}' has no text_encoder/ (Meissonic's CLIP ViT-H/14 text encoder: config.json + "
                              f"model.safetensors); it goes in the Meissonic folder, beside transformer/ and vqvae/, "
                              f"as downloaded from {HF_REPO}.")
    candidates = [root / "tokenizer", root, encoder.parent / "tokenizer"]
    tokenizer = next((c for c in candidates if c.is_dir() and _has_tokenizer_files(c)), None)
    if tokenizer is None:
        raise CheckpointError(f"Tokenizer files missing for Meissonic's text encoder in '{root}': expected vocab.json "
                              f"and merges.txt (or tokenizer.json) in '{root / 'tokenizer'}' (Meissonic's tokenizer/ "
                              f"from {HF_REPO}) or in '{root}'.")
    return encoder, tokenizer


def _text_config(encoder: Path) -> dict:
    """config.json as a CLIP text config (a full CLIP config: its ``text_config``, top-level ``projection_dim``)."""
    path = encoder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Unreadable text encoder config '{path}': {exc}.") from None
    kind = config.get("model_type", "clip_text_model")
    if kind == "clip" and isinstance(config.get("text_config"), dict):
        config = dict(config["text_config"], projection_dim=config.get("projection_dim",
                                                                       config["text_config"].get("projection_dim")))
    elif kind != "clip_text_model":
        raise CheckpointError(f"'{path}' is not a CLIP text model (model_type '{kind}'); Meissonic needs the "
                              f"text_encoder/ of {HF_REPO} (CLIPTextModelWithProjection).")
    return config


def check_meissonic_width(width: int, projection: int | None, expected_width: int | None, source: str) -> None:
    """ConfigError unless the text width and the projection width are ``expected_width`` (None: no check)."""
    if expected_width is None:
        return
    for name, value in (("text", width), ("pooled (projected)", projection)):
        if value is not None and int(value) != int(expected_width):
            raise ConfigError(f"The text encoder {source} gives {value}-wide {name} features; this Meissonic model "
                              f"reads {expected_width}-wide ones (Meissonic's CLIP ViT-H/14: {MEISSONIC_WIDTH}).")


def _wrong_encoder(source: str, why: str) -> ConfigError:
    return ConfigError(f"The text encoder {source} {why}: it is not Meissonic's CLIP ViT-H/14 "
                       f"(CLIPTextModelWithProjection, {MEISSONIC_BLOCKS} blocks + text_projection) - e.g. SD-2.x's "
                       f"text_encoder (CLIPTextModel, 23 blocks, no projection) is the wrong encoder; use the "
                       f"text_encoder/ of {HF_REPO}.")


def _check_structure(config: dict, source: str, expected_width: int | None) -> None:
    positions = config.get("max_position_embeddings", CLIP_MAX_LENGTH)
    if positions != CLIP_MAX_LENGTH:
        raise ConfigError(f"The text encoder {source} reads {positions} tokens; Meissonic's reads {CLIP_MAX_LENGTH}.")
    blocks = config.get("num_hidden_layers")
    if blocks is not None and blocks < 2:
        raise ConfigError(f"The text encoder {source} has {blocks} block(s); Meissonic reads the output of the "
                          f"second-to-last of {MEISSONIC_BLOCKS}.")
    check_meissonic_width(config.get("hidden_size", MEISSONIC_WIDTH), config.get("projection_dim"), expected_width,
                          source)


def meissonic_tokenizer(tokenizer):
    """``tokenizer`` (a transformers CLIP tokenizer) with Meissonic's pad token ``"!"`` (id 0), changed in place
    when the folder said otherwise. ConfigError when ``"!"`` is not id 0 (not the CLIP vocabulary)."""
    if tokenizer.pad_token != MEISSONIC_PAD_TOKEN:
        log.info("Tokenizer pad token %r replaced by Meissonic's %r.", tokenizer.pad_token, MEISSONIC_PAD_TOKEN)
        tokenizer.add_special_tokens({"pad_token": MEISSONIC_PAD_TOKEN})
    if tokenizer.pad_token_id != 0:
        raise ConfigError(f"Unexpected tokenizer vocabulary: '{MEISSONIC_PAD_TOKEN}' is token {tokenizer.pad_token_id}, "
                          f"Meissonic's tokenizer has it as 0; use the tokenizer/ of {HF_REPO}.")
    return tokenizer


class MeissonicTextEncoder:
    """Meissonic's tokenizer and text encoder (transformers ``CLIPTextModelWithProjection``).

    Build it with :func:`load_meissonic_text_encoder`; ``encode`` is the text part of the reference
    ``Pipeline.__call__`` (viiika/Meissonic ``src/pipeline.py``).
    """

    def __init__(self, tokenizer, model: torch.nn.Module, name: str = "meissonic"):
        self.tokenizer = meissonic_tokenizer(tokenizer)
        self.model = model
        self.name = name

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompts: Sequence[str] | str, negative_prompt: str | Sequence[str] | None = ""
               ) -> tuple[MeissonicTextFeatures, MeissonicTextFeatures]:
        """(features of the prompts, features of the negative prompt once per prompt).

        Each: states (B, 77, D) float32 = ``hidden_states[-2]``, pooled (B, P) float32 = ``text_embeds``, on the CPU.
        Tokens: padding "max_length" to 77 with ``"!"``, truncation; no attention mask. ``negative_prompt``: a string
        (``""``/None: the empty prompt, the reference's default — encoded, not zeros) or one string per prompt.
        Rows do not interact (no mask, no batch statistics), so prompts and negatives run in one batch.
        Raises ConfigError for no prompt, a non-string prompt or a negative prompt list of the wrong length.
        """
        prompts = check_prompts(prompts)
        negs = negative_prompts(negative_prompt, len(prompts))
        unique = list(dict.fromkeys(negs))
        ids, _ = tokenize_clip(self.tokenizer, prompts + unique)
        with torch.no_grad():
            out = self.model(input_ids=ids.to(self.device), output_hidden_states=True, return_dict=True)
        states, pooled = out.hidden_states[-2].float().cpu(), out.text_embeds.float().cpu()
        b = len(prompts)
        rows = torch.tensor([b + unique.index(n) for n in negs])
        cond = MeissonicTextFeatures(states[:b].contiguous(), pooled[:b].contiguous(), tuple(prompts))
        neg = MeissonicTextFeatures(states[rows].contiguous(), pooled[rows].contiguous(), tuple(negs))
        return cond, neg


def _weight_variant(encoder: Path, dtype: torch.dtype) -> str | None:
    full = any((encoder / f).is_file() for f in _WEIGHT_FILES)
    half = any((encoder / f).is_file() for f in _FP16_WEIGHT_FILES)
    if not (full or half):
        raise CheckpointError(f"No text encoder weights in '{encoder}': expected model.safetensors (or "
                              f"model.fp16.safetensors, pytorch_model.bin), as in the text_encoder/ of {HF_REPO}.")
    return "fp16" if half and (not full or dtype != torch.float32) else None


def _has_projection_key(encoder: Path, variant: str | None) -> bool | None:
    """Whether the single safetensors weight file has ``text_projection.weight`` (None: not a single safetensors file,
    decided after loading)."""
    file = encoder / ("model.fp16.safetensors" if variant else "model.safetensors")
    if not file.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            names = f.keys()
        return any(k.endswith("text_projection.weight") for k in names)
    except Exception:  # noqa: BLE001 - let transformers report an unreadable file
        return None


def load_meissonic_text_encoder(folder: str | Path | Sequence[str | Path], device: str | torch.device = "cpu",
                                dtype: str | torch.dtype = "fp32", *,
                                expected_width: int | None = None) -> MeissonicTextEncoder:
    """Read Meissonic's tokenizer and text encoder (``CLIPTextModelWithProjection``, eval mode) onto ``device`` in
    ``dtype`` ("fp32" default, "bf16", "fp16"; the fp16 weight file is read for a half dtype when present).

    ``folder``: see :func:`find_meissonic_text_folders`. Raises CheckpointError (folder, config, tokenizer files or
    weights missing or unreadable) or ConfigError (``transformers`` not installed; a CLIP without text projection,
    e.g. SD-2.x's; a width other than ``expected_width``; a position table that is not 77 tokens long; fewer than
    2 blocks). Source: viiika/Meissonic ``inference.py`` (``CLIPTextModelWithProjection.from_pretrained``,
    ``CLIPTokenizer.from_pretrained(model_path, subfolder="tokenizer")``).
    """
    encoder_dir, tokenizer_dir = find_meissonic_text_folders(folder)
    torch_dtype = parse_dtype(dtype)
    source = f"in '{encoder_dir}'"
    _check_structure(_text_config(encoder_dir), source, expected_width)
    variant = _weight_variant(encoder_dir, torch_dtype)
    if _has_projection_key(encoder_dir, variant) is False:
        raise _wrong_encoder(source, "has no text projection (no text_projection.weight)")
    transformers = require_transformers(_PURPOSE)
    try:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise CheckpointError(f"Could not read the tokenizer in '{tokenizer_dir}': {_first_line(exc)}") from None
    try:
        kwargs = {"variant": variant} if variant else {}
        model, info = transformers.CLIPTextModelWithProjection.from_pretrained(
            str(encoder_dir), local_files_only=True, output_loading_info=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise CheckpointError(f"Could not read the text encoder in '{encoder_dir}': {_first_line(exc)}") from None
    missing = sorted(info.get("missing_keys", ()))
    if any("text_projection" in k for k in missing):
        raise _wrong_encoder(source, "has no text projection (no text_projection.weight)")
    if missing:
        raise CheckpointError(f"The text encoder {source} lacks {len(missing)} weight(s) ({', '.join(missing[:3])}"
                              f"{', ...' if len(missing) > 3 else ''}); download the text_encoder/ of {HF_REPO} again.")
    _check_structure(model.config.to_dict(), source, expected_width)
    model = model.to(dtype=torch_dtype).eval().requires_grad_(False).to(device)
    name = Path(folder).name if isinstance(folder, (str, Path)) else encoder_dir.name
    return MeissonicTextEncoder(tokenizer, model, name=name)


def encode_meissonic_prompts(folder: str | Path | Sequence[str | Path], prompts: Sequence[str] | str,
                             negative_prompt: str | Sequence[str] | None = "", device: str | torch.device = "cpu", *,
                             dtype: str | torch.dtype = "fp32", expected_width: int | None = None
                             ) -> tuple[MeissonicTextFeatures, MeissonicTextFeatures]:
    """Prompts → Meissonic's text features with the text encoder in ``folder``.

    Returns (features of the prompts, features of the negative prompt repeated once per prompt — the unconditional
    rows of guidance; ``""`` by default, as the reference; :data:`MEISSONIC_NEGATIVE_PROMPT` is the README's). Each:
    states (B, 77, D) float32 = ``hidden_states[-2]``, pooled (B, P) float32 = ``text_embeds``, on the CPU. Loads the
    encoder on every call; keep a :class:`MeissonicTextEncoder` (:func:`load_meissonic_text_encoder`) to encode
    several batches. Errors: see :func:`load_meissonic_text_encoder` and :meth:`MeissonicTextEncoder.encode`.
    Source: viiika/Meissonic ``src/pipeline.py`` ``Pipeline.__call__`` (text part).
    """
    prompts = check_prompts(prompts)
    negative_prompts(negative_prompt, len(prompts))
    encoder = load_meissonic_text_encoder(folder, device, dtype, expected_width=expected_width)
    return encoder.encode(prompts, negative_prompt)


__all__ = [
    "HF_REPO",
    "MEISSONIC_BLOCKS",
    "MEISSONIC_NEGATIVE_PROMPT",
    "MEISSONIC_PAD_TOKEN",
    "MEISSONIC_WIDTH",
    "MeissonicTextEncoder",
    "MeissonicTextFeatures",
    "check_meissonic_width",
    "encode_meissonic_prompts",
    "find_meissonic_text_folders",
    "load_meissonic_text_encoder",
    "meissonic_tokenizer",
    "negative_prompts",
]
