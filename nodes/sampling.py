"""Sampler nodes: plain LlamaGen sampling and the entropy-temperature sampler."""

from __future__ import annotations

from ..errors import SamplingError
from ..models.llamagen import LlamaGenCondition
from ..samplers import PRESETS, EntropyTemperature, NamedSampler, SamplerSettings, SJDSettings
from ..samplers.entropy import preset_or_custom
from ._comfy import AR_COND, AR_MODEL, AR_TOKENS, AR_VQ, CATEGORY, io
from .patching import load
from .payloads import ARConditioning, ARModelHandle, ARTokens, ARVQHandle
from .progress import SamplingProgress

PRESET_CHOICES = list(PRESETS) + ["custom"]


def common_inputs() -> list:
    """Required inputs every AR sampler node has, in this order."""
    return [
        AR_MODEL.Input("model", tooltip="The GPT from 'Load AR Model'."),
        AR_COND.Input("conditioning", tooltip="What to generate: from 'Class Condition' or 'Text Condition (T5)'."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Same seed, same device and settings → same image."),
        io.Float.Input("cfg", default=4.0, min=0.0, max=30.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale; any value ≤ 1 is off (as in LlamaGen). LlamaGen "
                               "demos use 4 (c2i), 7.5 (t2i)."),
        io.Int.Input("top_k", default=0, min=0, max=1_000_000, tooltip="Keep the k most likely tokens; 0 = off."),
        io.Float.Input("top_p", default=1.0, min=0.01, max=1.0, step=0.01, tooltip="Nucleus filter; 1.0 = off."),
        io.Float.Input("temperature", default=1.0, min=0.0, max=5.0, step=0.01,
                       tooltip="Sampling temperature (0 = greedy). In the entropy sampler it multiplies the "
                               "entropy temperature."),
        io.Int.Input("cfg_interval", default=-1, min=-1, max=100_000,
                     tooltip="Stop guidance after this many decode steps; -1 = guide every step."),
    ]


def preview_inputs() -> list:
    """Optional inputs, last so the widget order is the same in every frontend."""
    return [
        AR_VQ.Input("vq", optional=True, tooltip="Connect the VQ tokenizer to see live previews while sampling."),
        io.Boolean.Input("preview", default=True, optional=True,
                         tooltip="Live previews (needs 'vq'); they take under 10% of the sampling time."),
    ]


def sampler_outputs() -> list:
    return [AR_TOKENS.Output(display_name="tokens"),
            io.String.Output(display_name="stats", tooltip="Forward passes, seconds, mean entropy.")]


def run_sampler(sampler: NamedSampler, model: ARModelHandle, conditioning: ARConditioning, seed: int,
                vq: ARVQHandle | None, preview: bool) -> io.NodeOutput:
    """Load the model(s) through ComfyUI's memory manager, sample, return tokens and a stats line."""
    use_vq = vq if (vq is not None and preview) else None
    loaded = load(model.patcher, *([use_vq.patcher] if use_vq else []))
    gpt = loaded[0]
    progress = SamplingProgress(gpt.num_image_tokens, gpt.grid_size, loaded[1] if use_vq else None)
    if conditioning.kind != model.model_type:
        wanted = "Class Condition" if model.model_type == "c2i" else "Text Condition (T5)"
        raise SamplingError(f"{model.name} is a {'class' if model.model_type == 'c2i' else 'text'}-to-image model "
                            f"but the conditioning is a {'text prompt' if conditioning.kind == 't2i' else 'class'}: "
                            f"connect a '{wanted}' node.")
    cond = LlamaGenCondition(labels=conditioning.labels, caption=conditioning.caption,
                             caption_mask=conditioning.caption_mask)
    result = sampler.run(gpt, cond, seed=seed, callback=progress)
    stats = f"{sampler.name}: {result.stats.summary()}"
    tokens = ARTokens(result.tokens.cpu(), result.entropy.float().cpu(), gpt.grid_size, gpt.vocab_size,
                      sampler.name, result.stats)
    return io.NodeOutput(tokens, stats, ui={"text": [stats]})


class PlainSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleSampler",
            display_name="AR Sampler",
            category=CATEGORY,
            description="Plain next-token sampling, exactly as the official LlamaGen code (temperature, then "
                        "top-k/top-p), with classifier-free guidance. The baseline to compare against.",
            inputs=common_inputs() + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, vq=None,
                preview=True) -> io.NodeOutput:
        settings = SamplerSettings(cfg_scale=cfg, cfg_interval=cfg_interval, top_k=top_k, top_p=top_p,
                                   temperature=temperature)
        return run_sampler(NamedSampler("plain", settings), model, conditioning, seed, vq, preview)


