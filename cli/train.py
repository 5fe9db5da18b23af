"""`arsample train`: (re)create the embedded tiny model on CPU."""

from __future__ import annotations

from dataclasses import fields

from ..errors import ARSampleError
from ..lab.train import STAGES, TrainSettings, export_paths, run as run_training
from ..models.embedded import WEIGHTS
from ..outputs import OutputPlan


def register(sub) -> None:
    p = sub.add_parser("train", help="train the embedded tiny model (VQ, GPT, evaluator) on procedural shapes")
    p.add_argument("--work-dir", required=True, help="checkpoints and logs; rerun to resume")
    p.add_argument("--export-dir", default=str(WEIGHTS), help="where the final fp16 safetensors go")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    for f in fields(TrainSettings):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    p.set_defaults(run=run)


def run(args) -> int:
    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        what = f"unknown stage {', '.join(repr(s) for s in unknown)}" if unknown else "no stage given"
        raise ARSampleError(f"--stages: {what}; choose from {','.join(STAGES)}.")
    # Both folders are checked before any work (they may not exist yet; they are created), and so are
    # the export files where they exist already. Only the export stage writes the export folder.
    exporting = "export" in stages
    folders = {"--work-dir": args.work_dir, "--export-dir": args.export_dir if exporting else None}
    files = {f"--export-dir ({path.name})": path for path in export_paths(args.export_dir)
             if exporting and path.exists()}
    OutputPlan(outputs=files, folders=folders).check()
    run_training(args.work_dir, args.export_dir, settings, stages)
    return 0
