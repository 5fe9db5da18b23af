"""The masked trainer (lab/train_masked.py, `arsample train --model tiny-masked`) on a few steps: every stage runs,
an interrupted stage resumes where it stopped, the export has Meissonic's key layout plus the class table and
loads through the registry with the tiny LlamaGen VQ, the training masks are those the sampler produces,
and the command refuses another model's settings."""

from __future__ import annotations

import json
import math

import torch
from safetensors import safe_open

from arsample.cli import main
from arsample.lab import train_masked
from arsample.lab.train_masked import TRAIN_STEP_COUNTS, MaskedTrainSettings, masking_for_training
from arsample.models import registry
from arsample.models.embedded import embedded_paths
from arsample.samplers.masked import mask_lengths

QUICK = dict(token_images=8, masked_batch=2, checkpoint_every=1, log_every=1)


def test_stages_run_resume_and_export(tmp_path, capsys):
    work, export = tmp_path / "work", tmp_path / "export"
    train_masked.run(str(work), str(export), MaskedTrainSettings(masked_steps=2, **QUICK), stages=("tokens", "masked"))
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2] and (work / "masked_final.safetensors").exists()
    (work / "masked_final.safetensors").unlink()  # interrupted after step 2
    train_masked.run(str(work), str(export), MaskedTrainSettings(masked_steps=3, **QUICK), stages=("masked", "export"))
    assert "resuming masked transformer training at step 2" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    (path,) = train_masked.export_paths(export)
    vq = registry.load_tokenizer(embedded_paths("tiny-masked")["vq"])
    model = registry.load_model(path, tokenizer=vq)
    assert (model.family.name, vq.family.name, model.info.kind) == ("meissonic", "llamagen", "class")
    assert model.info.layout == ((16, 16),) and model.info.num_classes == 10
    registry.check_pair(model.info, vq.info)
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        assert {f.get_tensor(k).dtype for k in keys} == {torch.float16}
        assert json.loads(f.metadata()["arsample_training"])["settings"]["masked_steps"] == 3
    assert {"embed.embeddings.weight", "mlm_layer.conv2.weight", "transformer_blocks.1.attn.add_q_proj.weight",
            "single_transformer_blocks.3.proj_out.weight", "class_embedding.states"} <= keys


def test_training_masks_are_the_samplers():
    """Every row is masked as the sampler's input at some step i of some step count S: all positions at i = 0,
    else the schedule's count after step i − 1, with the timestep S − 1 − i."""
    n = 256
    mask, timesteps = masking_for_training(512, n, generator=torch.Generator().manual_seed(0))
    seen = {}
    for count in TRAIN_STEP_COUNTS:
        kept = mask_lengths(n, count, "cosine")
        for i in range(count):
            masked = n if i == 0 else min(max(int(kept[i - 1]), 1), n - 1)
            seen.setdefault((masked, count - 1 - i), True)
    pairs = set(zip(mask.sum(1).tolist(), timesteps.long().tolist()))
    assert pairs <= set(seen) and len(pairs) > 20
    assert mask.sum(1).max() == n and math.isclose(float(timesteps.min()), 0.0)


def test_command_refuses_the_other_models_settings(tmp_path, capsys):
    assert main(["train", "--model", "tiny-masked", "--var-steps", "10", "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "--var-steps" in err and "--masked-steps" in err
    assert main(["train", "--model", "tiny-masked", "--stages", "vq", "--work-dir", str(tmp_path / "w")]) == 2
    assert "tokens,masked,export" in capsys.readouterr().err
