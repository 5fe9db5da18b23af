"""`arsample bench`: sampler quality and speed on the embedded model (one process or torchrun)."""

from __future__ import annotations

from ..lab.benchmark import run_benchmark, to_json, to_markdown
from ..lab.evaluator import load_evaluator
from ..models.registry import MODEL, TOKENIZER, embedded_files, load_model, load_tokenizer
from ..outputs import OutputPlan, write_text
from .common import embedded_inputs, parse_int_list, pick_device
from .embedded_args import (EMBEDDED_DEFAULTS, add_sampling_flags, add_sjd_flags, apply_model_defaults, base_settings,
                            build_samplers)


def register(sub) -> None:
    p = sub.add_parser("bench", help="class accuracy, Fréchet distance, diversity, NFE and speed per sampler",
                       description="Run as one process, or sharded: torchrun --nproc_per_node 2 -m arsample.cli bench ...")
    p.add_argument("--per-class", type=int, default=10, help="images per class per sampler per seed")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; mean ± std is reported over them")
    p.add_argument("--sampler", "--samplers", dest="samplers", default=None,
                   help="comma-separated; default plain,entropy (tiny), every next-scale sampler (tiny-var) or every masked "
                        "sampler (tiny-masked); "
                        + "; ".join(f"{m}: {', '.join(d['samplers'])}" for m, d in EMBEDDED_DEFAULTS.items())
                        + " ('sjd' honours --acceptance/--coupled; 'NAME:centered' picks a '-scalewise' form)")
    p.add_argument("--json", help="write the results as JSON (one object per sampler)")
    p.add_argument("--markdown", help="write the Markdown table to this file too")
    add_sampling_flags(p)
    add_sjd_flags(p)
    p.set_defaults(run=run)


def run(args) -> int:
    json_path, md_path = args.json, args.markdown
    if args.samplers is None and args.model == "tiny":  # the two headline next-token samplers
        args.samplers = "plain,entropy"
    apply_model_defaults(args)
    plan = OutputPlan(outputs={"--json": json_path, "--markdown": md_path},
                      inputs=embedded_inputs(args.model)).check()
    seeds = parse_int_list(args.seeds, "--seeds")
    device = pick_device(args.device)
    family, files = embedded_files(args.model)
    model = load_model(files[MODEL], device=device, name=f"embedded:{args.model}")
    tokenizer = load_tokenizer(files[TOKENIZER], device=device)
    evaluator = load_evaluator(args.model)
    samplers = build_samplers(args.samplers, base_settings(args), args, order=family.order)
    result = run_benchmark(model, tokenizer, evaluator, samplers, args.per_class, seeds)
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
