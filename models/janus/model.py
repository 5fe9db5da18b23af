"""Janus-Pro's generation path: the Llama decoder with the image-token embedding, aligner and head.

Module and parameter names follow the original release (deepseek-ai/Janus ``MultiModalityCausalLM``):
``language_model.model.*`` (the decoder, ``language_model.py``), ``gen_embed`` (Embedding: image token →
VQ-code-sized vector), ``gen_aligner.layers.{0,2,..}`` (``MlpProjector`` "mlp_gelu": Linear, then GELU + Linear
per extra depth) and ``gen_head.{output_mlp_projector,vision_head}`` (``vision_head``: Linear, exact GELU,
Linear). The understanding tower (``vision_model.``, ``aligner.``), the text ``lm_head`` and the VQ
(``gen_vision_model.``, the family's tokenizer, ``vq.py``) are not part of this module.

The model is conditioned on token ids of the prompt (``prompt.JanusCondition``); sampling goes through
``start_session`` (``session.py``), the next-token contract of ``samplers.protocols``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...errors import SamplingError
from ..llamagen.gpt import Linear
from .config import JanusConfig
from .language_model import LlamaDecoder
from .prompt import JanusCondition, JanusPromptTokenizer
from .session import JanusSession


class MlpProjector(nn.Module):
    """``gen_aligner``: Linear(in → width), then (GELU, Linear(width → width)) × (depth − 1); keys
    ``layers.N``."""

    def __init__(self, in_dim: int, width: int, depth: int):
        super().__init__()
        parts: list[nn.Module] = [Linear(in_dim, width)]
        for _ in range(1, depth):
            parts += [nn.GELU(), Linear(width, width)]
        self.layers = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class VisionHead(nn.Module):
    """``gen_head``: hidden → ``output_mlp_projector`` → exact GELU → ``vision_head`` → image-token logits."""

    def __init__(self, hidden: int, inner: int, vocab: int):
        super().__init__()
        self.output_mlp_projector = Linear(hidden, inner)
        self.act = nn.GELU()
        self.vision_head = Linear(inner, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vision_head(self.act(self.output_mlp_projector(x)))


class LanguageModel(nn.Module):
    """Holds the decoder under ``model`` so the release's ``language_model.model.`` names load as they are."""

    def __init__(self, config: JanusConfig):
        super().__init__()
        self.model = LlamaDecoder(config)


class JanusGenerator(nn.Module):
    """Janus-Pro text-to-image generator (a ``samplers.protocols.NextTokenModel``).

    ``prompt_tokenizer`` (set by the loader from the release's ``tokenizer.json``; None when none was found)
    turns prompt strings into conditions (``condition``).
    """

    def __init__(self, config: JanusConfig):
        super().__init__()
        self.config = config
        self.language_model = LanguageModel(config)
        self.gen_embed = nn.Embedding(config.image_vocab_size, config.gen_embed_dim)
        self.gen_aligner = MlpProjector(config.gen_embed_dim, config.hidden_size, config.aligner_depth)
        self.gen_head = VisionHead(config.hidden_size, config.head_hidden, config.image_vocab_size)
        self.prompt_tokenizer: JanusPromptTokenizer | None = None

    # -- sizes -------------------------------------------------------------------------
    @property
    def decoder(self) -> LlamaDecoder:
        return self.language_model.model

    @property
    def vocab_size(self) -> int:
        """Image tokens (the VQ codebook), not the text vocabulary."""
        return self.config.image_vocab_size

    @property
    def num_image_tokens(self) -> int:
        return self.config.num_image_tokens

    @property
    def grid_size(self) -> int:
        return self.config.grid_size

    @property
    def token_layout(self) -> tuple[tuple[int, int], ...]:
        """One raster grid (see samplers.layout.TokenLayout)."""
        return ((self.config.grid_size, self.config.grid_size),)

    @property
    def dtype(self) -> torch.dtype:
        return self.gen_embed.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.gen_embed.weight.device

    # -- pieces ------------------------------------------------------------------------
    def image_embeds(self, tokens: torch.Tensor, check: bool = False) -> torch.Tensor:
        """Image token ids (R, L) → input embeddings (R, L, hidden): ``gen_aligner(gen_embed(tokens))``
        (the reference's ``prepare_gen_img_embeds``). ``check`` refuses ids outside the codebook with a
        SamplingError (a device sync: off in the sampling loop, whose tokens come from the model's own logits)."""
        tokens = tokens.to(self.device).long()
        if check and tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise SamplingError(f"Image token ids must be in 0..{self.vocab_size - 1}; got "
                                f"{int(tokens.min())}..{int(tokens.max())}.")
        return self.gen_aligner(self.gen_embed(tokens))

    def text_embeds(self, ids: torch.Tensor) -> torch.Tensor:
        """Text token ids (R, L) → input embeddings (R, L, hidden) from the language model's table."""
        return self.decoder.embed_tokens(ids.to(self.device).long())

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Normed hidden states (..., hidden) → float32 image-token logits (..., image_vocab) through ``gen_head``."""
        return self.gen_head(hidden).float()

    def condition(self, prompts: str | list[str] | tuple[str, ...], **kwargs) -> JanusCondition:
        """Prompt strings → a JanusCondition with this model's tokenizer (``prompt.JanusPromptTokenizer.condition``
        keyword arguments pass through). SamplingError when no tokenizer.json was loaded with the model or a
        prompt does not fit the context."""
        if self.prompt_tokenizer is None:
            raise SamplingError("This Janus-Pro model was loaded without its tokenizer.json: load the release folder "
                                "(config.json, tokenizer.json and the weights) to use text prompts.")
        return self.prompt_tokenizer.condition(prompts, max_tokens=self.config.max_prompt_tokens, **kwargs)

    # -- whole-sequence forward (tests) ------------------------------------------------------
    @torch.no_grad()
    def teacher_forced_logits(self, input_ids: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Float32 logits (R, N, image_vocab) of one causal pass without cache over the prompt ids (R, L) followed by
        image tokens (R, N)[:, :-1]: entry i predicts image token i (entry 0 from the last prompt position).
        Rows are full-length prompts (no padding), positions 0..L+N-2, no attention mask, as the reference feeds
        ``language_model.model(inputs_embeds=...)``."""
        ids = torch.as_tensor(input_ids, device=self.device).long()
        tokens = torch.as_tensor(image_tokens, device=self.device).long()
        h = torch.cat([self.text_embeds(ids), self.image_embeds(tokens[:, :-1], check=True)], dim=1).to(self.dtype)
        rows, length = h.shape[:2]
        positions = torch.arange(length, device=self.device).expand(rows, length)
        cache = self.decoder.new_cache(rows, length, self.dtype, self.device)
        hidden = self.decoder(h, positions, cache, slice(0, length), length, causal=True)
        return self.logits(hidden[:, ids.shape[1] - 1:])

    def start_session(self, cond: JanusCondition, guidance: bool, max_new_tokens: int | None = None) -> JanusSession:
        """Begin cached decoding for ``cond``: a JanusSession (samplers.protocols.NextTokenSession)."""
        return JanusSession(self, cond, guidance, max_new_tokens or self.num_image_tokens)
