"""Wrapping our torch modules for ComfyUI's memory manager."""

from __future__ import annotations

import torch

import comfy.model_management as mm
import comfy.model_patcher


class ModelBox(torch.nn.Module):
    """A container ModelPatcher can manage: it sets bookkeeping attributes (``device``,
    ``model_lowvram``, ...) on the module it holds, which our models keep read-only."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.device = next(inner.parameters()).device


def make_patcher(module: torch.nn.Module, load_device, offload_device):
    """A ModelPatcher for one of our models (built on ``offload_device``)."""
    return comfy.model_patcher.ModelPatcher(ModelBox(module), load_device=load_device, offload_device=offload_device)


def load(*patchers):
    """Bring the models onto their load device (whole: our layers are plain torch) and return them."""
    mm.load_models_gpu(list(patchers), force_full_load=True)
    return [p.model.inner for p in patchers]


def unload(patcher) -> None:
    """Offload one model from its load device now (e.g. a text encoder after encoding), leaving the others."""
    for i, loaded in enumerate(list(mm.current_loaded_models)):
        if loaded.model is patcher:
            if loaded.model_unload():
                mm.current_loaded_models.pop(i)
            break
