"""Decode and entropy-map nodes: both work from the tokens' layout, through the tokens' family."""

from __future__ import annotations

import comfy.model_management as mm

from .. import imaging
from ..models.registry import check_pair, family
from ..overlay import layout_overlay
from ._comfy import AR_TOKENS, AR_VQ, CATEGORY, io
from .patching import load
from .payloads import ARTokenizerHandle, ARTokens


class VQDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleVQDecode",
            display_name="VQ Decode",
            category=CATEGORY,
            description="Turns sampled tokens into an IMAGE with the tokenizer's decoder.",
            inputs=[AR_VQ.Input("vq", tooltip="The tokenizer the model was trained with."),
                    AR_TOKENS.Input("tokens", tooltip="Tokens from an ARsample sampler.")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, vq: ARTokenizerHandle, tokens: ARTokens) -> io.NodeOutput:
        check_pair(tokens, vq.info)
        (decoder,) = load(vq.patcher)
        images = family(tokens.family).decode(decoder, tokens.tokens, tokens.layout)
        return io.NodeOutput(imaging.to_unit_float(images).to(mm.intermediate_device()))


class EntropyMap(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropyMap",
            display_name="Entropy Map",
            category=CATEGORY,
            description="Shows how uncertain the model was at each token (its entropy, dark = sure, bright = "
                        "unsure) as a heatmap, optionally over the decoded image. Models that sample several "
                        "scales get one map per scale, side by side.",
            inputs=[
                AR_TOKENS.Input("tokens", tooltip="Tokens from an ARsample sampler (they carry the entropy)."),
                io.Image.Input("image", optional=True,
                               tooltip="The decoded image, to match its size and overlay: any size; RGB, RGBA (alpha "
                                       "ignored) or grey; one image per map, or one for all maps."),
                io.Float.Input("overlay", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="How much of the image shows through the heatmap (needs 'image')."),
                io.Float.Input("max_entropy", default=0.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Entropy shown as the brightest colour; 0 = the batch maximum. Fix it to "
                                       "compare maps across runs."),
            ],
            outputs=[io.Image.Output(display_name="heatmap")],
        )

    @classmethod
    def execute(cls, tokens: ARTokens, overlay: float, max_entropy: float, image=None) -> io.NodeOutput:
        maps = layout_overlay(tokens.entropy, tokens.layout, image=image, overlay=overlay, max_entropy=max_entropy)
        return io.NodeOutput(maps.to(mm.intermediate_device()))
