"""VAR model configurations: official depths, scale lists, file names and shape inference.

Every field of a VAR transformer can be read from its tensors except ``norm_eps`` and, when the
attention is not l2-normalised, the head count: the per-head ``scale_mul_1H11`` gives the
head count of the official (l2-normalised) models, and the ``lvl_1L`` buffer stores each token's
scale index, so the scale list is exact. The multi-scale VQ-VAE is determined by its tensors too,
except ``quant_resi`` (0.5 in every official file) and ``using_znorm`` (False). Precedence, as
for LlamaGen: an explicit override, the safetensors metadata written by ``arsample convert``, the
official file name (``var_d16.pth`` ... ``var_d36.pth``, ``vae_ch160v4096z32.pth``), the shapes.

Facts from the reference (FoundationVision/VAR ``models/__init__.py`` ``build_vae_var``): depth d
has width 64·d, d heads, MLP ratio 4, l2-normalised attention, LayerNorm eps 1e-6; d36 is the
512 px model with one shared AdaLN projection.
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


# Scale lists (token-map side per scale) of the reference, by image size (VQ-VAE downsample 16).
PATCH_NUMS: dict[int, tuple[int, ...]] = {
    256: (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
    512: (1, 2, 3, 4, 6, 9, 13, 18, 24, 32),
    1024: (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64),
}
# Every scale pyramid a token file may hold, for files that do not store their layout.
KNOWN_PYRAMIDS: dict[str, tuple[int, ...]] = {
    **{f"{size} px": patch for size, patch in PATCH_NUMS.items()},
    "the embedded tiny-var, 32 px": (1, 2, 3, 4, 6, 8, 16),
}
OFFICIAL_DEPTHS = (16, 20, 24, 30, 36)
_SHARED_ALN_DEPTHS = {36: 512}  # depth → image size of the official shared-AdaLN models

_VAR_FILE = re.compile(r"var_d(?P<depth>\d+)", re.I)
_VAE_FILE = re.compile(r"vae_ch(?P<ch>\d+)v(?P<vocab>\d+)z(?P<z>\d+)", re.I)


class ScalePyramid:
    """Sizes that follow from a scale list ``patch_nums`` and the VQ-VAE's ``downsample`` (VAR and STAR configs)."""

    patch_nums: tuple[int, ...]
    downsample: int

    @property
    def scales(self) -> tuple[tuple[int, int], ...]:
        return tuple((p, p) for p in self.patch_nums)

    @property
    def num_tokens(self) -> int:
        return sum(p * p for p in self.patch_nums)

    @property
    def image_size(self) -> int:
        """Side of the generated images in pixels."""
        return self.downsample * self.patch_nums[-1]

    @property
    def begin_ends(self) -> tuple[tuple[int, int], ...]:
        """(begin, end) of each scale's tokens in storage order."""
        out, cur = [], 0
        for p in self.patch_nums:
            out.append((cur, cur + p * p))
            cur += p * p
        return tuple(out)


@dataclass(frozen=True)
class VARConfig(ScalePyramid):
    """Shape of a VAR transformer (class-conditional next-scale prediction)."""

    depth: int = 16
    embed_dim: int = 1024
    num_heads: int = 16
    mlp_hidden: int = 4096
    num_classes: int = 1000
    vocab_size: int = 4096
    cvae: int = 32  # channels of the VQ-VAE latent (the input width of ``word_embed``)
    patch_nums: tuple[int, ...] = PATCH_NUMS[256]
    shared_aln: bool = False
    attn_l2_norm: bool = True
    norm_eps: float = 1e-6
    downsample: int = 16  # the paired VQ-VAE's downsample factor: image side = downsample × last scale side
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}; "
                              f"give the right head count.")
        if not self.patch_nums or any(p < 1 for p in self.patch_nums):
            raise ConfigError(f"patch_nums must be positive token-map sides, got {self.patch_nums}.")
        if list(self.patch_nums) != sorted(self.patch_nums):
            raise ConfigError(f"patch_nums must grow from coarse to fine, got {self.patch_nums}.")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_metadata(self) -> dict[str, str]:
        return config_metadata("var", dataclasses.asdict(self))


@dataclass(frozen=True)
class VQVAEConfig:
    """Shape of VAR's multi-scale VQ-VAE (``vae_ch160v4096z32`` or a small variant).

    ``phi_layout``: how the residual convolutions φ are shared across scales, as the reference's
    ``share_quant_resi``: "partial" (K convolutions for all scales, K = ``phi_count``; the official
    files: K = 4), "shared" (one), "nonshared" (one per scale), "none" (φ = identity).
    """

    vocab_size: int = 4096
    z_channels: int = 32
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    using_sa: bool = True
    using_mid_sa: bool = True
    quant_conv_ks: int = 3
    quant_resi: float = 0.5
    phi_layout: str = "partial"
    phi_count: int = 4
    using_znorm: bool = False
    ema_rows: int = 10  # rows of the training-only ``ema_vocab_hit_SV`` buffer (one per training scale)
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(int(c) for c in self.ch_mult))
        if self.phi_layout not in ("partial", "shared", "nonshared", "none"):
            raise ConfigError(f"phi_layout must be partial, shared, nonshared or none; got '{self.phi_layout}'.")
        if any((self.ch * m) % 32 for m in self.ch_mult) or self.ch % 32:
            raise ConfigError("VQ-VAE channel widths must be multiples of 32 (GroupNorm with 32 groups).")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def to_metadata(self) -> dict[str, str]:
        return config_metadata("var-vqvae", dataclasses.asdict(self))


