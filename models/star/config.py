"""STAR model configurations: official sizes, scale lists, file-name hints and shape inference.

STAR (Davinci-XLab/STAR-T2I) is VAR's next-scale transformer turned text-to-image: every block
adds a cross-attention to the text encoder's hidden states, positions come from a normalised 2-D
rotary embedding instead of VAR's learned table, there is no AdaLN (the blocks and the head see no
class), the start token is a projection of the pooled text vector, and the head reads a LayerNorm
(no affine) of the last hidden state.

What the tensors give: depth, width, heads (``scale_mul_1H11``), MLP width, vocabulary, latent
channels, text width (``encoder_proj``) and the *number* of scales (``lvl_embed`` rows). The
official files store no scale index or position table, so the scale list itself comes from, in
order: an explicit override (``patch_nums`` or ``image_size``), the safetensors metadata written by
``arsample convert``, the ``patch_nums`` a training snapshot records in ``trainer.config``, the
file name (``256`` / ``512`` / ``1024``), then the scale count (14 scales: the 1024 px list; 10
scales: 256 px, with a note, since 512 px also has 10). RoPE base and normalisation, the LayerNorm
eps and the logit norm are not in the tensors either; their defaults are the released models'
(``sample.py``: theta 10000, positions scaled to [0, 64], eps 1e-6, logit norm on).

Facts from the reference (``models/__init__.py`` ``build_vae_var``, ``sample.py``): depth d has
width 64·d, d heads, MLP ratio 4, l2-normalised attention, text width 1024 (CLIP ViT-H/14 of
Stable Diffusion 2.1); public sizes d16 (256 px) and d30 (256, 512, 1024 px).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ...errors import ConfigError
from ..metadata import config_metadata, read_metadata_config
from ..var.config import PATCH_NUMS, ScalePyramid

KIND = "star"
CROSS_ATTN_MODES = ("per-row", "per-prompt", "row0-broadcast")
OFFICIAL_DEPTHS = (16, 30)

# Keys only the "causal-driven stable sampler" checkpoint (star-1024-sampler) has.
SAMPLER_KEYS = ("head_logits2.weight", "word_embed_head.weight", "head_proj.weight", "encoder_proj2.weight",
                "pos_start_last", "lvl_embed_2.weight")

_DEPTH = re.compile(r"(?:^|[^a-z0-9])d(?P<depth>\d+)(?![0-9])", re.I)
_SIZE = re.compile(r"(?<![0-9])(?P<size>256|512|1024)(?![0-9])")


@dataclass(frozen=True)
class StarConfig(ScalePyramid):
    """Shape and fixed settings of a STAR transformer.

    ``text_dim`` is the reference's ``in_dim_cross`` (the text encoder's width). ``rope_norm``: token
    positions of a p×p map are rescaled from [0, p − 1] to [0, rope_norm] (None: not rescaled).
    ``cross_attn_mode``: "per-prompt" (default: each prompt's unconditional row receives that prompt's
    cross-attention output: the reference run one prompt at a time, batched), "per-row" (every row
    attends to its own text, the unconditional rows to the empty prompt) or "row0-broadcast"
    (compatibility mode: the reference adds row 0's cross-attention output to every row of the
    batch, other prompts and unconditional rows included); see ``transformer.py``. ``downsample``: the
    paired VQ-VAE's factor (image side = downsample × last scale side).
    """

    depth: int = 30
    embed_dim: int = 1920
    num_heads: int = 30
    mlp_hidden: int = 7680
    num_classes: int = 1000  # rows of the unused ``class_emb`` table, minus one
    vocab_size: int = 4096
    cvae: int = 32
    patch_nums: tuple[int, ...] = PATCH_NUMS[1024]
    text_dim: int = 1024
    rope_theta: float = 10000.0
    rope_norm: float | None = 64.0
    norm_eps: float = 1e-6
    logit_norm: bool = True
    cross_attn_mode: str = "per-prompt"
    downsample: int = 16
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}; "
                              f"give the right head count.")
        if self.head_dim % 4:
            raise ConfigError(f"STAR's 2-D rotary embedding needs a head width divisible by 4; got "
                              f"{self.head_dim} ({self.embed_dim} / {self.num_heads} heads).")
        if not self.patch_nums or any(p < 1 for p in self.patch_nums):
            raise ConfigError(f"patch_nums must be positive token-map sides, got {self.patch_nums}.")
        if list(self.patch_nums) != sorted(self.patch_nums):
            raise ConfigError(f"patch_nums must grow from coarse to fine, got {self.patch_nums}.")
        if self.cross_attn_mode not in CROSS_ATTN_MODES:
            raise ConfigError(f"cross_attn_mode must be one of {', '.join(CROSS_ATTN_MODES)}; "
                              f"got '{self.cross_attn_mode}'.")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def attn_l2_norm(self) -> bool:
        """Always on in STAR (q and k unit vectors, learned per-head scale)."""
        return True

    def to_metadata(self) -> dict[str, str]:
        """The safetensors header entry; ``cross_attn_mode`` is a run-time choice and is not stored."""
        fields = dataclasses.asdict(self)
        fields.pop("cross_attn_mode")
        return config_metadata(KIND, fields)


def star_config(depth: int | str = 30, image_size: int = 1024, **overrides) -> StarConfig:
    """An official size (16 or 30, or "d16"/"d30"): width 64·d, d heads, MLP 4×, text width 1024.

    ``image_size`` (256, 512, 1024) picks the scale list; any field may be overridden.
    """
    d = int(str(depth).lower().lstrip("d")) if not isinstance(depth, int) else depth
    if d < 1:
        raise ConfigError(f"STAR depth must be positive, got {depth}.")
    fields = dict(depth=d, embed_dim=64 * d, num_heads=d, mlp_hidden=4 * 64 * d,
                  patch_nums=patch_nums_for(image_size), name=f"STAR-d{d}-{int(image_size)}")
    fields.update(overrides)
    return StarConfig(**fields)


def patch_nums_for(image_size: int) -> tuple[int, ...]:
    """The reference's scale list for 256, 512 or 1024 px (VQ-VAE downsample 16); ConfigError otherwise."""
    size = int(image_size)
    if size not in PATCH_NUMS:
        raise ConfigError(f"STAR has no scale list for {size} px; it knows "
                          f"{', '.join(str(s) for s in PATCH_NUMS)} px. Pick one of those sizes.")
    return PATCH_NUMS[size]


