"""LlamaGen model configurations: named sizes, official file names, shape inference.

The official checkpoints carry no configuration, and some of it (the number of
attention heads, the image size) cannot be read from tensor shapes. It comes,
in order of precedence, from an explicit override, the safetensors metadata
written by ``arsample convert``, the official file name, and finally the shapes.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ...errors import ConfigError
from ..metadata import config_metadata, read_metadata_config



def ffn_hidden_size(dim: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    """SwiGLU hidden width: 2/3 of 4·dim, optionally scaled, rounded up to ``multiple_of``."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return -(-hidden // multiple_of) * multiple_of


@dataclass(frozen=True)
class GPTConfig:
    """Shape and conditioning of a LlamaGen GPT (class- or text-conditional)."""

    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None
    ffn_hidden: int | None = None  # None: computed from dim like the reference
    multiple_of: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    vocab_size: int = 16384
    model_type: str = "c2i"  # "c2i" or "t2i"
    num_classes: int = 1000
    class_null_row: bool = True  # the extra embedding row used as the CFG null label
    caption_dim: int = 2048
    caption_tokens: int = 120  # length of the learned null caption (t2i)
    cls_token_num: int = 1  # condition positions before the image tokens
    grid_size: int = 16  # image tokens per side (256 px with a 16x tokenizer)
    name: str = ""  # e.g. "GPT-B", informational

    def __post_init__(self):
        if self.ffn_hidden is None:
            object.__setattr__(self, "ffn_hidden", ffn_hidden_size(self.dim, self.multiple_of))
        if self.model_type not in ("c2i", "t2i"):
            raise ConfigError(f"model_type must be 'c2i' or 't2i', got '{self.model_type}'.")
        if self.dim % self.n_head:
            raise ConfigError(f"dim {self.dim} is not divisible by n_head {self.n_head}; give the right head count.")
        if self.n_head % self.kv_heads:
            raise ConfigError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.kv_heads}.")
        if (self.dim // self.n_head) % 4:
            raise ConfigError(f"head dim {self.dim // self.n_head} must be a multiple of 4 for 2D RoPE.")
        if self.grid_size < 1:
            raise ConfigError(f"grid_size must be positive, got {self.grid_size}.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        return self.ffn_hidden

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size * self.grid_size

    def to_metadata(self) -> dict[str, str]:
        return config_metadata("gpt", dataclasses.asdict(self))


@dataclass(frozen=True)
class VQConfig:
    """Shape of a LlamaGen VQ tokenizer (VQ-16, VQ-8 or a small variant)."""

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    z_channels: int = 256
    base_channels: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    codebook_l2_norm: bool = True
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(int(c) for c in self.ch_mult))
        if self.base_channels % 32 or any((self.base_channels * m) % 32 for m in self.ch_mult):
            raise ConfigError("VQ channel widths must be multiples of 32 (GroupNorm with 32 groups).")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def to_metadata(self) -> dict[str, str]:
        return config_metadata("vq", dataclasses.asdict(self))


# Named GPT sizes of the reference: (n_layer, n_head, dim).
GPT_SIZES: dict[str, tuple[int, int, int]] = {
    "GPT-B": (12, 12, 768),
    "GPT-L": (24, 16, 1024),
    "GPT-XL": (36, 20, 1280),
    "GPT-XXL": (48, 24, 1536),
    "GPT-XXXL": (48, 40, 2560),
    "GPT-1B": (22, 32, 2048),
    "GPT-3B": (24, 32, 3200),
    "GPT-7B": (32, 32, 4096),
}

VQ_SIZES: dict[str, tuple[int, ...]] = {"VQ-16": (1, 1, 2, 2, 4), "VQ-8": (1, 2, 2, 4)}

_GPT_FILE = re.compile(r"(?P<type>c2i|t2i)_(?P<size>B|L|XL|XXL|XXXL|1B|3B|7B)_(?:stage\d_)?(?P<px>\d{3,4})", re.I)
_VQ_FILE = re.compile(r"vq_ds(?P<ds>8|16)_(?P<type>c2i|t2i)", re.I)


def gpt_config(name: str, **overrides) -> GPTConfig:
    """A named reference size (``"GPT-B"`` ... ``"GPT-7B"``) with optional field overrides."""
    key = name.upper().replace("_", "-")
    if not key.startswith("GPT-"):
        key = "GPT-" + key
    if key not in GPT_SIZES:
        raise ConfigError(f"Unknown GPT size '{name}'. Known: {', '.join(GPT_SIZES)}.")
    n_layer, n_head, dim = GPT_SIZES[key]
    base = dict(n_layer=n_layer, n_head=n_head, dim=dim, name=key)
    if overrides.get("model_type") == "t2i":
        base["cls_token_num"] = 120
    base.update(overrides)
    return GPTConfig(**base)


def parse_gpt_filename(filename: str) -> dict:
    """Config hints from an official GPT file name, e.g. ``t2i_XL_stage2_512.pt``.

    Returns a dict with ``name``, ``model_type`` and ``image_size`` (empty if the
    name is not an official one).
    """
    m = _GPT_FILE.search(filename)
    if not m:
        return {}
    return {"name": "GPT-" + m["size"].upper(), "model_type": m["type"].lower(), "image_size": int(m["px"])}


def parse_vq_filename(filename: str) -> dict:
    """Config hints from an official VQ file name, e.g. ``vq_ds16_c2i.pt``."""
    m = _VQ_FILE.search(filename)
    if not m:
        return {}
    return {"name": f"VQ-{m['ds']}", "downsample": int(m["ds"])}


def detect_kind(state: Mapping[str, torch.Tensor]) -> str:
    """Tell a checkpoint's model kind from its keys: ``gpt-c2i``, ``gpt-t2i``, ``vq`` or ``unknown``."""
    if "tok_embeddings.weight" in state and "layers.0.attention.wqkv.weight" in state:
        if "cls_embedding.cap_proj.fc1.weight" in state:
            return "gpt-t2i"
        if "cls_embedding.embedding_table.weight" in state:
            return "gpt-c2i"
        return "unknown"
    # decoder.conv_blocks.* is LlamaGen's decoder layout (VAR's VQ-VAE has decoder.up.* instead)
    if "quantize.embedding.weight" in state and "decoder.conv_in.weight" in state and \
            any(k.startswith("decoder.conv_blocks.") for k in state):
        return "vq"
    return "unknown"


def infer_gpt_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """Every GPT field that tensor shapes determine (not n_head, grid or cls_token_num)."""
    vocab, dim = state["tok_embeddings.weight"].shape
    n_layer = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
    hidden = state["layers.0.feed_forward.w1.weight"].shape[0]
    fields = dict(dim=int(dim), n_layer=n_layer, vocab_size=int(vocab), ffn_hidden=int(hidden))
    wqkv_rows = state["layers.0.attention.wqkv.weight"].shape[0]
    fields["_qkv_rows"] = int(wqkv_rows)
    if "cls_embedding.embedding_table.weight" in state:
        rows = state["cls_embedding.embedding_table.weight"].shape[0]
        fields.update(model_type="c2i", num_classes=int(rows) - 1, class_null_row=True)
    else:
        fields.update(model_type="t2i", caption_dim=int(state["cls_embedding.cap_proj.fc1.weight"].shape[1]))
        if "cls_embedding.uncond_embedding" in state:
            fields["caption_tokens"] = int(state["cls_embedding.uncond_embedding"].shape[0])
    return fields


def resolve_gpt_config(state: Mapping[str, torch.Tensor], filename: str, metadata: Mapping[str, str],
                       override: Mapping | None = None) -> tuple[GPTConfig, list[str]]:
    """Build a GPTConfig for a state dict. Returns the config and notes on guesses made."""
    notes: list[str] = []
    shapes = infer_gpt_shapes(state)
    qkv_rows = shapes.pop("_qkv_rows")
    fields: dict = dict(shapes)
    from_meta = read_metadata_config(metadata, "gpt") or {}
    from_name = parse_gpt_filename(filename)
    override = dict(override or {})
    image_size = override.pop("image_size", None)
    downsample = int(override.pop("downsample", 16))

    n_head = override.get("n_head") or from_meta.get("n_head")
    name = override.get("name") or from_meta.get("name")
    if not n_head:
        known = [k for k, (nl, nh, d) in GPT_SIZES.items() if nl == fields["n_layer"] and d == fields["dim"]]
        if known:
            name = name or known[0]
            n_head = GPT_SIZES[known[0]][1]
        elif from_name and GPT_SIZES[from_name["name"]][2] == fields["dim"]:
            name, n_head = from_name["name"], GPT_SIZES[from_name["name"]][1]
        else:
            n_head = max(1, fields["dim"] // 64)
            notes.append(f"head count not known for dim {fields['dim']}: assumed head_dim 64 ({n_head} heads); "
                         f"pass n_head to override")
    fields["n_head"] = int(n_head)
    fields["name"] = name or ""
    head_dim = fields["dim"] // fields["n_head"]
    kv = (qkv_rows - fields["dim"]) // (2 * head_dim) if head_dim else 0
    if kv != fields["n_head"]:
        fields["n_kv_head"] = kv

    for key in ("rope_base", "norm_eps", "cls_token_num", "grid_size", "class_null_row", "multiple_of"):
        if key in from_meta:
            fields[key] = from_meta[key]
    if "cls_token_num" not in fields:
        fields["cls_token_num"] = fields.get("caption_tokens", 120) if fields["model_type"] == "t2i" else 1
    if image_size is None and "grid_size" not in fields and "grid_size" not in override:
        if from_name:
            image_size = from_name["image_size"]
        else:
            image_size = 256
            notes.append("image size unknown: assumed 256 px (16x16 tokens); choose the size the model was trained at")
    if image_size is not None:
        if int(image_size) % downsample:
            raise ConfigError(f"Image size {image_size} is not a multiple of the tokenizer's downsample factor "
                              f"{downsample}; pick e.g. {int(image_size) // downsample * downsample}.")
        fields["grid_size"] = int(image_size) // downsample
    fields.update({k: v for k, v in override.items() if k in GPTConfig.__dataclass_fields__})
    if from_name and from_name["model_type"] != fields["model_type"]:
        notes.append(f"file name says {from_name['model_type']} but the weights are {fields['model_type']}")
    return GPTConfig(**fields), notes


def infer_vq_config(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                    override: Mapping | None = None) -> VQConfig:
    """Build a VQConfig from tensor shapes (every VQ field is determined by them)."""
    from_meta = read_metadata_config(metadata, "vq") or {}
    codebook_size, embed_dim = state["quantize.embedding.weight"].shape
    z_channels = state["post_quant_conv.weight"].shape[0]
    base = state["decoder.conv_out.weight"].shape[1]
    levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("decoder.conv_blocks.")})
    widths = [state[f"decoder.conv_blocks.{j}.res.0.conv1.weight"].shape[0] for j in levels]
    ch_mult = tuple(int(w) // int(base) for w in reversed(widths))
    res = {int(k.split(".")[4]) for k in state if k.startswith("decoder.conv_blocks.0.res.")}
    fields = dict(codebook_size=int(codebook_size), codebook_embed_dim=int(embed_dim), z_channels=int(z_channels),
                  base_channels=int(base), ch_mult=ch_mult, num_res_blocks=len(res) - 1)
    fields["name"] = from_meta.get("name") or next((n for n, m in VQ_SIZES.items() if m == ch_mult and base == 128), "")
    if "codebook_l2_norm" in from_meta:
        fields["codebook_l2_norm"] = bool(from_meta["codebook_l2_norm"])
    fields.update(override or {})
    return VQConfig(**fields)


def grid_from_tokens(num_tokens: int) -> int:
    """Side of the square token grid for ``num_tokens`` tokens (error if not square)."""
    side = math.isqrt(int(num_tokens))
    if side * side != num_tokens:
        raise ConfigError(f"{num_tokens} tokens do not form a square grid; expected e.g. 256 (16x16) or 576 (24x24).")
    return side


__all__ = [
    "GPTConfig", "VQConfig", "GPT_SIZES", "VQ_SIZES", "gpt_config", "parse_gpt_filename", "parse_vq_filename",
    "detect_kind", "resolve_gpt_config", "infer_vq_config", "ffn_hidden_size", "grid_from_tokens",
]
