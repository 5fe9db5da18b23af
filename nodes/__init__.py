"""ComfyUI adapter (V3 schema). The only package of the pack that imports ComfyUI; it reaches model families
through models.registry only."""

from __future__ import annotations

from ._comfy import ComfyExtension, io
from .conditioning import ClassCondition
from .decode import EntropyMap, VQDecode
from .loaders import ModelLoader, VQLoader
from .paths import register_folders
from .sampler_options import MaskedSampling, NextScaleSampling, NextTokenSampling, SpeculativeJacobiDecoding
from .sampling import ARSample, EntropySampler, EntropySJDSampler, PlainSampler
from .temperature import EntropyTemperatureNode
from .text import ClipTextCondition, JanusTextCondition, T5Loader, TextCondition

NODES: list[type[io.ComfyNode]] = [
    ModelLoader, VQLoader, T5Loader, ClassCondition, TextCondition, ClipTextCondition, JanusTextCondition,
    EntropyTemperatureNode, NextTokenSampling, SpeculativeJacobiDecoding, NextScaleSampling, MaskedSampling,
    ARSample,
    PlainSampler, EntropySampler, EntropySJDSampler,
    VQDecode, EntropyMap,
]


class ARSampleExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


# Once, at import: ComfyUI has read extra_model_paths.yaml by then, and the loaders' dropdowns are built
# (define_schema) when the node list is registered, right after.
register_folders()