def var_config(depth: int | str, image_size: int | None = None, **overrides) -> VARConfig:
    """An official size (16, 20, 24, 30, 36, or "d16" ...): width 64·d, d heads, MLP 4×, l2 attention.

    d36 is the 512 px model with a shared AdaLN; the others are 256 px. ``image_size`` picks the
    scale list (256, 512, 1024); any field may be overridden.
    """
    d = int(str(depth).lower().lstrip("d")) if not isinstance(depth, int) else depth
    if d < 1:
        raise ConfigError(f"VAR depth must be positive, got {depth}.")
    size = image_size or _SHARED_ALN_DEPTHS.get(d, 256)
    fields = dict(depth=d, embed_dim=64 * d, num_heads=d, mlp_hidden=4 * 64 * d, patch_nums=patch_nums_for(size),
                  shared_aln=d in _SHARED_ALN_DEPTHS, name=f"VAR-d{d}")
    fields.update(overrides)
    return VARConfig(**fields)


def patch_nums_for(image_size: int, downsample: int = 16) -> tuple[int, ...]:
    """The reference's scale list for an image size (256, 512 or 1024 px at downsample 16)."""
    size = int(image_size)
    if downsample != 16 or size not in PATCH_NUMS:
        known = ", ".join(str(s) for s in PATCH_NUMS)
        raise ConfigError(f"VAR has no scale list for {size} px (downsample {downsample}); it knows {known} px "
                          f"with its 16x VQ-VAE. Pick one of those sizes.")
    return PATCH_NUMS[size]


def parse_var_filename(filename: str) -> dict:
    """Hints from an official file name (``var_d16.pth`` → depth 16, 256 px; ``var_d36.pth`` → 512 px)."""
    m = _VAR_FILE.search(filename)
    if not m:
        return {}
    d = int(m["depth"])
    return {"depth": d, "num_heads": d, "image_size": _SHARED_ALN_DEPTHS.get(d, 256), "name": f"VAR-d{d}"}


def parse_vae_filename(filename: str) -> dict:
    m = _VAE_FILE.search(filename)
    return {"ch": int(m["ch"]), "vocab_size": int(m["vocab"]), "z_channels": int(m["z"])} if m else {}


# -- what a state dict is -------------------------------------------------------------------------
def detect_kind(state: Mapping[str, torch.Tensor]) -> str:
    """``var`` (transformer), ``var-vqvae`` (VAR's multi-scale VQ-VAE) or ``unknown``."""
    if "class_emb.weight" in state and "blocks.0.attn.mat_qkv.weight" in state and "head.weight" in state:
        return "var"
    if "quantize.embedding.weight" in state and any(k.startswith("decoder.up.") for k in state) and \
            "decoder.mid.block_1.conv1.weight" in state:
        return "var-vqvae"
    return "unknown"


def _patch_nums_from_levels(state: Mapping[str, torch.Tensor]) -> tuple[int, ...] | None:
    lvl = state.get("lvl_1L")
    if lvl is None:
        return None
    counts = torch.bincount(lvl.reshape(-1).long()).tolist()
    sides = [math.isqrt(c) for c in counts]
    if any(s * s != c for s, c in zip(sides, counts)):
        raise ConfigError(f"The checkpoint's scale index buffer 'lvl_1L' holds non-square token maps ({counts}).")
    return tuple(sides)


def infer_var_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """Every VARConfig field the tensors determine (not norm_eps; heads only with l2 attention)."""
    embed_dim, cvae = state["word_embed.weight"].shape
    fields = dict(
        depth=1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.")),
        embed_dim=int(embed_dim), cvae=int(cvae),
        vocab_size=int(state["head.weight"].shape[0]),
        num_classes=int(state["class_emb.weight"].shape[0]) - 1,
        mlp_hidden=int(state["blocks.0.ffn.fc1.weight"].shape[0]),
        shared_aln="shared_ada_lin.1.weight" in state,
        attn_l2_norm="blocks.0.attn.scale_mul_1H11" in state,
    )
    if fields["attn_l2_norm"]:
        fields["num_heads"] = int(state["blocks.0.attn.scale_mul_1H11"].shape[1])
    patch = _patch_nums_from_levels(state)
    if patch is None and "pos_1LC" in state:
        length = int(state["pos_1LC"].shape[1])
        patch = next((p for p in PATCH_NUMS.values() if sum(x * x for x in p) == length), None)
    if patch is not None:
        fields["patch_nums"] = patch
    return fields


