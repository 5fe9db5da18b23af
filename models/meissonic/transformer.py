"""Meissonic's MMDiT in plain torch: token grid + CLIP text → logits over the VQ codebook.

Module and parameter names are the diffusers layout of the official ``transformer/`` folder, so
``diffusion_pytorch_model.safetensors`` loads with strict key checking: ``embed.{embeddings,
layer_norm, conv}``, ``down_block.downsample.{norm, conv}``, ``project_to_hidden{_norm,}``,
``context_embedder``, ``encoder_proj_layer_norm``, ``cond_embed.linear_{1,2}``,
``time_text_embed.{timestep_embedder, text_embedder}.linear_{1,2}``, ``transformer_blocks.N.{norm1,
norm1_context}.linear``, ``.attn.{to_q, to_k, to_v, add_q_proj, add_k_proj, add_v_proj, to_out.0,
to_add_out, norm_q, norm_k, norm_added_q, norm_added_k}``, ``.ff.net.{0.proj, 2}``, ``.ff_context…``,
``single_transformer_blocks.N.{norm.linear, proj_mlp, proj_out, attn.{to_q, to_k, to_v, norm_q,
norm_k}}``, ``project_from_hidden{_norm,}``, ``up_block.upsample.{norm, conv}``, ``mlm_layer.{conv1,
layer_norm, conv2}``.

Forward (words; RMSNorm eps 1e-6 with weight; LN = LayerNorm without affine, eps 1e-6):

- tokens (B, h, w) → embedding → RMSNorm → 1×1 conv → RMSNorm + 2×2 stride-2 conv (grid h/2 × w/2)
  → flatten rows → RMSNorm → Linear: the image stream;
- text hidden states (B, L, J) → Linear → RMSNorm: the text stream;
- micro-conditioning (B, 5) → each value 256 sinusoidal channels (cos first) → concatenated after
  the pooled text vector → ``cond_embed`` (Linear, SiLU, Linear; no biases) → pooled′;
- temb = MLP(sinusoid(1000 · timestep)) + MLP(pooled′); ``timestep`` is the sampler's step counter
  (N − 1 … 0, the reference scheduler's ``timesteps``);
- joint blocks (AdaLN-Zero on both streams, joint attention over [text; image] with RMS q/k norms
  and 3-axis RoPE, GELU-tanh MLPs), then single blocks over the concatenation (AdaLN-Zero, parallel
  attention + MLP, one output projection); RoPE positions: text (0, 0, 0), image (0, row, col) on
  the downsampled grid, the table in float64 like the reference;
- image part → RMSNorm → Linear → grid → RMSNorm + 2×2 transposed conv → ``mlm_layer`` (1×1 conv,
  RMSNorm, 1×1 conv) → logits (B, codebook, h, w).

Source: MeissonFlow/Meissonic ``src/transformer.py`` (``Transformer2DModel.forward``,
``TransformerBlock``, ``SingleTransformerBlock``, ``UVit2DConvEmbed``, ``ConvMlmLayer``,
``Simple_UVitBlock``, ``FluxPosEmbed``) and the diffusers 0.32.2 modules it builds on
(``AdaLayerNormZero{,Single}``, ``Attention`` + ``FluxAttnProcessor2_0``, ``apply_rotary_emb``,
``RMSNorm``, ``FeedForward``, ``TimestepEmbedding``, ``CombinedTimestepTextProjEmbeddings``,
``get_timestep_embedding``, ``Downsample2D``, ``Upsample2D``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import SamplingError
from .config import MICRO_COND_CHANNELS, MICRO_COND_VALUES, TIME_CHANNELS, MeissonicConfig

EPS = 1e-6
_FP16_MAX = 65504.0


class RMSNorm(nn.Module):
    """RMS norm over the last axis with a weight (diffusers ``RMSNorm``: statistics in float32; the
    result in the weight's dtype when that is fp16/bf16, else float32 times the input dtype)."""

    def __init__(self, dim: int, eps: float = EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        y = x * torch.rsqrt(var + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            y = y.to(self.weight.dtype)
        return y * self.weight


def sinusoid(values: torch.Tensor, channels: int) -> torch.Tensor:
    """diffusers ``get_timestep_embedding(values, channels, flip_sin_to_cos=True, downscale_freq_shift=0)``:
    values (N,) → float32 (N, channels) as [cos | sin] with frequencies 10000^(−i/half)."""
    half = channels // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values.reshape(-1, 1).float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if channels % 2 else emb


class MLPEmbedding(nn.Module):
    """Linear → SiLU → Linear (diffusers ``TimestepEmbedding`` / ``PixArtAlphaTextProjection``)."""

    def __init__(self, in_dim: int, dim: int, bias: bool = True):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim, bias=bias)
        self.linear_2 = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimeTextEmbedding(nn.Module):
    """temb = MLP(sinusoid(t)) + MLP(pooled) (diffusers ``CombinedTimestepTextProjEmbeddings``)."""

    def __init__(self, dim: int, pooled_dim: int):
        super().__init__()
        self.timestep_embedder = MLPEmbedding(TIME_CHANNELS, dim)
        self.text_embedder = MLPEmbedding(pooled_dim, dim)

    def forward(self, timestep: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        t = self.timestep_embedder(sinusoid(timestep, TIME_CHANNELS).to(pooled.dtype))
        return t + self.text_embedder(pooled)


class AdaNormZero(nn.Module):
    """LN(x)·(1 + scale) + shift with ``chunks`` modulation vectors from Linear(SiLU(temb)); returns the
    normed input and the remaining vectors (diffusers ``AdaLayerNormZero`` (6) / ``…Single`` (3))."""

    def __init__(self, dim: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim, chunks * dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor):
        shift, scale, *rest = self.linear(F.silu(temb)).chunk(self.chunks, dim=1)
        x = F.layer_norm(x, x.shape[-1:], eps=EPS) * (1 + scale[:, None]) + shift[:, None]
        return (x, *rest)


class GeluProj(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """Linear → GELU-tanh → Linear, width 4× (diffusers ``FeedForward``, keys ``net.0.proj``, ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GeluProj(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of x (B, H, S, d) by the table (S, d) (diffusers ``apply_rotary_emb``,
    ``use_real_unbind_dim=-1``); computed in float32, returned in x's dtype."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def rope_table(text_len: int, grid: tuple[int, int], axes: tuple[int, ...], theta: float = 10000.0,
               device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (text_len + h·w, sum(axes)) float32 for positions text (0, 0, 0), image (0, row, col).

    Each axis a gets frequencies θ^(−2i/a), i < a/2, each repeated twice (adjacent); computed in
    float64 like the reference's ``FluxPosEmbed`` (off MPS) and rounded to float32.
    """
    h, w = grid
    ids = torch.zeros(text_len + h * w, 3, dtype=torch.float64)
    ids[text_len:, 1] = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
    ids[text_len:, 2] = torch.arange(w, dtype=torch.float64).repeat(h)
    cos, sin = [], []
    for axis, dim in enumerate(axes):
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles = torch.outer(ids[:, axis], freqs)
        cos.append(angles.cos().repeat_interleave(2, dim=1))
        sin.append(angles.sin().repeat_interleave(2, dim=1))
    return torch.cat(cos, 1).float().to(device), torch.cat(sin, 1).float().to(device)


class Attention(nn.Module):
    """Multi-head attention with RMS q/k norms; ``joint``: text projections ``add_*_proj`` and the
    output projections ``to_out.0`` / ``to_add_out`` (double blocks); otherwise no output projection
    (single blocks: the reference's ``pre_only``)."""

    def __init__(self, dim: int, heads: int, head_dim: int, joint: bool):
        super().__init__()
        self.heads, self.head_dim, self.joint = heads, head_dim, joint
        inner = heads * head_dim
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner) for _ in range(3))
        self.norm_q, self.norm_k = RMSNorm(head_dim), RMSNorm(head_dim)
        if joint:
            self.add_q_proj, self.add_k_proj, self.add_v_proj = (nn.Linear(dim, inner) for _ in range(3))
            self.norm_added_q, self.norm_added_k = RMSNorm(head_dim), RMSNorm(head_dim)
            self.to_out = nn.ModuleList([nn.Linear(inner, dim)])
            self.to_add_out = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], text: torch.Tensor | None = None):
        q = self.norm_q(self._heads(self.to_q(x)))
        k = self.norm_k(self._heads(self.to_k(x)))
        v = self._heads(self.to_v(x))
        if text is not None:
            q = torch.cat([self.norm_added_q(self._heads(self.add_q_proj(text))), q], dim=2)
            k = torch.cat([self.norm_added_k(self._heads(self.add_k_proj(text))), k], dim=2)
            v = torch.cat([self._heads(self.add_v_proj(text)), v], dim=2)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(x.shape[0], -1, self.heads * self.head_dim).to(q.dtype)
        if text is None:
            return out
        n = text.shape[1]
        return self.to_out[0](out[:, n:]), self.to_add_out(out[:, :n])


