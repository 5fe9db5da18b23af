"""VAR's registry entry: checkpoints, class conditions, the transformer/VQ-VAE pairing, decoding and previews.

VAR is class-to-image (ImageNet's 1000 classes for the official files) and decodes next-scale:
its tokens form a pyramid of maps ((1, 1), (2, 2), …, (16, 16) at 256 px), decoded through the
VQ-VAE's accumulated latent f̂. Sampling needs the VQ-VAE (``needs_tokenizer``): the sampler drives
``sampling_model(model, tokenizer)``, the transformer bound to it. A preview decodes f̂ from the
scales drawn so far, which is a coarse but complete picture of the whole image at every step.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ... import imaging
from ...errors import ConfigError, SamplingError
from .. import embedded as shipped
from ..registry import CLASS, MODEL, TOKENIZER, Condition, Family, ModelInfo, TokenizerInfo
from ..registry import check_class_ids, imagenet_class_names
from .config import KNOWN_PYRAMIDS, detect_kind
from .loader import var_from_state_dict, vqvae_from_state_dict
from .session import VARPair
from .transformer import VARCondition, VARTransformer
from .vqvae import VARVQVAE

_ROLES = {"var": MODEL, "var-vqvae": TOKENIZER}


class VARFamily(Family):
    name = "var"
    title = "VAR"
    order = "next-scale"
    # No entropy preset is published for VAR; the paper's scale-wise values are STAR's (2.5, 3, 0.5). The embedded
    # tiny-var uses them moved to its own entropy scale ("embedded-var", lab/calibration.py).
    preset = "star"
    needs_tokenizer = True
    embedded_roles = {MODEL: "var", TOKENIZER: "vqvae"}  # file keys in models.embedded

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state, metadata) -> str | None:
        return _ROLES.get(detect_kind(state))

    def build_model(self, state, metadata, filename, *, dtype, device, image_size=None, tokenizer=None,
                    override=None):
        override = dict(override or {})
        if "n_head" in override:  # the CLI's LlamaGen-named flag
            override["num_heads"] = override.pop("n_head")
        if image_size is not None:
            override["image_size"] = int(image_size)
        model = var_from_state_dict(state, filename, metadata, override=override, dtype=dtype, device=device)
        if tokenizer is not None:
            model.check_vqvae(tokenizer)
        return model

    def build_tokenizer(self, state, metadata, filename, *, dtype, device):
        return vqvae_from_state_dict(state, filename, metadata, dtype=dtype, device=device)

    def model_info(self, model: VARTransformer, name: str, path) -> ModelInfo:
        c = model.config
        embedded = self.embedded_source(path)
        if embedded is not None:
            names = tuple(shipped.CLASS_NAMES) if len(shipped.CLASS_NAMES) == c.num_classes else None
        else:
            names = imagenet_class_names() if c.num_classes == 1000 else None
        return ModelInfo(family=self.name, name=name, kind=CLASS, vocab_size=c.vocab_size,
                         layout=tuple(model.token_layout), num_classes=c.num_classes, class_names=names,
                         preset="embedded-var" if embedded is not None else self.preset)

    def tokenizer_info(self, tokenizer: VARVQVAE, name: str) -> TokenizerInfo:
        return TokenizerInfo(self.name, name, tokenizer.codebook_size)


    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info, ids, names=None) -> Condition:
        check_class_ids(info, ids)
        labels = torch.as_tensor(list(ids), dtype=torch.long)
        shown = tuple(names) if names is not None else tuple(str(int(i)) for i in ids)
        return Condition(self.name, CLASS, VARCondition(labels=labels), shown)

    def prompt_condition(self, info, features, mask, prompts: Sequence[str], pooled=None, null=None) -> Condition:
        raise SamplingError(f"{info.name} is a class-to-image VAR model: give class ids, not a prompt.")

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        check_class_ids(info, cond.value.labels.tolist())

    # -- tokens and pictures ----------------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        if vocab_size != tokenizer.codebook_size:
            raise ConfigError(f"The VAR model predicts {vocab_size} token ids but {tokenizer.name} has "
                              f"{tokenizer.codebook_size} codes: pair var_d*.pth with vae_ch160v4096z32.pth.")

    def decode(self, tokenizer: VARVQVAE, tokens: torch.Tensor, layout) -> torch.Tensor:
        return tokenizer.decode_tokens(tokens.to(tokenizer.device), layout.scales)

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        for patch in KNOWN_PYRAMIDS.values():
            if sum(p * p for p in patch) == num_tokens:
                return tuple((p, p) for p in patch)
        known = ", ".join(f"{sum(p * p for p in v)} ({k})" for k, v in KNOWN_PYRAMIDS.items())
        raise SamplingError(f"{num_tokens} tokens are not a VAR scale pyramid; expected {known}.")

    @torch.no_grad()
    def preview(self, tokenizer: VARVQVAE, state, layout) -> np.ndarray | None:
        """The image of f̂ after the scales drawn so far (first sample)."""
        known = state.known[0]
        done, begin = 0, 0
        for h, w in layout.scales:
            if not bool(known[begin:begin + h * w].all()):
                break
            done, begin = done + 1, begin + h * w
        if done == 0:
            return None
        tokens = state.tokens[:1].to(tokenizer.device)
        f_hat = tokenizer.quantize.tokens_to_fhat(tokens, layout.scales, upto=done)
        return imaging.to_uint8(tokenizer.fhat_to_image(f_hat))[0]

    def sampling_model(self, model: VARTransformer, tokenizer: VARVQVAE | None = None) -> VARPair:
        if tokenizer is None:
            raise SamplingError("VAR samples scale by scale through its VQ-VAE: connect the VQ-VAE "
                                "(vae_ch160v4096z32) to the sampler.")
        return model.bind(tokenizer)


FAMILY = VARFamily()
