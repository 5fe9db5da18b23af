"""Meissonic (MeissonFlow/Meissonic, masked-token text-to-image): the MMDiT, the VQ model it shares with
aMUSEd, the loaders and the masked-decoding predictor, in plain torch.

The text encoder (CLIP ViT-H/14 ``CLIPTextModelWithProjection``: ``hidden_states[-2]`` and the projected
``text_embeds``) is read by ``models.meissonic_text`` (library, through ``transformers``) and by
``nodes.clip_text_features`` (ComfyUI's own CLIP), outside this package, as the other families' encoders.
"""

from .config import (DEFAULT_MICRO_CONDS, MeissonicConfig, MeissonicVQConfig, detect_meissonic_kind,
                     resolve_meissonic_config, resolve_vq_config)
from .loader import (MeissonicModels, load_meissonic, load_meissonic_transformer, load_meissonic_vqvae,
                     meissonic_from_state_dict, vq_from_state_dict)
from .predictor import MeissonicCondition, MeissonicPredictor, micro_conditioning
from .transformer import MeissonicTransformer
from .vqvae import MeissonicVQModel

__all__ = [
    "DEFAULT_MICRO_CONDS", "MeissonicConfig", "MeissonicVQConfig", "detect_meissonic_kind",
    "resolve_meissonic_config", "resolve_vq_config", "MeissonicModels", "load_meissonic",
    "load_meissonic_transformer", "load_meissonic_vqvae", "meissonic_from_state_dict", "vq_from_state_dict",
    "MeissonicCondition", "MeissonicPredictor", "micro_conditioning", "MeissonicTransformer", "MeissonicVQModel",
]