class DoubleBlock(nn.Module):
    """Joint text-image block (reference ``TransformerBlock``): (text, image) → (text, image)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm1 = AdaNormZero(dim, 6)
        self.norm1_context = AdaNormZero(dim, 6)
        self.attn = Attention(dim, heads, head_dim, joint=True)
        self.ff = FeedForward(dim)
        self.ff_context = FeedForward(dim)

    def forward(self, x, text, temb, rope):
        nx, gate, shift2, scale2, gate2 = self.norm1(x, temb)
        nt, c_gate, c_shift2, c_scale2, c_gate2 = self.norm1_context(text, temb)
        a, ca = self.attn(nx, rope, nt)
        x = x + gate[:, None] * a
        x = x + gate2[:, None] * self.ff(F.layer_norm(x, x.shape[-1:], eps=EPS) * (1 + scale2[:, None])
                                         + shift2[:, None])
        text = text + c_gate[:, None] * ca
        text = text + c_gate2[:, None] * self.ff_context(
            F.layer_norm(text, text.shape[-1:], eps=EPS) * (1 + c_scale2[:, None]) + c_shift2[:, None])
        if text.dtype == torch.float16:
            text = text.clip(-_FP16_MAX, _FP16_MAX)
        return text, x


class SingleBlock(nn.Module):
    """Parallel attention + MLP over [text; image] (reference ``SingleTransformerBlock``)."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm = AdaNormZero(dim, 3)
        self.proj_mlp = nn.Linear(dim, mlp_ratio * dim)
        self.proj_out = nn.Linear(dim + mlp_ratio * dim, dim)
        self.attn = Attention(dim, heads, head_dim, joint=False)

    def forward(self, x, temb, rope):
        nx, gate = self.norm(x, temb)
        h = torch.cat([self.attn(nx, rope), F.gelu(self.proj_mlp(nx), approximate="tanh")], dim=2)
        x = x + gate[:, None] * self.proj_out(h)
        if x.dtype == torch.float16:
            x = x.clip(-_FP16_MAX, _FP16_MAX)
        return x


