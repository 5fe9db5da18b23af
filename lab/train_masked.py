"""Train the embedded masked model ("tiny-masked") on CPU: a small Meissonic transformer on the tiny VQ's tokens.

The transformer is our Meissonic class (``models.meissonic``) in a small config with the official
diffusers key names; the class conditioning is a learned table of per-class "text" features
(``models.meissonic.class_table``, row 10 the null class for guidance). Tokens come from the
embedded tiny LlamaGen's VQ (16×16 codes of 128 entries), which also decodes the masked model's
samples, so no second tokenizer ships. Seeded and resumable like the other trainers:

    arsample train --model tiny-masked --work-dir runs/tiny-masked

Stages: ``tokens`` (encode a fixed training set once with the shipped VQ), ``masked`` (MaskGIT loss:
cross-entropy on the masked positions only; each example is masked as the sampler would see it at a
random step i of a random step count S ∈ TRAIN_STEP_COUNTS: every position at i = 0, else
floor(N·cos(π/2·i/S)) positions, with the reference's timestep S − 1 − i, so the model has seen every
(mask ratio, timestep) pair that 8 to 48 sampling steps produce; 10% label dropout so guidance
works), ``export`` (fp16 safetensors: the transformer's keys + ``class_embedding.*``, with the config
and training figures in the metadata). A stage whose output exists is skipped; an interrupted stage
resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.checkpoint import read_checkpoint, save_safetensors_atomic
from ..models.embedded import WEIGHTS
from ..models.meissonic import DEFAULT_MICRO_CONDS, MeissonicConfig, MeissonicTransformer
from ..models.meissonic.class_table import PREFIX, ClassEmbedding
from ..models.meissonic.generator import GRID_KEY
from ..outputs import batch, write_text
from .dataset import IMAGE_SIZE, NUM_CLASSES
from .train import _Log, _save_state, adamw, cosine_lr, encode_training_set, load_token_set, resume

SHIPPED_VQ = WEIGHTS / "tiny_shapes_vq.safetensors"
GRID = 16  # the tiny VQ's 16×16 token grid (32 px, 2× downsampling)
CODEBOOK = 128
TINY_MASKED = MeissonicConfig(num_layers=2, num_single_layers=4, attention_head_dim=32, num_attention_heads=4,
                              joint_attention_dim=64, pooled_projection_dim=128, axes_dims_rope=(8, 12, 12),
                              vocab_size=CODEBOOK + 1, codebook_size=CODEBOOK, name="tiny-shapes-masked")
CLASS_TOKENS = 2  # "text" rows per class in the class table
TRAIN_STEP_COUNTS = (8, 12, 16, 24, 32, 48)
assert GRID * 2 == IMAGE_SIZE


@dataclass
class MaskedTrainSettings:
    """Hyper-parameters of the embedded masked model's training run."""

    seed: int = 0
    token_images: int = 20000
    masked_steps: int = 8000
    masked_batch: int = 32
    masked_lr: float = 1e-3
    label_dropout: float = 0.1
    checkpoint_every: int = 100
    log_every: int = 25


class TinyMaskedModel(nn.Module):
    """The transformer and its class table, trained together (saved as one file)."""

    def __init__(self):
        super().__init__()
        self.transformer = MeissonicTransformer(TINY_MASKED)
        self.class_embedding = ClassEmbedding(NUM_CLASSES, CLASS_TOKENS, TINY_MASKED.joint_attention_dim,
                                              TINY_MASKED.pooled_projection_dim)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """tokens (B, N) → logits (B, N, codebook)."""
        b = tokens.shape[0]
        states, pooled = self.class_embedding(labels)
        micro = torch.tensor(DEFAULT_MICRO_CONDS).expand(b, -1)
        logits = self.transformer(tokens.reshape(b, GRID, GRID), states, pooled, micro, timesteps)
        return logits.flatten(2).transpose(1, 2)

    def export_state(self) -> dict[str, torch.Tensor]:
        """The shipped key layout: the transformer's diffusers names + ``class_embedding.*``."""
        state = dict(self.transformer.state_dict())
        state.update({PREFIX + k: v for k, v in self.class_embedding.state_dict().items()})
        return state


