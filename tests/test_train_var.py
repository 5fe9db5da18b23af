"""The next-scale trainer (lab/train_var.py, `arsample train --model tiny-var`) on a few steps: every stage runs,
an interrupted stage resumes where it stopped, the export has VAR's key layout and loads through the registry,
and the command refuses another model's settings."""

from __future__ import annotations

import json

import pytest
import torch

from arsample.cli import main
from arsample.lab import train_var
from arsample.lab.train_var import VARTrainSettings
from arsample.models import registry

QUICK = dict(vqvae_steps=2, vqvae_batch=4, token_images=8, var_batch=2, checkpoint_every=1, log_every=1,
             restart_every=1)


@pytest.fixture(autouse=True)
def _small_quality_check(monkeypatch):
    monkeypatch.setattr(train_var, "vqvae_quality", lambda vqvae, count=512: {"psnr_db": 0.0})


def test_stages_run_resume_and_export(tmp_path, capsys):
    work, export = tmp_path / "work", tmp_path / "export"
    train_var.run(str(work), str(export), VARTrainSettings(var_steps=2, **QUICK), stages=("vqvae", "tokens", "var"))
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "var"]
    assert steps == [1, 2] and (work / "var_final.safetensors").exists()
    # an interrupted run: the final file is missing, the state of step 2 is there; a longer run resumes at step 2
    (work / "var_final.safetensors").unlink()
    train_var.run(str(work), str(export), VARTrainSettings(var_steps=3, **QUICK), stages=("var", "export"))
    assert "resuming VAR training at step 2" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "var"]
    assert steps == [1, 2, 3]
    var_file, vqvae_file = export / "tiny_shapes_var.safetensors", export / "tiny_shapes_vqvae.safetensors"
    vae = registry.load_tokenizer(vqvae_file)
    model = registry.load_model(var_file, tokenizer=vae)
    assert (model.family.name, vae.family.name) == ("var", "var")
    assert model.info.layout[-1] == (16, 16) and model.module.image_size == 32
    from safetensors import safe_open

    with safe_open(str(var_file), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}
        assert json.loads(f.metadata()["arsample_training"])["settings"]["var_steps"] == 3


def test_command_refuses_the_other_models_settings_and_stages(tmp_path, capsys):
    assert main(["train", "--model", "tiny-var", "--gpt-steps", "10", "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "--gpt-steps" in err and "--var-steps" in err
    assert main(["train", "--model", "tiny-var", "--stages", "gpt", "--work-dir", str(tmp_path / "w")]) == 2
    assert "vqvae,tokens,var,export" in capsys.readouterr().err
    assert main(["train", "--model", "tiny", "--var-steps", "10", "--work-dir", str(tmp_path / "w")]) == 2
    assert "--var-steps" in capsys.readouterr().err