def parse_star_filename(filename: str) -> dict:
    """Hints from a file name: ``d16``/``d30`` → depth, ``256``/``512``/``1024`` → image size."""
    hints: dict = {}
    m = _DEPTH.search(filename)
    if m:
        hints["depth"] = int(m["depth"])
    m = _SIZE.search(filename)
    if m:
        hints["image_size"] = int(m["size"])
    return hints


# -- what a state dict is -------------------------------------------------------------------------
def detect_star_kind(state: Mapping[str, torch.Tensor]) -> str:
    """``star`` (the transformer), ``star-sampler`` (the star-1024-sampler checkpoint, with the extra
    sampler head) or ``unknown``."""
    if not ("encoder_proj.weight" in state and "head_logits.weight" in state and
            "blocks.0.attn.mat_qkv.weight" in state):
        return "unknown"
    if any(k in state for k in SAMPLER_KEYS) or any(k.startswith("feat_extract_blocks.") for k in state):
        return "star-sampler"
    return "star"


def infer_star_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """Every StarConfig field the tensors determine, plus ``num_scales`` (rows of ``lvl_embed``).

    Raises ConfigError when the state dict lacks the cross-attention (the reference's text-free
    ablation, ``enable_cross=False``) or the l2-attention scale, which this implementation needs.
    """
    if "blocks.0.cross_attn.mat_kv.weight" not in state:
        raise ConfigError("This STAR checkpoint has no cross-attention (the reference's enable_cross=False "
                          "ablation): it cannot read a prompt, and it is not supported.")
    if "blocks.0.attn.scale_mul_1H11" not in state:
        raise ConfigError("This STAR checkpoint has no l2-normalised attention (no 'scale_mul_1H11'); every "
                          "released STAR model has it. The file is not a STAR model this pack supports.")
    embed_dim, cvae = state["word_embed.weight"].shape
    return dict(
        depth=1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.")),
        embed_dim=int(embed_dim), cvae=int(cvae),
        num_heads=int(state["blocks.0.attn.scale_mul_1H11"].shape[1]),
        mlp_hidden=int(state["blocks.0.ffn.fc1.weight"].shape[0]),
        vocab_size=int(state["head_logits.weight"].shape[0]),
        num_classes=int(state["class_emb.weight"].shape[0]) - 1,
        text_dim=int(state["encoder_proj.weight"].shape[1]),
        num_scales=int(state["lvl_embed.weight"].shape[0]),
    )


