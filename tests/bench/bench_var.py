"""Benchmark: our VAR loop against the official ``autoregressive_infer_cfg``, side by side.

Random VAR-d16 weights (the official layout) and a random ``vae_ch160v4096z32``, loaded into both
implementations; fp32; CFG 4, top-k 900, top-p 0.95 (the VAR demo's settings); one class per
image; batch 1 and 8. Both sides do the same work: sample all 10 scales and decode the 256 px
image (the official function always decodes). Prints seconds per image for each, their ratio,
our sampling alone, and whether the two produced the same tokens for the same seed.

    python tests/bench/bench_var.py --official PATH_TO_VAR_CHECKOUT [--batches 1,8] [--repeats 1]
                                    [--device cpu|cuda] [--threads N] [--ours-dtype fp32|bf16] [--depth 16]

The official code is imported only when --official is given (a checkout of FoundationVision/VAR;
it is never part of this repository); without it only our side runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from arsample.models.var import VARTransformer, VARVQVAE, VQVAEConfig, var_config
from arsample.models.var.transformer import block_causal_mask
from arsample.samplers import SamplerSettings
from arsample.samplers.next_scale import sample_next_scale

CLASSES = [207, 360, 387, 974, 88, 979, 417, 279]
CFG, TOP_K, TOP_P = 4.0, 900, 0.95


def random_models(seed: int = 0, depth: int = 16) -> tuple[VARTransformer, VARVQVAE]:
    """VAR-d16 (or another official depth) and the VQ-VAE with random weights of a realistic scale (fp32, CPU)."""
    torch.manual_seed(seed)
    var, vae = VARTransformer(var_config(depth, image_size=256)), VARVQVAE(VQVAEConfig())
    with torch.no_grad():
        for name, p in var.named_parameters():
            if name.endswith("scale_mul_1H11"):
                p.fill_(torch.tensor(4.0).log().item())
            else:
                p.normal_(0.0, 0.02)
        for name, p in vae.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, p[0].numel() ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    return var.eval().requires_grad_(False), vae.eval().requires_grad_(False)


def load_official(path: str, var: VARTransformer, vae: VARVQVAE, device: str):
    sys.path.insert(0, path)
    import models.var as official_var  # noqa: E402
    from models.vqvae import VQVAE  # noqa: E402

    ref_vae = VQVAE(vocab_size=4096, z_channels=32, ch=160, test_mode=True, share_quant_resi=4,
                    v_patch_nums=var.config.patch_nums)
    ref_vae.load_state_dict(vae.state_dict(), strict=True)
    c = var.config
    ref = official_var.VAR(vae_local=ref_vae, num_classes=1000, depth=c.depth, embed_dim=c.embed_dim,
                           num_heads=c.num_heads, mlp_ratio=4.0, drop_path_rate=0.0, norm_eps=1e-6,
                           shared_aln=c.shared_aln, attn_l2_norm=True,
                           patch_nums=var.config.patch_nums, flash_if_available=False, fused_if_available=False)
    state = dict(var.state_dict())
    state["attn_bias_for_masking"] = block_causal_mask(var.lvl_1L[0])
    ref.load_state_dict(state, strict=True)
    ref_vae.to(device)
    ref = ref.to(device).eval()
    ref.rng = torch.Generator(device=device)
    return ref, official_var


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
    parser.add_argument("--official", help="path to a FoundationVision/VAR checkout")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--depth", type=int, default=16, help="VAR depth (width 64·depth); 16 = VAR-d16")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--ours-dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed runs of each side first (default: 1 on cuda, 0 on cpu)")
    return parser.parse_args()


def bench_batch(batch: int, pair, ref, official, settings, device, repeats: int, warmup: int) -> str:
    """One table row: the official loop and ours on the same labels, interleaved, medians over repeats."""
    labels = torch.tensor((CLASSES * (batch // len(CLASSES) + 1))[:batch], device=device)
    drawn: list[torch.Tensor] = []

    def ours():
        result = sample_next_scale(pair, labels, settings, seed=0)
        return result, pair.decode(result.tokens)

    def ours_sampling():
        return sample_next_scale(pair, labels, settings, seed=0)

    def reference():
        drawn.clear()
        original = official.sample_with_top_k_top_p_

        def capture(*a, **k):
            idx = original(*a, **k)
            drawn.append(idx[:, :, 0])
            return idx

        official.sample_with_top_k_top_p_ = capture
        try:
            return ref.autoregressive_infer_cfg(B=batch, label_B=labels, g_seed=0, cfg=CFG, top_k=TOP_K, top_p=TOP_P)
        finally:
            official.sample_with_top_k_top_p_ = original

    for _ in range(warmup):
        ours()
        if ref is not None:
            reference()
    # Interleaved (official, ours, ours sampling alone) per repeat, so drifts in the machine's
    # speed hit both sides alike; medians over the repeats.
    t_ref, t_ours, t_sampling, result = [], [], [], None
    for _ in range(repeats):
        if ref is not None:
            t_ref.append(clock(reference, device)[0])
        elapsed, (result, _) = clock(ours, device)
        t_ours.append(elapsed)
        t_sampling.append(clock(ours_sampling, device)[0])
    med_ref = statistics.median(t_ref) if t_ref else float("nan")
    med_ours, med_sampling = statistics.median(t_ours), statistics.median(t_sampling)
    same = "-"
    if ref is not None:
        ref_tokens = torch.cat(drawn, dim=1).long()
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
    var, vae = random_models(depth=args.depth)
    ref = official = None
    if args.official:
        ref, official = load_official(args.official, var, vae, device)
    dtype = torch.bfloat16 if args.ours_dtype == "bf16" else torch.float32
    pair = var.to(device, dtype).bind(vae.to(device))
    settings = SamplerSettings(cfg_scale=CFG, top_k=TOP_K, top_p=TOP_P)
    print(f"VAR-d{args.depth} random weights, 256 px, cfg {CFG}, top-k {TOP_K}, top-p {TOP_P}, device {device}, "
          f"threads {torch.get_num_threads()}, ours in {args.ours_dtype}, official in fp32")
    print(f"{'batch':>5} {'official s/img':>15} {'ours s/img':>11} {'ratio':>6} {'ours sampling s/img':>20} "
          f"{'same tokens':>12}")
    for batch in [int(b) for b in args.batches.split(",")]:
        print(bench_batch(batch, pair, ref, official, settings, device, args.repeats, warmup), flush=True)


if __name__ == "__main__":
    main()
