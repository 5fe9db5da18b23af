"""Masked decoding (MaskGIT, MUSE, aMUSEd, Meissonic): the whole grid re-predicted each step, the most
confident candidates committed, with the entropy temperature on the token logits ("+Prob.") and on the
re-masking confidence ("+Masking")."""

from .method import Masked
from .sampler import MaskedModel, MaskedOptions, sample_masked
from .schedule import MASK_SCHEDULES, choice_temperatures, mask_lengths, mask_ratio

__all__ = [
           "MASK_SCHEDULES",
           "Masked",
           "MaskedModel",
           "MaskedOptions",
           "choice_temperatures",
           "mask_lengths",
           "mask_ratio",
           "sample_masked",
]
