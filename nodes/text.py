"""Text-to-image nodes: load FLAN-T5-XL with ComfyUI's own T5, and turn a prompt into an AR condition (T5, CLIP, or
Janus-Pro, which tokenises its prompts itself).

ComfyUI's CLIP loaders cannot load FLAN-T5-XL as is: a 2048-wide T5 is taken for
AuraFlow's pile-T5-XL and gets that model's (LLaMA) tokenizer. So the pack has its
own loader. It builds ComfyUI's T5 module (``comfy.text_encoders.t5``, comfy ops:
weights stored in the chosen dtype, computed in fp32 as ComfyUI does for every
text encoder) with the FLAN-T5-XL configuration, wraps it in a ModelPatcher for the
memory manager and offloads it again after each encoding.
"""

from __future__ import annotations

import os

import torch

import comfy.model_management as mm
import comfy.ops
import folder_paths
from comfy.text_encoders.t5 import T5

from ..errors import SamplingError
from ..models.dtypes import parse_dtype
from ..models.registry import PROMPT, check_prompt_width, check_text_encoder, require_kind
from ..models.sources import not_in_folder, require_file_name
from ..models.t5 import T5PromptTokenizer, left_align, read_t5_checked
from ..models.t5.text_encoder import tokenize_prompts
from ._comfy import AR_COND, AR_MODEL, AR_TEXT_ENCODER, CATEGORY, io
from .clip_text_features import features_from_comfy_clip, meissonic_features_from_comfy_clip
from .patching import make_patcher, unload
from .payloads import ARModelHandle, ARTextEncoderHandle

TEXT_ENCODER_FOLDER = "text_encoders"
DTYPES = ["auto", "bf16", "fp16", "fp32"]
_HF_WEIGHT_PREFIXES = ("model.safetensors", "model-", "pytorch_model")


def text_encoder_choices() -> list[str]:
    """Single encoder files, plus Hugging Face model folders (listed once, as 'name/')."""
    folders, files = [], []
    for root in folder_paths.get_folder_paths(TEXT_ENCODER_FOLDER):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            if os.path.isfile(os.path.join(root, entry, "config.json")):
                folders.append(entry + "/")
    for name in folder_paths.get_filename_list(TEXT_ENCODER_FOLDER):
        parent, base = os.path.split(name)
        if parent + "/" in folders and base.startswith(_HF_WEIGHT_PREFIXES):
            continue  # a shard of a listed folder
        files.append(name)
    return folders + files


def resolve_text_encoder(choice: str | None) -> str:
    """Absolute path of a dropdown entry (a folder entry ends in '/'); a readable error (what is missing, where it
    goes, where to download it) when the entry is None, blank or gone."""
    choice = require_file_name(choice, "t5")
    if choice.endswith("/"):
        name = choice.rstrip("/")
        listed = name not in ("", ".", "..") and os.path.basename(name) == name  # a direct subfolder, as listed
        roots = folder_paths.get_folder_paths(TEXT_ENCODER_FOLDER) if listed else []
        folders = (os.path.join(root, name) for root in roots)
        path = next((f for f in folders if os.path.isdir(f)), None)
    else:
        path = folder_paths.get_full_path(TEXT_ENCODER_FOLDER, choice)
    if path is None:
        raise not_in_folder(choice, "t5")
    return path


class T5Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleT5Loader",
            display_name="Load T5 Text Encoder (FLAN-T5-XL)",
            category=CATEGORY,
            description="Loads the FLAN-T5-XL encoder that LlamaGen text-to-image models read prompts with, from "
                        "models/text_encoders/: the google/flan-t5-xl folder as downloaded (only the encoder is "
                        "read), or one .safetensors file of the encoder. Runs on ComfyUI's own T5 code.",
            inputs=[
                io.Combo.Input("t5_name", options=text_encoder_choices(),
                               tooltip="A Hugging Face folder (shown as 'flan-t5-xl/') or a single encoder file."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="Storage dtype of the weights (computation is fp32, as ComfyUI does for "
                                       "text encoders). auto: ComfyUI's text-encoder default for the device."),
            ],
            outputs=[AR_TEXT_ENCODER.Output(display_name="text_encoder")],
        )

    @classmethod
    def execute(cls, t5_name: str, weight_dtype: str) -> io.NodeOutput:
        files, state, config = read_t5_checked(resolve_text_encoder(t5_name))
        load_device, offload_device = mm.text_encoder_device(), mm.text_encoder_offload_device()
        dtype = mm.text_encoder_dtype(load_device) if weight_dtype == "auto" else parse_dtype(weight_dtype)
        module = T5(config.to_comfy(), dtype, offload_device, comfy.ops.manual_cast)
        module.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
        del state
        tokenizer = T5PromptTokenizer(files.tokenizer)
        patcher = make_patcher(module.eval().requires_grad_(False), load_device, offload_device)
        return io.NodeOutput(ARTextEncoderHandle(patcher, tokenizer, t5_name, config.d_model))


