"""`arsample bench`: sampler quality and speed on the embedded model (one process or torchrun)."""

from __future__ import annotations

from ..lab.benchmark import run_benchmark, to_json, to_markdown
from ..lab.evaluator import load_evaluator
from ..models.embedded import load_embedded
from ..samplers import SAMPLER_NAMES
from ..outputs import OutputPlan, write_text
from .common import embedded_inputs, parse_int_list, pick_device
from .embedded_args import add_sampling_flags, add_sjd_flags, base_settings, build_samplers


def register(sub) -> None:
    p = sub.add_parser("bench", help="class accuracy, Fréchet distance, diversity, NFE and speed per sampler",
                       description="Run as one process, or sharded: torchrun --nproc_per_node 2 -m arsample.cli bench ...")
    p.add_argument("--per-class", type=int, default=10, help="images per class per sampler per seed")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; mean ± std is reported over them")
    p.add_argument("--sampler", "--samplers", dest="samplers", default="plain,entropy",
                   help=f"comma-separated, from: {', '.join(SAMPLER_NAMES)} ('sjd' honours --acceptance/--coupled)")
    p.add_argument("--json", help="write the results as JSON (one object per sampler)")
    p.add_argument("--markdown", help="write the Markdown table to this file too")
    add_sampling_flags(p)
    add_sjd_flags(p)
    p.set_defaults(run=run)


def run(args) -> int:
    json_path, md_path = args.json, args.markdown
    plan = OutputPlan(outputs={"--json": json_path, "--markdown": md_path},
                      inputs=embedded_inputs(args.model, ("gpt", "vq", "evaluator"))).check()
    seeds = parse_int_list(args.seeds, "--seeds")
    device = pick_device(args.device)
    gpt, vq = load_embedded(args.model, device=device)
    evaluator = load_evaluator(args.model)
    base = base_settings(args)
    samplers = build_samplers(args.samplers, base, args)
    result = run_benchmark(gpt, vq, evaluator, samplers, args.per_class, seeds)
    if result is None:  # not rank 0
        return 0
    table = to_markdown(result)
    print(table)
    with plan.writing():  # both files, or neither
        if json_path:
            write_text(json_path, to_json(result))
        if md_path:
            write_text(md_path, table + "\n")
    return 0
