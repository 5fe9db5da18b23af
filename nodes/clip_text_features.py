"""STAR's text features from a ComfyUI CLIP object (the SD-2.x text encoder), equal to the library's.

``features_from_comfy_clip`` is for a node's ``execute``: it takes the CLIP that ComfyUI's own loaders
give for an SD-2.x text encoder ("Load CLIP" with type ``stable_diffusion`` on the HF-format
``text_encoder/model.safetensors`` or an OpenCLIP-format file, or the CLIP output of an SD-2.x
checkpoint) and returns what ``models.clip_text.encode_sd21_prompts`` returns for the SD-2.1 folder.

How ComfyUI's SD2 CLIP differs from STAR's reference encoder, and what is done about it (facts from
ComfyUI 0.3.75 ``comfy/text_encoders/sd2_clip.py``, ``comfy/sd1_clip.py``, ``comfy/clip_model.py``):

- ComfyUI always builds OpenCLIP's full 24-block tower; the HF export STAR reads has 23 blocks (the
  24th was dropped by the SD-2 conversion). STAR's "last hidden state" is therefore ComfyUI's
  *penultimate* block after the final LayerNorm, which is also ComfyUI's SD2 default layer. It is
  asked for explicitly (``intermediate_output``), whatever "CLIP Set Last Layer" chose. The 24th
  block is never used (it is absent — left unloaded — when the HF-format file is loaded).
- ComfyUI's pooled output is taken from the 24th block and projected; STAR's is the chosen block's
  state at the end token, without projection: it is gathered here from the same states.
- ComfyUI's tokenizer parses prompt weights ``(word:1.2)``, embeddings and splits long prompts into
  77-token chunks; its BPE (``comfy/sd1_tokenizer``) is the CLIP vocabulary SD-2.x uses. Here the
  raw BPE tokenizer inside it is used on a copy that gets the SD-2.x pad token ``"!"`` (id 0, as
  ComfyUI's SD2 padding and the SD-2.1 tokenizer files), then padded and truncated to 77 tokens
  exactly as the library does (shared ``tokenize_clip``).
- ComfyUI's SD2 CLIP runs without an attention mask by default; STAR's reference passes the padding
  mask. The mask is passed here.

Nothing of the CLIP object is changed: no options are set (the text model is called directly with
the block to return), the tokenizer is copied. The model is loaded through ComfyUI's memory manager
(``clip.load_model()``, as encoding does), so LoRA patches on the CLIP apply.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..models.clip_text import (
    CLIP_MAX_LENGTH,
    SD2_PAD_TOKEN,
    SD21_WIDTH,
    TextFeatures,
    check_prompts,
    check_width,
    split_rows,
    tokenize_clip,
)

SKIPPED_FINAL_BLOCKS = 1  # OpenCLIP ViT-H has 24 blocks; SD-2.x (and the HF export STAR reads) ends at the 23rd

_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # ComfyUI SD2 tokenizer → our copy


def _sd2_parts(clip):
    """(ComfyUI's SD2 CLIP-H model, its tokenizer wrapper), or ConfigError naming what was connected."""
    model = getattr(getattr(clip, "cond_stage_model", None), "clip_h", None)
    tokenizer = getattr(getattr(clip, "tokenizer", None), "clip_h", None)
    if model is None or tokenizer is None or not hasattr(model, "transformer") or not hasattr(tokenizer, "tokenizer"):
        kind = type(getattr(clip, "cond_stage_model", clip)).__name__
        raise ConfigError(f"STAR reads the SD-2.x text encoder (OpenCLIP ViT-H, {SD21_WIDTH} wide), but the CLIP "
                          f"given is '{kind}'; load the SD-2.1 text encoder with 'Load CLIP' (type: stable_diffusion) "
                          f"or use the CLIP of an SD-2.x checkpoint.")
    return model, tokenizer


def sd2_tokenizer(comfy_tokenizer):
    """A transformers CLIP tokenizer equal to SD-2.1's: a copy of the BPE tokenizer inside ComfyUI's SD2
    tokenizer wrapper with ``"!"`` (id 0) as its pad token. Cached per wrapper; the wrapper is not changed.
    Raises ConfigError when the pad id is not the one ComfyUI's SD2 CLIP pads with."""
    cached = _TOKENIZERS.get(comfy_tokenizer)
    if cached is not None:
        return cached
    tokenizer = copy.deepcopy(comfy_tokenizer.tokenizer)
    tokenizer.add_special_tokens({"pad_token": SD2_PAD_TOKEN})
    comfy_pad = getattr(comfy_tokenizer, "pad_token", 0)
    if tokenizer.pad_token_id != comfy_pad:
        raise ConfigError(f"Unexpected CLIP vocabulary: '{SD2_PAD_TOKEN}' is token {tokenizer.pad_token_id}, ComfyUI's "
                          f"SD2 CLIP pads with {comfy_pad}; this is not the SD-2.x tokenizer.")
    _TOKENIZERS[comfy_tokenizer] = tokenizer
    return tokenizer


def features_from_comfy_clip(clip, prompts: Sequence[str] | str,
                             expected_width: int | None = None) -> tuple[TextFeatures, TextFeatures]:
    """STAR's text features from ComfyUI's SD2 CLIP: (features of the prompts, features of ``""`` repeated once per
    prompt — the unconditional rows), as ``models.clip_text.encode_sd21_prompts`` gives them for the SD-2.1 folder.

    Each: states (B, 77, D) float32 — the output of the second-to-last block of ComfyUI's tower (the HF export's
    last) after the final LayerNorm, computed with the padding mask; mask (B, 77) bool (True: start, prompt and end
    tokens); pooled (B, D) float32 — states at the end token, no projection. On the CPU. Prompts and empty prompts
    run in one batch, as the reference (STAR-T2I ``sample.py`` + ``Text_Model.extract_text_features``).

    Raises ConfigError: not an SD-2.x CLIP, a width other than ``expected_width``, a tower without 77 positions or
    with fewer than 2 blocks, no prompt / a non-string prompt.
    """
    prompts = check_prompts(prompts)
    model, comfy_tokenizer = _sd2_parts(clip)
    text_model = model.transformer.text_model
    width = int(text_model.final_layer_norm.weight.shape[0])
    check_width(width, expected_width, "connected as 'clip'")
    positions = int(text_model.embeddings.position_embedding.weight.shape[0])
    blocks = len(text_model.encoder.layers)
    if positions != CLIP_MAX_LENGTH or blocks <= SKIPPED_FINAL_BLOCKS:
        raise ConfigError(f"This SD2 CLIP has {positions} positions and {blocks} blocks; STAR's text encoder reads "
                          f"{CLIP_MAX_LENGTH} tokens with OpenCLIP ViT-H's 24 blocks.")
    tokenizer = sd2_tokenizer(comfy_tokenizer)
    ids, mask = tokenize_clip(tokenizer, prompts + [""] * len(prompts))
    clip.load_model()
    device = model.transformer.get_input_embeddings().weight.device
    with torch.no_grad():
        _, states, _ = text_model(input_tokens=ids.to(device), attention_mask=mask.long().to(device),
                                  intermediate_output=blocks - 1 - SKIPPED_FINAL_BLOCKS,
                                  final_layer_norm_intermediate=True, dtype=torch.float32)
        # the end token: the first position of the largest id (SD-2.1's config, eos_token_id 2, pools this way;
        # the end token 49407 is the largest id of the CLIP vocabulary)
        end = ids.argmax(dim=-1).to(states.device)
        pooled = states[torch.arange(states.shape[0], device=states.device), end]
    return split_rows(states, mask, pooled, prompts)
