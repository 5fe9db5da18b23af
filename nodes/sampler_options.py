"""Decoding methods as values (ComfyUI's custom-sampling idiom): each option node outputs an AR_SAMPLER for
'AR Sample' (next-token: plain and speculative Jacobi; next-scale: VAR's sampler). The masked order will add
its option node here."""

from __future__ import annotations

from ..samplers import (DRAFT_INITS, NextScale, NextScaleOptions, NextToken, ScaleTemperature, SJDSettings,
                        SpeculativeJacobi)
from ..samplers.next_scale import FILTER_RULES, SCALE_TEMPERATURE_FORMS
from ._comfy import AR_SAMPLER, CATEGORY, io

# The scale-wise forms a widget can set ('table' needs one factor per scale: library only).
SCALE_FORMS = tuple(f for f in SCALE_TEMPERATURE_FORMS if f != "table")
SCALE_OFF = "off"

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


def next_scale_method(scale_temperature: str, beta: float, filter_rule: str) -> NextScale:
    form = None if scale_temperature == SCALE_OFF else ScaleTemperature(scale_temperature, beta=beta)
    return NextScale(NextScaleOptions(filter_rule=filter_rule, scale_temperature=form))


class NextScaleSampling(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleNextScaleSampling",
            display_name="Next-Scale Sampling",
            category=CATEGORY,
            description="Next-scale decoding (VAR): one model pass per scale, coarse to fine, with VAR's guidance "
                        "ramp ('cfg' is VAR's own number: guidance grows linearly from none at the first scale to "
                        "1 + cfg at the last; 1.5 in VAR's FID runs, 4 in its demo). Connect an 'Entropy "
                        "Temperature' to 'AR Sample' for the per-token entropy temperature ('+Prob.'); the "
                        "scale-wise factor here is '+Scale-wise'. For next-scale models; needs the VQ-VAE on "
                        "'AR Sample''s 'vq' input.",
            inputs=[
                io.Combo.Input("scale_temperature", options=[SCALE_OFF, *SCALE_FORMS], default=SCALE_OFF,
                               tooltip="'+Scale-wise': a per-scale factor on each token's temperature, larger on "
                                       "coarse scales, smaller on fine ones. Its published form is not known: "
                                       "centered-normalized f = 1 - beta(s - S/2)/S (the default form), centered "
                                       "f = 1 - beta(s - S/2) (literal), both clamped to [0.5, 1.5]. off = none."),
                io.Float.Input("beta", default=0.3, min=0.0, max=2.0, step=0.01,
                               tooltip="Decay of the scale-wise factor (the paper uses 0.3). Ignored when off."),
                io.Combo.Input("filter_rule", options=list(FILTER_RULES), default="var",
                               tooltip="How top-k/top-p cut the distribution: 'var' (VAR's own rule, as the "
                                       "reference) or 'llamagen' (LlamaGen's, which differs at the boundary)."),
            ],
            outputs=sampler_output(),
        )

    @classmethod
    def execute(cls, scale_temperature: str, beta: float, filter_rule: str) -> io.NodeOutput:
        return io.NodeOutput(next_scale_method(scale_temperature, beta, filter_rule))
