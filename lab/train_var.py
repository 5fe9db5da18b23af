"""Train the embedded next-scale model ("tiny-var") on CPU: a small multi-scale VQ-VAE, then a small VAR.

Both are our VAR classes (``models.var``) with small configs and the official key layout, trained on
the procedural shapes data (dataset.py), seeded and resumable like the tiny LlamaGen (train.py):

    arsample train --model tiny-var --work-dir runs/tiny-var

Stages: ``vqvae`` (residual multi-scale quantisation with a straight-through estimator: reconstruction
+ codebook + commitment loss on the accumulated latent f̂, as VAR's VQ-VAE is trained; dead codes
restarted from the batch), ``tokens`` (encode a fixed training set once into every scale's token map),
``var`` (teacher-forced next-scale loss over all scales at once with the block-causal mask, 10% label
dropout so CFG works), ``export`` (fp16 safetensors with the configs and training figures in the
metadata). The shapes classifier that measures the model is the tiny LlamaGen's (same data). A stage
whose output exists is skipped; an interrupted stage resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.checkpoint import read_checkpoint, save_safetensors_atomic
from ..models.var import KNOWN_PYRAMIDS, VARConfig, VARTransformer, VARVQVAE, VQVAEConfig, load_vqvae
from ..outputs import batch, write_file, write_text
from .dataset import IMAGE_SIZE, NUM_CLASSES, make_batch, to_model_range
from .train import HELDOUT_SEED, TRAIN_SEED, _Log, _save_state, adamw, cosine_lr, load_token_set, resume

# 32 px images → a 16x16 latent (2x VQ-VAE), seven scales from 1x1 to 16x16 (386 tokens).
TINY_PATCH_NUMS = KNOWN_PYRAMIDS["the embedded tiny-var, 32 px"]
TINY_VQVAE = VQVAEConfig(vocab_size=256, z_channels=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, using_sa=False,
                         using_mid_sa=True, phi_layout="partial", phi_count=4, ema_rows=len(TINY_PATCH_NUMS),
                         name="tiny-shapes-vqvae")
TINY_VAR = VARConfig(depth=6, embed_dim=128, num_heads=4, mlp_hidden=512, num_classes=NUM_CLASSES,
                     vocab_size=TINY_VQVAE.vocab_size, cvae=TINY_VQVAE.z_channels, patch_nums=TINY_PATCH_NUMS,
                     downsample=TINY_VQVAE.downsample, name="tiny-shapes-var")
assert TINY_VAR.image_size == IMAGE_SIZE
SCALES = TINY_VAR.scales


@dataclass
class VARTrainSettings:
    """Hyper-parameters of the embedded next-scale model's training run."""

    seed: int = 0
    vqvae_steps: int = 800
    vqvae_batch: int = 32
    vqvae_lr: float = 2e-3
    commit_beta: float = 0.25
    restart_every: int = 50
    token_images: int = 20000
    var_steps: int = 3000
    var_batch: int = 16
    var_lr: float = 2e-3
    label_dropout: float = 0.1
    checkpoint_every: int = 100
    log_every: int = 25


# -- VQ-VAE ------------------------------------------------------------------------------------------


def multiscale_vq_loss(vqvae: VARVQVAE, images: torch.Tensor, beta: float):
    """Residual multi-scale quantisation with gradients (VAR's VQ-VAE training objective, in words):
    at each scale the residual f − f̂ is area-downsampled and quantised to its nearest codes; the codes'
    embeddings, bicubic-upsampled and passed through φ, join f̂. Losses: the codebook term pulls f̂ to
    the (frozen) latent, the commitment term (×β) the latent to the (frozen) f̂, both averaged over
    scales; the decoder sees f̂ through a straight-through estimator. Returns (loss, reconstruction
    MSE, the chosen ids (N,), the residual vectors they quantised (N, C))."""
    quantizer = vqvae.quantize
    f = vqvae.quant_conv(vqvae.encoder(images))
    b, c, height, width = f.shape
    f_frozen = f.detach()
    rest = f_frozen.clone()
    f_hat = torch.zeros_like(f)
    book = quantizer.embedding.weight
    vq_loss = f.new_zeros(())
    ids, vectors = [], []
    num = len(SCALES)
    for si, size in enumerate(SCALES):
        z = F.interpolate(rest, size=size, mode="area") if si != num - 1 else rest
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        with torch.no_grad():
            idx = torch.cdist(flat, book.detach()).argmin(dim=1)
        h = book[idx].reshape(b, *size, c).permute(0, 3, 1, 2)
        if si != num - 1:
            h = F.interpolate(h, size=(height, width), mode="bicubic")
        h = quantizer.phi(si, num)(h)
        f_hat = f_hat + h
        rest = rest - h.detach()
        vq_loss = vq_loss + F.mse_loss(f_hat, f_frozen) + beta * F.mse_loss(f, f_hat.detach())
        ids.append(idx)
        vectors.append(flat)
    straight = f + (f_hat - f).detach()  # decoder input: f̂'s values, the encoder's gradient
    recon = vqvae.decoder(vqvae.post_quant_conv(straight))
    recon_loss = F.mse_loss(recon, images)
    return recon_loss + vq_loss / num, recon_loss, torch.cat(ids), torch.cat(vectors)


