"""STAR (Davinci-XLab/STAR-T2I, text-to-image next-scale prediction): the transformer in plain torch.

STAR decodes with VAR's multi-scale VQ-VAE (``models.var.VARVQVAE``, ``vae_ch160v4096z32``) and reads
CLIP ViT-H/14 text features (``StarCondition``); the text encoder is not part of this package.
"""

from .condition import StarCondition
from .config import CROSS_ATTN_MODES, StarConfig, detect_star_kind, patch_nums_for, resolve_star_config, star_config
from .loader import StarFile, load_star, read_star_file, star_from_state_dict
from .session import StarPair, StarSession
from .transformer import StarTransformer

__all__ = [
    "StarCondition", "CROSS_ATTN_MODES", "StarConfig", "detect_star_kind", "patch_nums_for", "resolve_star_config",
    "star_config", "StarFile", "load_star", "read_star_file", "star_from_state_dict", "StarPair", "StarSession",
    "StarTransformer",
]
