"""Janus checkpoint key names: which keys generation reads, and the transformers layout's names in ours.

Ours are the original release's (deepseek-ai ``MultiModalityCausalLM``). The transformers release
(``JanusForConditionalGeneration``, the ``deepseek-community/Janus-Pro-*`` files) renames them, as its
conversion script ``convert_janus_weights_to_hf.py`` does: ``model.language_model.`` ← ``language_model.model.``,
``model.generation_embeddings`` ← ``gen_embed``, ``model.generation_aligner.{fc1,hidden_layers.i}`` ←
``gen_aligner.layers.{0,2(i+1)}``, ``model.generation_head.proj_out`` ← ``gen_head.output_mlp_projector``,
``model.generation_head.vision_head`` ← ``gen_head.vision_head``, ``model.vqmodel.`` ← ``gen_vision_model.``
with the decoder's ``up.N.block.M`` ← ``conv_blocks.N.res.M`` and ``mid.{block_1,attn_1,block_2}`` ←
``mid.{0,1,2}``. Keys generation never reads (``vision_model.``, ``aligner.``, the text ``lm_head``, the VQ
encoder and ``quant_conv``, ``quantize.codebook_used``) map to None.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..checkpoint import strip_wrapper_prefixes

MODEL_PREFIXES = ("language_model.model.", "gen_embed.", "gen_aligner.", "gen_head.")
VQ_PREFIX = "gen_vision_model."
VQ_PARTS = ("decoder.", "post_quant_conv.", "quantize.embedding.")
GEN_PART_PREFIXES = ("gen_embed.", "gen_aligner.", "gen_head.")  # what an understanding-only model lacks

_HF_FIXED = (
    ("model.language_model.", "language_model.model."),
    ("model.generation_embeddings.", "gen_embed."),
    ("model.generation_aligner.fc1.", "gen_aligner.layers.0."),
    ("model.generation_head.proj_out.", "gen_head.output_mlp_projector."),
    ("model.generation_head.vision_head.", "gen_head.vision_head."),
)
_HF_ALIGNER = re.compile(r"^model\.generation_aligner\.hidden_layers\.(\d+)\.(.*)$")
_HF_UP = re.compile(r"^decoder\.up\.(\d+)\.block\.(\d+)\.(.*)$")
_HF_MID = {"decoder.mid.block_1.": "decoder.mid.0.", "decoder.mid.attn_1.": "decoder.mid.1.",
           "decoder.mid.block_2.": "decoder.mid.2."}
_HF_UP_OTHER = re.compile(r"^decoder\.up\.(\d+)\.(attn|upsample)\.(.*)$")


def is_transformers_layout(keys: Iterable[str]) -> bool:
    """True when the keys are the transformers release's (``model.language_model.`` ...)."""
    return any(k.startswith(("model.language_model.", "model.generation_", "model.vqmodel.")) for k in keys)


def original_name(key: str) -> str:
    """``key`` (either layout, DDP/compile prefixes allowed) in the original release's naming."""
    key = strip_wrapper_prefixes(key)
    for theirs, ours in _HF_FIXED:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    m = _HF_ALIGNER.match(key)
    if m:
        return f"gen_aligner.layers.{2 * (int(m[1]) + 1)}.{m[2]}"
    if key.startswith("model.vqmodel."):
        return VQ_PREFIX + _vq_original(key[len("model.vqmodel."):])
    return key


def _vq_original(key: str) -> str:
    for theirs, ours in _HF_MID.items():
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    m = _HF_UP.match(key)
    if m:
        return f"decoder.conv_blocks.{m[1]}.res.{m[2]}.{m[3]}"
    m = _HF_UP_OTHER.match(key)
    if m:
        return f"decoder.conv_blocks.{m[1]}.{m[2]}.{m[3]}"
    return key


def model_key(name: str) -> str | None:
    """The generator's own key (``model.JanusGenerator``) for an original-layout name, or None if it reads none."""
    return name if name.startswith(MODEL_PREFIXES) else None


def vq_key(name: str) -> str | None:
    """The tokenizer's own key (``vq.JanusVQ``) for an original-layout name, or None if it reads none."""
    if name.startswith(VQ_PREFIX):
        inner = name[len(VQ_PREFIX):]
        if inner.startswith(VQ_PARTS):
            return inner
    return None


def wanted(keys: Iterable[str], role_key) -> dict[str, str]:
    """{stored key: our key} of the stored ``keys`` that ``role_key`` (``model_key`` or ``vq_key``) reads."""
    out = {}
    for key in keys:
        ours = role_key(original_name(key))
        if ours is not None:
            out[key] = ours
    return out


def vq_downsample(names: Iterable[str]) -> int | None:
    """Pixels per token of the VQ decoder whose (original-layout) key names are given: 2^(upsampling stages),
    or None when there are no decoder keys."""
    names = [n for n in names if n.startswith(VQ_PREFIX + "decoder.")]
    if not names:
        return None
    ups = {n.split(".")[3] for n in names if ".upsample." in n and n.startswith(VQ_PREFIX + "decoder.conv_blocks.")}
    return 2 ** len(ups)


def has_generation_parts(names: Iterable[str]) -> bool:
    """True when original-layout ``names`` include the generation embedding, aligner and head."""
    names = list(names)
    return all(any(n.startswith(p) for n in names) for p in GEN_PART_PREFIXES)


def looks_like_janus(keys: Iterable[str]) -> bool:
    """True for a state dict of a Janus multimodal model (either layout; generation-capable or not)."""
    keys = set(keys)
    original = "language_model.model.embed_tokens.weight" in keys and \
        any(k.startswith(("gen_head.", "gen_embed.", "aligner.", "vision_model.", "gen_vision_model.")) for k in keys)
    hf = "model.language_model.embed_tokens.weight" in keys and \
        any(k.startswith(("model.generation_", "model.aligner.", "model.vision_model.", "model.vqmodel."))
            for k in keys)
    return original or hf


def looks_like_janus_vq(keys: Iterable[str]) -> bool:
    """True for the VQ part of a Janus checkpoint alone (what the folder reader gives the tokenizer role)."""
    return any(k.startswith((VQ_PREFIX + "decoder.", "model.vqmodel.decoder.")) for k in keys)
