"""The masked sampler against the reference schedulers (fixtures/golden/README.md, "Masked sampler").

The references ran on CPU in float32, driven by seeded random logits per step (no model): diffusers
0.32.2 ``AmusedScheduler`` (the plain loop: runs ``amused_*``) and ARsample's released Meissonic
``Scheduler`` (runs ``ars_*``: its plain top-k path, and its entropy temperature, which applies to the
token logits and to the re-masking noise together). A predictor replaying the recorded logits must
give the reference's tokens after every step, for the same seed.
"""

from __future__ import annotations

import json

import pytest
import torch
from arsample.samplers import SamplerSettings, preset
from arsample.samplers.masked import MaskedOptions, mask_lengths, sample_masked
from safetensors import safe_open
from safetensors.torch import load_file

RUNS = {  # name: (scheduler, batch, steps, cfg, top_k, schedule, entropy, seed)
    "amused_a": ("amused", 2, 6, 3.0, 0, "cosine", False, 0),
    "amused_b": ("amused", 1, 16, 1.0, 0, "cosine", False, 5),
    "amused_lin": ("amused", 2, 5, 2.0, 0, "linear", False, 7),
    "ars_plain_k": ("arsample", 2, 6, 3.0, 5, "cosine", False, 3),
    "ars_ent_a": ("arsample", 2, 6, 3.0, 0, "cosine", True, 1),
    "ars_ent_b": ("arsample", 2, 8, 4.0, 5, "cosine", True, 2),
}
GRID, VOCAB, MASK = (4, 4), 12, 15


class Replay:
    """A masked predictor returning the recorded logits of one run, step by step."""

    def __init__(self, io, run, batch, guided):
        self.io, self.run, self.guided = io, run, guided
        self.batch_size, self.vocab_size, self.num_image_tokens, self.mask_id = batch, VOCAB, 16, MASK
        self.device, self.token_layout, self.step, self.inputs = torch.device("cpu"), (GRID,), 0, []

    def start_session(self, cond, guidance):
        assert guidance == self.guided
        return self

    def predict(self, tokens, step, num_steps):
        assert step == len(self.inputs)  # the sampler says which step this is
        self.inputs.append(tokens.clone())
        s, self.step = self.step, self.step + 1
        uncond = self.io[f"{self.run}_uncond_s{s}"] if self.guided else None
        return self.io[f"{self.run}_cond_s{s}"], uncond


@pytest.fixture(scope="module")
def io(golden):
    return load_file(golden / "masked_schedulers.safetensors")


def _run(io, name, **overrides):
    _, batch, steps, cfg, top_k, schedule, ent, seed = RUNS[name]
    settings = SamplerSettings(cfg_scale=cfg, top_k=top_k, entropy=preset("meissonic") if ent else None)
    replay = Replay(io, name, batch, cfg > 1.0)
    result = sample_masked(replay, None, settings, options=MaskedOptions(steps=steps, schedule=schedule, **overrides),
                           seed=seed)
    return replay, result


def test_fixture_runs_match_this_file(golden):
    with safe_open(str(golden / "masked_schedulers.safetensors"), "pt") as f:
        meta = f.metadata()
    runs = json.loads(meta["runs"])
    assert {k: tuple(v.values()) for k, v in runs.items()} == RUNS
    assert (tuple(json.loads(meta["grid"])), int(meta["vocab"]), int(meta["mask_id"])) == (GRID, VOCAB, MASK)


@pytest.mark.parametrize("name", list(RUNS))
def test_tokens_after_every_step_equal_the_reference(io, name):
    """Our loop state before each pass is the reference's ``prev_sample`` of the step before."""
    replay, result = _run(io, name)
    steps = RUNS[name][2]
    assert replay.step == steps and result.stats.forward_passes == steps
    assert torch.equal(replay.inputs[0], torch.full_like(replay.inputs[0], MASK))
    for s in range(1, steps):
        assert torch.equal(replay.inputs[s], io[f"{name}_tokens_s{s - 1}"]), f"{name}: step {s - 1}"
    assert torch.equal(result.tokens, io[f"{name}_final"])
    assert result.layout.scales == (GRID,)


@pytest.mark.parametrize("name", ["amused_a", "ars_ent_b"])
def test_progress_tokens_are_the_reference_candidates(io, name):
    """What the callback shows after step s is the reference's ``pred_original_sample`` of step s."""
    _, batch, steps, cfg, top_k, schedule, ent, seed = RUNS[name]
    seen = []
    sample_masked(Replay(io, name, batch, cfg > 1.0), None,
                  SamplerSettings(cfg_scale=cfg, top_k=top_k, entropy=preset("meissonic") if ent else None),
                  options=MaskedOptions(steps=steps, schedule=schedule), seed=seed,
                  callback=lambda state: seen.append((state.tokens.clone(), state.known.clone())))
    for s, (tokens, known) in enumerate(seen):
        assert torch.equal(tokens, io[f"{name}_pred_s{s}"])
        assert torch.equal(known, io[f"{name}_tokens_s{s}"] != MASK)


@pytest.mark.parametrize("name", ["ars_ent_a", "ars_ent_b"])
def test_entropy_runs_need_both_switches(io, name):
    """ARsample's code applies T(H) to the logits and to the masking noise together: one alone differs."""
    for prob, masking in ((True, False), (False, True)):
        _, result = _run(io, name, prob=prob, masking=masking)
        assert not torch.equal(result.tokens, io[f"{name}_final"]), (prob, masking)


def test_schedule_counts_match_the_reference(io):
    """How many tokens stay masked after each step equals the reference's (no ties in these runs)."""
    for name, (_, batch, steps, *_, schedule, _, _) in RUNS.items():
        counts = [int((io[f"{name}_tokens_s{s}"] == MASK).sum()) // batch for s in range(steps)]
        left, expected = 16, []
        for n in mask_lengths(16, steps, schedule):
            left = max(1, min(left - 1, n))
            expected.append(left)
        assert counts == expected + [0], name
