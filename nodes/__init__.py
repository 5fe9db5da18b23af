"""ComfyUI adapter (V3 schema). The only package of the pack that imports ComfyUI."""

from __future__ import annotations

from ._comfy import ComfyExtension, io
from .conditioning import ClassCondition
from .decode import EntropyMap, VQDecode
from .loaders import ModelLoader, VQLoader
from .paths import register_folders
from .sampling import EntropySampler, EntropySJDSampler, PlainSampler
from .text import T5Loader, TextCondition

NODES: list[type[io.ComfyNode]] = [ModelLoader, VQLoader, T5Loader, ClassCondition, TextCondition, PlainSampler,
                                   EntropySampler, EntropySJDSampler, VQDecode, EntropyMap]


class ARSampleExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


register_folders()
