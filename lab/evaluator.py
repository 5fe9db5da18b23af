"""Evaluator for the shapes data: a small CNN classifier and the metrics built on it.

- class accuracy: does a generated image show the shape it was asked for
  (our analogue of an image-text alignment score);
- Fréchet distance between the classifier's penultimate features of generated
  and of real images (our FID analogue; same formula as FID);
- diversity: mean pairwise cosine distance between the features of images of
  the same class (real data gives the reference value).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.checkpoint import read_checkpoint
from ..models.embedded import embedded_paths
from .dataset import IMAGE_SIZE, NUM_CLASSES, make_batch, to_model_range

EVAL_TRAIN_SEED = 2
FEATURE_DIM = 64


class ShapesClassifier(nn.Module):
    """Three conv stages (32→4 px) then a 64-d feature layer and a 10-way head."""

    def __init__(self, width: int = 32):
        super().__init__()
        chans = [3, width, width * 2, width * 4]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        self.norms = nn.ModuleList(nn.GroupNorm(8, b) for b in chans[1:])
        self.feature = nn.Linear(chans[-1] * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, 32, 32) in [-1, 1] → features (B, 64)."""
        h = images
        for conv, norm in zip(self.convs, self.norms):
            h = F.max_pool2d(F.silu(norm(conv(h))), 2)
        return F.silu(self.feature(h.flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_classifier(steps: int = 1200, batch: int = 64, lr: float = 2e-3, seed: int = 0,
                     log_every: int = 100) -> ShapesClassifier:
    """Train the evaluator on fresh procedural images (dataset seed EVAL_TRAIN_SEED)."""
    torch.manual_seed(seed)
    model = ShapesClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        frac = step / steps
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        images, labels = make_batch(range(step * batch, (step + 1) * batch), seed=EVAL_TRAIN_SEED,
                                    labels=np.random.default_rng([seed, step]).integers(0, NUM_CLASSES, batch))
        loss = F.cross_entropy(model(to_model_range(images)), torch.from_numpy(labels))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % log_every == 0:
            print(f"[evaluator {step + 1}] loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return model.eval().requires_grad_(False)


def load_evaluator(name: str = "tiny", device="cpu") -> ShapesClassifier:
    """The shapes classifier shipped with an embedded model (its file sits beside the model's weights)."""
    state, _ = read_checkpoint(embedded_paths(name)["evaluator"])
    model = ShapesClassifier()
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def predict(model: ShapesClassifier, images: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N,), features (N, 64)) for images (N, 3, 32, 32) in [-1, 1]."""
    labels, feats = [], []
    for i in range(0, len(images), chunk):
        f = model.features(images[i:i + chunk].float())
        feats.append(f)
        labels.append(model.head(f).argmax(-1))
    return torch.cat(labels), torch.cat(feats)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, d) and b (M, d)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    inner = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * inner)


def diversity(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise cosine distance between features of the same class, averaged over classes."""
    scores = []
    for c in labels.unique():
        f = F.normalize(features[labels == c].double(), dim=-1)
        n = len(f)
        if n < 2:
            continue
        sim = f @ f.T
        scores.append(float((1 - sim).sum() / (n * (n - 1))))
    return float(np.mean(scores)) if scores else 0.0


def real_reference(model: ShapesClassifier, per_class: int, seed: int = 1) -> dict:
    """Features and labels of real held-out images, ``per_class`` of each class."""
    count = per_class * NUM_CLASSES
    images, labels = make_batch(range(count), seed=seed)
    pred, feats = predict(model, to_model_range(images))
    labels = torch.from_numpy(labels)
    return {"features": feats, "labels": labels, "accuracy": float((pred == labels).float().mean())}


__all__ = ["ShapesClassifier", "train_classifier", "load_evaluator", "predict", "frechet_distance", "diversity",
           "real_reference", "IMAGE_SIZE"]
