"""VAR (FoundationVision, next-scale prediction): the transformer and its multi-scale VQ-VAE, in plain torch."""

from .config import (KNOWN_PYRAMIDS, OFFICIAL_DEPTHS, PATCH_NUMS, VARConfig, VQVAEConfig, detect_kind, patch_nums_for, var_config)
from .loader import load_var, load_vqvae, var_from_state_dict, vqvae_from_state_dict
from .session import VARPair, VARSession
from .transformer import VARCondition, VARTransformer
from .vqvae import VARVQVAE, MultiScaleQuantizer

__all__ = [
    "KNOWN_PYRAMIDS", "OFFICIAL_DEPTHS", "PATCH_NUMS", "VARConfig", "VQVAEConfig", "detect_kind", "patch_nums_for", "var_config",
    "load_var", "load_vqvae", "var_from_state_dict", "vqvae_from_state_dict", "VARPair", "VARSession",
    "VARCondition", "VARTransformer", "VARVQVAE", "MultiScaleQuantizer",
]
