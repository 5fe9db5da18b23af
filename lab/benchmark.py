"""Quality and speed of samplers on an embedded model, in one process or sharded with torchrun.

Family-neutral: conditions, the sampled model and decoding go through the model's registry family,
so the next-token (tiny) and next-scale (tiny-var) models are measured by the same code and evaluator.

The work is cut into jobs (sampler, seed, class); every job has its own seed,
so its images do not depend on which process runs it. Each rank runs its share
of the jobs, rank 0 gathers the evaluator features and stats and computes the
table, so 1 and N processes give the same numbers (timings aside).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..samplers import NamedSampler
from .dataset import NUM_CLASSES
from .evaluator import diversity, frechet_distance, predict, real_reference


@dataclass
class BenchJob:
    sampler: NamedSampler
    seed: int
    label: int
    count: int

    def job_seed(self) -> int:
        key = f"{self.sampler.name}/{self.seed}/{self.label}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:6], "little")


def _dist():
    """(torch.distributed or None, whether we initialised it): set when running under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist, True
    return None, False


def run_benchmark(model, tokenizer, evaluator, samplers: list[NamedSampler], per_class: int, seeds: list[int],
                  classes: list[int] | None = None) -> dict | None:
    """Run every sampler; returns the results on rank 0 (None on other ranks).

    ``model`` and ``tokenizer`` are ``models.registry.Loaded`` (family, module, info).
    Result: {"samplers": [per-sampler dict with mean/std over seeds], "real": reference figures}.
    """
    dist, created = _dist()
    try:
        return _run(dist, model, tokenizer, evaluator, samplers, per_class, seeds, classes)
    finally:
        if created:
            dist.destroy_process_group()


