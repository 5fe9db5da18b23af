"""The one place that imports ComfyUI's versioned node API, plus our socket types."""

from comfy_api.latest import ComfyExtension, io, ui  # noqa: F401

AR_MODEL = io.Custom("AR_MODEL")  # an autoregressive image model of a registered family, in a ModelPatcher
AR_VQ = io.Custom("AR_VQ")  # its tokenizer (decoder) in a ModelPatcher
AR_COND = io.Custom("AR_COND")  # what to generate: class ids, or prompt features for text-to-image models
AR_TEXT_ENCODER = io.Custom("AR_TEXT_ENCODER")  # a T5 encoder + tokenizer in a ModelPatcher
AR_TOKENS = io.Custom("AR_TOKENS")  # sampled tokens with their layout and per-token entropy
AR_SAMPLER = io.Custom("AR_SAMPLER")  # a decoding method value (next-token, speculative Jacobi, ...)
AR_TEMPERATURE = io.Custom("AR_TEMPERATURE")  # an entropy-temperature map (samplers.EntropyTemperature)

CATEGORY = "ARsample"
