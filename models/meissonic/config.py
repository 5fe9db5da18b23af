"""Meissonic configurations: the MMDiT transformer and the VQ model, from diffusers ``config.json``
files, from safetensors metadata or from the tensors themselves.

Meissonic (MeissonFlow/Meissonic) is a masked-token text-to-image model: a Flux-like MMDiT over a
token grid (downsampled 2× inside the model) predicts every token of a 64×64 grid of VQ codes at
once. The released checkpoint is a diffusers folder: ``transformer/`` (``config.json`` +
``diffusion_pytorch_model.safetensors``), ``vqvae/`` (the VQ model it shares with aMUSEd),
``text_encoder/`` (CLIP ViT-H/14, ``CLIPTextModelWithProjection``), ``tokenizer/``, ``scheduler/``.

Facts from the reference (``src/transformer.py`` ``Transformer2DModel.__init__``; official
``transformer/config.json``): 8 heads of 128 (width 1024), 14 joint ("double") blocks, 28 single
blocks, text width 1024, pooled width 1024, RoPE axes (16, 56, 56) with θ 10000, vocabulary 8256
(8192 codes, the mask id 8255 = vocabulary − 1, and spare rows), down/up-sampling of the token grid
on. ``in_channels``/``patch_size`` in ``config.json`` are not used by the reference; the micro-
conditioning is 5 values × 256 sinusoidal channels (1280) in every configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch

from ...errors import ConfigError
from ..metadata import config_metadata, read_metadata_config

KIND = "meissonic"
VQ_KIND = "meissonic-vqvae"
MICRO_COND_VALUES = 5       # width, height, crop top, crop left, aesthetic score
MICRO_COND_CHANNELS = 256   # sinusoidal channels per value (aMUSEd's micro_cond_encode_dim)
TIME_CHANNELS = 256         # sinusoidal channels of the timestep (diffusers' CombinedTimestepTextProjEmbeddings)
DEFAULT_MICRO_CONDS = (1024.0, 1024.0, 0.0, 0.0, 6.0)  # the reference pipeline's (w, h, crop y, crop x, aesthetic)
FLUX_AXES = (16, 56, 56)

# config.json entries that the reference accepts but never uses.
_IGNORED_JSON = ("_class_name", "_diffusers_version", "_name_or_path", "patch_size", "in_channels")


@dataclass(frozen=True)
class MeissonicConfig:
    """Shape of Meissonic's MMDiT (``Transformer2DModel`` in the reference).

    ``attention_head_dim`` × ``num_attention_heads`` is the model width; ``axes_dims_rope`` must sum to
    the head width (each even); ``pooled_projection_dim`` must equal the width (the reference feeds
    the projected pooled vector, width = model width, into a projection built for
    ``pooled_projection_dim`` inputs). ``downsample``/``upsample``: the 2×2 stride-2 conv before the
    blocks and the transposed conv after them (both on, or both off).
    """

    num_layers: int = 14
    num_single_layers: int = 28
    attention_head_dim: int = 128
    num_attention_heads: int = 8
    joint_attention_dim: int = 1024
    pooled_projection_dim: int = 1024
    axes_dims_rope: tuple[int, ...] = FLUX_AXES
    vocab_size: int = 8256
    codebook_size: int = 8192
    downsample: bool = True
    upsample: bool = True
    rope_theta: float = 10000.0
    name: str = "Meissonic"

    def __post_init__(self):
        object.__setattr__(self, "axes_dims_rope", tuple(int(a) for a in self.axes_dims_rope))
        if min(self.num_attention_heads, self.attention_head_dim, self.vocab_size, self.codebook_size) < 1 \
                or min(self.num_layers, self.num_single_layers) < 0:
            raise ConfigError(f"Meissonic config has a non-positive size: {self}.")
        if sum(self.axes_dims_rope) != self.attention_head_dim or any(a % 2 for a in self.axes_dims_rope):
            raise ConfigError(f"axes_dims_rope {self.axes_dims_rope} must be even numbers summing to the head width "
                              f"{self.attention_head_dim}; give the config.json of the checkpoint.")
        if self.pooled_projection_dim != self.inner_dim:
            raise ConfigError(f"pooled_projection_dim {self.pooled_projection_dim} must equal the model width "
                              f"{self.inner_dim} (heads × head width): the reference projects the pooled text "
                              f"vector to the model width before its pooled-text embedder.")
        if self.codebook_size >= self.vocab_size:
            raise ConfigError(f"vocab_size {self.vocab_size} must exceed codebook_size {self.codebook_size}: the "
                              f"mask token is the last vocabulary row.")
        if self.downsample != self.upsample:
            raise ConfigError("downsample and upsample must both be on or both off (the logits come back on the "
                              "input token grid only then).")

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def mask_id(self) -> int:
        """The mask token id: the last vocabulary row (the reference's training script: vocab_size − 1)."""
        return self.vocab_size - 1

    @property
    def micro_cond_dim(self) -> int:
        return MICRO_COND_VALUES * MICRO_COND_CHANNELS

    def to_metadata(self) -> dict[str, str]:
        return config_metadata(KIND, dataclasses.asdict(self))

    @classmethod
    def from_diffusers(cls, data: Mapping, name: str = "Meissonic") -> "MeissonicConfig":
        """From a ``transformer/config.json`` dict. ConfigError on ``guidance_embeds`` or unknown entries."""
        data = dict(data)
        if data.pop("guidance_embeds", False):
            raise ConfigError("This Meissonic transformer has guidance_embeds=true (a Flux guidance embedder); "
                              "the released models do not, and it is not supported.")
        for key in _IGNORED_JSON:
            data.pop(key, None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ConfigError(f"Meissonic transformer config.json has entries this implementation does not know: "
                              f"{', '.join(unknown)}. Is it a Meissonic (MeissonFlow) transformer?")
        data.setdefault("name", name)
        return cls(**data)


@dataclass(frozen=True)
class MeissonicVQConfig:
    """diffusers ``VQModel`` as Meissonic and aMUSEd use it (``vqvae/config.json``).

    Only ``DownEncoderBlock2D`` / ``UpDecoderBlock2D`` blocks with GroupNorm and SiLU, no mid-block
    attention, codebook lookup without normalisation. Official: block_out (128, 256, 256, 512, 768),
    2 layers per block, 64 latent channels, 8192 codes, 32 groups (146.2 M parameters).
    """

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 256, 512, 768)
    layers_per_block: int = 2
    latent_channels: int = 64
    num_vq_embeddings: int = 8192
    norm_num_groups: int = 32
    vq_embed_dim: int | None = None
    mid_block_add_attention: bool = False
    force_upcast: bool = True
    name: str = "Meissonic-VQ"

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        if not self.block_out_channels:
            raise ConfigError("VQ config needs at least one block_out_channels entry.")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError(f"norm_num_groups {self.norm_num_groups} does not divide block_out_channels "
                              f"{self.block_out_channels}; give the vqvae/config.json of the checkpoint.")
        if self.mid_block_add_attention:
            raise ConfigError("This VQ model has mid-block attention (mid_block_add_attention=true); Meissonic's "
                              "and aMUSEd's have none, and it is not supported.")

    @property
    def embed_dim(self) -> int:
        return self.vq_embed_dim if self.vq_embed_dim is not None else self.latent_channels

    @property
    def downsample(self) -> int:
        """Pixels per token side: 2^(levels − 1) (16 for the official model)."""
        return 2 ** (len(self.block_out_channels) - 1)

    def to_metadata(self) -> dict[str, str]:
        return config_metadata(VQ_KIND, dataclasses.asdict(self))

    @classmethod
    def from_diffusers(cls, data: Mapping, name: str = "Meissonic-VQ") -> "MeissonicVQConfig":
        """From a ``vqvae/config.json`` dict. ConfigError on block types, norms or activations not supported."""
        data = dict(data)
        down = data.pop("down_block_types", None)
        up = data.pop("up_block_types", None)
        if down is not None and any(t != "DownEncoderBlock2D" for t in down) or \
                up is not None and any(t != "UpDecoderBlock2D" for t in up):
            raise ConfigError(f"VQ block types {down} / {up} are not supported (only DownEncoderBlock2D / "
                              f"UpDecoderBlock2D, as in Meissonic and aMUSEd).")
        if data.pop("act_fn", "silu") != "silu" or data.pop("norm_type", "group") != "group":
            raise ConfigError("Only SiLU activations and GroupNorm are supported in the VQ model (Meissonic, aMUSEd).")
        if not data.pop("lookup_from_codebook", True):
            raise ConfigError("This VQ model has lookup_from_codebook=false: its decoder reads latents, not token ids; "
                              "it is not Meissonic's or aMUSEd's VQ.")
        for key in ("_class_name", "_diffusers_version", "_name_or_path", "sample_size", "scaling_factor"):
            data.pop(key, None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ConfigError(f"VQ config.json has entries this implementation does not know: {', '.join(unknown)}.")
        data.setdefault("name", name)
        return cls(**data)


# -- what a state dict is -------------------------------------------------------------------------
def detect_meissonic_kind(state: Mapping[str, torch.Tensor]) -> str:
    """``meissonic`` (the MMDiT), ``meissonic-vqvae`` (the VQ model) or ``unknown``."""
    if all(k in state for k in ("embed.embeddings.weight", "mlm_layer.conv2.weight", "context_embedder.weight",
                                "cond_embed.linear_1.weight")):
        return KIND
    if all(k in state for k in ("quantize.embedding.weight", "post_quant_conv.weight", "decoder.conv_in.weight")):
        return VQ_KIND
    return "unknown"


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return 1 + max(idx) if idx else 0


def infer_meissonic_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """Every MeissonicConfig field the tensors give (all but ``axes_dims_rope`` and ``rope_theta``)."""
    inner, joint = state["context_embedder.weight"].shape
    norm_q = state.get("transformer_blocks.0.attn.norm_q.weight", state.get("single_transformer_blocks.0.attn.norm_q.weight"))
    if norm_q is None:
        raise ConfigError("The Meissonic transformer has no attention blocks (no 'transformer_blocks.0' nor "
                          "'single_transformer_blocks.0'); the file is incomplete.")
    head = int(norm_q.shape[0])
    return dict(
        num_layers=_count(state, "transformer_blocks."), num_single_layers=_count(state, "single_transformer_blocks."),
        attention_head_dim=head, num_attention_heads=int(inner) // head, joint_attention_dim=int(joint),
        pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
        vocab_size=int(state["embed.embeddings.weight"].shape[0]),
        codebook_size=int(state["mlm_layer.conv2.weight"].shape[0]),
        downsample="down_block.downsample.conv.weight" in state, upsample="up_block.upsample.conv.weight" in state,
    )


def resolve_meissonic_config(state: Mapping[str, torch.Tensor], json_config: Mapping | None = None,
                             metadata: Mapping[str, str] | None = None, override: Mapping | None = None,
                             filename: str = "") -> MeissonicConfig:
    """A MeissonicConfig for a state dict: ``config.json`` (if given), else safetensors metadata, else the
    tensors (RoPE axes: Flux's (16, 56, 56) for head width 128, else ConfigError); ``override`` last.
    The shapes the tensors give always win over the other sources (a mismatch fails later, strictly)."""
    fields = infer_meissonic_shapes(state)
    if json_config:
        base = dataclasses.asdict(MeissonicConfig.from_diffusers(json_config))
    else:
        base = read_metadata_config(metadata or {}, KIND) or {}
    for key in ("axes_dims_rope", "rope_theta", "name"):
        if key in base:
            fields[key] = base[key]
    fields.update(dict(override or {}))
    if "axes_dims_rope" not in fields:
        if fields["attention_head_dim"] != sum(FLUX_AXES):
            raise ConfigError(f"'{filename or 'checkpoint'}' has head width {fields['attention_head_dim']}, so its RoPE "
                              f"axes cannot be guessed (the official model's are {FLUX_AXES} for 128); put its "
                              f"config.json beside it or pass axes_dims_rope.")
        fields["axes_dims_rope"] = FLUX_AXES
    return MeissonicConfig(**fields)


def infer_vq_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """Every MeissonicVQConfig field the tensors give (``norm_num_groups`` and ``force_upcast`` not)."""
    levels = _count(state, "encoder.down_blocks.")
    if levels == 0:
        raise ConfigError("The VQ model has no encoder blocks ('encoder.down_blocks.0'); the file is incomplete.")
    num, dim = state["quantize.embedding.weight"].shape
    return dict(
        in_channels=int(state["encoder.conv_in.weight"].shape[1]),
        out_channels=int(state["decoder.conv_out.weight"].shape[0]),
        block_out_channels=tuple(int(state[f"encoder.down_blocks.{i}.resnets.0.conv2.weight"].shape[0])
                                 for i in range(levels)),
        layers_per_block=_count(state, "encoder.down_blocks.0.resnets."),
        latent_channels=int(state["post_quant_conv.weight"].shape[0]),
        num_vq_embeddings=int(num), vq_embed_dim=int(dim),
        mid_block_add_attention=any(k.startswith("decoder.mid_block.attentions.") for k in state),
    )


def resolve_vq_config(state: Mapping[str, torch.Tensor], json_config: Mapping | None = None,
                      metadata: Mapping[str, str] | None = None, override: Mapping | None = None) -> MeissonicVQConfig:
    """A MeissonicVQConfig for a state dict (sources as ``resolve_meissonic_config``; groups default 32)."""
    fields = infer_vq_shapes(state)
    if json_config:
        base = dataclasses.asdict(MeissonicVQConfig.from_diffusers(json_config))
    else:
        base = read_metadata_config(metadata or {}, VQ_KIND) or {}
    for key in ("norm_num_groups", "force_upcast", "name"):
        if key in base:
            fields[key] = base[key]
    if fields["vq_embed_dim"] == fields["latent_channels"]:
        fields["vq_embed_dim"] = base.get("vq_embed_dim")
    fields.update(dict(override or {}))
    return MeissonicVQConfig(**fields)


__all__ = [
    "KIND", "VQ_KIND", "MICRO_COND_VALUES", "MICRO_COND_CHANNELS", "DEFAULT_MICRO_CONDS", "FLUX_AXES",
    "MeissonicConfig", "MeissonicVQConfig", "detect_meissonic_kind", "infer_meissonic_shapes",
    "resolve_meissonic_config", "infer_vq_shapes", "resolve_vq_config",
]