class TokenEmbed(nn.Module):
    """Token ids (B, h, w) → (B, D, h, w): Embedding → RMSNorm → 1×1 conv (reference ``UVit2DConvEmbed``)."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, dim)
        self.layer_norm = RMSNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(self.layer_norm(self.embeddings(ids)).permute(0, 3, 1, 2))


class MlmHead(nn.Module):
    """(B, D, h, w) → logits (B, codebook, h, w): 1×1 conv → RMSNorm → 1×1 conv (reference ``ConvMlmLayer``)."""

    def __init__(self, dim: int, codebook: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.layer_norm = RMSNorm(dim)
        self.conv2 = nn.Conv2d(dim, codebook, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(self.conv1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.conv2(x)


class GridResample(nn.Module):
    """RMSNorm over channels, then a 2×2 stride-2 conv (down: right/bottom zero pad of 1 first, as
    diffusers ``Downsample2D(padding=0)``) or transposed conv (up: ``Upsample2D(use_conv_transpose)``)."""

    def __init__(self, dim: int, up: bool):
        super().__init__()
        self.up = up
        self.norm = RMSNorm(dim)
        self.conv = (nn.ConvTranspose2d if up else nn.Conv2d)(dim, dim, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.conv(x if self.up else F.pad(x, (0, 1, 0, 1)))


class DownBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.downsample = GridResample(dim, up=False)

    def forward(self, x):
        return self.downsample(x)


class UpBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.upsample = GridResample(dim, up=True)

    def forward(self, x):
        return self.upsample(x)


class MeissonicTransformer(nn.Module):
    """Meissonic's MMDiT (reference ``Transformer2DModel``); see the module docstring."""

    def __init__(self, config: MeissonicConfig):
        super().__init__()
        self.config = config
        d, heads, hd = config.inner_dim, config.num_attention_heads, config.attention_head_dim
        self.time_text_embed = TimeTextEmbedding(d, config.pooled_projection_dim)
        self.context_embedder = nn.Linear(config.joint_attention_dim, d)
        self.transformer_blocks = nn.ModuleList(DoubleBlock(d, heads, hd) for _ in range(config.num_layers))
        self.single_transformer_blocks = nn.ModuleList(SingleBlock(d, heads, hd)
                                                       for _ in range(config.num_single_layers))
        self.embed = TokenEmbed(config.vocab_size, d)
        self.mlm_layer = MlmHead(d, config.codebook_size)
        self.cond_embed = MLPEmbedding(config.micro_cond_dim + config.pooled_projection_dim, d, bias=False)
        self.encoder_proj_layer_norm = RMSNorm(d)
        self.project_to_hidden_norm = RMSNorm(d)
        self.project_to_hidden = nn.Linear(d, d, bias=False)
        self.project_from_hidden_norm = RMSNorm(d)
        self.project_from_hidden = nn.Linear(d, d, bias=False)
        self.down_block = DownBlock(d) if config.downsample else nn.Identity()
        self.up_block = UpBlock(d) if config.upsample else nn.Identity()

    @property
    def mask_id(self) -> int:
        return self.config.mask_id

    @property
    def dtype(self) -> torch.dtype:
        return self.context_embedder.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.context_embedder.weight.device

    def check_inputs(self, tokens, text_states, pooled, micro_conds) -> None:
        """SamplingError unless tokens (B, h, w) int, text (B, L, J), pooled (B, P), micro (B, 5) agree."""
        c = self.config
        if tokens.ndim != 3 or tokens.is_floating_point():
            raise SamplingError(f"Meissonic tokens must be integer ids (B, h, w); got {tuple(tokens.shape)} "
                                f"{tokens.dtype}.")
        b = tokens.shape[0]
        if c.downsample and (tokens.shape[1] % 2 or tokens.shape[2] % 2):
            raise SamplingError(f"Meissonic's token grid must have even sides (it is halved inside the model); "
                                f"got {tuple(tokens.shape[1:])}.")
        if text_states.ndim != 3 or text_states.shape[0] != b or text_states.shape[2] != c.joint_attention_dim:
            raise SamplingError(f"text hidden states must be (B={b}, L, {c.joint_attention_dim}); got "
                                f"{tuple(text_states.shape)}. Use the text encoder this checkpoint was trained with.")
        if tuple(pooled.shape) != (b, c.pooled_projection_dim):
            raise SamplingError(f"pooled text vector must be ({b}, {c.pooled_projection_dim}); got {tuple(pooled.shape)}.")
        if tuple(micro_conds.shape) != (b, MICRO_COND_VALUES):
            raise SamplingError(f"micro-conditioning must be ({b}, {MICRO_COND_VALUES}) (width, height, crop top, "
                                f"crop left, aesthetic score); got {tuple(micro_conds.shape)}.")

    def forward(self, tokens: torch.Tensor, text_states: torch.Tensor, pooled: torch.Tensor,
                micro_conds: torch.Tensor, timestep: int | float | torch.Tensor) -> torch.Tensor:
        """Logits (B, codebook_size, h, w), in the weights' dtype.

        tokens (B, h, w) int64 ids in [0, vocab) (``mask_id`` = unknown); text_states (B, L, J) (CLIP
        ``hidden_states[-2]``); pooled (B, P) (CLIP ``text_embeds``); micro_conds (B, 5) float (width,
        height, crop top, crop left, aesthetic score); timestep: the step counter (scalar, (1,) or (B,)),
        multiplied by 1000 here as in the reference. Raises SamplingError on mismatched shapes.
        """
        self.check_inputs(tokens, text_states, pooled, micro_conds)
        b = tokens.shape[0]
        dtype = self.dtype
        text_states = text_states.to(device=self.device, dtype=dtype)
        micro = sinusoid(micro_conds.to(self.device).flatten(), MICRO_COND_CHANNELS).reshape(b, -1)
        cond = torch.cat([pooled.to(self.device, torch.float32), micro], dim=1).to(dtype)
        cond = self.cond_embed(cond).to(text_states.dtype)

        x = self.down_block(self.embed(tokens.to(self.device)))
        _, d, h, w = x.shape
        x = self.project_to_hidden(self.project_to_hidden_norm(x.permute(0, 2, 3, 1).reshape(b, h * w, d)))
        text = self.encoder_proj_layer_norm(self.context_embedder(text_states))

        t = torch.as_tensor(timestep, device=self.device).reshape(-1).to(x.dtype) * 1000
        temb = self.time_text_embed(t, cond)
        rope = rope_table(text.shape[1], (h, w), self.config.axes_dims_rope, self.config.rope_theta, self.device)

        for block in self.transformer_blocks:
            text, x = block(x, text, temb, rope)
        x = torch.cat([text, x], dim=1)
        for block in self.single_transformer_blocks:
            x = block(x, temb, rope)
        x = self.project_from_hidden(self.project_from_hidden_norm(x[:, text.shape[1]:]))
        x = self.up_block(x.reshape(b, h, w, d).permute(0, 3, 1, 2))
        return self.mlm_layer(x)


__all__ = ["MeissonicTransformer", "RMSNorm", "sinusoid", "rope_table", "apply_rope"]
