"""Meissonic as a masked-decoding model (``samplers.masked.MaskedModel``): the transformer, the token grid
it generates, and, for class models, the class table.

``MeissonicGenerator.start_session(cond, guidance)`` binds one batch's condition into a
``MeissonicPredictor``. The condition is a ``MeissonicCondition`` (text features: prompt model) or a
``MeissonicClassCondition`` (class ids: a model with a class table, such as the embedded
``tiny-masked``); for a class model the unconditional rows are the table's null class, as the negative
prompt's features are for a text model.

The grid: Meissonic's VQ has 16 pixels per token, so 1024 px is a 64×64 grid (the reference
pipeline's default). Files we write record their grid in the ``arsample_token_grid`` metadata (the
embedded model: 16×16, 2 pixels per token through the tiny LlamaGen VQ).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from ...errors import SamplingError
from .class_table import ClassEmbedding
from .predictor import MeissonicCondition, MeissonicPredictor
from .transformer import MeissonicTransformer

GRID_KEY = "arsample_token_grid"  # "h,w" in safetensors metadata
PIXELS_PER_TOKEN = 16  # Meissonic's (and aMUSEd's) VQ: 2^(5 − 1)
DEFAULT_IMAGE_SIZE = 1024


@dataclass
class MeissonicClassCondition:
    """Class ids (B,) int64 for a Meissonic model with a class table; ``micro_conds`` as MeissonicCondition."""

    labels: torch.Tensor
    micro_conds: torch.Tensor | tuple | None = None

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])


def grid_from_metadata(metadata) -> tuple[int, int] | None:
    """The (h, w) token grid a file records, or None."""
    text = (metadata or {}).get(GRID_KEY)
    if not text:
        return None
    h, w = (int(v) for v in text.split(","))
    return h, w


class MeissonicGenerator(nn.Module):
    """A Meissonic transformer with the grid it decodes and, for class models, its class table.

    ``grid`` (h, w): tokens per side (both even when the transformer halves the grid). ``micro_conds``:
    the 5 micro-conditioning values used when a condition gives none (None: the predictor's default,
    (1024, 1024, 0, 0, 6)). Raises SamplingError for an odd grid with down-sampling on.
    """

    def __init__(self, transformer: MeissonicTransformer, grid: tuple[int, int],
                 class_embedding: ClassEmbedding | None = None, micro_conds: tuple[float, ...] | None = None):
        super().__init__()
        if transformer.config.downsample and (grid[0] % 2 or grid[1] % 2):
            raise SamplingError(f"Meissonic halves its token grid inside the model, so the grid must have even sides; "
                                f"got {grid[0]}×{grid[1]}. Choose an image size that is a multiple of twice the VQ's "
                                f"pixels per token ({2 * PIXELS_PER_TOKEN} px for Meissonic's VQ).")
        self.transformer = transformer
        self.class_embedding = class_embedding
        self.grid = (int(grid[0]), int(grid[1]))
        self.micro_conds = micro_conds  # default micro-conditioning of conditions that give none

    @property
    def config(self):
        return self.transformer.config

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def vocab_size(self) -> int:
        """Tokens the model predicts (the codebook; the mask id lies past it)."""
        return self.config.codebook_size

    @property
    def mask_id(self) -> int:
        return self.config.mask_id

    @property
    def num_classes(self) -> int:
        return 0 if self.class_embedding is None else self.class_embedding.num_classes

    @property
    def num_image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def token_layout(self) -> tuple[tuple[int, int], ...]:
        return (self.grid,)

    def text_condition(self, cond) -> MeissonicCondition:
        """The transformer's inputs for a condition: class ids through the table (null class = negative)."""
        if isinstance(cond, MeissonicCondition):
            if self.class_embedding is not None:
                raise SamplingError(f"{self.config.name} is a class-conditional Meissonic model: give class ids, not "
                                    f"text features.")
            if cond.micro_conds is None and self.micro_conds is not None:
                cond = replace(cond, micro_conds=self.micro_conds)
            return cond
        if not isinstance(cond, MeissonicClassCondition):
            raise SamplingError(f"A Meissonic model takes a MeissonicCondition or MeissonicClassCondition; got "
                                f"{type(cond).__name__}.")
        if self.class_embedding is None:
            raise SamplingError(f"{self.config.name} is a text-to-image Meissonic model: give text features, not "
                                f"class ids.")
        labels = cond.labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise SamplingError(f"Class ids must lie in 0..{self.num_classes - 1}; got {labels.tolist()}.")
        states, pooled = self.class_embedding(labels)
        null = torch.full((1,), self.class_embedding.null_class, dtype=torch.long)
        neg_states, neg_pooled = self.class_embedding(null)
        micro = cond.micro_conds if cond.micro_conds is not None else self.micro_conds
        return MeissonicCondition(states, pooled, neg_states, neg_pooled, micro)

    def start_session(self, cond, guidance: bool) -> MeissonicPredictor:
        """A predictor for one batch (``samplers.protocols.MaskedPredictor``)."""
        return MeissonicPredictor(self.transformer, self.text_condition(cond), self.grid, guidance=guidance)


__all__ = ["GRID_KEY", "PIXELS_PER_TOKEN", "DEFAULT_IMAGE_SIZE", "MeissonicClassCondition", "MeissonicGenerator",
           "grid_from_metadata"]
