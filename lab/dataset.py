"""Procedural "shapes" images: a class-conditional dataset generated on demand.

Each 32x32 image (drawn at 64x64, then box-filtered) is one of ten shape kinds (the class), large and
near the centre, in one of the two colours of its class, on a plain, gradient or striped background of
two other colours. Large flat or smooth regions next to sharp detail give the token entropy the spatial
variation it has on natural images. Image ``i`` of seed ``s`` is always the same picture (its randomness
comes from numpy's generator seeded with (s, i)).

Why large shapes and class colours: with small shapes anywhere in the picture (the first version of
this data), the class decided only a handful of the 256 tokens, and the 1.3 M-parameter GPT, trained
for about an hour on 2 CPU cores, learned the image statistics but ignored the class (teacher-forced
loss with true and shuffled labels differed by 0.002 nats/token; generated images showed their class
about as often as chance). Here the shape spans most of the picture and its colour narrows the class to
two kinds, as colour and shape go together in natural classes.

The class names are a property of the shipped model (``models.embedded.CLASS_NAMES``); ``CLASSES`` is
the same tuple.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..models.embedded import CLASS_NAMES

IMAGE_SIZE = 32  # the images the tiny model makes: 16x16 tokens with a 2x tokenizer
_DRAW_SIZE = 64  # shapes are drawn at this size, then box-filtered down (anti-aliased edges)
CLASSES = CLASS_NAMES
NUM_CLASSES = len(CLASSES)
PALETTE = np.array([
    (24, 24, 28), (236, 236, 232), (214, 48, 49), (46, 170, 80), (44, 92, 214), (242, 204, 36), (142, 60, 186),
    (240, 132, 28), (38, 186, 196),
], dtype=np.float32)
# The two shape colours of each class (indices into PALETTE); every pair is different, and every colour
# is shared by two or three classes, so the evaluator has to look at the shape too.
CLASS_COLOURS = ((0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 0), (6, 1), (7, 2), (8, 3), (0, 6))
BACKGROUNDS = ("plain", "vertical-gradient", "horizontal-gradient", "stripes")


def _background(rng: np.random.Generator, colours: np.ndarray) -> np.ndarray:
    """Half plain, a quarter soft gradients (a colour to a lighter or darker shade), a quarter wide stripes."""
    a, b = colours
    size = _DRAW_SIZE
    kind = rng.choice(BACKGROUNDS, p=[0.5, 0.125, 0.125, 0.25])
    if kind == "plain":
        return np.broadcast_to(a, (size, size, 3)).copy()
    if kind == "stripes":
        period = 16  # 8 px at the final size: each band is 4 token rows
        phase = int(rng.integers(period))
        rows = ((np.arange(size) + phase) // (period // 2)) % 2
        return np.where(rows[:, None, None] == 0, a, b) * np.ones((1, size, 1), np.float32)
    shade = np.clip(a + rng.choice([-1.0, 1.0]) * 70.0, 0, 255)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(a * (1 - ramp) + shade * ramp, (size, size, 3))  # top to bottom
    return (img if kind == "vertical-gradient" else img.transpose(1, 0, 2)).copy()


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour: tuple) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    w = max(3.0, r * 0.45)  # stroke width of the line-like shapes
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    elif kind == "plus":
        draw.rectangle((cx - r, cy - w / 2, cx + r, cy + w / 2), fill=colour)
        draw.rectangle((cx - w / 2, cy - r, cx + w / 2, cy + r), fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=int(round(w)))
    elif kind == "frame":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), outline=colour, width=int(round(w)))
    elif kind == "x-cross":
        d = r * 0.8
        draw.line([(cx - d, cy - d), (cx + d, cy + d)], fill=colour, width=int(round(w)))
        draw.line([(cx - d, cy + d), (cx + d, cy - d)], fill=colour, width=int(round(w)))
    elif kind == "bars":
        bw = r * 0.4
        for dx in (-r * 0.8, 0.0, r * 0.8):
            draw.rectangle((cx + dx - bw / 2, cy - r, cx + dx + bw / 2, cy + r), fill=colour)
    elif kind == "dots":
        d = r * 0.4
        for dx, dy in ((-0.55, -0.55), (0.55, -0.55), (-0.55, 0.55), (0.55, 0.55)):
            x, y = cx + dx * r, cy + dy * r
            draw.ellipse((x - d, y - d, x + d, y + d), fill=colour)
    else:
        raise ValueError(f"unknown shape {kind}")


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One image (32, 32, 3) uint8 of class ``label``, randomness from ``rng``."""
    shape_colour = CLASS_COLOURS[label][int(rng.integers(2))]
    others = np.array([i for i in range(len(PALETTE)) if i != shape_colour])
    background = _background(rng, PALETTE[rng.permutation(others)[:2]])
    image = Image.fromarray(background.round().astype(np.uint8))
    r = float(rng.uniform(18, 25))
    cx, cy = (_DRAW_SIZE / 2 + float(rng.uniform(-5, 5)) for _ in range(2))
    colour = tuple(int(c) for c in PALETTE[shape_colour])
    _draw_shape(ImageDraw.Draw(image), CLASSES[label], cx, cy, r, colour)
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX))


def make_batch(indices, seed: int = 0, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) for dataset ``indices`` of ``seed``.

    Labels cycle through the classes (``index % 10``) unless given.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    labels = indices % NUM_CLASSES if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    images = np.stack([render(int(lab), np.random.default_rng([seed, int(i)])) for i, lab in zip(indices, labels)])
    return images, labels


def to_model_range(images: np.ndarray):
    """uint8 (N, H, W, 3) → float32 torch tensor (N, 3, H, W) in [-1, 1]."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