def train_vqvae(work: Path, s: VARTrainSettings, log: _Log) -> Path:
    """Train the multi-scale VQ-VAE; returns the path of the trained weights."""
    final = work / "vqvae_final.safetensors"
    if final.exists():
        return final
    torch.manual_seed(s.seed)
    vqvae = VARVQVAE(TINY_VQVAE)
    with torch.no_grad():
        vqvae.quantize.embedding.weight.uniform_(-1 / TINY_VQVAE.vocab_size, 1 / TINY_VQVAE.vocab_size)
    opt = torch.optim.Adam(vqvae.parameters(), lr=s.vqvae_lr, betas=(0.9, 0.99))
    usage = torch.zeros(TINY_VQVAE.vocab_size)
    start, state = resume(work / "vqvae_state.pt", vqvae, opt, "VQ-VAE")
    if state:
        usage = state["usage"]
    vqvae.train()
    for step in range(start, s.vqvae_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.vqvae_steps, s.vqvae_lr)
        images, _ = make_batch(range(step * s.vqvae_batch, (step + 1) * s.vqvae_batch), seed=TRAIN_SEED)
        loss, recon, idx, vectors = multiscale_vq_loss(vqvae, to_model_range(images), s.commit_beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(idx, minlength=TINY_VQVAE.vocab_size).float()
        if (step + 1) % s.restart_every == 0:
            dead = (usage == 0).nonzero().flatten()
            if len(dead) and step + 1 < 0.8 * s.vqvae_steps:
                pick = torch.randint(0, len(vectors), (len(dead),))
                with torch.no_grad():
                    noise = 0.01 * torch.randn(len(dead), vectors.shape[1])
                    vqvae.quantize.embedding.weight[dead] = vectors[pick].detach() + noise
            usage.zero_()
        if (step + 1) % s.log_every == 0:
            log("vqvae", step + 1, loss=loss.item(), recon_mse=recon.item(),
                psnr=10 * math.log10(4.0 / max(recon.item(), 1e-10)), lr=opt.param_groups[0]["lr"])
        if (step + 1) % s.checkpoint_every == 0:
            _save_state(work / "vqvae_state.pt", model=vqvae.state_dict(), opt=opt.state_dict(), usage=usage,
                        step=step + 1, rng=torch.get_rng_state())
    vqvae.eval()
    save_safetensors_atomic(vqvae.state_dict(), final, TINY_VQVAE.to_metadata())
    return final


@torch.no_grad()
def vqvae_quality(vqvae: VARVQVAE, count: int = 512) -> dict:
    """PSNR (dB, on [-1, 1]) of all scales' f̂ on held-out images and the share of codes used."""
    images, _ = make_batch(range(count), seed=HELDOUT_SEED)
    x = to_model_range(images)
    tokens = torch.cat([vqvae.encode_tokens(x[i:i + 64], SCALES) for i in range(0, count, 64)])
    recon = torch.cat([vqvae.decode_tokens(tokens[i:i + 64], SCALES) for i in range(0, count, 64)])
    mse = F.mse_loss(recon, x).item()
    used = torch.unique(tokens).numel()
    return {"psnr_db": round(10 * math.log10(4.0 / mse), 2), "codes_used": used,
            "codebook_usage": round(used / vqvae.codebook_size, 3)}


# -- tokens ------------------------------------------------------------------------------------------


def encode_training_set(work: Path, vqvae_path: Path, s: VARTrainSettings) -> Path:
    """Encode ``token_images`` training images once: every scale's ids (int16) + labels."""
    out = work / "train_tokens.npz"
    if out.exists():
        return out
    vqvae = load_vqvae(vqvae_path)
    tokens, labels = [], []
    for start in range(0, s.token_images, 256):
        images, lab = make_batch(range(start, min(start + 256, s.token_images)), seed=TRAIN_SEED)
        tokens.append(vqvae.encode_tokens(to_model_range(images), SCALES).numpy().astype(np.int16))
        labels.append(lab)
    arrays = {"tokens": np.concatenate(tokens), "labels": np.concatenate(labels)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add '.npz' to a bare name
            np.savez(f, **arrays)

    write_file(out, write)
    return out


# -- VAR ---------------------------------------------------------------------------------------------


def _init_var(var: VARTransformer) -> None:
    """Small normal weights; the AdaLN projections and the head start at zero (adaLN-Zero: every block
    starts as the identity, predictions start uniform)."""
    with torch.no_grad():
        for module in var.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        for p in (var.pos_start, var.pos_1LC):
            p.normal_(0.0, 0.02)
        for blk in var.blocks:
            blk.ada_lin[1].weight.zero_()
            blk.ada_lin[1].bias.zero_()
        var.head_nm.ada_lin[1].weight.zero_()
        var.head_nm.ada_lin[1].bias.zero_()
        var.head.weight.zero_()


def train_var(work: Path, tokens_path: Path, vqvae_path: Path, s: VARTrainSettings, log: _Log) -> Path:
    """Train the class-conditional VAR on the encoded set; returns the weights' path."""
    final = work / "var_final.safetensors"
    if final.exists():
        return final
    tokens, labels = load_token_set(tokens_path)
    quantizer = load_vqvae(vqvae_path).quantize
    torch.manual_seed(s.seed + 1)
    var = VARTransformer(TINY_VAR)
    _init_var(var)
    opt = adamw(var, s.var_lr)
    start, _ = resume(work / "var_state.pt", var, opt, "VAR")
    var.train()
    for step in range(start, s.var_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.var_steps, s.var_lr)
        pick = torch.randint(0, len(tokens), (s.var_batch,))
        batch_tokens, batch_labels = tokens[pick], labels[pick].clone()
        batch_labels[torch.rand(s.var_batch) < s.label_dropout] = NUM_CLASSES  # the null class, for CFG
        x_wo_first = quantizer.tokens_to_var_input(batch_tokens, SCALES)
        logits = var(batch_labels, x_wo_first)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch_tokens.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(var.parameters(), 1.0)
        opt.step()
        if (step + 1) % s.log_every == 0:
            extra = class_gap(var, quantizer, tokens[:64], labels[:64]) \
                if (step + 1) % (s.log_every * 10) == 0 else {}
            log("var", step + 1, loss=loss.item(), lr=opt.param_groups[0]["lr"], **extra)
        if (step + 1) % s.checkpoint_every == 0:
            _save_state(work / "var_state.pt", model=var.state_dict(), opt=opt.state_dict(), step=step + 1,
                        rng=torch.get_rng_state())
    var.eval()
    save_safetensors_atomic(var.state_dict(), final, TINY_VAR.to_metadata())
    return final


@torch.no_grad()
def class_gap(var: VARTransformer, quantizer, tokens: torch.Tensor, labels: torch.Tensor) -> dict:
    """Teacher-forced loss with the true labels and how much worse shuffled / null labels do."""
    was_training = var.training
    var.eval()
    x_wo_first = quantizer.tokens_to_var_input(tokens, SCALES)

    def loss_with(lab):
        logits = var(lab, x_wo_first)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1)).item()

    true = loss_with(labels)
    shuffled = loss_with(labels.roll(1))
    null = loss_with(torch.full_like(labels, NUM_CLASSES))
    var.train(was_training)
    return {"eval_loss": true, "gap_shuffled": shuffled - true, "gap_null": null - true}