def encode_prompts(text_encoder: ARTextEncoderHandle, prompts: list[str], max_length: int, clean: bool,
                   align: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts → caption features (B, L, C) float32 and mask (B, L), on the CPU, each prompt's tokens at the
    ``align`` end (the model's PromptSpec says which; LlamaGen: left, as its reference).

    The encoder is loaded through the memory manager and offloaded again afterwards.
    """
    _, tokens = tokenize_prompts(text_encoder.tokenizer, prompts, max_length, clean)
    mm.load_models_gpu([text_encoder.patcher])
    try:
        t5 = text_encoder.patcher.model.inner
        device = text_encoder.patcher.load_device
        with torch.no_grad():
            hidden, _ = t5(tokens.ids.to(device), tokens.mask.to(device), dtype=torch.float32)
    finally:
        unload(text_encoder.patcher)
    if align == "left":
        return left_align(hidden.float().cpu(), tokens.mask)
    return hidden.float().cpu(), tokens.mask


class TextCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleTextCondition",
            display_name="Text Condition (T5)",
            category=CATEGORY,
            description="A prompt for a text-to-image model (LlamaGen t2i), encoded with FLAN-T5-XL as the reference "
                        "does (at most 120 tokens; longer prompts are cut, with a warning in the console). There is no "
                        "negative prompt: these models were trained with a learned 'empty prompt' for guidance, "
                        "which the samplers use.",
            inputs=[
                AR_MODEL.Input("model", tooltip="The text-to-image model (to check the kind and the widths)."),
                AR_TEXT_ENCODER.Input("text_encoder", tooltip="From 'Load T5 Text Encoder'."),
                io.String.Input("prompt", multiline=True, default="a photo of a red fox in the snow",
                                tooltip="What to generate."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Images for this prompt."),
                io.Boolean.Input("clean_prompt", default=True,
                                 tooltip="Lower-case and tidy the prompt as the captions were at training time."),
            ],
            outputs=[AR_COND.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, model: ARModelHandle, text_encoder: ARTextEncoderHandle, prompt: str, batch_size: int,
                clean_prompt: bool = True) -> io.NodeOutput:
        check_prompt_width(model.info, text_encoder.width, "node")  # a prompt model, reading this encoder's width
        if not prompt.strip():
            raise SamplingError("The prompt is empty: type what to generate.")
        spec = model.info.prompt
        features, mask = encode_prompts(text_encoder, [prompt], spec.length, clean_prompt, spec.align)
        cond = model.family.prompt_condition(model.info, features.repeat(batch_size, 1, 1), mask.repeat(batch_size, 1),
                                             [prompt] * batch_size)
        return io.NodeOutput(cond)


class ClipTextCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleClipTextCondition",
            display_name="Text Condition (CLIP)",
            category=CATEGORY,
            description="A prompt for a text-to-image model that reads CLIP ViT-H/14, encoded from ComfyUI's own "
                        "'Load CLIP' (type stable_diffusion) as the model's reference does. STAR: the Stable Diffusion "
                        "2.x text encoder; 77 tokens, the penultimate layer after the final LayerNorm, the pooled end "
                        "token; the empty prompt gives the unconditional rows. Meissonic: Meissonic's "
                        "text_encoder/model.safetensors; 77 tokens, the penultimate layer, the projected pooled "
                        "vector; the negative prompt gives the unconditional rows.",
            inputs=[
                AR_MODEL.Input("model", tooltip="The text-to-image model (to check the kind and the width)."),
                io.Clip.Input("clip", tooltip="From ComfyUI's 'Load CLIP' with an SD 2.x text encoder "
                                              "(e.g. the SD 2.1 'open_clip' / text_encoder file), type stable_diffusion."),
                io.String.Input("prompt", multiline=True, default="a photo of a red fox in the snow",
                                tooltip="What to generate (at most 77 CLIP tokens; longer prompts are cut)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Images for this prompt."),
                io.String.Input("negative_prompt", multiline=True, default="", optional=True,
                                tooltip="Meissonic: what the unconditional rows of guidance read (the Meissonic "
                                        "README uses a list of defects; see the example workflow). Empty: the "
                                        "reference's default. STAR reads the empty prompt there: leave it empty."),
            ],
            outputs=[AR_COND.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, model: ARModelHandle, clip, prompt: str, batch_size: int,
                negative_prompt: str = "") -> io.NodeOutput:
        check_text_encoder(model.info, "clip", "node")
        if not prompt.strip():
            raise SamplingError("The prompt is empty: type what to generate.")
        b = batch_size
        if model.info.prompt.clip_features == "meissonic":
            text, negative = meissonic_features_from_comfy_clip(clip, [prompt], negative_prompt or "",
                                                                expected_width=model.info.prompt.width)
            cond = model.family.prompt_condition(model.info, text.states.repeat(b, 1, 1), None, [prompt] * b,
                                                 pooled=text.pooled.repeat(b, 1),
                                                 null=(negative.states, None, negative.pooled))
            return io.NodeOutput(cond)
        if negative_prompt and negative_prompt.strip():
            raise SamplingError(f"{model.info.name} reads the empty prompt in its unconditional rows (as its "
                                f"reference does); clear 'negative_prompt' (it is for Meissonic models).")
        text, empty = features_from_comfy_clip(clip, [prompt], expected_width=model.info.prompt.width)
        cond = model.family.prompt_condition(
            model.info, text.states.repeat(b, 1, 1), text.mask.repeat(b, 1), [prompt] * b,
            pooled=text.pooled.repeat(b, 1), null=(empty.states, empty.mask, empty.pooled))
        return io.NodeOutput(cond)


# What a prompt model that reads text-encoder features takes instead of 'Text Condition (Janus-Pro)'.
_ENCODER_NODES = {"t5": "'Load T5 Text Encoder' into 'Text Condition (T5)'",
                  "clip": "ComfyUI's 'Load CLIP' (type stable_diffusion) into 'Text Condition (CLIP)'"}


class JanusTextCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleJanusTextCondition",
            display_name="Text Condition (Janus-Pro)",
            category=CATEGORY,
            description="A prompt for Janus-Pro (1B, 7B), which reads it itself: no text encoder to load. The "
                        "prompt is put in the conversation template of the Janus-Pro reference ('<|User|>: prompt', "
                        "'<|Assistant|>:' and the image-start tag) and tokenised with the tokenizer.json of the "
                        "model's folder; guidance's unconditional rows are the same ids padded, as the reference "
                        "does. No negative prompt (the reference has none). Janus-Pro's reference samples with cfg 5, "
                        "temperature 1, no top-k.",
            inputs=[
                AR_MODEL.Input("model", tooltip="The Janus-Pro model from 'Load AR Model' (its folder, e.g. "
                                                "'Janus-Pro-1B/'): it tokenises the prompt."),
                io.String.Input("prompt", multiline=True, default="a photo of a red fox in the snow",
                                tooltip="What to generate. It must fit the model's context with the image tokens "
                                        "(thousands of tokens for the released models)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Images for this prompt."),
            ],
            outputs=[AR_COND.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, model: ARModelHandle, prompt: str, batch_size: int) -> io.NodeOutput:
        info = model.info
        require_kind(info, PROMPT, "node")  # a class model: 'Class Condition'
        if info.prompt.encoder_kind != "own":
            hint = _ENCODER_NODES.get(info.prompt.encoder_kind, "its text encoder")
            raise SamplingError(f"{info.name} reads {info.prompt.encoder} features, not prompt text: use {hint} "
                                f"instead of 'Text Condition (Janus-Pro)'.")
        if not isinstance(prompt, str) or not prompt.strip():
            raise SamplingError("The prompt is empty: type what to generate.")
        # only the model's tokenizer and sizes are read: nothing is loaded onto the GPU
        module = model.patcher.model.inner
        cond = model.family.text_condition(module, info, [prompt] * batch_size, host="node")
        return io.NodeOutput(cond)
