"""Train the embedded "tiny" model on CPU: a small VQ tokenizer, then a small c2i GPT, then the evaluator.

The VQ and GPT are our LlamaGen classes with small configs, trained on the
procedural shapes data (dataset.py), seeded and resumable. The whole run takes
about an hour on 2 CPU cores (the README gives the measured times):

    arsample train --work-dir runs/tiny --export-dir models/embedded/weights

Stages: ``vq`` (reconstruction + commitment loss, dead codes restarted from the
batch), ``tokens`` (encode a fixed training set once), ``gpt`` (next-token loss
with 10% label dropout so CFG works), ``evaluator`` (the shapes classifier of
evaluator.py), ``export`` (fp16 safetensors with the configs and training figures
in the metadata). A stage whose output exists is skipped; an interrupted stage
resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.checkpoint import read_checkpoint, save_safetensors_atomic
from ..models.llamagen import GPTConfig, LlamaGenCondition, LlamaGenGPT, LlamaGenVQ, VQConfig, load_vq
from ..outputs import batch, write_file, write_text
from .dataset import IMAGE_SIZE, NUM_CLASSES, make_batch, to_model_range
from .evaluator import real_reference, train_classifier

TINY_VQ = VQConfig(codebook_size=128, codebook_embed_dim=8, z_channels=32, base_channels=32, ch_mult=(1, 2),
                   num_res_blocks=1, name="tiny-shapes-vq")
TINY_GPT = GPTConfig(dim=128, n_layer=6, n_head=4, multiple_of=64, vocab_size=128, num_classes=NUM_CLASSES,
                     cls_token_num=1, grid_size=IMAGE_SIZE // TINY_VQ.downsample, name="tiny-shapes-gpt")

TRAIN_SEED = 0  # dataset seed of the training images
HELDOUT_SEED = 1  # dataset seed of held-out images (evaluation only)


@dataclass
class TrainSettings:
    """Hyper-parameters of the embedded model's training run."""

    seed: int = 0
    vq_steps: int = 500
    vq_batch: int = 32
    vq_lr: float = 2e-3
    commit_beta: float = 0.25
    restart_every: int = 50
    token_images: int = 20000
    gpt_steps: int = 7200
    gpt_batch: int = 16
    gpt_lr: float = 2e-3
    label_dropout: float = 0.1
    evaluator_steps: int = 1200
    checkpoint_every: int = 100
    log_every: int = 25


def cosine_lr(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


class _Log:
    def __init__(self, path: Path):
        self.path = path
        self.started = time.perf_counter()

    def __call__(self, stage: str, step: int, **values) -> None:
        elapsed = time.perf_counter() - self.started
        record = {"stage": stage, "step": step, "elapsed_s": round(elapsed, 1), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"[{stage} {step}] {shown} ({elapsed:.0f} s)", flush=True)


def _save_state(path: Path, **state) -> None:
    write_file(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, what: str) -> tuple[int, dict | None]:
    """(step to start at, the saved state or None): a stage's checkpoint, if there is one, loaded into ``model``,
    ``opt`` and torch's RNG, so an interrupted stage continues where it stopped."""
    state = _load_state(path)
    if not state:
        return 0, None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["rng"])
    start = int(state["step"])
    print(f"resuming {what} training at step {start}")
    return start, state


def load_token_set(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, labels) int64 of an encoded training set (the ``tokens`` stage's .npz)."""
    data = np.load(path)
    return torch.from_numpy(data["tokens"].astype(np.int64)), torch.from_numpy(data["labels"].astype(np.int64))


def adamw(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW as every trainer here uses it: weight decay 0.05 on matrices and tables, none on vectors."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


# -- VQ ---------------------------------------------------------------------------------------------


def vq_step_loss(vq: LlamaGenVQ, images: torch.Tensor, beta: float):
    """Reconstruction + codebook + commitment loss with a straight-through estimator."""
    z = vq.encode_latent(images)  # (B, e, h, w)
    b, e, h, w = z.shape
    flat = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, e), dim=-1)
    book = vq.quantize.codebook()
    idx = vq.quantize.nearest(flat.detach())
    quant = book[idx]
    codebook_loss = F.mse_loss(quant, flat.detach())
    commit_loss = beta * F.mse_loss(flat, quant.detach())
    straight = flat + (quant - flat).detach()
    latent = straight.reshape(b, h, w, e).permute(0, 3, 1, 2)
    recon = vq.decoder(vq.post_quant_conv(latent))
    recon_loss = F.mse_loss(recon, images)
    return recon_loss + codebook_loss + commit_loss, recon_loss, idx, flat.detach()


