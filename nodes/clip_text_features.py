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

``meissonic_features_from_comfy_clip`` does the same for Meissonic (``models.meissonic_text``): "Load CLIP"
(type ``stable_diffusion``) on Meissonic's ``text_encoder/model.safetensors`` (HF layout, 24 blocks +
``text_projection.weight``; detected as SD2 CLIP-H) builds the same SD2 CLIP, and every weight loads. Meissonic reads
``hidden_states[-2]`` — ComfyUI's ``intermediate_output`` = blocks − 2 with ``final_layer_norm_intermediate=False``
(no final LayerNorm) — and ``text_embeds`` — ComfyUI's projected pooled output (final LayerNorm at the first end
token, times ``text_projection``), which needs the 24th block and the projection. The tokens are the library's
(``"!"`` padding, 77 tokens, shared ``tokenize_clip``), run **without** attention mask, as the reference. ComfyUI
builds 24 blocks and a projection for every SD2 CLIP but leaves what the file lacks unloaded (uninitialized memory,
"clip missing" in its log): SD-2.x's HF export (23 blocks, no projection) loads that way. The 24th block's and the
projection's weights are checked for what unloaded memory looks like (non-finite, constant — zeros —, huge or
denormal values) and such a CLIP is refused; the check is a heuristic (unloaded memory that happens to hold
plausible numbers passes). A full OpenCLIP ViT-H/14 text tower (e.g. the CLIP of an SD-2.x checkpoint, which keeps
the 24th block and the projection) is accepted: it is the architecture Meissonic's reference scripts load
(laion/CLIP-ViT-H-14-laion2B-s32B-b79K).
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
from ..models.meissonic_text import (
    HF_REPO,
    MEISSONIC_BLOCKS,
    MEISSONIC_WIDTH,
    MeissonicTextFeatures,
    check_meissonic_width,
    negative_prompts,
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


_MEISSONIC_LOAD_HINT = (f"load Meissonic's text_encoder/model.safetensors ({HF_REPO}) with 'Load CLIP' "
                        f"(type: stable_diffusion)")


def _meissonic_parts(clip):
    """(ComfyUI's SD2 CLIP-H model, its tokenizer wrapper), or ConfigError naming what was connected."""
    model = getattr(getattr(clip, "cond_stage_model", None), "clip_h", None)
    tokenizer = getattr(getattr(clip, "tokenizer", None), "clip_h", None)
    if model is None or tokenizer is None or not hasattr(model, "transformer") or not hasattr(tokenizer, "tokenizer"):
        kind = type(getattr(clip, "cond_stage_model", clip)).__name__
        raise ConfigError(f"Meissonic reads the CLIP ViT-H/14 text encoder ({MEISSONIC_WIDTH} wide, with projection), "
                          f"but the CLIP given is '{kind}'; {_MEISSONIC_LOAD_HINT}.")
    return model, tokenizer


def _looks_unloaded(weight: torch.Tensor) -> bool:
    """Whether a weight matrix looks like memory no file was loaded into: non-finite, constant (zeros of fresh
    pages, a fill pattern), huge, or mostly denormal floats (pointers read as floats). A heuristic."""
    w = weight.detach().float()
    if w.numel() < 2 or not bool(torch.isfinite(w).all()):
        return True
    a = w.abs()
    if float(w.max() - w.min()) == 0.0 or float(a.max()) > 1e4:
        return True
    nonzero = a > 0
    denormal = nonzero & (a < 1e-30)
    return bool(denormal.sum() * 2 > nonzero.sum())


def _check_meissonic_weights(transformer) -> None:
    """ConfigError when the 24th block or the text projection of ComfyUI's tower looks unloaded."""
    last = transformer.text_model.encoder.layers[-1]
    parts = {"text_projection": transformer.text_projection.weight}
    for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1",
                 "mlp.fc2"):
        module = last.get_submodule(name)
        parts[f"last block {name}"] = module.weight
    bad = [name for name, w in parts.items() if _looks_unloaded(w)]
    if bad:
        what = [w for w, hit in (("last (24th) block", any(b.startswith("last") for b in bad)),
                                 ("text projection", "text_projection" in bad)) if hit]
        raise ConfigError(f"This CLIP has no usable {' and '.join(what)} ({', '.join(bad[:2])}"
                          f"{', ...' if len(bad) > 2 else ''} not loaded): it is not Meissonic's "
                          f"text encoder (SD-2.x's HF text_encoder has 23 blocks and no projection); "
                          f"{_MEISSONIC_LOAD_HINT}.")


