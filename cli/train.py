"""`arsample train`: (re)create an embedded model on CPU (the tiny LlamaGen, the tiny next-scale VAR or the tiny
masked Meissonic)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import ModuleType

from ..errors import ARSampleError
from ..lab import train as train_llamagen
from ..lab import train_masked, train_var
from ..models.embedded import WEIGHTS
from ..outputs import OutputPlan


@dataclass(frozen=True)
class _Recipe:
    """A trainer module of the lab (``STAGES``, ``export_paths``, ``run``) and its settings class."""

    module: ModuleType
    settings: type
    what: str

    @property
    def stages(self) -> tuple[str, ...]:
        return self.module.STAGES

    def export_paths(self, export_dir):
        return self.module.export_paths(export_dir)

    def run(self, *args):
        return self.module.run(*args)


RECIPES = {
    "tiny": _Recipe(train_llamagen, train_llamagen.TrainSettings, "the tiny LlamaGen (VQ, GPT, evaluator)"),
    "tiny-var": _Recipe(train_var, train_var.VARTrainSettings,
                        "the tiny next-scale VAR (multi-scale VQ-VAE, VAR transformer)"),
    "tiny-masked": _Recipe(train_masked, train_masked.MaskedTrainSettings,
                           "the tiny masked Meissonic (transformer + class table, on the tiny LlamaGen's VQ)"),
}


def _setting_flags() -> dict[str, type]:
    """Every model's hyper-parameters as flags (a flag's type is the same wherever the name is shared)."""
    flags: dict[str, type] = {}
    for recipe in RECIPES.values():
        for f in fields(recipe.settings):
            flags.setdefault(f.name, type(f.default))
    return flags


def register(sub) -> None:
    p = sub.add_parser("train", help="train an embedded model on procedural shapes (tiny: LlamaGen; tiny-var: VAR; tiny-masked: Meissonic)")
    p.add_argument("--model", choices=sorted(RECIPES), default="tiny",
                   help="; ".join(f"{name}: {r.what}" for name, r in RECIPES.items()))
    p.add_argument("--work-dir", required=True, help="checkpoints and logs; rerun to resume")
    p.add_argument("--export-dir", default=str(WEIGHTS), help="where the final fp16 safetensors go")
    p.add_argument("--stages", default=None,
                   help="comma-separated subset of the model's stages (" +
                   "; ".join(f"{name}: {','.join(r.stages)}" for name, r in RECIPES.items()) + "); default all")
    for name, kind in _setting_flags().items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                       help="default: " + ", ".join(f"{m} {getattr(r.settings(), name)}" for m, r in RECIPES.items()
                                                    if name in r.settings.__dataclass_fields__))
    p.set_defaults(run=run)


def run(args) -> int:
    recipe = RECIPES[args.model]
    own = {f.name for f in fields(recipe.settings)}
    foreign = sorted(n for n in _setting_flags() if n not in own and getattr(args, n) is not None)
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        raise ARSampleError(f"{flags}: not a setting of --model {args.model}; its settings are "
                            f"{', '.join('--' + n.replace('_', '-') for n in sorted(own))}.")
    settings = recipe.settings(**{n: getattr(args, n) for n in own if getattr(args, n) is not None})
    stages = recipe.stages if args.stages is None else tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in recipe.stages]
    if unknown or not stages:
        what = f"unknown stage {', '.join(repr(s) for s in unknown)}" if unknown else "no stage given"
        raise ARSampleError(f"--stages: {what}; --model {args.model} has {','.join(recipe.stages)}.")
    # Both folders are checked before any work (they may not exist yet; they are created), and so are
    # the export files where they exist already. Only the export stage writes the export folder.
    exporting = "export" in stages
    folders = {"--work-dir": args.work_dir, "--export-dir": args.export_dir if exporting else None}
    files = {f"--export-dir ({path.name})": path for path in recipe.export_paths(args.export_dir)
             if exporting and path.exists()}
    OutputPlan(outputs=files, folders=folders).check()
    recipe.run(args.work_dir, args.export_dir, settings, stages)
    return 0