def _patch_nums_by_count(num_scales: int, filename: str, notes: list[str]) -> tuple[int, ...]:
    sizes = [s for s, p in PATCH_NUMS.items() if len(p) == num_scales]
    if not sizes:
        raise ConfigError(f"The checkpoint has {num_scales} scales, which matches none of STAR's scale lists "
                          f"({', '.join(f'{len(p)} at {s} px' for s, p in PATCH_NUMS.items())}); pass patch_nums.")
    hinted = parse_star_filename(filename).get("image_size")
    if hinted in sizes:
        return PATCH_NUMS[hinted]
    if len(sizes) > 1:
        notes.append(f"{num_scales} scales fit {' and '.join(f'{s} px' for s in sizes)}; assumed {sizes[0]} px "
                     f"(pass image_size to choose)")
    return PATCH_NUMS[sizes[0]]


def resolve_star_config(state: Mapping[str, torch.Tensor], filename: str = "",
                        metadata: Mapping[str, str] | None = None, override: Mapping | None = None,
                        snapshot_patch_nums=None) -> tuple[StarConfig, list[str]]:
    """A StarConfig for a state dict, and notes on what was assumed.

    ``override`` may set any StarConfig field plus ``image_size`` (a scale list with as many scales
    as the checkpoint's ``lvl_embed``). ``snapshot_patch_nums``: the list a training snapshot
    records. Raises ConfigError when no source gives a scale list that fits the checkpoint.
    """
    notes: list[str] = []
    fields = infer_star_shapes(state)
    num_scales = fields.pop("num_scales")
    from_meta = read_metadata_config(metadata or {}, KIND) or {}
    override = dict(override or {})
    image_size = override.pop("image_size", None)
    for key in ("rope_theta", "rope_norm", "norm_eps", "logit_norm", "downsample", "name"):
        if key in from_meta:
            fields[key] = from_meta[key]
    if "patch_nums" in override:
        patch = tuple(override.pop("patch_nums"))
    elif image_size is not None:
        patch = patch_nums_for(image_size)
    elif from_meta.get("patch_nums"):
        patch = tuple(from_meta["patch_nums"])
    elif snapshot_patch_nums is not None:
        patch = tuple(int(p) for p in snapshot_patch_nums)
    else:
        patch = _patch_nums_by_count(num_scales, filename, notes)
    if len(patch) != num_scales:
        raise ConfigError(f"'{filename or 'checkpoint'}' was trained with {num_scales} scales (its level embedding "
                          f"has {num_scales} rows) but the scale list {patch} has {len(patch)}. "
                          + (f"It cannot make {image_size} px; " if image_size is not None else "")
                          + "Choose a size or scale list with that many scales.")
    fields["patch_nums"] = patch
    if not fields.get("name"):
        fields["name"] = f"STAR-d{fields['depth']}-{fields.get('downsample', 16) * patch[-1]}"
    fields.update({k: v for k, v in override.items() if k in StarConfig.__dataclass_fields__})
    return StarConfig(**fields), notes


__all__ = [
    "StarConfig", "CROSS_ATTN_MODES", "OFFICIAL_DEPTHS", "SAMPLER_KEYS", "star_config", "patch_nums_for",
    "parse_star_filename", "detect_star_kind", "infer_star_shapes", "resolve_star_config",
]