def _init(model: TinyMaskedModel) -> None:
    """Small normal weights; adaLN modulations and the logit projection start at zero (every block the
    identity, predictions uniform)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        for name, module in model.transformer.named_modules():
            if name.endswith(("norm1.linear", "norm1_context.linear", "norm.linear")):
                module.weight.zero_()
                module.bias.zero_()
        model.transformer.mlm_layer.conv2.weight.zero_()
        model.class_embedding.states.normal_(0.0, 1.0)
        model.class_embedding.pooled.normal_(0.0, 1.0)


def masking_for_training(batch_size: int, num_tokens: int, generator: torch.Generator | None = None):
    """(mask (B, N) bool, timesteps (B,) float): each row masked as at a random step i of a random step
    count S (see the module docstring): N positions at i = 0, else clip(floor(N·cos(π/2·i/S)), 1, N − 1),
    chosen uniformly; timestep S − 1 − i (the reference's counter)."""
    counts = torch.tensor(TRAIN_STEP_COUNTS)[torch.randint(0, len(TRAIN_STEP_COUNTS), (batch_size,),
                                                           generator=generator)]
    step = (torch.rand(batch_size, generator=generator) * counts).long()
    masked = torch.floor(num_tokens * torch.cos(math.pi / 2 * step / counts)).long().clamp(1, num_tokens - 1)
    masked = torch.where(step == 0, torch.full_like(masked, num_tokens), masked)
    ranks = torch.rand(batch_size, num_tokens, generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < masked[:, None], (counts - 1 - step).float()


# -- the masked transformer --------------------------------------------------------------------------


def masked_loss(model: TinyMaskedModel, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the masked positions of a batch masked by ``masking_for_training``."""
    mask, timesteps = masking_for_training(*tokens.shape)
    inputs = torch.where(mask, torch.full_like(tokens, TINY_MASKED.mask_id), tokens)
    logits = model(inputs, labels, timesteps)
    return F.cross_entropy(logits[mask], tokens[mask])


def train_masked(work: Path, tokens_path: Path, s: MaskedTrainSettings, log: _Log) -> Path:
    """Train the class-conditional masked transformer; returns the weights' path."""
    final = work / "masked_final.safetensors"
    if final.exists():
        return final
    tokens, labels = load_token_set(tokens_path)
    torch.manual_seed(s.seed + 2)
    model = TinyMaskedModel()
    _init(model)
    opt = adamw(model, s.masked_lr)
    start, _ = resume(work / "masked_state.pt", model, opt, "masked transformer")
    model.train()
    for step in range(start, s.masked_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.masked_steps, s.masked_lr)
        pick = torch.randint(0, len(tokens), (s.masked_batch,))
        batch_tokens, batch_labels = tokens[pick], labels[pick].clone()
        batch_labels[torch.rand(s.masked_batch) < s.label_dropout] = NUM_CLASSES  # the null class, for guidance
        loss = masked_loss(model, batch_tokens, batch_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % s.log_every == 0:
            extra = class_gap(model, tokens[:128], labels[:128]) if (step + 1) % (s.log_every * 10) == 0 else {}
            log("masked", step + 1, loss=loss.item(), lr=opt.param_groups[0]["lr"], **extra)
        if (step + 1) % s.checkpoint_every == 0:
            _save_state(work / "masked_state.pt", model=model.state_dict(), opt=opt.state_dict(), step=step + 1,
                        rng=torch.get_rng_state())
    model.eval()
    save_safetensors_atomic(model.export_state(), final, {**TINY_MASKED.to_metadata(), GRID_KEY: f"{GRID},{GRID}"})
    return final


@torch.no_grad()
def class_gap(model: TinyMaskedModel, tokens: torch.Tensor, labels: torch.Tensor) -> dict:
    """Masked loss (fixed masking) with the true labels and how much worse shuffled / null labels do."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)
    mask, timesteps = masking_for_training(*tokens.shape, generator=generator)
    inputs = torch.where(mask, torch.full_like(tokens, TINY_MASKED.mask_id), tokens)

    def loss_with(lab):
        return F.cross_entropy(model(inputs, lab, timesteps)[mask], tokens[mask]).item()

    true = loss_with(labels)
    result = {"eval_loss": true, "gap_shuffled": loss_with(labels.roll(1)) - true,
              "gap_null": loss_with(torch.full_like(labels, NUM_CLASSES)) - true}
    model.train(was_training)
    return result


# -- export ------------------------------------------------------------------------------------------


EXPORT_NAMES = ("tiny_shapes_masked",)


def export_paths(export_dir: str | Path) -> list[Path]:
    """The file the export stage writes (transformer + class table)."""
    return [Path(export_dir) / f"{name}.safetensors" for name in EXPORT_NAMES]


def export(work: Path, export_dir: Path, s: MaskedTrainSettings) -> tuple[Path, ...]:
    """Write the shipped fp16 safetensors file with the config and training settings in the metadata."""
    export_dir.mkdir(parents=True, exist_ok=True)
    state, _ = read_checkpoint(work / "masked_final.safetensors")
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    training = json.dumps({"settings": asdict(s), "tokenizer": SHIPPED_VQ.name,
                           "train_step_counts": list(TRAIN_STEP_COUNTS)})
    (dst,) = export_paths(export_dir)
    with batch():
        save_safetensors_atomic(half, dst, {**TINY_MASKED.to_metadata(), GRID_KEY: f"{GRID},{GRID}",
                                           "arsample_training": training})
    print(f"exported {dst}")
    return (dst,)


STAGES = ("tokens", "masked", "export")


def run(work_dir: str, export_dir: str, settings: MaskedTrainSettings | None = None, stages=STAGES,
        vq_path: str | Path = SHIPPED_VQ):
    """Run (or resume) the training stages in order."""
    s = settings or MaskedTrainSettings()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "settings.json", json.dumps(asdict(s), indent=1))
    log = _Log(work / "train_log.jsonl")
    tokens_path = encode_training_set(work, Path(vq_path), s) if "tokens" in stages else work / "train_tokens.npz"
    if "masked" in stages:
        train_masked(work, tokens_path, s, log)
    if "export" in stages:
        export(work, Path(export_dir), s)