def _run(dist, model, tokenizer, evaluator, samplers, per_class, seeds, classes) -> dict | None:
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)
    family, info = model.family, model.info
    target = family.sampling_model(model.module, tokenizer.module)
    if dist and torch.device(model.module.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    classes = list(range(NUM_CLASSES)) if classes is None else classes
    jobs = [BenchJob(s, seed, c, per_class) for s in samplers for seed in seeds for c in classes]
    mine = []
    for i, job in enumerate(jobs):
        if i % world != rank:
            continue
        started = time.perf_counter()
        if job.sampler.sjd is None:  # AR and next-scale: the whole job is one batch
            cond = family.class_condition(info, [job.label] * job.count)
            results = [job.sampler.run(target, cond.value, seed=job.job_seed())]
        else:  # SJD: one image per call, so forward passes are per image (batches advance at their slowest)
            one = family.class_condition(info, [job.label])
            results = [job.sampler.run(target, one.value, seed=job.job_seed() + n) for n in range(job.count)]
        tokens = torch.cat([r.tokens for r in results])
        images = family.decode(tokenizer.module, tokens, results[0].layout).clamp(-1, 1)
        seconds = time.perf_counter() - started
        nfe = float(np.mean([r.stats.forward_passes for r in results]))
        ent = torch.cat([r.entropy for r in results]).float().cpu()
        pred, feats = predict(evaluator, images.cpu())
        mine.append({"index": i, "pred": pred, "features": feats, "seconds": seconds,
                     "nfe": nfe, "images": job.count,
                     "entropy_sum": float(ent.sum()), "entropy_sq": float(ent.pow(2).sum()),
                     "entropy_n": ent.numel(), "extra": results[0].stats.extra})
    if dist:
        gathered = [None] * world
        dist.gather_object(mine, gathered if rank == 0 else None, dst=0)
        if rank != 0:
            return None
        mine = [r for part in gathered for r in part]
    by_index = {r["index"]: r for r in mine}
    real = real_reference(evaluator, per_class=max(per_class, 20))
    return _table(jobs, by_index, seeds, real)


def _table(jobs: list[BenchJob], results: dict, seeds: list[int], real: dict) -> dict:
    rows = []
    names = list(dict.fromkeys(j.sampler.name for j in jobs))
    for name in names:
        per_seed = []
        for seed in seeds:
            idx = [i for i, j in enumerate(jobs) if j.sampler.name == name and j.seed == seed]
            labels = torch.cat([torch.full((jobs[i].count,), jobs[i].label) for i in idx])
            pred = torch.cat([results[i]["pred"] for i in idx])
            feats = torch.cat([results[i]["features"] for i in idx])
            n_ent = sum(results[i]["entropy_n"] for i in idx)
            mean_ent = sum(results[i]["entropy_sum"] for i in idx) / n_ent
            var_ent = sum(results[i]["entropy_sq"] for i in idx) / n_ent - mean_ent ** 2
            images = sum(results[i]["images"] for i in idx)
            per_seed.append({
                "class_accuracy": float((pred == labels).float().mean()),
                "fd": frechet_distance(feats, real["features"]),
                "diversity": diversity(feats, labels),
                "nfe": float(np.mean([results[i]["nfe"] for i in idx])),
                "seconds_per_image": sum(results[i]["seconds"] for i in idx) / images,
                "entropy_mean": mean_ent,
                "entropy_var": var_ent,
            })
        row = {"sampler": name, "seeds": len(seeds), "images_per_seed": images}
        for key in per_seed[0]:
            values = [p[key] for p in per_seed]
            row[key] = float(np.mean(values))
            row[key + "_std"] = float(np.std(values))
        row["settings"] = _settings_dict(next(j.sampler for j in jobs if j.sampler.name == name))
        rows.append(row)
    return {"samplers": rows, "real": _real_figures(real)}


def _settings_dict(sampler: NamedSampler) -> dict:
    s = sampler.settings
    out = {"cfg": s.cfg_scale, "top_k": s.top_k, "top_p": s.top_p, "temperature": s.temperature}
    if sampler.sjd is not None:
        out.update(window=sampler.sjd.window, acceptance=sampler.sjd.acceptance, coupled=sampler.sjd.coupled,
                   init=sampler.sjd.init)
    form = getattr(getattr(sampler.method, "options", None), "scale_temperature", None)
    if form is not None:
        out.update(scale_wise=form.form, beta=form.beta, scale_clamp=[form.clamp_min, form.clamp_max])
    if s.entropy is not None:
        e = s.entropy
        out.update(t0=e.t0, alpha=e.alpha, theta=e.theta, entropy_source=e.source)
    return out


def _real_figures(real: dict) -> dict:
    """Reference figures from real held-out images: accuracy, diversity, FD between halves, between classes."""
    feats, labels = real["features"], real["labels"]
    # Two halves with every class in each (labels cycle through the classes): alternate whole cycles.
    first = (torch.arange(len(labels)) // NUM_CLASSES) % 2 == 0
    even, odd = feats[first], feats[~first]
    class_pairs = [frechet_distance(feats[labels == a], feats[labels == b])
                   for a in range(NUM_CLASSES) for b in range(a + 1, NUM_CLASSES)
                   if (labels == a).sum() > 2 and (labels == b).sum() > 2]
    return {"class_accuracy": real["accuracy"], "diversity": diversity(feats, labels),
            "fd_real_halves": frechet_distance(even, odd),
            "fd_between_classes_mean": float(np.mean(class_pairs)) if class_pairs else float("nan")}


def to_markdown(result: dict) -> str:
    """The benchmark table as Markdown (mean ± std over seeds)."""
    lines = ["| sampler | class accuracy | Fréchet distance | diversity | forward passes / image | s / image "
             "| entropy mean | entropy var |", "|---|---|---|---|---|---|---|---|"]
    for r in result["samplers"]:
        def f(key, fmt):
            return f"{r[key]:{fmt}} ± {r[key + '_std']:{fmt}}"
        lines.append(f"| {r['sampler']} | {f('class_accuracy', '.3f')} | {f('fd', '.2f')} | {f('diversity', '.3f')} "
                     f"| {r['nfe']:.1f} | {f('seconds_per_image', '.3f')} | {f('entropy_mean', '.2f')} "
                     f"| {f('entropy_var', '.2f')} |")
    real = result["real"]
    lines.append("")
    lines.append(f"Real held-out images: class accuracy {real['class_accuracy']:.3f}, diversity "
                 f"{real['diversity']:.3f}, Fréchet distance between two real halves {real['fd_real_halves']:.2f}, "
                 f"mean Fréchet distance between two different classes {real['fd_between_classes_mean']:.2f}.")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    """A JSON list, one object per sampler (keys sampler, class_accuracy, fd, diversity, nfe,
    seconds_per_image, their *_std over seeds, entropy_mean/var, settings, real_reference)."""
    return json.dumps([{**row, "real_reference": result["real"]} for row in result["samplers"]], indent=1)
