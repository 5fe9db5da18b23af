"""LlamaGen's registry entry: checkpoints, conditions, the model/tokenizer pairing, decoding and previews.

Class-to-image GPTs take class ids (ImageNet names for the 1000-class models when torchvision
is importable; the embedded model's own class names), text-to-image GPTs take FLAN-T5-XL
features of 120 positions, left-aligned with the padding masked. Tokens form one raster grid
(``model.token_layout``), decoded by the VQ tokenizer's ``decode_codes``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ... import imaging
from ...errors import ConfigError, SamplingError
from .. import embedded as shipped
from .. import raster
from ..registry import (
    CLASS,
    MODEL,
    PROMPT,
    TOKENIZER,
    Condition,
    Family,
    ModelInfo,
    PromptSpec,
    TokenizerInfo,
    check_class_ids,
    imagenet_class_names,
)
from .config import detect_kind, grid_from_tokens
from .gpt import LlamaGenCondition, LlamaGenGPT
from .loader import gpt_from_state_dict, vq_from_state_dict
from .vq import LlamaGenVQ

_ROLES = {"gpt-c2i": MODEL, "gpt-t2i": MODEL, "vq": TOKENIZER}
_OFFICIAL_DOWNSAMPLE = 16  # the VQ-16 tokenizers every official GPT was trained with


def check_pair(gpt: LlamaGenGPT, vq: LlamaGenVQ) -> None:
    """Raise ConfigError when the GPT's vocabulary and the VQ's codebook differ."""
    _check_vocab(gpt.vocab_size, vq.codebook_size, "the VQ tokenizer")


def _check_vocab(vocab_size: int, codebook_size: int, tokenizer: str) -> None:
    if vocab_size != codebook_size:
        raise ConfigError(
            f"The GPT predicts {vocab_size} token ids but {tokenizer} has {codebook_size} codes: they were not "
            f"trained together. Pair c2i GPTs with vq_ds16_c2i and t2i GPTs with vq_ds16_t2i.")


class LlamaGenFamily(Family):
    name = "llamagen"
    title = "LlamaGen"
    order = "next-token"
    preset = "llamagen"
    embedded_roles = {MODEL: "gpt", TOKENIZER: "vq"}  # file keys in models.embedded

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state, metadata) -> str | None:
        return _ROLES.get(detect_kind(state))

    def build_model(self, state, metadata, filename, *, dtype, device, image_size=None, tokenizer=None,
                    override=None):
        fields = {}
        if tokenizer is not None:
            fields["downsample"] = tokenizer.downsample
        if image_size is not None:
            fields.setdefault("downsample", _OFFICIAL_DOWNSAMPLE)
            fields["image_size"] = int(image_size)
        fields.update(override or {})  # GPTConfig names as given (convert's image_size without a downsample)
        return gpt_from_state_dict(state, filename, metadata, override=fields, dtype=dtype, device=device)

    def build_tokenizer(self, state, metadata, filename, *, dtype, device):
        return vq_from_state_dict(state, filename, metadata, dtype=dtype, device=device)

    def model_info(self, model: LlamaGenGPT, name: str, path) -> ModelInfo:
        c = model.config
        embedded = self.embedded_source(path)
        common = dict(family=self.name, name=name, vocab_size=c.vocab_size, layout=tuple(model.token_layout),
                      preset="embedded" if embedded else self.preset)
        if c.model_type == "t2i":
            spec = PromptSpec(length=c.cls_token_num, width=c.caption_dim, encoder="FLAN-T5-XL (2048)")
            return ModelInfo(kind=PROMPT, prompt=spec, **common)
        return ModelInfo(kind=CLASS, num_classes=c.num_classes, class_names=_class_names(c.num_classes, embedded),
                         **common)

    def tokenizer_info(self, tokenizer: LlamaGenVQ, name: str) -> TokenizerInfo:
        return TokenizerInfo(self.name, name, tokenizer.codebook_size)

    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info, ids, names=None) -> Condition:
        check_class_ids(info, ids)
        labels = torch.as_tensor(list(ids), dtype=torch.long)
        shown = tuple(names) if names is not None else tuple(str(int(i)) for i in ids)
        return Condition(self.name, CLASS, LlamaGenCondition(labels=labels), shown)

    def prompt_condition(self, info, features, mask, prompts: Sequence[str], pooled=None, null=None) -> Condition:
        cond = Condition(self.name, PROMPT, LlamaGenCondition(caption=features, caption_mask=mask), tuple(prompts))
        self.check_fit(info, cond)
        return cond

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        value = cond.value
        if cond.kind == CLASS:
            check_class_ids(info, value.labels.tolist())
            return
        want = (cond.batch_size, info.prompt.length, info.prompt.width)
        if tuple(value.caption.shape) != want or tuple(value.caption_mask.shape) != want[:2]:
            raise SamplingError(f"Prompt features of shape {tuple(value.caption.shape)} do not fit {info.name}, which "
                                f"reads (batch, {want[1]}, {want[2]}): encode the prompt for this model.")

    # -- tokens and pictures ----------------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        _check_vocab(vocab_size, tokenizer.codebook_size, tokenizer.name)

    def decode(self, tokenizer: LlamaGenVQ, tokens: torch.Tensor, layout) -> torch.Tensor:
        if len(layout.scales) != 1 or tokens.shape[-1] != layout.num_tokens:
            raise SamplingError(f"LlamaGen decodes one token grid; got {tokens.shape[-1]} tokens in the layout "
                                f"{layout.scales}.")
        return tokenizer.decode_codes(tokens.to(tokenizer.device), grid=layout.final)

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        side = grid_from_tokens(num_tokens)
        return ((side, side),)

    @torch.no_grad()
    def preview(self, tokenizer: LlamaGenVQ, state, layout) -> np.ndarray | None:
        known = state.known[0]
        if not bool(known.any()):
            return None
        filled = raster.fill_unknown(state.tokens[0], known)
        image = imaging.to_uint8(self.decode(tokenizer, filled[None], layout))[0]
        return raster.fade_unknown(image, layout.final_map(known[None])[0])


def _class_names(num_classes: int, embedded: str | None) -> tuple[str, ...] | None:
    """The embedded model's own names, ImageNet's for 1000-class models, else none (ids only)."""
    if embedded is not None:
        return tuple(shipped.CLASS_NAMES) if len(shipped.CLASS_NAMES) == num_classes else None
    return imagenet_class_names() if num_classes == 1000 else None


FAMILY = LlamaGenFamily()