def meissonic_features_from_comfy_clip(clip, prompts: Sequence[str] | str, negative_prompt: str | Sequence[str] | None = "",
                                       expected_width: int | None = None
                                       ) -> tuple[MeissonicTextFeatures, MeissonicTextFeatures]:
    """Meissonic's text features from ComfyUI's SD2 CLIP: (features of the prompts, features of the negative prompt
    once per prompt), as ``models.meissonic_text.encode_meissonic_prompts`` gives them for the Meissonic folder.

    Each: states (B, 77, D) float32 — the output of the second-to-last block of ComfyUI's 24-block tower, without the
    final LayerNorm (HF ``hidden_states[-2]``); pooled (B, P) float32 — ComfyUI's projected pooled output (HF
    ``text_embeds``). Tokens padded with ``"!"`` to 77, truncated; no attention mask. On the CPU, computed in float32.
    ``negative_prompt``: a string (``""``/None: the empty prompt, encoded) or one string per prompt. Source:
    viiika/Meissonic ``src/pipeline.py`` ``Pipeline.__call__``.

    Raises ConfigError: not an SD2 CLIP-H, a 24th block or projection that was not loaded (e.g. SD-2.x's HF text
    encoder), a width other than ``expected_width``, a tower without 77 positions or with fewer than 2 blocks, no
    prompt / a non-string prompt / a negative prompt list of the wrong length. The CLIP object is not changed.
    """
    prompts = check_prompts(prompts)
    negs = negative_prompts(negative_prompt, len(prompts))
    model, comfy_tokenizer = _meissonic_parts(clip)
    transformer = model.transformer
    text_model = transformer.text_model
    width = int(text_model.final_layer_norm.weight.shape[0])
    projection = getattr(transformer, "text_projection", None)
    if projection is None:
        raise ConfigError(f"This CLIP has no text projection; {_MEISSONIC_LOAD_HINT}.")
    check_meissonic_width(width, int(projection.weight.shape[0]), expected_width, "connected as 'clip'")
    positions = int(text_model.embeddings.position_embedding.weight.shape[0])
    blocks = len(text_model.encoder.layers)
    if positions != CLIP_MAX_LENGTH or blocks < 2:
        raise ConfigError(f"This SD2 CLIP has {positions} positions and {blocks} blocks; Meissonic's text encoder reads "
                          f"{CLIP_MAX_LENGTH} tokens with OpenCLIP ViT-H's {MEISSONIC_BLOCKS} blocks.")
    tokenizer = sd2_tokenizer(comfy_tokenizer)  # Meissonic's tokenizer pads with "!" (id 0) too
    unique = list(dict.fromkeys(negs))
    ids, _ = tokenize_clip(tokenizer, prompts + unique)
    clip.load_model()
    _check_meissonic_weights(transformer)
    device = transformer.get_input_embeddings().weight.device
    with torch.no_grad():
        # (last state, intermediate, projected pooled, pooled); pooled at the first end token (49407, the config's
        # eos_token_id), as HF pools Meissonic's legacy config (eos_token_id 2: the first position of the largest id)
        _, states, pooled, _ = transformer(input_tokens=ids.to(device), attention_mask=None,
                                           intermediate_output=blocks - 2, final_layer_norm_intermediate=False,
                                           dtype=torch.float32)
    states, pooled = states.float().cpu(), pooled.float().cpu()
    b = len(prompts)
    rows = torch.tensor([b + unique.index(n) for n in negs])
    cond = MeissonicTextFeatures(states[:b].contiguous(), pooled[:b].contiguous(), tuple(prompts))
    neg = MeissonicTextFeatures(states[rows].contiguous(), pooled[rows].contiguous(), tuple(negs))
    return cond, neg