# -- export ------------------------------------------------------------------------------------------


EXPORT_NAMES = ("tiny_shapes_vqvae", "tiny_shapes_var")


def export_paths(export_dir: str | Path) -> list[Path]:
    """The files the export stage writes (VQ-VAE, VAR), replaced together."""
    return [Path(export_dir) / f"{name}.safetensors" for name in EXPORT_NAMES]


def export(work: Path, export_dir: Path, s: VARTrainSettings) -> tuple[Path, ...]:
    """Write the shipped fp16 safetensors files with configs and training figures in the metadata."""
    export_dir.mkdir(parents=True, exist_ok=True)
    quality = vqvae_quality(load_vqvae(work / "vqvae_final.safetensors"))
    training = json.dumps({"settings": asdict(s), "vqvae_quality": quality})
    sources = {"vqvae_final": TINY_VQVAE.to_metadata(), "var_final": TINY_VAR.to_metadata()}
    paths = []
    with batch():  # the two files belong together: both are replaced, or neither
        for (src, meta), dst in zip(sources.items(), export_paths(export_dir)):
            state, _ = read_checkpoint(work / f"{src}.safetensors")
            half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
            save_safetensors_atomic(half, dst, {**meta, "arsample_training": training})
            paths.append(dst)
    print(f"exported {', '.join(map(str, paths))}; VQ-VAE on held-out images: {quality}")
    return tuple(paths)


STAGES = ("vqvae", "tokens", "var", "export")


def run(work_dir: str, export_dir: str, settings: VARTrainSettings | None = None, stages=STAGES):
    """Run (or resume) the training stages in order."""
    s = settings or VARTrainSettings()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "settings.json", json.dumps(asdict(s), indent=1))
    log = _Log(work / "train_log.jsonl")
    vqvae_path = train_vqvae(work, s, log) if "vqvae" in stages else work / "vqvae_final.safetensors"
    if "vqvae" in stages:
        print("VQ-VAE on held-out images:", vqvae_quality(load_vqvae(vqvae_path)))
    tokens_path = encode_training_set(work, vqvae_path, s) if "tokens" in stages else work / "train_tokens.npz"
    if "var" in stages:
        train_var(work, tokens_path, vqvae_path, s, log)
    if "export" in stages:
        export(work, Path(export_dir), s)