def resolve_var_config(state: Mapping[str, torch.Tensor], filename: str, metadata: Mapping[str, str],
                       override: Mapping | None = None) -> tuple[VARConfig, list[str]]:
    """A VARConfig for a state dict, and notes on what was guessed."""
    notes: list[str] = []
    fields = infer_var_shapes(state)
    from_meta = read_metadata_config(metadata, "var") or {}
    from_name = parse_var_filename(filename)
    override = dict(override or {})
    image_size = override.pop("image_size", None)
    for key in ("norm_eps", "name", "num_heads", "downsample"):
        if key in from_meta and key not in fields:
            fields[key] = from_meta[key]
    if "num_heads" not in fields and "num_heads" not in override:
        if from_name and from_name["depth"] == fields["depth"] and 64 * fields["depth"] == fields["embed_dim"]:
            fields["num_heads"] = from_name["num_heads"]
        else:
            fields["num_heads"] = max(1, fields["embed_dim"] // 64)
            notes.append(f"head count not known for width {fields['embed_dim']}: assumed head_dim 64 "
                         f"({fields['num_heads']} heads); pass num_heads to override")
    fields.setdefault("name", from_name.get("name", ""))
    if "patch_nums" not in fields:
        fields["patch_nums"] = tuple(from_meta.get("patch_nums") or patch_nums_for(from_name.get("image_size", 256)))
        notes.append(f"scale list not stored in the file: assumed {fields['patch_nums']}")
    native = int(fields.get("downsample", 16)) * fields["patch_nums"][-1]
    if image_size is not None and native != int(image_size):
        raise ConfigError(f"This VAR generates {native} px images (its position table is fixed to the scales "
                          f"{fields['patch_nums']}); it cannot make {image_size} px. Choose 'auto' or {native}.")
    fields.update({k: v for k, v in override.items() if k in VARConfig.__dataclass_fields__})
    return VARConfig(**fields), notes


def infer_vqvae_config(state: Mapping[str, torch.Tensor], filename: str = "", metadata: Mapping[str, str] | None = None,
                       override: Mapping | None = None) -> VQVAEConfig:
    """A VQVAEConfig from tensor shapes (plus the two facts shapes cannot give, from metadata)."""
    from_meta = read_metadata_config(metadata or {}, "var-vqvae") or {}
    vocab, z = state["quantize.embedding.weight"].shape
    levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("decoder.up.")})
    widths = [int(state[f"decoder.up.{i}.block.0.conv2.weight"].shape[0]) for i in levels]
    if "encoder.conv_in.weight" in state:
        ch = int(state["encoder.conv_in.weight"].shape[0])
    else:
        ch = widths[0]  # no encoder: assume ch_mult[0] = 1 (strict loading then names the missing keys)
    blocks = {int(k.split(".")[4]) for k in state if k.startswith("decoder.up.0.block.")}
    top = levels[-1]
    if any(k.startswith("quantize.quant_resi.qresi_ls.") for k in state):
        layout = "partial"
        count = len({k.split(".")[3] for k in state if k.startswith("quantize.quant_resi.qresi_ls.")})
    elif "quantize.quant_resi.qresi.weight" in state:
        layout, count = "shared", 1
    elif any(k.startswith("quantize.quant_resi.") for k in state):
        layout = "nonshared"
        count = len({k.split(".")[2] for k in state if k.startswith("quantize.quant_resi.")})
    else:
        layout, count = "none", 0
    hits = state.get("quantize.ema_vocab_hit_SV")
    fields = dict(vocab_size=int(vocab), z_channels=int(z), ch=ch, ch_mult=tuple(w // ch for w in widths),
                  num_res_blocks=len(blocks) - 1, using_sa=f"decoder.up.{top}.attn.0.qkv.weight" in state,
                  using_mid_sa="decoder.mid.attn_1.qkv.weight" in state,
                  quant_conv_ks=int(state["quant_conv.weight"].shape[-1]) if "quant_conv.weight" in state else 3,
                  phi_layout=layout, phi_count=count, ema_rows=int(hits.shape[0]) if hits is not None else 10)
    for key in ("quant_resi", "using_znorm", "name"):
        if key in from_meta:
            fields[key] = from_meta[key]
    if "name" not in fields:
        fields["name"] = f"vae_ch{ch}v{int(vocab)}z{int(z)}" if parse_vae_filename(filename) else ""
    fields.update(override or {})
    return VQVAEConfig(**fields)


__all__ = [
    "VARConfig", "VQVAEConfig", "PATCH_NUMS", "KNOWN_PYRAMIDS", "OFFICIAL_DEPTHS", "var_config", "patch_nums_for",
    "parse_var_filename", "parse_vae_filename", "detect_kind", "infer_var_shapes", "resolve_var_config",
    "infer_vqvae_config",
]
