"""The one place that imports ComfyUI's versioned node API, plus our socket types."""

from comfy_api.latest import ComfyExtension, io, ui  # noqa: F401

AR_MODEL = io.Custom("AR_MODEL")  # an autoregressive image model (GPT) in a ModelPatcher
AR_VQ = io.Custom("AR_VQ")  # a VQ tokenizer (decoder) in a ModelPatcher
AR_COND = io.Custom("AR_COND")  # what to generate: class ids, or prompt features for t2i models
AR_TEXT_ENCODER = io.Custom("AR_TEXT_ENCODER")  # a T5 encoder + tokenizer in a ModelPatcher
AR_TOKENS = io.Custom("AR_TOKENS")  # sampled token grids with their per-token entropy

CATEGORY = "ARsample"
