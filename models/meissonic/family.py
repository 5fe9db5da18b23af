"""Meissonic's registry entry: masked decoding, the diffusers folder or single files, text or class conditions.

Files: the released diffusers folder (``transformer/`` and ``vqvae/``, read through ``read_file`` with
the role asked for: the model loader reads ``transformer/``, the tokenizer loader ``vqvae/``), a
component folder, or one ``.safetensors`` file of either part. Models: text-to-image (CLIP ViT-H/14
features: ``hidden_states[-2]`` and the projected pooled vector, rows [negative; positive] for
guidance) or class-to-image (a class table stored beside the transformer's keys: the embedded
``tiny-masked``). Tokens: one grid (64×64 at 1024 px), decoded by Meissonic's VQ model, or, for the
embedded model, by the tiny LlamaGen VQ it was trained on (``tokenizer_families``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ... import imaging
from ...errors import CheckpointError, ConfigError, SamplingError
from .. import embedded as shipped
from .. import raster
from ..checkpoint import read_checkpoint
from ..metadata import config_metadata
from ..registry import CLASS, MODEL, PROMPT, TOKENIZER, Condition, Family, ModelInfo, PromptSpec, TokenizerInfo
from ..registry import check_class_ids, family
from .class_table import ClassEmbedding, split_class_embedding
from .config import KIND, VQ_KIND, MeissonicConfig, MeissonicVQConfig, detect_meissonic_kind
from .generator import (DEFAULT_IMAGE_SIZE, PIXELS_PER_TOKEN, MeissonicClassCondition, MeissonicGenerator,
                        grid_from_metadata)
from .loader import WEIGHT_NAMES, component_files, meissonic_from_state_dict, vq_from_state_dict
from .predictor import MeissonicCondition, micro_conditioning
from .vqvae import MeissonicVQModel

_ROLES = {KIND: MODEL, VQ_KIND: TOKENIZER}
_PARTS = {MODEL: "transformer", TOKENIZER: "vqvae"}
TEXT_LENGTH = 77
TEXT_ENCODER = "CLIP ViT-H/14 (Meissonic's text_encoder/, with its projection; 1024-wide)"


class MeissonicFamily(Family):
    name = "meissonic"
    title = "Meissonic"
    order = "masked"
    preset = "meissonic"
    embedded_roles = {MODEL: "masked", TOKENIZER: "vq"}  # file keys in models.embedded

    def tokenizer_families(self) -> tuple[str, ...]:
        # the embedded tiny-masked model shares the tiny LlamaGen's VQ
        return (self.name, "llamagen")

    # -- files ------------------------------------------------------------------------------
    def recognise(self, state, metadata) -> str | None:
        return _ROLES.get(detect_meissonic_kind(state))

    def read_file(self, path, role=MODEL) -> tuple[dict, dict] | None:
        """(state, metadata) of a Meissonic folder's ``transformer/`` (role MODEL) or ``vqvae/`` (TOKENIZER), or of
        a component folder, with its ``config.json`` as metadata; None for anything that is not a folder."""
        path = Path(path)
        if not path.is_dir():
            return None
        part = _PARTS[role]
        # a Meissonic folder (transformer/ or vqvae/ inside: a missing one is then named in the error) or a diffusers
        # component folder; other folders are not ours
        if not (any((path / p).is_dir() for p in _PARTS.values()) or any((path / n).is_file() for n in WEIGHT_NAMES)):
            return None
        file, cfg = component_files(path, part)
        state, metadata = read_checkpoint(file)
        return state, _with_json_config(state, metadata, cfg)

    def complete_metadata(self, path, state, metadata):
        """A component file's ``config.json`` beside it (as in the diffusers folder) as its configuration."""
        kind = detect_meissonic_kind(state)
        beside = Path(path).with_name("config.json")
        if kind == "unknown" or not beside.is_file():
            return metadata
        return _with_json_config(state, metadata, component_files(path, _PARTS[_ROLES[kind]])[1])

    def build_model(self, state, metadata, filename, *, dtype, device, image_size=None, tokenizer=None,
                    override=None):
        transformer_state, table_state = split_class_embedding(state)
        transformer = meissonic_from_state_dict(transformer_state, metadata=metadata, filename=filename,
                                                override=override, dtype=dtype, device=device)
        table = None
        if table_state:
            table = ClassEmbedding.from_state(table_state, filename, transformer.dtype, transformer.device)
            c = transformer.config
            if table.states.shape[2] != c.joint_attention_dim or table.pooled.shape[1] != c.pooled_projection_dim:
                raise CheckpointError(f"'{filename}': the class table's widths {tuple(table.states.shape[2:])} / "
                                      f"{table.pooled.shape[1]} do not match the transformer's text widths.")
        grid = self._grid(metadata, image_size, tokenizer)
        # text models: the reference pipeline's micro-conditioning for the image size (width, height, 0, 0, 6); the
        # class table of our own models was trained with the pipeline's default, which the predictor uses
        micro = None
        if table is None:
            per_token = int(getattr(tokenizer, "downsample", 0) or PIXELS_PER_TOKEN)
            micro = micro_conditioning(grid[1] * per_token, grid[0] * per_token)
        return MeissonicGenerator(transformer, grid, table, micro)

    @staticmethod
    def _grid(metadata, image_size, tokenizer) -> tuple[int, int]:
        recorded = grid_from_metadata(metadata)
        per_token = int(getattr(tokenizer, "downsample", 0) or 0)
        if image_size is None:
            if recorded is not None:
                return recorded
            image_size = DEFAULT_IMAGE_SIZE
        per_token = per_token or PIXELS_PER_TOKEN
        if int(image_size) % per_token:
            raise ConfigError(f"Image size {image_size} px is not a multiple of the VQ's {per_token} px per token.")
        side = int(image_size) // per_token
        return side, side

    def build_tokenizer(self, state, metadata, filename, *, dtype, device):
        if detect_meissonic_kind(state) == KIND:
            raise SamplingError(f"'{filename}' is Meissonic's transformer, not its VQ model: load it with the model "
                                f"loader, and give the tokenizer loader the vqvae/ part.")
        return vq_from_state_dict(state, metadata=metadata, filename=filename, dtype=dtype, device=device)

    def model_info(self, model: MeissonicGenerator, name: str, path) -> ModelInfo:
        c = model.config
        embedded = self.embedded_source(path)
        common = dict(family=self.name, name=name, vocab_size=model.vocab_size, layout=tuple(model.token_layout),
                      preset="embedded-masked" if embedded else self.preset)
        if model.class_embedding is not None:
            names = tuple(shipped.CLASS_NAMES) if embedded and len(shipped.CLASS_NAMES) == model.num_classes else None
            return ModelInfo(kind=CLASS, num_classes=model.num_classes, class_names=names, **common)
        spec = PromptSpec(length=TEXT_LENGTH, width=c.joint_attention_dim, encoder=TEXT_ENCODER, encoder_kind="clip",
                          clip_features="meissonic")
        return ModelInfo(kind=PROMPT, prompt=spec, **common)

    def tokenizer_info(self, tokenizer: MeissonicVQModel, name: str) -> TokenizerInfo:
        return TokenizerInfo(self.name, name, tokenizer.codebook_size)

    # -- conditions -------------------------------------------------------------------------
    def class_condition(self, info, ids, names=None) -> Condition:
        check_class_ids(info, ids)
        labels = torch.as_tensor(list(ids), dtype=torch.long)
        shown = tuple(names) if names is not None else tuple(str(int(i)) for i in ids)
        return Condition(self.name, CLASS, MeissonicClassCondition(labels=labels), shown)

    def prompt_condition(self, info, features, mask, prompts: Sequence[str], pooled=None, null=None) -> Condition:
        """``features`` (B, 77, J) = CLIP ``hidden_states[-2]``; ``pooled`` (B, P) = CLIP ``text_embeds``;
        ``null``: the negative prompt's (states, mask, pooled), 1 or B rows, for guidance (mask unused: the
        reference passes none)."""
        if pooled is None:
            raise SamplingError(f"{info.name} needs the projected pooled CLIP vector of each prompt as well as its "
                                f"hidden states: encode the prompt with {TEXT_ENCODER}.")
        neg_states, _, neg_pooled = null if null is not None else (None, None, None)
        cond = Condition(self.name, PROMPT, MeissonicCondition(features, pooled, neg_states, neg_pooled),
                         tuple(prompts))
        self.check_fit(info, cond)
        return cond

    def check_fit(self, info: ModelInfo, cond: Condition) -> None:
        value = cond.value
        if cond.kind == CLASS:
            check_class_ids(info, value.labels.tolist())
            return
        width = info.prompt.width
        if value.states.dim() != 3 or value.states.shape[-1] != width:
            raise SamplingError(f"Prompt features of shape {tuple(value.states.shape)} do not fit {info.name}, which "
                                f"reads (batch, tokens, {width}) from {TEXT_ENCODER}: encode the prompt for this "
                                f"model.")

    # -- tokens and pictures ----------------------------------------------------------------
    def check_vocab(self, vocab_size: int, tokenizer: TokenizerInfo) -> None:
        if vocab_size != tokenizer.codebook_size:
            raise ConfigError(f"The Meissonic model predicts {vocab_size} token ids but {tokenizer.name} has "
                              f"{tokenizer.codebook_size} codes: pair the transformer with the vqvae/ of the same "
                              f"Meissonic folder.")

    def decode(self, tokenizer, tokens: torch.Tensor, layout) -> torch.Tensor:
        if len(layout.scales) != 1 or tokens.shape[-1] != layout.num_tokens:
            raise SamplingError(f"Meissonic decodes one token grid; got {tokens.shape[-1]} tokens in the layout "
                                f"{layout.scales}.")
        if not isinstance(tokenizer, MeissonicVQModel):  # the embedded model's LlamaGen VQ
            return family("llamagen").decode(tokenizer, tokens, layout)
        h, w = layout.final
        ids = tokens.to(tokenizer.quantize.embedding.weight.device).reshape(-1, h, w)
        with torch.autocast(ids.device.type, enabled=False):
            image = tokenizer.decode(ids, clamp=True)
        return image.float() * 2 - 1  # the VQ's [0, 1] output → the pack's [-1, 1]

    def layout_for(self, num_tokens: int) -> tuple[tuple[int, int], ...]:
        side = int(round(num_tokens ** 0.5))
        if side * side != num_tokens:
            raise SamplingError(f"{num_tokens} tokens are not a square Meissonic token grid.")
        return ((side, side),)

    @torch.no_grad()
    def preview(self, tokenizer, state, layout) -> np.ndarray | None:
        """The current candidates of the first sample, the positions still masked faded."""
        known = state.known[0]
        if not bool(known.any()):
            return None
        image = imaging.to_uint8(self.decode(tokenizer, state.tokens[:1], layout))[0]
        return raster.fade_unknown(image, layout.final_map(known[None])[0])

    def sampling_model(self, model: MeissonicGenerator, tokenizer=None):
        return model


def _with_json_config(state, metadata: dict, cfg: dict | None) -> dict:
    """``metadata`` with a diffusers ``config.json`` (parsed) added as the part's configuration (the file's own
    ``arsample_config`` metadata, if any, wins)."""
    if not cfg:
        return metadata
    kind = detect_meissonic_kind(state)
    config = MeissonicConfig.from_diffusers(cfg) if kind == KIND else MeissonicVQConfig.from_diffusers(cfg)
    return {**config_metadata(kind, dataclasses.asdict(config)), **metadata}


FAMILY = MeissonicFamily()

