"""The one runner, 'AR Sample' (model + conditioning + a sampler value + an optional entropy temperature), and
today's three sampler nodes as thin presets over it (same node ids and inputs, so saved workflows keep loading
and give the same images).

The runner never learns a family or an order: it checks the condition, the sampler's order and the preview
tokenizer against the model's registry entry before anything is loaded, then runs ``method.run``.
"""

from __future__ import annotations

from ..errors import SamplingError
from ..models.registry import Condition, check_order, check_pair
from ..samplers import EntropyTemperature, NextToken, SamplerSettings, TokenLayout
from ._comfy import AR_COND, AR_MODEL, AR_SAMPLER, AR_TEMPERATURE, AR_TOKENS, AR_VQ, CATEGORY, io
from .patching import load
from .payloads import ARModelHandle, ARTokenizerHandle, ARTokens
from .progress import SamplingProgress
from .sampler_options import SJD_DESCRIPTION, sjd_inputs, sjd_method
from .temperature import entropy_inputs, entropy_temperature


def common_inputs(sampler_socket: bool = False) -> list:
    """Required inputs every sampler node has, in this order (the runner adds its 'sampler' socket)."""
    return [
        AR_MODEL.Input("model", tooltip="The model from 'Load AR Model'."),
        AR_COND.Input("conditioning", tooltip="What to generate: from 'Class Condition', 'Text Condition (T5)', "
                                                       "'Text Condition (CLIP)' or 'Text Condition (Janus-Pro)'."),
        *([AR_SAMPLER.Input("sampler", tooltip="The decoding method: 'Next-Token Sampling' or 'Speculative Jacobi "
                                               "Decoding' (next-token models), 'Next-Scale Sampling' (VAR, STAR), "
                                               "'Masked Sampling' (Meissonic); it must suit the model's decoding "
                                               "order.")]
          if sampler_socket else []),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Same seed, same device and settings → same image."),
        io.Float.Input("cfg", default=4.0, min=0.0, max=30.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale; any value ≤ 1 is off (as in LlamaGen). LlamaGen "
                               "demos use 4 (c2i), 7.5 (t2i). Next-scale (VAR): VAR's own cfg, ramped linearly "
                               "over the scales (0 = off; 1.5 in its FID runs, 4 in its demo). Masked (Meissonic): "
                               "uncond + cfg·(cond − uncond) as its pipeline, 9 by default there."),
        io.Int.Input("top_k", default=0, min=0, max=1_000_000, tooltip="Keep the k most likely tokens; 0 = off."),
        io.Float.Input("top_p", default=1.0, min=0.01, max=1.0, step=0.01, tooltip="Nucleus filter; 1.0 = off."),
        io.Float.Input("temperature", default=1.0, min=0.0, max=5.0, step=0.01,
                       tooltip="Sampling temperature (0 = greedy). With an entropy temperature it multiplies the "
                               "entropy temperature."),
        io.Int.Input("cfg_interval", default=-1, min=-1, max=100_000,
                     tooltip="Stop guidance after this many decode steps; -1 = guide every step."),
    ]


def preview_inputs() -> list:
    """Optional inputs, last so the widget order is the same in every frontend."""
    return [
        AR_VQ.Input("vq", optional=True, tooltip="Connect the tokenizer to see live previews while sampling. "
                                                 "Next-scale models (VAR) sample through it: required for them."),
        io.Boolean.Input("preview", default=True, optional=True,
                         tooltip="Live previews (needs 'vq'); they take at most 8% of the sampling time."),
    ]


def sampler_outputs() -> list:
    return [AR_TOKENS.Output(display_name="tokens"),
            io.String.Output(display_name="stats", tooltip="Forward passes, seconds, mean entropy.")]


def token_settings(cfg: float, cfg_interval: int, top_k: int, top_p: float, temperature: float,
                   entropy: EntropyTemperature | None) -> SamplerSettings:
    return SamplerSettings(cfg_scale=cfg, cfg_interval=cfg_interval, top_k=top_k, top_p=top_p, temperature=temperature,
                           entropy=entropy)


def _checked(method, settings: SamplerSettings, model: ARModelHandle, conditioning: Condition,
             vq: ARTokenizerHandle | None, preview: bool) -> ARTokenizerHandle | None:
    """Everything that can fail before loading: condition, order, settings, tokenizer. Returns the tokenizer to load."""
    info, family = model.info, model.family
    family.check_condition(info, conditioning, "node")
    check_order(info, method)
    settings.validate(info.vocab_size, conditioning.batch_size)
    if family.needs_tokenizer and vq is None:
        raise SamplingError(f"{info.name} is a {family.title} model that samples through its tokenizer: connect "
                            f"'Load VQ Tokenizer' ({family.title}'s VQ-VAE) to the 'vq' input of 'AR Sample'.")
    use_vq = vq if vq is not None and (preview or family.needs_tokenizer) else None
    if use_vq is not None:
        check_pair(info, use_vq.info)
    return use_vq


