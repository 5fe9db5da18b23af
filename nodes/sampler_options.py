"""Decoding methods as values (ComfyUI's custom-sampling idiom): each option node outputs an AR_SAMPLER for
'AR Sample' (next-token: plain and speculative Jacobi; next-scale: VAR's sampler; masked: MaskGIT / aMUSEd /
Meissonic decoding with the entropy switches "+Prob." and "+Masking")."""

from __future__ import annotations

from ..samplers import (DRAFT_INITS, Masked, MaskedOptions, NextScale, NextScaleOptions, NextToken, ScaleTemperature,
                        SJDSettings, SpeculativeJacobi)
from ..samplers.masked import MASK_SCHEDULES
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


MASKED_MAX_STEPS = 256


def masked_method(steps: int, schedule: str, choice_temperature_start: float, choice_temperature_end: float,
                  prob: bool, masking: bool) -> Masked:
    """The widgets → ``Masked(MaskedOptions(...))``; bad values raise the library's SamplingError (a node error).
    Steps beyond the model's token count are refused by the sampler, which knows the grid."""
    return Masked(MaskedOptions(steps=steps, schedule=schedule,
                                choice_temperature=(choice_temperature_start, choice_temperature_end),
                                prob=bool(prob), masking=bool(masking)))


class MaskedSampling(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleMaskedSampling",
            display_name="Masked Sampling",
            category=CATEGORY,
            description="Masked decoding (MaskGIT, aMUSEd, Meissonic): every step re-predicts the whole token grid, "
                        "draws a candidate at each position and keeps the most confident ones, the rest masked "
                        "again, until all are committed after 'steps' model passes. Connect an 'Entropy "
                        "Temperature' to 'AR Sample' for the entropy switches: '+Prob.' puts the per-token "
                        "temperature on the token logits, '+Masking' on the random (Gumbel) term of the "
                        "re-masking confidence; both on is ARsample's released Meissonic sampler. With no "
                        "Entropy Temperature connected (or both switches off) it is plain MaskGIT / aMUSEd "
                        "decoding. For masked models (Meissonic, embedded:tiny-masked); connect it to 'AR Sample'.",
            inputs=[
                io.Int.Input("steps", default=16, min=1, max=MASKED_MAX_STEPS,
                             tooltip="Model passes over the grid; at least one token is committed per step, so "
                                     "at most the model's token count (256 for embedded:tiny-masked). Meissonic's "
                                     "pipeline uses 48 at 1024 px, its README and paper 64, aMUSEd 12."),
                io.Combo.Input("schedule", options=list(MASK_SCHEDULES), default="cosine",
                               tooltip="How many tokens stay masked after each step: 'cosine' (MaskGIT's and the "
                                       "pipelines' default, few tokens early, many late) or 'linear' (the same "
                                       "number every step)."),
                io.Float.Input("choice_temperature_start", default=2.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Scale of the random (Gumbel) term in the re-masking confidence at the "
                                       "first step; it goes linearly to the end value (2 → 0 in the references). "
                                       "Higher = more random choice of which tokens to keep."),
                io.Float.Input("choice_temperature_end", default=0.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Scale of the random term at the last step (0 in the references: late "
                                       "steps keep tokens by probability alone)."),
                io.Boolean.Input("prob", display_name="+Prob.", default=True, label_on="on", label_off="off",
                                 tooltip="'+Prob.': the entropy temperature on the token logits before each draw. "
                                         "Needs an 'Entropy Temperature' connected to 'AR Sample'; ignored "
                                         "without it."),
                io.Boolean.Input("masking", display_name="+Masking", default=True, label_on="on", label_off="off",
                                 tooltip="'+Masking': the entropy temperature on the random (Gumbel) term of the "
                                         "re-masking confidence, which tokens are kept: that term is scaled per "
                                         "position by T(H) (larger where the model is sure, smaller where it is "
                                         "unsure). Needs an 'Entropy Temperature' connected to 'AR Sample'; "
                                         "ignored without it."),
            ],
            outputs=sampler_output(),
        )

    @classmethod
    def execute(cls, steps: int, schedule: str, choice_temperature_start: float, choice_temperature_end: float,
                prob: bool, masking: bool) -> io.NodeOutput:
        return io.NodeOutput(masked_method(steps, schedule, choice_temperature_start, choice_temperature_end, prob,
                                           masking))
