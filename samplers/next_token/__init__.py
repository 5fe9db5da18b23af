"""Next-token decoding (LlamaGen, Janus-Pro, Lumina-mGPT): plain AR and speculative Jacobi decoding."""

from .acceptance import ACCEPTANCE_RULES, LOSSLESS_RULES, AcceptanceRule, acceptance_threshold
from .ar import sample_ar
from .drafts import DRAFT_INITS
from .sjd import SJDSettings, sample_sjd

__all__ = ["sample_ar", "sample_sjd", "SJDSettings", "AcceptanceRule", "acceptance_threshold", "ACCEPTANCE_RULES",
           "LOSSLESS_RULES", "DRAFT_INITS"]
