"""`arsample generate`: sample images for classes or prompts with any of our samplers, from any registered
model family (loaded, checked and decoded through models.registry)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import imaging
from ..errors import ARSampleError
from ..models.clip_text import encode_sd21_prompts
from ..models.registry import (CLASS, MODEL, PROMPT, TOKENIZER, Condition, Loaded, check_order, check_pair,
                               check_prompt_width, check_text_encoder, embedded_files, load_model, load_tokenizer,
                               require_kind)
from ..models.t5 import load_t5
from ..outputs import OutputPlan
from ..samplers import (PRESETS, NamedSampler, NextScaleOptions, NextToken, SamplerSettings, ScaleTemperature,
                        named_sampler, preset)
from ..samplers.masked import MASK_SCHEDULES, Masked, MaskedOptions
from ..samplers.next_scale import SCALE_TEMPERATURE_FORMS
from .common import entropy_heatmaps, parse_int_list, pick_device
from .embedded_args import EMBEDDED_DEFAULTS, add_sjd_flags, sjd_method

SAMPLERS = ("plain", "entropy", "sjd")
MEISSONIC_STEPS, MEISSONIC_CFG = 48, 9.0  # the Meissonic pipeline's defaults


def _embedded_default(args, key: str, otherwise):
    """An embedded model's own default (``--model``; cli.embedded_args), else ``otherwise``."""
    return EMBEDDED_DEFAULTS[args.model][key] if args.model in EMBEDDED_DEFAULTS else otherwise
JANUS_CFG = 5.0  # Janus-Pro's reference guidance (generation_inference.py, the Janus-Pro demo)