def train_vq(work: Path, s: TrainSettings, log: _Log) -> Path:
    """Train the tokenizer; returns the path of the trained weights."""
    final = work / "vq_final.safetensors"
    if final.exists():
        return final
    torch.manual_seed(s.seed)
    vq = LlamaGenVQ(TINY_VQ)
    opt = torch.optim.Adam(vq.parameters(), lr=s.vq_lr, betas=(0.9, 0.99))
    usage = torch.zeros(TINY_VQ.codebook_size)
    start, state = resume(work / "vq_state.pt", vq, opt, "VQ")
    if state:
        usage = state["usage"]
    vq.train()
    for step in range(start, s.vq_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.vq_steps, s.vq_lr)
        images, _ = make_batch(range(step * s.vq_batch, (step + 1) * s.vq_batch), seed=TRAIN_SEED)
        loss, recon, idx, latents = vq_step_loss(vq, to_model_range(images), s.commit_beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(idx, minlength=TINY_VQ.codebook_size).float()
        if (step + 1) % s.restart_every == 0:
            dead = (usage == 0).nonzero().flatten()
            if len(dead) and step + 1 < 0.8 * s.vq_steps:
                pick = torch.randint(0, len(latents), (len(dead),))
                with torch.no_grad():
                    vq.quantize.embedding.weight[dead] = latents[pick] + 0.01 * torch.randn(len(dead), latents.shape[1])
            usage.zero_()
        if (step + 1) % s.log_every == 0:
            log("vq", step + 1, loss=loss.item(), recon_mse=recon.item(),
                psnr=10 * math.log10(4.0 / max(recon.item(), 1e-10)), lr=opt.param_groups[0]["lr"])
        if (step + 1) % s.checkpoint_every == 0:
            _save_state(work / "vq_state.pt", model=vq.state_dict(), opt=opt.state_dict(), usage=usage,
                        step=step + 1, rng=torch.get_rng_state())
    vq.eval()
    save_safetensors_atomic(vq.state_dict(), final, TINY_VQ.to_metadata())
    return final


@torch.no_grad()
def vq_quality(vq: LlamaGenVQ, count: int = 512) -> dict:
    """PSNR (dB, on [-1, 1]) on held-out images and the share of codebook entries used."""
    images, _ = make_batch(range(count), seed=HELDOUT_SEED)
    x = to_model_range(images)
    codes = torch.cat([vq.encode(x[i:i + 64]) for i in range(0, count, 64)])
    recon = torch.cat([vq.decode_codes(codes[i:i + 64]) for i in range(0, count, 64)]).clamp(-1, 1)
    mse = F.mse_loss(recon, x).item()
    used = torch.unique(codes).numel()
    return {"psnr_db": round(10 * math.log10(4.0 / mse), 2), "codes_used": used,
            "codebook_usage": round(used / vq.codebook_size, 3)}


# -- tokens ------------------------------------------------------------------------------------------


def encode_training_set(work: Path, vq_path: Path, s) -> Path:
    """Encode ``s.token_images`` training images once with the LlamaGen VQ at ``vq_path``; saved as int16 tokens +
    labels (also the tiny masked model's training set, on the shipped VQ)."""
    out = work / "train_tokens.npz"
    if out.exists():
        return out
    vq = load_vq(vq_path)
    tokens, labels = [], []
    for start in range(0, s.token_images, 256):
        images, lab = make_batch(range(start, min(start + 256, s.token_images)), seed=TRAIN_SEED)
        tokens.append(vq.encode(to_model_range(images)).numpy().astype(np.int16))
        labels.append(lab)
    arrays = {"tokens": np.concatenate(tokens), "labels": np.concatenate(labels)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add '.npz' to a bare name
            np.savez(f, **arrays)

    write_file(out, write)
    return out


# -- GPT ---------------------------------------------------------------------------------------------


def train_gpt(work: Path, tokens_path: Path, s: TrainSettings, log: _Log) -> Path:
    """Train the class-conditional GPT on the encoded set; returns the weights' path."""
    final = work / "gpt_final.safetensors"
    if final.exists():
        return final
    tokens, labels = load_token_set(tokens_path)
    torch.manual_seed(s.seed + 1)
    gpt = LlamaGenGPT(TINY_GPT)
    _init_gpt(gpt)
    opt = adamw(gpt, s.gpt_lr)
    start, _ = resume(work / "gpt_state.pt", gpt, opt, "GPT")
    gpt.train()
    for step in range(start, s.gpt_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.gpt_steps, s.gpt_lr)
        pick = torch.randint(0, len(tokens), (s.gpt_batch,))
        batch_tokens, batch_labels = tokens[pick], labels[pick].clone()
        drop = torch.rand(s.gpt_batch) < s.label_dropout
        batch_labels[drop] = NUM_CLASSES  # the null class, so guidance works at sampling time
        logits = gpt(LlamaGenCondition(labels=batch_labels), batch_tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch_tokens.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        if (step + 1) % s.log_every == 0:
            extra = class_gap(gpt, tokens[:128], labels[:128]) if (step + 1) % (s.log_every * 10) == 0 else {}
            log("gpt", step + 1, loss=loss.item(), lr=opt.param_groups[0]["lr"], **extra)
        if (step + 1) % s.checkpoint_every == 0:
            _save_state(work / "gpt_state.pt", model=gpt.state_dict(), opt=opt.state_dict(), step=step + 1,
                        rng=torch.get_rng_state())
    gpt.eval()
    save_safetensors_atomic(gpt.state_dict(), final, TINY_GPT.to_metadata())
    return final


@torch.no_grad()
def class_gap(gpt: LlamaGenGPT, tokens: torch.Tensor, labels: torch.Tensor) -> dict:
    """Teacher-forced loss with the true labels and how much worse shuffled / null labels do.

    The gaps tell whether the model uses the class at all: near 0 means it ignores it.
    """
    was_training = gpt.training
    gpt.eval()

    def loss_with(lab):
        logits = gpt(LlamaGenCondition(labels=lab), tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1)).item()

    true = loss_with(labels)
    shuffled = loss_with(labels.roll(1))
    null = loss_with(torch.full_like(labels, NUM_CLASSES))
    gpt.train(was_training)
    return {"eval_loss": true, "gap_shuffled": shuffled - true, "gap_null": null - true}


def _init_gpt(gpt: LlamaGenGPT) -> None:
    with torch.no_grad():
        for name, p in gpt.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
        gpt.output.weight.zero_()  # as the reference: start from uniform predictions


# -- export ------------------------------------------------------------------------------------------


EXPORT_NAMES = ("tiny_shapes_vq", "tiny_shapes_gpt", "tiny_shapes_evaluator")


def export_paths(export_dir: str | Path) -> list[Path]:
    """The files the export stage writes (VQ, GPT, evaluator), all replaced together."""
    return [Path(export_dir) / f"{name}.safetensors" for name in EXPORT_NAMES]


def export(work: Path, export_dir: Path, s: TrainSettings) -> tuple[Path, Path]:
    """Write the shipped fp16 safetensors files with configs and training figures in the metadata."""
    export_dir.mkdir(parents=True, exist_ok=True)
    vq = load_vq(work / "vq_final.safetensors")
    quality = vq_quality(vq)
    training = {"settings": asdict(s), "vq_quality": quality}
    _, eval_meta = read_checkpoint(work / "evaluator_final.safetensors")
    training["evaluator_heldout_accuracy"] = float(eval_meta.get("heldout_accuracy", "nan"))
    paths = []
    metadata = {"vq_final": TINY_VQ.to_metadata(), "gpt_final": TINY_GPT.to_metadata(), "evaluator_final": {}}
    with batch():  # the three files belong together: all are replaced, or none
        for src, dst in zip(metadata, export_paths(export_dir)):
            state, _ = read_checkpoint(work / f"{src}.safetensors")
            # codebook_used is a training-time tracker; the loader recreates it.
            half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()
                    if k != "quantize.codebook_used"}
            save_safetensors_atomic(half, dst, {**metadata[src], "arsample_training": json.dumps(training)})
            paths.append(dst)
    print(f"exported {', '.join(map(str, paths))}; VQ on held-out images: {quality}")
    return tuple(paths)


def train_evaluator(work: Path, s: TrainSettings) -> Path:
    """Train the shapes classifier used by the benchmark; reports held-out accuracy."""
    final = work / "evaluator_final.safetensors"
    if final.exists():
        return final
    model = train_classifier(steps=s.evaluator_steps, seed=s.seed)
    accuracy = real_reference(model, per_class=100)["accuracy"]
    print(f"evaluator accuracy on 1000 held-out real images: {accuracy:.4f}")
    save_safetensors_atomic(model.state_dict(), final, {"heldout_accuracy": f"{accuracy:.4f}"})
    return final


STAGES = ("vq", "tokens", "gpt", "evaluator", "export")


def run(work_dir: str, export_dir: str, settings: TrainSettings | None = None, stages=STAGES):
    """Run (or resume) the training stages in order."""
    s = settings or TrainSettings()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "settings.json", json.dumps(asdict(s), indent=1))
    log = _Log(work / "train_log.jsonl")
    vq_path = train_vq(work, s, log) if "vq" in stages else work / "vq_final.safetensors"
    if "vq" in stages:
        print("VQ on held-out images:", vq_quality(load_vq(vq_path)))
    tokens_path = encode_training_set(work, vq_path, s) if "tokens" in stages else work / "train_tokens.npz"
    if "gpt" in stages:
        train_gpt(work, tokens_path, s, log)
    if "evaluator" in stages:
        train_evaluator(work, s)
    if "export" in stages:
        export(work, Path(export_dir), s)
