"""Decoding methods as values (ComfyUI's custom-sampling idiom): each option node outputs an AR_SAMPLER for
'AR Sample'. Later decoding orders (masked, next-scale) add their option nodes here."""

from __future__ import annotations

from ..samplers import DRAFT_INITS, NextToken, SJDSettings, SpeculativeJacobi
from ._comfy import AR_SAMPLER, CATEGORY, io

ACCEPTANCE_CHOICES = {"exact (lossless)": "exact", "entropy (lossy, paper rule)": "entropy",
                      "entropy-scale (lossy, released code)": "entropy-scale", "constant (lossy, ablation)": "constant"}


def sampler_output() -> list:
    return [AR_SAMPLER.Output(display_name="sampler", tooltip="The decoding method, for the 'sampler' input of "
                                                              "'AR Sample'.")]


def sjd_inputs() -> list:
    """The speculative Jacobi widgets (shared with the old 'AR Sampler (Entropy SJD)' node)."""
    return [
        io.Combo.Input("acceptance", options=list(ACCEPTANCE_CHOICES), default="exact (lossless)",
                       tooltip="How drafts are accepted. Only 'exact' is lossless."),
        io.Int.Input("window", default=16, min=1, max=64,
                     tooltip="Tokens per model pass (1 = plain sampling). The paper uses 16."),
        io.Combo.Input("init", options=["repeat"] + [i for i in DRAFT_INITS if i != "repeat"], default="repeat",
                       tooltip="How new draft positions start: copy the left neighbour, a random token, "
                               "or a sample from the last predicted distribution."),
        io.Boolean.Input("coupled", default=False,
                         tooltip="Coupled drafts (same random noise per position across passes): far "
                                 "fewer passes, still lossless with 'exact'."),
    ]


def sjd_method(acceptance: str, window: int, init: str, coupled: bool) -> SpeculativeJacobi:
    rule = ACCEPTANCE_CHOICES.get(acceptance, acceptance)
    return SpeculativeJacobi(SJDSettings(window=window, acceptance=rule, init=init, coupled=coupled))


SJD_DESCRIPTION = ("Speculative Jacobi decoding: drafts a window of tokens and verifies them in one model pass, so "
                   "fewer passes per image. 'exact' gives the same distribution as plain sampling; the entropy "
                   "rules (Ma et al., NeurIPS 2025) accept more drafts where the model is unsure and are faster "
                   "but lossy. 'coupled' keeps drafts stable (MC-SJD) and stays lossless.")


class NextTokenSampling(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleNextTokenSampling",
            display_name="Next-Token Sampling",
            category=CATEGORY,
            description="Plain next-token decoding, one model pass per token, exactly as the official LlamaGen "
                        "code. For next-token models; connect it to 'AR Sample'.",
            inputs=[],
            outputs=sampler_output(),
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(NextToken())


class SpeculativeJacobiDecoding(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleSpeculativeJacobi",
            display_name="Speculative Jacobi Decoding",
            category=CATEGORY,
            description=SJD_DESCRIPTION + " For next-token models; connect it to 'AR Sample'.",
            inputs=sjd_inputs(),
            outputs=sampler_output(),
        )

    @classmethod
    def execute(cls, acceptance: str, window: int, init: str, coupled: bool) -> io.NodeOutput:
        return io.NodeOutput(sjd_method(acceptance, window, init, coupled))
