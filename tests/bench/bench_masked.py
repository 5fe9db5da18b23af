"""Benchmark: our masked decoding loop against the official Meissonic pipeline, side by side.

Ours: ``sample_masked`` driving a ``MeissonicGenerator`` (``MeissonicPredictor`` over our
``MeissonicTransformer``), then ``MeissonicVQModel.decode`` (clipped to [0, 1]). Official:
MeissonFlow/Meissonic (GitHub mirror viiika/Meissonic) ``src/pipeline.py`` ``Pipeline.__call__`` with
its ``src/scheduler.py`` ``Scheduler`` and ``src/transformer.py`` ``Transformer2DModel``, and diffusers'
``VQModel`` (0.32.2) as the VQ. Both get the same random weights: a small Meissonic-shaped MMDiT
(default width 256 = 4 heads × 64, 2 joint + 4 single blocks, RoPE axes (8, 28, 28), text width
1024, 77 text tokens, 4096 codes + 64 spare vocabulary rows, down/up-sampling on, so the blocks see
a 16×16 grid for the default 32×32 token grid) and a small VQ (4 levels (32, 64, 64, 128), 8 px per
token, 1 layer per block, the same codes): about 5 s per image on one CPU thread. fp32; guidance 9
(rows [negative; positive], the pipeline's default), 16 steps, choice temperature (2, 0), no top-k, the
plain scheduler (no entropy temperature: our loop then has token-for-token parity with the official
``Scheduler``); default micro-conditioning (1024, 1024, 0, 0, 6); one seed (a ``torch.Generator``
seeded alike on each side).

Same work on both sides: the denoising loop plus the VQ decode (the pipeline always decodes unless
``output_type="latent"``; it runs here with ``output_type="pt"``, so no PIL conversion). Text
encoding is outside both: random CLIP-shaped features (``hidden_states[-2]`` (B, 77, 1024) and
``text_embeds`` (B, width)) go to the pipeline through ``prompt_embeds`` / ``encoder_hidden_states`` /
``negative_*`` with ``tokenizer=None, text_encoder=None``, and to ours as a ``MeissonicCondition``.
The pipeline builds correct image positions only when ``height == 1024`` (otherwise ids for twice the
grid), so it runs at height = width = 1024 with ``vae_scale_factor`` set to 1024 / grid (its VQ then
decodes the grid at the VQ's own 8 px per token, like ours). Its final tokens are taken from its
``callback`` (the latents after the last step).

Prints seconds per image for each side, ours/official (target ≤ 1), our sampling alone (no decode),
and whether the final tokens are identical for the same seed.

    python tests/bench/bench_masked.py --official PATH_TO_MEISSONIC_CHECKOUT --side-packages DIFFUSERS_0_32_DIR
                                       [--batches 1,2] [--steps 16] [--grid 32] [--width 256] [--layers 2]
                                       [--single-layers 4] [--codebook 4096] [--repeats 3] [--warmup 0]
                                       [--device cpu|cuda] [--threads 1]

The official code is imported only when --official is given (a checkout of viiika/Meissonic, imported
as ``src.pipeline``; it is never part of this repository); --side-packages (a ``pip install --target``
folder with diffusers 0.32.2, transformers 4.44.2 and their small dependencies: newer diffusers do not
run the reference's attention) is put first on ``sys.path`` only then. Without --official only our side
runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from arsample.models.meissonic import (
    MeissonicCondition,
    MeissonicConfig,
    MeissonicTransformer,
    MeissonicVQConfig,
    MeissonicVQModel,
)
from arsample.models.meissonic.generator import MeissonicGenerator
from arsample.samplers import SamplerSettings
from arsample.samplers.masked import MaskedOptions, sample_masked

GUIDANCE = 9.0
TEXT_LEN, TEXT_WIDTH = 77, 1024  # CLIP ViT-H/14 hidden_states[-2]: 77 tokens × 1024
HEAD_DIM, ROPE_AXES = 64, (8, 28, 28)
VQ_BLOCKS, VQ_LAYERS, VQ_LATENT, VQ_GROUPS = (32, 64, 64, 128), 1, 16, 8
PIPELINE_SIZE = 1024  # the only height with correct image positions in the official pipeline


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter re-drawn in ``named_parameters()`` order: norm weights 1 + 0.2·N(0, 1), all others
    N(0, 1)/√fan_in (fan_in = elements of one output row)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def random_models(args) -> tuple[MeissonicTransformer, MeissonicVQModel]:
    """Our transformer and VQ with random weights (fp32, CPU, eval)."""
    heads = args.width // HEAD_DIM
    cfg = MeissonicConfig(num_layers=args.layers, num_single_layers=args.single_layers, attention_head_dim=HEAD_DIM,
                          num_attention_heads=heads, joint_attention_dim=TEXT_WIDTH, pooled_projection_dim=args.width,
                          axes_dims_rope=ROPE_AXES, vocab_size=args.codebook + 64, codebook_size=args.codebook,
                          name="Meissonic-bench")
    vq_cfg = MeissonicVQConfig(block_out_channels=VQ_BLOCKS, layers_per_block=VQ_LAYERS, latent_channels=VQ_LATENT,
                               num_vq_embeddings=args.codebook, norm_num_groups=VQ_GROUPS, name="Meissonic-VQ-bench")
    torch.manual_seed(0)
    model, vq = MeissonicTransformer(cfg), MeissonicVQModel(vq_cfg)
    _randomise(model, 1)
    _randomise(vq, 3)
    return model.eval().requires_grad_(False), vq.eval().requires_grad_(False)


def random_text(batch: int, width: int) -> MeissonicCondition:
    """CLIP-shaped text features for the prompts and the negative prompts (one row each per image)."""
    g = torch.Generator().manual_seed(2)
    states, pooled = torch.randn(batch, TEXT_LEN, TEXT_WIDTH, generator=g), torch.randn(batch, width, generator=g)
    neg_states = torch.randn(batch, TEXT_LEN, TEXT_WIDTH, generator=g)
    neg_pooled = torch.randn(batch, width, generator=g)
    return MeissonicCondition(states, pooled, neg_states, neg_pooled)


def load_official(path: str, side: str | None, model: MeissonicTransformer, vq: MeissonicVQModel, grid: int,
                  device: str):
    """The official pipeline holding our weights (strict loads), positions made right for ``grid``."""
    sys.path.insert(0, path)
    if side:
        sys.path.insert(0, side)  # before the checkout: its own diffusers/ (a submodule) must not shadow 0.32.2
    from diffusers.models import VQModel
    from src.pipeline import Pipeline
    from src.scheduler import Scheduler
    from src.transformer import Transformer2DModel

    c = model.config
    ref = Transformer2DModel(num_layers=c.num_layers, num_single_layers=c.num_single_layers,
                             attention_head_dim=c.attention_head_dim, num_attention_heads=c.num_attention_heads,
                             joint_attention_dim=c.joint_attention_dim, pooled_projection_dim=c.pooled_projection_dim,
                             axes_dims_rope=c.axes_dims_rope, vocab_size=c.vocab_size, codebook_size=c.codebook_size,
                             downsample=c.downsample, upsample=c.upsample)
    ref.load_state_dict(model.state_dict(), strict=True)
    v = vq.config
    levels = len(v.block_out_channels)
    ref_vq = VQModel(in_channels=v.in_channels, out_channels=v.out_channels,
                     down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
                     block_out_channels=v.block_out_channels, layers_per_block=v.layers_per_block,
                     latent_channels=v.latent_channels, num_vq_embeddings=v.num_vq_embeddings,
                     norm_num_groups=v.norm_num_groups, mid_block_add_attention=False, lookup_from_codebook=True,
                     force_upcast=True)
    ref_vq.load_state_dict(vq.state_dict(), strict=True)
    pipe = Pipeline(vqvae=ref_vq.eval(), tokenizer=None, text_encoder=None, transformer=ref.eval(),
                    scheduler=Scheduler(mask_token_id=c.mask_id))
    pipe.vae_scale_factor = PIPELINE_SIZE // grid
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def clock(fn, device: str) -> tuple[float, object]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="path to a viiika/Meissonic (MeissonFlow) checkout")
    parser.add_argument("--side-packages", help="folder with diffusers 0.32.2 & co., put first on sys.path with "
                                                "--official only")
    parser.add_argument("--batches", default="1,2")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--grid", type=int, default=32, help="tokens per side (even; 64 = Meissonic's 1024 px)")
    parser.add_argument("--width", type=int, default=256, help="model width (a multiple of 64: heads of 64)")
    parser.add_argument("--layers", type=int, default=2, help="joint (double) blocks")
    parser.add_argument("--single-layers", type=int, default=4, help="single blocks")
    parser.add_argument("--codebook", type=int, default=4096, help="VQ codes (Meissonic: 8192)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed runs of each side first (default: 1 on cuda, 0 on cpu)")
    args = parser.parse_args()
    if args.width % HEAD_DIM or args.width < HEAD_DIM:
        parser.error(f"--width must be a positive multiple of {HEAD_DIM}")
    if args.grid % 2 or args.grid < 2 or PIPELINE_SIZE % args.grid:
        parser.error(f"--grid must be even and divide {PIPELINE_SIZE} (the official pipeline's positions)")
    return args


def bench_batch(batch: int, gen: MeissonicGenerator, vq: MeissonicVQModel, pipe, args, device: str,
                warmup: int) -> str:
    """One table row: the official pipeline and ours on the same text features and seed, interleaved,
    medians over the repeats."""
    cond = random_text(batch, gen.config.inner_dim)
    settings = SamplerSettings(cfg_scale=GUIDANCE)
    options = MaskedOptions(steps=args.steps)
    grid = args.grid
    final: list[torch.Tensor] = []

    def ours_sampling():
        return sample_masked(gen, cond, settings, options=options, seed=args.seed)

    def ours():
        result = ours_sampling()
        return result, vq.decode(result.tokens.view(batch, grid, grid), clamp=True)

    def reference():
        final.clear()
        generator = torch.Generator(device=device).manual_seed(args.seed)
        return pipe(prompt_embeds=cond.pooled.to(device), encoder_hidden_states=cond.states.to(device),
                    negative_prompt_embeds=cond.neg_pooled.to(device),
                    negative_encoder_hidden_states=cond.neg_states.to(device),
                    height=PIPELINE_SIZE, width=PIPELINE_SIZE, num_inference_steps=args.steps,
                    guidance_scale=GUIDANCE, generator=generator, output_type="pt",
                    callback=lambda i, t, latents: final.append(latents))

    for _ in range(warmup):
        ours()
        if pipe is not None:
            reference()
    # Interleaved (official, ours, ours sampling alone) per repeat, so drifts in the machine's speed
    # hit both sides alike; medians over the repeats.
    t_ref, t_ours, t_sampling, result = [], [], [], None
    for _ in range(args.repeats):
        if pipe is not None:
            t_ref.append(clock(reference, device)[0])
        elapsed, (result, _) = clock(ours, device)
        t_ours.append(elapsed)
        t_sampling.append(clock(ours_sampling, device)[0])
    med_ref = statistics.median(t_ref) if t_ref else float("nan")
    med_ours, med_sampling = statistics.median(t_ours), statistics.median(t_sampling)
    same = "-"
    if pipe is not None:
        ref_tokens = final[-1].reshape(batch, -1).to(result.tokens.device)
        same = "yes" if torch.equal(ref_tokens, result.tokens) else \
            f"{(ref_tokens == result.tokens).float().mean().item():.1%}"
    return (f"{batch:>5} {med_ref / batch:>15.3f} {med_ours / batch:>11.3f} {med_ours / med_ref:>6.2f} "
            f"{med_sampling / batch:>20.3f} {same:>12}")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    warmup = args.warmup if args.warmup is not None else int(device == "cuda")
    model, vq = random_models(args)
    pipe = None
    if args.official:
        pipe = load_official(args.official, args.side_packages, model, vq, args.grid, device)
    gen = MeissonicGenerator(model.to(device), (args.grid, args.grid))
    vq = vq.to(device)
    c = model.config
    print(f"Meissonic-shaped random weights: width {c.inner_dim} ({c.num_attention_heads}×{c.attention_head_dim}), "
          f"{c.num_layers}+{c.num_single_layers} blocks, {c.codebook_size} codes, grid {args.grid}×{args.grid} "
          f"(VQ {vq.downsample} px/token → {args.grid * vq.downsample} px), {args.steps} steps, guidance {GUIDANCE}, "
          f"seed {args.seed}, device {device}, threads {torch.get_num_threads()}, fp32, VQ decode included")
    print(f"{'batch':>5} {'official s/img':>15} {'ours s/img':>11} {'ratio':>6} {'ours sampling s/img':>20} "
          f"{'same tokens':>12}")
    for batch in [int(b) for b in args.batches.split(",")]:
        print(bench_batch(batch, gen, vq, pipe, args, device, warmup), flush=True)


if __name__ == "__main__":
    main()
