"""Loader nodes: the GPT and the VQ tokenizer, wrapped for ComfyUI's memory manager."""

from __future__ import annotations

import torch

import comfy.model_management as mm

from ..models.embedded.dataset import CLASSES as SHAPE_CLASSES
from ..models.llamagen import load_gpt, load_vq, parse_dtype
from . import paths
from ._comfy import AR_MODEL, AR_VQ, CATEGORY, io
from .patching import make_patcher
from .payloads import ARModelHandle, ARVQHandle

DTYPES = ["auto", "bf16", "fp16", "fp32"]
SIZES = ["auto", "256", "384", "512"]


def _auto_dtype(device) -> torch.dtype:
    return mm.unet_dtype(device, supported_dtypes=[torch.bfloat16, torch.float16, torch.float32])


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet class names (from torchvision, which ComfyUI installs), or None."""
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except Exception:  # noqa: BLE001 - names are a convenience; ids always work
        return None
    return list(_IMAGENET_CATEGORIES)


class ModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleModelLoader",
            display_name="Load AR Model (LlamaGen)",
            category=CATEGORY,
            description="Loads a LlamaGen GPT (class- or text-to-image) from models/autoregressive/, official .pt "
                        "files or .safetensors. 'embedded:tiny' is the small model shipped with the pack.",
            inputs=[
                io.Combo.Input("ckpt_name", options=paths.choices(paths.GPT_FOLDER),
                               tooltip="GPT checkpoint in models/autoregressive/ (e.g. c2i_L_384.pt), or the "
                                       "embedded model."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="auto: bf16/fp16 on GPUs that support it, fp32 on CPU."),
                io.Combo.Input("image_size", options=SIZES, default="auto",
                               tooltip="auto: the size the checkpoint was trained at (from its name or metadata). "
                                       "256/384/512 assume a 16x tokenizer (VQ-16)."),
            ],
            outputs=[AR_MODEL.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, weight_dtype: str, image_size: str) -> io.NodeOutput:
        path = paths.resolve(paths.GPT_FOLDER, ckpt_name, "gpt")
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        dtype = _auto_dtype(load_device) if weight_dtype == "auto" else parse_dtype(weight_dtype)
        override = {} if image_size == "auto" else {"image_size": int(image_size), "downsample": 16}
        model = load_gpt(path, override=override, dtype=dtype, device=offload_device)
        patcher = make_patcher(model, load_device, offload_device)
        c = model.config
        if ckpt_name.startswith(paths.EMBEDDED_PREFIX):
            names = list(SHAPE_CLASSES)
        elif c.model_type == "c2i" and c.num_classes == 1000:
            names = imagenet_class_names()
        else:
            names = None
        t2i = c.model_type == "t2i"
        handle = ARModelHandle(patcher, ckpt_name, c.model_type, c.num_classes, c.vocab_size, c.grid_size, names,
                               caption_tokens=c.cls_token_num if t2i else 0, caption_dim=c.caption_dim if t2i else 0)
        return io.NodeOutput(handle)


class VQLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleVQLoader",
            display_name="Load VQ Tokenizer (LlamaGen)",
            category=CATEGORY,
            description="Loads a LlamaGen VQ tokenizer (vq_ds16_c2i.pt, vq_ds8_c2i.pt, vq_ds16_t2i.pt or "
                        ".safetensors) from models/vq/. It turns sampled tokens into pixels.",
            inputs=[
                io.Combo.Input("vq_name", options=paths.choices(paths.VQ_FOLDER),
                               tooltip="Tokenizer in models/vq/. Use the one the GPT was trained with."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="fp32",
                               tooltip="The official scripts decode in fp32; auto picks bf16/fp16 on capable GPUs."),
            ],
            outputs=[AR_VQ.Output(display_name="vq")],
        )

    @classmethod
    def execute(cls, vq_name: str, weight_dtype: str) -> io.NodeOutput:
        path = paths.resolve(paths.VQ_FOLDER, vq_name, "vq")
        load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
        dtype = _auto_dtype(load_device) if weight_dtype == "auto" else parse_dtype(weight_dtype)
        vq = load_vq(path, dtype=dtype, device=offload_device)
        patcher = make_patcher(vq, load_device, offload_device)
        return io.NodeOutput(ARVQHandle(patcher, vq_name, vq.codebook_size, vq.downsample))