def run_sampler(method, settings: SamplerSettings, model: ARModelHandle, conditioning: Condition, seed: int,
                vq: ARTokenizerHandle | None, preview: bool) -> io.NodeOutput:
    """Check, then load the model (and tokenizer) through ComfyUI's memory manager, sample, return tokens + stats."""
    use_vq = _checked(method, settings, model, conditioning, vq, preview)
    loaded = load(model.patcher, *([use_vq.patcher] if use_vq else []))
    tokenizer = loaded[1] if use_vq else None
    family, layout = model.family, TokenLayout(model.info.layout)
    show = (lambda state: family.preview(tokenizer, state, layout)) if tokenizer is not None and preview else None
    result = method.run(family.sampling_model(loaded[0], tokenizer), conditioning.value, settings, seed=seed,
                        callback=SamplingProgress(layout.num_tokens, show))
    label = method.label(settings.entropy is not None)
    stats = f"{label}: {result.stats.summary()}"
    tokens = ARTokens(result.tokens.cpu(), result.entropy.float().cpu(), result.temperature.float().cpu(),
                      result.layout or layout, model.info.vocab_size, family.name, label, result.stats)
    return io.NodeOutput(tokens, stats, ui={"text": [stats]})


class ARSample(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleSample",
            display_name="AR Sample",
            category=CATEGORY,
            description="Samples image tokens: a model, what to generate, a decoding method ('Next-Token Sampling', "
                        "'Speculative Jacobi Decoding', 'Next-Scale Sampling', 'Masked Sampling') and optionally an 'Entropy "
                        "Temperature' (unconnected: plain sampling), with the shared settings (seed, guidance, "
                        "filters, temperature).",
            inputs=common_inputs(sampler_socket=True) + [
                AR_TEMPERATURE.Input("entropy_temperature", optional=True,
                                     tooltip="From 'Entropy Temperature'; unconnected = plain sampling."),
            ] + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, sampler, seed, cfg, top_k, top_p, temperature, cfg_interval,
                entropy_temperature=None, vq=None, preview=True) -> io.NodeOutput:
        settings = token_settings(cfg, cfg_interval, top_k, top_p, temperature, entropy_temperature)
        return run_sampler(sampler, settings, model, conditioning, seed, vq, preview)


class PlainSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleSampler",
            display_name="AR Sampler",
            category=CATEGORY,
            description="Plain next-token sampling, exactly as the official LlamaGen code (temperature, then "
                        "top-k/top-p), with classifier-free guidance. The baseline to compare against. (A preset "
                        "of 'AR Sample' with 'Next-Token Sampling'.)",
            inputs=common_inputs() + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, vq=None,
                preview=True) -> io.NodeOutput:
        settings = token_settings(cfg, cfg_interval, top_k, top_p, temperature, None)
        return run_sampler(NextToken(), settings, model, conditioning, seed, vq, preview)


class EntropySampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropySampler",
            display_name="AR Sampler (Entropy Temperature)",
            category=CATEGORY,
            description="Entropy-informed temperature (Ma et al., NeurIPS 2025): each token's temperature is "
                        "T0·exp(−H/α)+θ from the entropy H of its distribution, so flat regions get more "
                        "variety and detailed regions cleaner structure. No extra model passes. (A preset of "
                        "'AR Sample' with 'Next-Token Sampling' and 'Entropy Temperature'.)",
            inputs=common_inputs() + entropy_inputs() + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, preset, t0, alpha,
                theta, clamp_min, clamp_max, entropy_source, vq=None, preview=True) -> io.NodeOutput:
        entropy = entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source)
        settings = token_settings(cfg, cfg_interval, top_k, top_p, temperature, entropy)
        return run_sampler(NextToken(), settings, model, conditioning, seed, vq, preview)


class EntropySJDSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropySJDSampler",
            display_name="AR Sampler (Entropy SJD)",
            category=CATEGORY,
            description=SJD_DESCRIPTION + " (A preset of 'AR Sample' with 'Speculative Jacobi Decoding' and "
                                          "'Entropy Temperature'.)",
            inputs=common_inputs() + sjd_inputs() + entropy_inputs(with_off=True) + preview_inputs(),
            outputs=sampler_outputs(),
        )

    @classmethod
    def execute(cls, model, conditioning, seed, cfg, top_k, top_p, temperature, cfg_interval, acceptance, window,
                init, coupled, preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source, vq=None,
                preview=True) -> io.NodeOutput:
        entropy = entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source)
        settings = token_settings(cfg, cfg_interval, top_k, top_p, temperature, entropy)
        return run_sampler(sjd_method(acceptance, window, init, coupled), settings, model, conditioning, seed, vq,
                           preview)
