"""STAR's registry entry: text-to-image next-scale prediction, decoded by VAR's VQ-VAE.

STAR's files are training snapshots (the weights under ``trainer`` → ``var_wo_ddp``), which the generic
checkpoint reader does not take as a state dict: ``read_file`` finds the weights inside and passes the
snapshot's recorded scale list on as metadata. Its tokens are VAR's (same pyramid, same VQ-VAE), so
the tokenizer family is ``var`` and decoding, layouts and previews are VAR's. Prompts are CLIP
ViT-H/14 (Stable Diffusion 2.1) features: the last hidden states, the attention mask and the pooled
vector, for the prompts and for the empty prompt (the unconditional rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...errors import SamplingError
from ..checkpoint import PICKLE_SUFFIXES, read_pickle
from ..metadata import config_metadata
from ..registry import MODEL, PROMPT, Condition, Family, ModelInfo, PromptSpec, TokenizerInfo, family
from .condition import StarCondition
from .config import KIND, detect_star_kind
from .loader import is_training_snapshot, snapshot_parts, star_from_state_dict
from .transformer import StarTransformer

TEXT_LENGTH = 77  # CLIP's context: prompts are padded to 77 tokens
TEXT_ENCODER = "CLIP ViT-H/14 (the Stable Diffusion 2.1 text encoder, 1024-wide)"


class StarFamily(Family):
    name = "star"
    title = "STAR"
    order = "next-scale"
    preset = "star"
    needs_tokenizer = True
    tokenizer_family = "var"

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state, metadata) -> str | None:
        return MODEL if detect_star_kind(state) in ("star", "star-sampler") else None

    def read_file(self, path, role=MODEL) -> tuple[dict, dict] | None:
        """(state, metadata) of a STAR training snapshot (``trainer`` → ``var_wo_ddp``), else None."""
        path = Path(path)
        if role != MODEL or path.suffix.lower() not in PICKLE_SUFFIXES or not path.is_file():
            return None
        obj = read_pickle(path)
        if not is_training_snapshot(obj):
            return None
        found = snapshot_parts(obj, path.name)
        metadata = config_metadata(KIND, {"patch_nums": list(found.patch_nums)}) if found.patch_nums else {}
        return found.state, metadata

    def build_model(self, state, metadata, filename, *, dtype, device, image_size=None, tokenizer=None,
                    override=None):
        override = dict(override or {})
        if "n_head" in override:  # the CLI's LlamaGen-named flag
            override["num_heads"] = override.pop("n_head")
        if image_size is not None:
            override["image_size"] = int(image_size)
        model = star_from_state_dict(state, filename, metadata, override=override, dtype=dtype, device=device)
        if tokenizer is not None:
            model.check_vqvae(tokenizer)
        return model

    def build_tokenizer(self, state, metadata, filename, *, dtype, device):
        raise SamplingError(f"'{filename}' is a STAR transformer, not a tokenizer: load it with the model loader.")

    def model_info(self, model: StarTransformer, name: str, path) -> ModelInfo:
        c = model.config
        spec = PromptSpec(length=TEXT_LENGTH, width=c.text_dim, encoder=TEXT_ENCODER, encoder_kind="clip")
        return ModelInfo(family=self.name, name=name, kind=PROMPT, vocab_size=c.vocab_size,
                         layout=tuple(model.token_layout), prompt=spec, preset=self.preset)

    def tokenizer_info(self, tokenizer, name: str) -> TokenizerInfo:
        return family(self.tokenizer_family).tokenizer_info(tokenizer, name)

    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info, ids, names=None) -> Condition:
        raise SamplingError(f"{info.name} is a text-to-image STAR model: give a prompt, not class ids.")

    def prompt_condition(self, info, features, mask, prompts: Sequence[str], pooled=None, null=None) -> Condition:
        """``features`` (B, 77, 1024), ``mask`` (B, 77), ``pooled`` (B, 1024); ``null``: the empty prompt's
        (states, mask, pooled) with 1 or B rows, for guidance."""
        if pooled is None:
            raise SamplingError(f"{info.name} needs the pooled CLIP vector of each prompt as well as its hidden "
                                f"states: encode the prompt with {TEXT_ENCODER}.")
        null_states, null_mask, null_pooled = null if null is not None else (None, None, None)
        value = StarCondition(features, mask, pooled, null_states, null_mask, null_pooled)
        cond = Condition(self.name, PROMPT, value, tuple(prompts))
        self.check_fit(info, cond)
        return cond

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        value = cond.value
        width = info.prompt.width
        if value.states.dim() != 3 or value.states.shape[-1] != width:
            raise SamplingError(f"Prompt features of shape {tuple(value.states.shape)} do not fit {info.name}, which "
                                f"reads (batch, tokens, {width}) from {TEXT_ENCODER}: encode the prompt for this "
                                f"model.")
        value.rows(guidance=value.has_null)  # shapes of prompts and empty prompt agree (raises otherwise)

    # -- tokens and pictures: VAR's ---------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        family(self.tokenizer_family).check_vocab(vocab_size, tokenizer)

    def decode(self, tokenizer, tokens: torch.Tensor, layout) -> torch.Tensor:
        return family(self.tokenizer_family).decode(tokenizer, tokens, layout)

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        return family(self.tokenizer_family).layout_for(num_tokens)

    def preview(self, tokenizer, state, layout) -> np.ndarray | None:
        return family(self.tokenizer_family).preview(tokenizer, state, layout)

    def sampling_model(self, model: StarTransformer, tokenizer=None):
        if tokenizer is None:
            raise SamplingError("STAR samples scale by scale through VAR's VQ-VAE: connect the VQ-VAE "
                                "(vae_ch160v4096z32) to the sampler.")
        return model.bind(tokenizer)


FAMILY = StarFamily()
