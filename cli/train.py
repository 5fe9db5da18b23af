"""`arsample train`: (re)create the embedded tiny model on CPU."""

from __future__ import annotations

from dataclasses import fields

from ..models.embedded import WEIGHTS
from ..models.embedded.train import STAGES, TrainSettings, run as run_training


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
    run_training(args.work_dir, args.export_dir, settings, stages)
    return 0