def register(sub) -> None:
    p = sub.add_parser("generate", help="sample images from a model + its tokenizer (LlamaGen GPT + VQ, VAR or STAR + "
                                        "VQ-VAE, Meissonic transformer + VQ, a Janus-Pro folder)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gpt", help="model checkpoint (.pt/.pth or .safetensors): a LlamaGen GPT, a VAR transformer, a STAR "
                                   "snapshot, or a Meissonic transformer (the Meissonic folder, its transformer/, or "
                                   "one .safetensors)")
    p.add_argument("--vq", help="its tokenizer (.pt/.pth or .safetensors): a LlamaGen VQ, VAR's VQ-VAE or Meissonic's VQ "
                                "(default for a Meissonic folder given as --gpt: its vqvae/)")
    p.add_argument("--janus", metavar="PATH",
                   help="Janus-Pro (text-to-image): the release folder as downloaded from Hugging Face "
                        "(deepseek-ai/Janus-Pro-1B or -7B: config.json, tokenizer.json and the weights), which holds "
                        "the model and its VQ (the same as --gpt PATH --vq PATH); prompts need no text encoder")
    p.add_argument("--model", help="an embedded model by name instead of --gpt/--vq (e.g. 'tiny')")
    p.add_argument("--classes", help="class-to-image: class ids, one image each, in order (repeat for more)")
    p.add_argument("--prompt", action="append",
                   help="text-to-image: a prompt, one image each (give --prompt several times for a batch)")
    p.add_argument("--t5", help="text-to-image: the FLAN-T5-XL encoder, a Hugging Face folder or .safetensors file")
    p.add_argument("--t5-tokenizer", help="tokenizer.json for --t5 (default: the folder's own, else the bundled "
                                          "T5 v1.1 tokenizer, which FLAN-T5 shares)")
    p.add_argument("--t5-dtype", choices=("fp32", "bf16", "fp16"), default=None,
                   help="T5 weight dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--clip", help="text-to-image with STAR: the Stable Diffusion 2.1 text encoder (CLIP ViT-H/14), the "
                                  "SD 2.1 folder as downloaded or one holding text_encoder/ and tokenizer/; with "
                                  "Meissonic: the Meissonic folder (its text_encoder/ and tokenizer/) (needs "
                                  "'pip install transformers', the [star] extra)")
    p.add_argument("--negative-prompt", default=None,
                   help="Meissonic: the negative prompt of the unconditional rows (default: empty; the Meissonic README "
                        "uses a list of defects, see README)")
    p.add_argument("--cross-attn-mode", default=None, metavar="per-prompt|row0-broadcast|per-row",
                   help="STAR only: how a batch's rows read the text (default per-prompt, the reference's images "
                        "for each prompt; row0-broadcast reproduces the reference's batches; per-row is standard "
                        "guidance). See README")
    p.add_argument("--no-prompt-cleaning", action="store_true",
                   help="feed prompts as typed (the reference lower-cases and tidies them first)")
    p.add_argument("--sampler", choices=SAMPLERS, default="plain",
                   help="plain or entropy (next-scale models: VAR's sampler without/with the entropy temperature per "
                        "token), sjd (next-token models only)")
    p.add_argument("--scale-temperature", default=None, choices=[f for f in SCALE_TEMPERATURE_FORMS if f != "table"],
                   help="next-scale models: the per-scale temperature factor ('+Scale-wise') in this form (off unless "
                        "given; centered-normalized is the default form)")
    p.add_argument("--beta", type=float, default=None, help="with --scale-temperature: its decay beta (default 0.3)")
    p.add_argument("--steps", type=int, default=None,
                   help="masked models (Meissonic): decoding steps (default 48, the Meissonic pipeline's; 16 for "
                        "--model tiny-masked)")
    p.add_argument("--masked-entropy", choices=("both", "prob", "masking"), default="both",
                   help="masked models with --sampler entropy: where the entropy temperature applies: the token "
                        "logits ('prob', '+Prob.'), the re-masking confidence ('masking', '+Masking') or both (the "
                        "released Meissonic sampler)")
    p.add_argument("--schedule", choices=MASK_SCHEDULES, default="cosine",
                   help="masked models: how many tokens stay masked after each step")
    p.add_argument("--cfg", type=float, default=None,
                   help="classifier-free guidance scale, any value ≤ 1 is off (default: 4 for classes, 7.5 for "
                        "prompts, as the LlamaGen demos; 5 for Janus-Pro, as its reference); next-scale models: VAR's "
                        "cfg, ramped linearly over the scales (0 = off; 1.5 FID, 4 demo)")
    p.add_argument("--cfg-interval", type=int, default=-1, help="guided decode steps (-1 = all)")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1.0 = off")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="temperature (entropy sampler: multiplies the entropy map); 0 = greedy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG grid of the batch, in order")
    p.add_argument("--save-tokens", help="write the tokens as an int64 .npy array [batch, tokens]")
    p.add_argument("--entropy-map", help="PNG grid of per-token entropy heatmaps")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="entropy-temperature preset (default: the model's own: llamagen; embedded for --model tiny)")
    p.add_argument("--t0", type=float, help="entropy map T0 (overrides the preset)")
    p.add_argument("--alpha", type=float, help="entropy map alpha (overrides the preset)")
    p.add_argument("--theta", type=float, help="entropy map theta (overrides the preset)")
    p.add_argument("--clamp-min", type=float, help="lower clamp of the entropy temperature")
    p.add_argument("--clamp-max", type=float, help="upper clamp of the entropy temperature")
    p.add_argument("--entropy-source", choices=("filtered", "raw"), help="entropy after or before top-k/top-p")
    add_sjd_flags(p)
    p.add_argument("--entropy-temperature", action="store_true",
                   help="with --sampler sjd: sample from the entropy-temperature distribution (lossless with exact)")
    p.add_argument("--image-size", type=int, help="pixels per side (default: from the checkpoint name/metadata; "
                                                  "Janus-Pro: 384, its 24×24 tokens)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="GPT weight dtype")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(run=run)


def base_settings(args) -> SamplerSettings:
    """The sampling flags as settings, without the entropy temperature (checked before anything is loaded)."""
    cfg = args.cfg if args.cfg is not None else (7.5 if args.prompt else 4.0)
    return SamplerSettings(cfg_scale=cfg, cfg_interval=args.cfg_interval, top_k=args.top_k, top_p=args.top_p,
                           temperature=args.temperature)


def check_sampler_flags(args, order: str) -> None:
    """Refuse flags that do not apply to the model's decoding order (before the model is loaded)."""
    if order == "next-scale":
        if args.sampler == "sjd":
            raise ARSampleError("--sampler sjd: SJD does not apply to next-scale decoding (VAR draws a whole token "
                                "map per pass); use --sampler plain or entropy.")
        if args.entropy_temperature:
            raise ARSampleError("--entropy-temperature goes with --sampler sjd; for a next-scale model use "
                                "--sampler entropy.")
    elif args.scale_temperature or args.beta is not None:
        raise ARSampleError("--scale-temperature/--beta apply to next-scale models (VAR) only.")
    if order == "masked":
        if args.sampler == "sjd" or args.entropy_temperature:
            raise ARSampleError("--sampler sjd / --entropy-temperature: speculative Jacobi decoding does not apply to "
                                "masked decoding; use --sampler plain or entropy (with --masked-entropy).")
    elif args.steps is not None or args.masked_entropy != "both" or args.schedule != "cosine" \
            or args.negative_prompt is not None:
        raise ARSampleError("--steps/--masked-entropy/--schedule/--negative-prompt apply to masked models "
                            "(Meissonic) only.")
    if args.beta is not None and not args.scale_temperature:
        raise ARSampleError("--beta needs --scale-temperature FORM.")


def sampler_from_args(args, base: SamplerSettings, model_preset: str, order: str = "next-token") -> NamedSampler:
    """The catalog method the flags ask for, bound to the settings (entropy temperature included when asked).

    Next-scale models map plain/entropy to the catalog's ``scale``/``scale-entropy`` (``-scalewise`` with
    --scale-temperature)."""
    entropy = None
    if args.sampler == "entropy" or args.entropy_temperature:
        entropy = preset(args.preset or model_preset, t0=args.t0, alpha=args.alpha, theta=args.theta,
                         clamp_min=args.clamp_min, clamp_max=args.clamp_max, source=args.entropy_source)
    check_sampler_flags(args, order)
    if order == "next-scale":
        name = "scale" + ("-entropy" if entropy is not None else "") + ("-scalewise" if args.scale_temperature else "")
        form = None
        if args.scale_temperature:
            form = ScaleTemperature(args.scale_temperature, **({} if args.beta is None else {"beta": args.beta}))
        return named_sampler(name, replace(base, entropy=entropy), model_preset,
                             next_scale=NextScaleOptions(scale_temperature=form))
    if order == "masked":
        steps = args.steps if args.steps is not None else _embedded_default(args, "steps", MEISSONIC_STEPS)
        which = args.masked_entropy
        method = Masked(MaskedOptions(steps=steps, schedule=args.schedule, prob=which in ("both", "prob"),
                                      masking=which in ("both", "masking")))
        return NamedSampler(method.label(entropy is not None), replace(base, entropy=entropy), method)
    method = sjd_method(args) if args.sampler == "sjd" else NextToken()
    return NamedSampler(method.label(entropy is not None), replace(base, entropy=entropy), method)


def run(args) -> int:
    out, tokens_path, map_path = args.out, args.save_tokens, args.entropy_map
    if bool(args.classes) == bool(args.prompt):
        raise ARSampleError("Give --classes (class-to-image) or --prompt (text-to-image), one of the two.")
    if args.janus and (args.t5 or args.clip):
        raise ARSampleError("--janus: Janus-Pro tokenises its prompts itself (the folder's tokenizer.json), it reads "
                            "no text encoder: drop --t5/--clip.")
    # a Hugging Face folder (config.json) given as --gpt may be Janus-Pro, which needs no text encoder: the model's
    # own check says what it needs once it is loaded
    own_text = bool(args.janus) or bool(args.gpt and not args.vq and (Path(args.gpt) / "config.json").is_file())
    if args.prompt and not (args.t5 or args.clip or own_text):
        raise ARSampleError("--prompt needs the text encoder: --t5 PATH for LlamaGen (the flan-t5-xl folder from "
                            "Hugging Face, or a single .safetensors of its encoder), --clip PATH for STAR (the Stable "
                            "Diffusion 2.1 folder); Janus-Pro needs none: give its folder as --janus PATH.")
    if args.t5 and args.clip:
        raise ARSampleError("Give one text encoder: --t5 (LlamaGen) or --clip (STAR).")
    classes = parse_int_list(args.classes, "--classes") if args.classes else None
    base = base_settings(args)
    device = pick_device(args.device)
    files = _model_files(args)
    plan = OutputPlan(outputs={"--out": out, "--save-tokens": tokens_path, "--entropy-map": map_path},
                      inputs={**files, "--t5": args.t5, "--t5-tokenizer": args.t5_tokenizer, "--clip": args.clip}).check()

    gpt_path, vq_path = files.values()
    tokenizer = load_tokenizer(vq_path, device=device)
    model = load_model(gpt_path, dtype=args.dtype, device=device, image_size=args.image_size, tokenizer=tokenizer,
                       name=f"embedded:{args.model}" if args.model else f"'{Path(gpt_path).name}'")
    check_pair(model.info, tokenizer.info)
    if args.cross_attn_mode is not None:
        if model.family.name != "star":
            raise ARSampleError(f"--cross-attn-mode applies to STAR models; {model.info.name} is a "
                                f"{model.family.title} model.")
        model.module.with_cross_attn_mode(args.cross_attn_mode)
    check_sampler_flags(args, model.family.order)
    if args.cfg is None and model.family.order == "masked":  # Meissonic's pipeline: 9; the tiny model's default: 2
        base = replace(base, cfg_scale=MEISSONIC_CFG if args.prompt else _embedded_default(args, "cfg", 4.0))
    if args.cfg is None and model.family.name == "janus":  # the reference's cfg_weight
        base = replace(base, cfg_scale=JANUS_CFG)
    cond = _condition(args, model, classes, device)
    sampler = sampler_from_args(args, base, model.info.preset, model.family.order)
    check_order(model.info, sampler.method)
    sampler.settings.validate(model.info.vocab_size, cond.batch_size)
    result = sampler.run(model.family.sampling_model(model.module, tokenizer.module), cond.value, seed=args.seed)
    images = imaging.to_uint8(model.family.decode(tokenizer.module, result.tokens, result.layout))
    maps = entropy_heatmaps(result, images) if map_path else None

    with plan.writing():  # all outputs appear together, or none
        imaging.save_png(imaging.make_grid(images), out)
        if tokens_path:
            imaging.save_npy(result.tokens.cpu().numpy().astype(np.int64), tokens_path)
        if map_path:
            imaging.save_png(imaging.make_grid(maps), map_path)
    print(f"{sampler.name}: {result.stats.summary()}")
    print(f"wrote {out}" + (f", {tokens_path}" if tokens_path else "") + (f", {map_path}" if map_path else ""))
    return 0


def _model_files(args) -> dict[str, str]:
    """The model and tokenizer files by flag: --gpt/--vq, or an embedded model's (--model, via the registry)."""
    if args.janus:
        if args.model or args.gpt or args.vq:
            raise ARSampleError("Give --janus FOLDER alone (it holds the model and its VQ), not with --model or "
                                "--gpt/--vq.")
        return {"--janus": args.janus, "--janus (its VQ)": args.janus}
    if args.model:
        if args.gpt or args.vq:
            raise ARSampleError("Give either --model or --gpt/--vq, not both.")
        _, files = embedded_files(args.model)
        return {f"--model {args.model} ({role} file)": str(files[role]) for role in (MODEL, TOKENIZER)}
    if args.gpt and not args.vq and Path(args.gpt).is_dir():  # a diffusers folder holds its tokenizer too
        return {"--gpt": args.gpt, "--vq (the --gpt folder)": args.gpt}
    if not (args.gpt and args.vq):
        raise ARSampleError("Give --gpt and --vq checkpoints, --janus FOLDER for Janus-Pro, or --model tiny for the "
                            "embedded model.")
    return {"--gpt": args.gpt, "--vq": args.vq}


def _condition(args, model: Loaded, classes: list[int] | None, device) -> Condition:
    """The model's condition: class ids, prompts the model tokenises itself (Janus-Pro), or prompts encoded with the
    T5 or CLIP (freed again before sampling)."""
    info, entry = model.info, model.family
    require_kind(info, CLASS if classes is not None else PROMPT, "cli")
    if classes is not None:
        return entry.class_condition(info, classes)
    if info.prompt.encoder_kind == "own":  # Janus-Pro: prompt strings, no text encoder
        if args.t5 or args.clip:
            check_text_encoder(info, "t5" if args.t5 else "clip", "cli")  # says: --prompt alone
        return entry.text_condition(model.module, info, args.prompt, host="cli")
    if args.clip and info.prompt.clip_features == "meissonic":
        check_text_encoder(info, "clip", "cli")
        from ..models.meissonic_text import encode_meissonic_prompts

        text, negative = encode_meissonic_prompts(args.clip, args.prompt, args.negative_prompt or "", device=device)
        return entry.prompt_condition(info, text.states, None, args.prompt, pooled=text.pooled,
                                      null=(negative.states, None, negative.pooled))
    if args.clip:
        check_text_encoder(info, "clip", "cli")
        text, empty = encode_sd21_prompts(args.clip, args.prompt, device=device, expected_width=info.prompt.width)
        return entry.prompt_condition(info, text.states, text.mask, args.prompt, pooled=text.pooled,
                                      null=(empty.states, empty.mask, empty.pooled))
    check_text_encoder(info, "t5", "cli")  # before reading the encoder: a STAR model needs --clip instead
    dtype = args.t5_dtype or ("bf16" if device.type == "cuda" else "fp32")
    encoder = load_t5(args.t5, tokenizer=args.t5_tokenizer, dtype=dtype, device=device)
    check_prompt_width(info, encoder.width, "cli")
    prompts = encoder.encode(args.prompt, max_length=info.prompt.length, clean=not args.no_prompt_cleaning)
    del encoder  # the encoder is not needed while sampling
    return entry.prompt_condition(info, prompts.features, prompts.mask, args.prompt)