def entropy_inputs(with_off: bool) -> list:
    """The entropy-temperature inputs (the SJD node adds 'off' = plain sampling)."""
    options = (["off"] if with_off else []) + PRESET_CHOICES
    return [
        io.Combo.Input("preset", options=options, default="llamagen",
                       tooltip="Entropy-temperature parameters per model family (paper Table 5); 'custom' uses "
                               "the values below" + ("; 'off' samples without it." if with_off else ".")),
        io.Float.Input("t0", default=2.5, min=0.0, max=10.0, step=0.05, tooltip="T0 (used with preset 'custom')."),
        io.Float.Input("alpha", default=3.0, min=0.05, max=20.0, step=0.05,
                       tooltip="α, the entropy scale (used with preset 'custom')."),
        io.Float.Input("theta", default=0.6, min=0.0, max=5.0, step=0.05,
                       tooltip="θ, the temperature floor (used with preset 'custom')."),
        io.Float.Input("clamp_min", default=0.0, min=0.0, max=10.0, step=0.05,
                       tooltip="Lowest temperature allowed; 0 = no clamp (preset 'custom')."),
        io.Float.Input("clamp_max", default=0.0, min=0.0, max=10.0, step=0.05,
                       tooltip="Highest temperature allowed; 0 = no clamp (preset 'custom')."),
        io.Combo.Input("entropy_source", options=["filtered", "raw"], default="filtered",
                       tooltip="Measure the entropy after top-k/top-p (released LlamaGen code) or before (used "
                               "with preset 'custom'; every preset has its own source)."),
    ]


def entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source) -> EntropyTemperature | None:
    """The node's entropy widgets → parameters; a named preset keeps its own values, source included."""
    return preset_or_custom(preset, t0=t0, alpha=alpha, theta=theta, clamp_min=clamp_min, clamp_max=clamp_max,
                            source=entropy_source)


ACCEPTANCE_CHOICES = {"exact (lossless)": "exact", "entropy (lossy, paper rule)": "entropy",
                      "entropy-scale (lossy, released code)": "entropy-scale", "constant (lossy, ablation)": "constant"}


class EntropySJDSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropySJDSampler",
            display_name="AR Sampler (Entropy SJD)",
            category=CATEGORY,
            description="Speculative Jacobi decoding: drafts a window of tokens and verifies them in one model "
                        "pass, so fewer passes per image. 'exact' gives the same distribution as plain sampling; "
                        "the entropy rules (Ma et al., NeurIPS 2025) accept more drafts where the model is unsure "
                        "and are faster but lossy. 'coupled' keeps drafts stable (MC-SJD) and stays lossless.",
            inputs=common_inputs() + [
                io.Combo.Input("acceptance", options=list(ACCEPTANCE_CHOICES), default="exact (lossless)",
                               tooltip="How drafts are accepted. Only 'exact' is lossless."),
                io.Int.Input("window", default=16, min=1, max=64,
                             tooltip="Tokens per model pass (1 = plain sampling). The paper uses 16."),
                io.Combo.Input("init", options=["repeat", "random", "sample-left"], default="repeat",
                               tooltip="How new draft positions start: copy the left neighbour, a random token, "
                                       "or a sample from the last predicted distribution."),
                io.Boolean.Input("coupled", default=False,
                                 tooltip="Coupled drafts (same random noise per position across passes): far "
                                         "fewer passes, still lossless with 'exact'."),
            ] + entropy_inputs(with_off=True) + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, acceptance, window,
                init, coupled, preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source, vq=None,
                preview=True) -> io.NodeOutput:
        settings = SamplerSettings(cfg_scale=cfg, cfg_interval=cfg_interval, top_k=top_k, top_p=top_p,
                                   temperature=temperature,
                                   entropy=entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max,
                                                               entropy_source))
        rule = ACCEPTANCE_CHOICES.get(acceptance, acceptance)
        sjd = SJDSettings(window=window, acceptance=rule, init=init, coupled=coupled)
        name = ("coupled" if coupled else "sjd") + ("" if rule == "exact" else "-" + rule)
        return run_sampler(NamedSampler(name, settings, sjd), model, conditioning, seed, vq, preview)


class EntropySampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropySampler",
            display_name="AR Sampler (Entropy Temperature)",
            category=CATEGORY,
            description="Entropy-informed temperature (Ma et al., NeurIPS 2025): each token's temperature is "
                        "T0·exp(−H/α)+θ from the entropy H of its distribution, so flat regions get more "
                        "variety and detailed regions cleaner structure. No extra model passes.",
            inputs=common_inputs() + entropy_inputs(with_off=False) + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, preset, t0, alpha,
                theta, clamp_min, clamp_max, entropy_source, vq=None, preview=True) -> io.NodeOutput:
        entropy = entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source)
        settings = SamplerSettings(cfg_scale=cfg, cfg_interval=cfg_interval, top_k=top_k, top_p=top_p,
                                   temperature=temperature, entropy=entropy)
        return run_sampler(NamedSampler("entropy", settings), model, conditioning, seed, vq, preview)
