"""Sampling flags shared by the commands: the embedded-model defaults (demo, bench) and the speculative Jacobi
flags (generate, demo, bench), turned into catalog samplers here only."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ARSampleError
from ..samplers import (ACCEPTANCE_RULES, DRAFT_INITS, NamedSampler, SamplerSettings, SJDSettings, SpeculativeJacobi,
                        named_sampler, sampler_names)
from ..samplers.masked import MaskedOptions
from ..samplers.next_scale import SCALE_TEMPERATURE_FORMS, NextScale, ScaleTemperature

# Each embedded model's sampling defaults and the samplers the demo and the benchmark compare.
# tiny: guidance 2 (LlamaGen's FID setting for its B/L models) and top-k 16 (the LlamaGen demo keeps
# 2000 of 16,384 tokens, 12%; 16 of 128 is the same share).
# tiny-var: VAR's cfg (ramped linearly over the scales, see samplers.next_scale.schedule) and top-k 32
# of 256 codes, the same 12% share; preset: the paper's scale-wise (STAR) values moved to its entropy scale.
# tiny-masked: the references' masked guidance (uncond + s·(cond − uncond)) at 2, no top-k (as aMUSEd and
# Meissonic), 16 steps for its 256 tokens; preset: Meissonic's values moved to its entropy scale.
EMBEDDED_DEFAULTS = {
    "tiny": dict(cfg=2.0, top_k=16, top_p=1.0, temperature=1.0, preset="embedded", steps=None,
                 samplers=sampler_names("next-token")),
    "tiny-var": dict(cfg=2.0, top_k=32, top_p=1.0, temperature=1.0, preset="embedded-var", steps=None,
                     samplers=sampler_names("next-scale")),
    "tiny-masked": dict(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0, preset="embedded-masked", steps=16,
                        samplers=sampler_names("masked")),
}
TINY_DEFAULTS = EMBEDDED_DEFAULTS["tiny"]


def add_sampling_flags(p) -> None:
    p.add_argument("--model", default="tiny", choices=sorted(EMBEDDED_DEFAULTS),
                   help="embedded model: tiny (next-token LlamaGen), tiny-var (next-scale VAR) or tiny-masked "
                        "(masked Meissonic)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance (next-token: any value ≤ 1 is "
                   "off; next-scale: VAR's cfg, ramped over the scales, 0 = off); default: the model's (" +
                   _defaults_text("cfg") + ")")
    p.add_argument("--top-k", type=int, default=None, help="0 = off; default: " + _defaults_text("top_k"))
    p.add_argument("--top-p", type=float, default=None, help="1.0 = off (default)")
    p.add_argument("--temperature", type=float, default=None, help="default 1.0")
    p.add_argument("--preset", default=None,
                   help="entropy-temperature preset of the entropy samplers; default: the model's (" +
                        _defaults_text("preset") + "; 'embedded' is the LlamaGen preset moved to the tiny "
                        "model's entropy scale); a sampler named like 'entropy@llamagen' uses its own")
    p.add_argument("--steps", type=int, default=None,
                   help="masked models: decoding steps (forward passes) per image; default: the model's (tiny-masked "
                        f"{EMBEDDED_DEFAULTS['tiny-masked']['steps']})")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def _defaults_text(key: str) -> str:
    return ", ".join(f"{name} {values[key]}" for name, values in EMBEDDED_DEFAULTS.items())


def apply_model_defaults(args) -> None:
    """Fill every sampling flag left unset with the chosen embedded model's default (in place)."""
    defaults = EMBEDDED_DEFAULTS[args.model]
    if getattr(args, "steps", None) is not None and defaults["steps"] is None:
        raise ARSampleError(f"--steps applies to masked models (tiny-masked); --model {args.model} decodes "
                            f"{'next-scale' if args.model == 'tiny-var' else 'next-token'}.")
    for key in ("cfg", "top_k", "top_p", "temperature", "preset", "steps"):
        if getattr(args, key, None) is None:
            setattr(args, key, defaults[key])
    if getattr(args, "samplers", "") is None:
        args.samplers = ",".join(defaults["samplers"])


def base_settings(args) -> SamplerSettings:
    return SamplerSettings(cfg_scale=args.cfg, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature)


def add_sjd_flags(p) -> None:
    """Flags of the speculative Jacobi samplers (shared by generate, demo, bench)."""
    p.add_argument("--acceptance", choices=ACCEPTANCE_RULES, default=None,
                   help="SJD acceptance rule for --sampler sjd: exact (lossless), entropy, entropy-scale, constant (lossy)")
    p.add_argument("--coupled", action="store_true", help="SJD: coupled (Gumbel-shared) drafts (MC-SJD)")
    p.add_argument("--window", type=int, default=16, help="SJD: tokens per forward pass (1 = plain AR)")
    p.add_argument("--init", choices=DRAFT_INITS, default="repeat", help="SJD: how new draft positions start")


def sjd_settings(args) -> SJDSettings:
    return SJDSettings(window=args.window, init=args.init)


def sjd_method(args) -> SpeculativeJacobi:
    """The speculative Jacobi method of the flags: --window, --init, --acceptance (default exact), --coupled."""
    return SpeculativeJacobi(SJDSettings(window=args.window, init=args.init, acceptance=args.acceptance or "exact",
                                         coupled=args.coupled))


def build_samplers(names: str, base: SamplerSettings, args, order: str = "next-token") -> list[NamedSampler]:
    """Catalog samplers by comma-separated name; a bare 'sjd' honours --acceptance and --coupled.

    ``name@preset`` (e.g. ``entropy@llamagen``) runs a sampler with another entropy preset, and
    ``name:form`` (e.g. ``scale-entropy-scalewise:centered``) a "+Scale-wise" sampler with another
    per-scale form, so one table can compare presets and forms. Every name must decode in ``order``
    (the model's decoding order). Masked samplers take their step count from ``args.steps``.
    """
    masked = MaskedOptions(steps=args.steps) if order == "masked" and getattr(args, "steps", None) else None
    out = []
    for label in [n.strip() for n in names.split(",") if n.strip()]:
        rest, _, own_preset = label.partition("@")
        name, _, form = rest.partition(":")
        if name not in sampler_names(order) and any(name in sampler_names(o)
                                                    for o in ("next-token", "next-scale", "masked")):
            raise ARSampleError(f"Sampler '{name}' does not decode in this model's order ({order}); use one of "
                                f"{', '.join(sampler_names(order))}.")
        sampler = named_sampler(name, base, own_preset or args.preset, sjd_settings(args), masked=masked)
        if form:
            if not name.endswith("-scalewise") or form not in SCALE_TEMPERATURE_FORMS or form == "table":
                forms = ", ".join(f for f in SCALE_TEMPERATURE_FORMS if f != "table")
                raise ARSampleError(f"'{label}': a ':form' suffix goes on a '-scalewise' sampler, with a form from "
                                    f"{forms}.")
            method = NextScale(replace(sampler.method.options, scale_temperature=ScaleTemperature(form)))
            sampler = NamedSampler(sampler.name, sampler.settings, method)
        if own_preset or form:
            sampler = NamedSampler(label, sampler.settings, sampler.method)
        if name == "sjd" and (args.acceptance or args.coupled):
            method = sjd_method(args)
            sampler = NamedSampler(method.label(False), sampler.settings, method)
        out.append(sampler)
    return out
