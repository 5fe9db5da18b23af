"""Loader nodes: a model and its tokenizer, from any registered family, wrapped for ComfyUI's memory manager."""

from __future__ import annotations

import torch

import comfy.model_management as mm

from ..models import registry
from ..models.dtypes import parse_dtype
from . import paths
from ._comfy import AR_MODEL, AR_VQ, CATEGORY, io
from .patching import make_patcher
from .payloads import ARModelHandle, ARTokenizerHandle

DTYPES = ["auto", "bf16", "fp16", "fp32"]
SIZES = ["auto", "256", "384", "512", "1024"]


def _dtype(choice: str, device) -> torch.dtype:
    if choice != "auto":
        return parse_dtype(choice)
    return mm.unet_dtype(device, supported_dtypes=[torch.bfloat16, torch.float16, torch.float32])


class ModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleModelLoader",
            display_name="Load AR Model",
            category=CATEGORY,
            description="Loads an autoregressive image model from models/autoregressive/ (LlamaGen GPTs, class- or "
                        "text-to-image, VAR next-scale models var_d16.pth ... var_d36.pth, STAR snapshots: official "
                        "files or .safetensors; Meissonic: the downloaded folder models/autoregressive/Meissonic/, "
                        "pick its transformer/ file; Janus-Pro: the downloaded folder, listed once as e.g. "
                        "'Janus-Pro-1B/', also from models/Janus-Pro/); its family is recognised from the file. "
                        "'embedded:tiny' is the small model shipped with the pack.",
            inputs=[
                io.Combo.Input("ckpt_name", options=paths.choices(paths.GPT_FOLDER),
                               tooltip="Model checkpoint in models/autoregressive/ (e.g. c2i_L_384.pt; Meissonic: "
                                       "Meissonic/transformer/diffusion_pytorch_model.safetensors), a Janus-Pro folder "
                                       "(e.g. 'Janus-Pro-1B/', in models/autoregressive/ or models/Janus-Pro/; prompts "
                                       "go in 'Text Condition (Janus-Pro)'), or an embedded model."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="auto: bf16/fp16 on GPUs that support it, fp32 on CPU."),
                io.Combo.Input("image_size", options=SIZES, default="auto",
                               tooltip="auto: the size the checkpoint was trained at (from its name, metadata or "
                                       "training snapshot; Janus-Pro: 384, 24×24 tokens). 256/384/512/1024 assume the "
                                       "official tokenizer's scale (16 pixels per token); 1024 is for STAR-1024 and "
                                       "Meissonic."),
            ],
            outputs=[AR_MODEL.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, weight_dtype: str, image_size: str) -> io.NodeOutput:
        path = paths.resolve(paths.GPT_FOLDER, ckpt_name)
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        loaded = registry.load_model(path, dtype=_dtype(weight_dtype, load_device), device=offload_device,
                                     image_size=None if image_size == "auto" else int(image_size), name=ckpt_name)
        patcher = make_patcher(loaded.module, load_device, offload_device)
        return io.NodeOutput(ARModelHandle(patcher, loaded.family, loaded.info))


class VQLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleVQLoader",
            display_name="Load VQ Tokenizer",
            category=CATEGORY,
            description="Loads the tokenizer (VQ) that turns sampled tokens into pixels, from models/vq/ (LlamaGen: "
                        "vq_ds16_c2i.pt, vq_ds8_c2i.pt, vq_ds16_t2i.pt; VAR: vae_ch160v4096z32.pth; or .safetensors), "
                        "or the vqvae/ of a model folder in models/autoregressive/ (Meissonic/vqvae/...), or a "
                        "Janus-Pro folder (its VQ is inside: pick the same 'Janus-Pro-1B/' as in 'Load AR Model'). "
                        "Next-scale models (VAR) need it to sample: connect it to 'AR Sample''s 'vq' too.",
            inputs=[
                io.Combo.Input("vq_name", options=paths.choices(paths.VQ_FOLDER),
                               tooltip="Tokenizer in models/vq/, the vqvae/ file of a model folder in "
                                       "models/autoregressive/ (Meissonic/vqvae/diffusion_pytorch_model.safetensors), "
                                       "or a Janus-Pro folder ('Janus-Pro-1B/': the VQ inside it). Use the one the "
                                       "model was trained with."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="fp32",
                               tooltip="The official scripts decode in fp32; auto picks bf16/fp16 on capable GPUs."),
            ],
            outputs=[AR_VQ.Output(display_name="vq")],
        )

    @classmethod
    def execute(cls, vq_name: str, weight_dtype: str) -> io.NodeOutput:
        path = paths.resolve(paths.VQ_FOLDER, vq_name)
        load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
        loaded = registry.load_tokenizer(path, dtype=_dtype(weight_dtype, load_device), device=offload_device,
                                         name=vq_name)
        patcher = make_patcher(loaded.module, load_device, offload_device)
        return io.NodeOutput(ARTokenizerHandle(patcher, loaded.family, loaded.info))
