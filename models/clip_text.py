"""Text features for STAR from the Stable Diffusion 2.1 text encoder (OpenCLIP ViT-H/14 text tower, HF export).

STAR (Davinci-XLab/STAR-T2I) reads its prompts with the ``text_encoder/`` (HF ``CLIPTextModel``) and
``tokenizer/`` (``CLIPTokenizer``) folders of the stable-diffusion-2-1 repository. The reference
(``models/text_encoder.py``: ``Text_Model.extract_text_features``, called from ``sample.py`` with
``prompts + [""] * B`` so that rows are [prompts…; empty prompts…]) does, per batch:

- tokenize with ``padding="max_length"``, ``max_length=77`` (the tokenizer's ``model_max_length``),
  ``truncation=True``. The SD-2.x tokenizer pads with ``"!"`` (id 0), not with the end token, and,
  because ``"!"`` is its pad token, a ``"!"`` typed in a prompt is also encoded as id 0 (huggingface
  diffusers issues #2201 and #4153, transformers issue #24925; reproduced by transformers 4.44 and 5.24);
- run the text model with the tokenizer's ``attention_mask`` (padding keys are masked, on top of
  the causal mask);
- keep ``last_hidden_state`` (the last block of the 23-block HF export, after ``final_layer_norm``),
  the ``attention_mask`` and ``pooler_output`` (that same state at the end token, without the
  text projection).

The HF export of SD-2.x has 23 blocks: the conversion drops OpenCLIP's 24th block (diffusers'
``convert_open_clip_checkpoint`` skips ``resblocks.23``), because SD-2 conditions on the penultimate block. So "the last hidden state" here is OpenCLIP's *penultimate*
block, after the final LayerNorm. ``nodes/clip_text_features.py`` gives the same features from
ComfyUI's 24-block SD2 CLIP.

Pure torch; ``transformers`` is needed only to read the folder (``pip install "comfyui-arsample[star]"``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError

log = logging.getLogger("arsample")

CLIP_MAX_LENGTH = 77  # tokens, start and end tokens included (the position table of every SD CLIP)
SD21_WIDTH = 1024  # width of SD-2.x's OpenCLIP ViT-H/14 text tower
SD2_PAD_TOKEN = "!"  # the SD-2.x tokenizer's pad token (id 0 in the CLIP BPE vocabulary)
INSTALL_HINT = 'pip install "comfyui-arsample[star]" (or: pip install transformers)'

_TOKENIZER_FILE_SETS = (("vocab.json", "merges.txt"), ("tokenizer.json",))
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_FP16_WEIGHT_FILES = ("model.fp16.safetensors", "model.safetensors.index.fp16.json", "pytorch_model.fp16.bin")


@dataclass
class TextFeatures:
    """What STAR reads from its text encoder for a batch of prompts (all tensors on the CPU).

    - ``states``: (B, 77, D) float32 — the text model's last hidden states after the final LayerNorm
      (HF ``last_hidden_state``), at every position, padding included.
    - ``mask``: (B, 77) bool — True for real tokens (start token, prompt tokens, end token), False for
      padding (the tokenizer's ``attention_mask``).
    - ``pooled``: (B, D) float32 — ``states`` at the end token (HF ``pooler_output``, no projection).
    - ``prompts``: the B prompts, as given.

    D is 1024 for the SD-2.1 text encoder. Raises ConfigError when the parts disagree.
    """

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    prompts: tuple[str, ...]

    def __post_init__(self) -> None:
        self.prompts = tuple(self.prompts)
        s, m, p = self.states, self.mask, self.pooled
        ok = (s.dim() == 3 and m.dim() == 2 and p.dim() == 2 and tuple(m.shape) == tuple(s.shape[:2])
              and tuple(p.shape) == (s.shape[0], s.shape[2]) and len(self.prompts) == s.shape[0])
        if not ok:
            raise ConfigError(f"Text features disagree: states {tuple(s.shape)}, mask {tuple(m.shape)}, pooled "
                              f"{tuple(p.shape)}, {len(self.prompts)} prompts; expected (B, T, D), (B, T), (B, D), B.")
        if s.dtype != torch.float32 or p.dtype != torch.float32 or m.dtype != torch.bool:
            raise ConfigError(f"Text features must be float32 states/pooled and a bool mask; got {s.dtype}, "
                              f"{p.dtype}, {m.dtype}.")

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def width(self) -> int:
        return int(self.states.shape[-1])


def require_transformers(purpose: str = "Reading the SD-2.1 text encoder for STAR"):
    """The ``transformers`` module, or ConfigError saying how to install it (``purpose``: what needs it, for the
    message)."""
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError(f"{purpose} needs the 'transformers' package, which is not installed ({exc}); install it "
                          f"with: {INSTALL_HINT}.") from None
    return transformers


def _has_tokenizer_files(folder: Path) -> bool:
    return any(all((folder / name).is_file() for name in names) for names in _TOKENIZER_FILE_SETS)


def find_sd21_folders(folder: str | Path) -> tuple[Path, Path]:
    """(text encoder folder, tokenizer folder) of an SD-2.1 text encoder on disk.

    Accepted layouts: the stable-diffusion-2-1 repository folder (``text_encoder/`` with ``config.json``
    + weights, ``tokenizer/`` with ``vocab.json`` + ``merges.txt``); one folder holding the
    ``config.json``, the weights and the tokenizer files; or the ``text_encoder/`` folder itself with
    ``tokenizer/`` beside it. Raises CheckpointError (one line: what is missing, where) otherwise.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise CheckpointError(f"SD-2.1 text encoder folder {what}: '{root}'. Give the stable-diffusion-2-1 folder "
                              f"(with text_encoder/ and tokenizer/) or a folder with config.json, the weights and "
                              f"the tokenizer files (vocab.json, merges.txt).")
    if (root / "text_encoder" / "config.json").is_file():
        encoder = root / "text_encoder"
    elif (root / "config.json").is_file():
        encoder = root
    else:
        raise CheckpointError(f"No text encoder config in '{root}': expected text_encoder/config.json (the "
                              f"stable-diffusion-2-1 layout) or config.json in the folder itself.")
    candidates = [root / "tokenizer", root, encoder.parent / "tokenizer"]
    tokenizer = next((c for c in candidates if c.is_dir() and _has_tokenizer_files(c)), None)
    if tokenizer is None:
        raise CheckpointError(f"Tokenizer files missing for the SD-2.1 text encoder in '{root}': expected vocab.json "
                              f"and merges.txt (or tokenizer.json) in '{root / 'tokenizer'}' or in '{root}'.")
    return encoder, tokenizer


def _read_text_config(encoder: Path) -> dict:
    try:
        config = json.loads((encoder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Unreadable text encoder config '{encoder / 'config.json'}': {exc}.") from None
    if config.get("model_type", "clip_text_model") != "clip_text_model" or "hidden_size" not in config:
        raise CheckpointError(f"'{encoder / 'config.json'}' is not a CLIP text model (model_type "
                              f"'{config.get('model_type')}'); STAR needs the SD-2.1 text_encoder (CLIPTextModel).")
    return config


def check_width(width: int, expected_width: int | None, source: str) -> None:
    """ConfigError unless ``width`` is ``expected_width`` (None: no check)."""
    if expected_width is not None and int(width) != int(expected_width):
        raise ConfigError(f"The text encoder {source} gives {width}-wide features; this model reads "
                          f"{expected_width}-wide ones (STAR: the SD-2.1 CLIP-H text encoder, {SD21_WIDTH}).")


def tokenize_clip(tokenizer, texts: Sequence[str], max_length: int = CLIP_MAX_LENGTH):
    """Token ids (N, max_length) int64 and mask (N, max_length) bool, as STAR's reference tokenizes.

    ``tokenizer`` is a transformers CLIP tokenizer; its pad token decides the padding id (``"!"`` = 0 for
    SD-2.x). Padding "max_length", truncation on (the end token is kept at the last position); a
    warning is logged for each prompt that is cut. Source: STAR-T2I ``Text_Model.extract_text_features``.
    """
    texts = list(texts)
    full = tokenizer(texts, truncation=False, verbose=False)["input_ids"]  # lengths only, no length warning
    for text, ids in zip(texts, full):
        if len(ids) > max_length:
            log.warning("Prompt is longer than %d CLIP tokens; the last %d tokens were dropped (as the reference "
                        "does): %.60s...", max_length - 2, len(ids) - max_length, text)
    enc = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return enc["input_ids"].long(), enc["attention_mask"].bool()


def check_prompts(prompts: Sequence[str] | str) -> list[str]:
    """The prompts as a list (one string: a list of one); ConfigError for none or a non-string."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ConfigError("No prompt to encode: give at least one prompt.")
    bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
    if bad:
        raise ConfigError(f"Prompts must be strings; got {', '.join(sorted(set(bad)))}.")
    return prompts


def split_rows(states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor,
               prompts: list[str]) -> tuple[TextFeatures, TextFeatures]:
    """Rows [prompts…; empty prompts…] → (prompt features, empty-prompt features), float32 on the CPU."""
    b = len(prompts)
    states, pooled, mask = states.float().cpu(), pooled.float().cpu(), mask.bool().cpu()
    cond = TextFeatures(states[:b].contiguous(), mask[:b].contiguous(), pooled[:b].contiguous(), tuple(prompts))
    null = TextFeatures(states[b:].contiguous(), mask[b:].contiguous(), pooled[b:].contiguous(), ("",) * b)
    return cond, null


class SD21TextEncoder:
    """The SD-2.1 tokenizer and text model (transformers), giving STAR's text features.

    Build it with :func:`load_sd21_text_encoder`; ``encode`` is STAR-T2I's ``extract_text_features``
    on ``prompts + [""] * len(prompts)``.
    """

    def __init__(self, tokenizer, model: torch.nn.Module, name: str = "sd21"):
        self.tokenizer = tokenizer
        self.model = model
        self.name = name

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompts: Sequence[str] | str) -> tuple[TextFeatures, TextFeatures]:
        """(features of the prompts, features of ``""`` repeated once per prompt): states (B, 77, D) float32,
        mask (B, 77) bool, pooled (B, D) float32, on the CPU. Prompts and empty prompts are encoded in
        one batch, as the reference does. Raises ConfigError for no prompt or a non-string prompt."""
        prompts = check_prompts(prompts)
        ids, mask = tokenize_clip(self.tokenizer, prompts + [""] * len(prompts))
        with torch.no_grad():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.long().to(self.device))
        return split_rows(out.last_hidden_state, mask, out.pooler_output, prompts)


def load_sd21_text_encoder(folder: str | Path, device: str | torch.device = "cpu",
                           expected_width: int | None = None) -> SD21TextEncoder:
    """Read the SD-2.1 tokenizer and text model (float32, eval mode) from ``folder`` (see
    :func:`find_sd21_folders` for the layouts) onto ``device``.

    Raises CheckpointError (folder, config, tokenizer files or weights missing or unreadable), ConfigError
    (``transformers`` not installed; ``expected_width`` given and not the encoder's width; a position table
    that is not 77 tokens long). Source: STAR-T2I ``Text_Model.__init__`` (``CLIPTokenizer`` and
    ``CLIPTextModel.from_pretrained`` of the SD-2.1 folder's ``tokenizer``/``text_encoder`` subfolders).
    """
    encoder_dir, tokenizer_dir = find_sd21_folders(folder)
    config = _read_text_config(encoder_dir)
    check_width(config["hidden_size"], expected_width, f"in '{encoder_dir}'")
    positions = config.get("max_position_embeddings", CLIP_MAX_LENGTH)
    if positions != CLIP_MAX_LENGTH:
        raise ConfigError(f"The text encoder in '{encoder_dir}' reads {positions} tokens; STAR's SD-2.1 encoder reads "
                          f"{CLIP_MAX_LENGTH}.")
    if any((encoder_dir / f).is_file() for f in _WEIGHT_FILES):
        variant = None
    elif any((encoder_dir / f).is_file() for f in _FP16_WEIGHT_FILES):
        variant = "fp16"
    else:
        raise CheckpointError(f"No text encoder weights in '{encoder_dir}': expected model.safetensors (or "
                              f"pytorch_model.bin, or their .fp16 variants).")
    transformers = require_transformers()
    try:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise CheckpointError(f"Could not read the tokenizer in '{tokenizer_dir}': {_first_line(exc)}") from None
    try:
        kwargs = {"variant": variant} if variant else {}
        model = transformers.CLIPTextModel.from_pretrained(str(encoder_dir), local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise CheckpointError(f"Could not read the text encoder in '{encoder_dir}': {_first_line(exc)}") from None
    model = model.float().eval().requires_grad_(False).to(device)
    return SD21TextEncoder(tokenizer, model, name=Path(folder).name)


def encode_sd21_prompts(folder: str | Path, prompts: Sequence[str] | str, device: str | torch.device = "cpu",
                        expected_width: int | None = None) -> tuple[TextFeatures, TextFeatures]:
    """Prompts → STAR's text features with the SD-2.1 text encoder in ``folder``.

    Returns (features of the prompts, features of the empty prompt ``""`` repeated once per prompt —
    the unconditional rows of guidance). Each: states (B, 77, D) float32, mask (B, 77) bool, pooled
    (B, D) float32, on the CPU. Loads the encoder on every call; keep a :class:`SD21TextEncoder`
    (:func:`load_sd21_text_encoder`) to encode several batches. Errors: see
    :func:`load_sd21_text_encoder` and :meth:`SD21TextEncoder.encode`.
    Source: STAR-T2I ``sample.py`` + ``models/text_encoder.py`` (``extract_text_features``).
    """
    prompts = check_prompts(prompts)
    return load_sd21_text_encoder(folder, device, expected_width).encode(prompts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
