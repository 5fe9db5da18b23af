"""Benchmark: our Janus-Pro loop against the official ``generate`` of deepseek-ai/Janus, side by side.

Ours: ``sample_ar`` (the catalog's "plain" sampler) driving a ``JanusGenerator`` (``models/janus``: the Llama
decoder, ``gen_embed`` / ``gen_aligner`` / ``gen_head``, ``JanusSession``'s static KV cache), then
``JanusVQ.decode_codes`` and the uint8 conversion (``imaging.to_uint8``). Official: the ``generate`` function of
``generation_inference.py`` (taken out of the checkout's file at run time and executed unchanged, since the file
loads a 7 GB model when imported) on a ``MultiModalityCausalLM`` (``janus/models/modeling_vlm.py``: transformers'
``LlamaForCausalLM``, ``MlpProjector``, ``vision_head``, and ``vq_model.VQModel`` as ``gen_vision_model``).

Both get the same random weights (ours built and randomised first, then loaded into the reference: every key of
ours must land, and only the parts generation never reads, namely the understanding tower, ``aligner``, the text
``lm_head``, the VQ encoder and ``quant_conv``, stay the reference's own): a small Llama (default hidden 512 =
8 heads × 64, 3 layers, intermediate 1408, text vocabulary 4096), the generation parts at release shape
(codebook 16384 × 8, ``gen_aligner`` mlp_gelu depth 2, ``gen_head`` inner width = hidden), 256 image tokens
(a 16×16 grid; ``--grid 24`` gives the release's 576) and VQ-16's layout (ch_mult (1, 1, 2, 2, 4), two
residual blocks, z 256, 16 px per token, so 256 px) with base channels 32 instead of the release's 128 (the
full-width decoder took about 10 s per 384 px image on one shared thread and would swamp the loop;
``--vq-channels 128`` restores it). The reference then took 6.7 s per image at batch 1 and 2.5 s at batch 4
on one CPU thread that a second job shared (less on an idle core), most of it reading the weights each
step (``gen_head``'s 16384-wide output layer is the largest of them). fp32, CPU; CFG 5,
temperature 1, no top-k/top-p (the reference's settings); one prompt for all images of a batch (the
reference's ``parallel_size``), a fixed list of random prompt ids (BOS first, the image-start id last, the
unconditional row padded in between with the pad id as the reference builds it); one seed: the reference
draws with ``torch.multinomial`` on the global generator after ``torch.manual_seed(seed)``, ours with the same
exponential race on its own generator seeded alike, so the tokens should be identical (reported).

Same work on both sides: the prompt prefill, the token loop, and the VQ decode with the pixel conversion (the
reference decodes inside ``generate`` and turns the images into uint8 arrays; its ``PIL.Image.fromarray(...)
.save`` and ``os.makedirs`` are replaced by no-ops, and ``Tensor.cuda`` is the identity during the call).
Tokenisation is outside both: the reference's processor is a stub whose ``tokenizer.encode`` returns the ids.

Prints seconds per image for each side, ours/official (target ≤ 1), the seconds per image until the tokens
exist on each side (the reference's: up to its ``decode_code`` call) and their ratio, and whether the
tokens are identical for the same seed.

    python tests/bench/bench_janus.py --official PATH_TO_JANUS_CHECKOUT --side-packages TRANSFORMERS_4_44_DIR
                                      [--batches 1,4] [--repeats 3] [--warmup 0] [--threads 1] [--seed 0]
                                      [--hidden 512] [--layers 3] [--heads 8] [--kv-heads 8]
                                      [--intermediate 1408] [--text-vocab 4096] [--prompt-len 32] [--grid 16]
                                      [--vq-channels 32]

The official code is imported only when --official is given (a checkout of deepseek-ai/Janus; it is never
part of this repository); --side-packages (a ``pip install --target`` folder with transformers 4.44.2,
tokenizers 0.19.1, timm, attrdict and torchvision, see tests/fixtures/golden/README.md "Janus-Pro") is put
first on ``sys.path`` only then. The checkout's ``janus`` package imports torchvision; a PyPI torchvision
built for CUDA cannot register its fake kernels next to a CPU torch, so it is imported with
``torch.library.register_fake`` made a no-op (nothing of torchvision runs). The understanding tower is built
from a tiny SigLIP entry added to ``siglip_vit.SigLIP_MODEL_CONFIG`` (it is never run; the release's SigLIP-L
would only slow construction down), and ``vq_model.VQ_models["VQ-16"]`` builds the benchmark's VQ during
construction when ``--vq-channels`` is not 128. Without --official only our side runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from arsample import imaging
from arsample.models.janus import (
    JanusCondition,
    JanusConfig,
    JanusGenerator,
    JanusVQ,
    unconditional_ids,
)
from arsample.models.llamagen.config import VQConfig
from arsample.samplers import SamplerSettings, sample_ar

CFG, TEMPERATURE = 5.0, 1.0
HEAD_DIM = 64
GEN_EMBED_DIM, ALIGNER_DEPTH, CODEBOOK = 8, 2, 16384  # the release's generation parts
VQ_MULT, VQ_RES_BLOCKS, VQ_Z = (1, 1, 2, 2, 4), 2, 256  # VQ-16's layout (16 px per token)
BOS, PAD, IMAGE_START = 0, 1, 2  # special ids of the random prompt (the vocabulary is random anyway)
# Reference parts generation never reads (kept at the reference's own initialisation).
UNUSED_PREFIXES = ("vision_model.", "aligner.", "language_model.lm_head.", "gen_vision_model.encoder.",
                   "gen_vision_model.quant_conv.")
TINY_SIGLIP = "siglip_bench_tiny"


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter re-drawn in ``named_parameters()`` order: norm weights 1 + 0.2·N(0, 1), all others
    N(0, 1)/√fan_in (fan_in = elements of one output row; the whole tensor for a bias)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def random_models(args) -> tuple[JanusGenerator, JanusVQ]:
    """Our generator and VQ with random weights (fp32, CPU, eval)."""
    cfg = JanusConfig(hidden_size=args.hidden, intermediate_size=args.intermediate, num_layers=args.layers,
                      num_heads=args.heads, num_kv_heads=args.kv_heads, head_dim=args.hidden // args.heads,
                      rms_norm_eps=1e-6, rope_theta=10000.0, max_positions=args.prompt_len + args.grid ** 2,
                      text_vocab_size=args.text_vocab, image_vocab_size=CODEBOOK, gen_embed_dim=GEN_EMBED_DIM,
                      aligner_depth=ALIGNER_DEPTH, head_hidden=args.hidden, grid_size=args.grid,
                      downsample=2 ** (len(VQ_MULT) - 1), name="Janus-bench")
    vq_cfg = VQConfig(codebook_size=CODEBOOK, codebook_embed_dim=GEN_EMBED_DIM, z_channels=VQ_Z,
                      base_channels=args.vq_channels, ch_mult=VQ_MULT, num_res_blocks=VQ_RES_BLOCKS,
                      name="VQ-16-bench")
    torch.manual_seed(0)
    model, vq = JanusGenerator(cfg), JanusVQ(vq_cfg)
    _randomise(model, 1)
    _randomise(vq, 3)
    return model.eval().requires_grad_(False), vq.eval().requires_grad_(False)


def prompt_ids(args) -> tuple[int, ...]:
    """A fixed random prompt: BOS, random text ids (above the special ids), the image-start id."""
    g = torch.Generator().manual_seed(2)
    body = torch.randint(3, args.text_vocab, (args.prompt_len - 2,), generator=g).tolist()
    return (BOS, *body, IMAGE_START)


def _import_reference(path: str, side: str | None):
    sys.path.insert(0, path)
    if side:
        sys.path.insert(0, side)  # before the checkout and the pack's environment: transformers 4.44.2
    if "torchvision" not in sys.modules:
        import torch.library as tl

        register_fake = tl.register_fake
        tl.register_fake = lambda *a, **k: (lambda fn: fn)  # a CUDA torchvision wheel next to a CPU torch
        try:
            import torchvision  # noqa: F401
        finally:
            tl.register_fake = register_fake
    # janus prints that it patches collections (for attrdict); transformers 4.44 warns about deprecated arguments
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import janus.models  # noqa: F401
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # tuple past_key_values deprecation warnings of the unchanged loop
    from janus.models import modeling_vlm, siglip_vit, vq_model

    return modeling_vlm, siglip_vit, vq_model


def load_official(path: str, side: str | None, model: JanusGenerator, vq: JanusVQ, ids: tuple[int, ...]):
    """The reference model holding our weights and its ``generate`` function (taken from the checkout's file)."""
    modeling_vlm, siglip_vit, vq_model = _import_reference(path, side)
    c, v = model.config, vq.config
    siglip_vit.SigLIP_MODEL_CONFIG[TINY_SIGLIP] = {"image_size": 16, "patch_size": 4, "width": 32, "layers": 1,
                                                   "heads": 2, "mlp_ratio": 2, "global_pool": "map",
                                                   "use_checkpoint": False}
    config = modeling_vlm.MultiModalityConfig(
        vision_config={"cls": "CLIPVisionTower", "params": {"image_size": 16, "model_name": TINY_SIGLIP,
                                                            "select_feature": "same", "select_layer": -1}},
        aligner_config={"cls": "MlpProjector", "params": {"depth": 2, "input_dim": 32, "n_embed": c.hidden_size,
                                                          "projector_type": "mlp_gelu"}},
        gen_vision_config={"cls": "VQ-16", "params": {"image_token_size": c.image_vocab_size,
                                                      "n_embed": c.gen_embed_dim}},
        gen_aligner_config={"cls": "MlpProjector", "params": {"depth": c.aligner_depth, "input_dim": c.gen_embed_dim,
                                                              "n_embed": c.hidden_size, "projector_type": "mlp_gelu"}},
        gen_head_config={"cls": "vision_head", "params": {"image_token_embed": c.head_hidden,
                                                          "image_token_size": c.image_vocab_size,
                                                          "n_embed": c.hidden_size}},
        language_config={"hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
                         "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
                         "num_key_value_heads": c.num_kv_heads, "vocab_size": c.text_vocab_size,
                         "max_position_embeddings": c.max_positions, "rms_norm_eps": c.rms_norm_eps,
                         "rope_theta": c.rope_theta, "model_type": "llama", "torch_dtype": "float32"},
        torch_dtype="float32")

    def bench_vq():
        args = vq_model.ModelArgs(codebook_size=v.codebook_size, codebook_embed_dim=v.codebook_embed_dim,
                                  encoder_ch_mult=list(v.ch_mult), decoder_ch_mult=list(v.ch_mult),
                                  z_channels=v.z_channels)
        m = vq_model.VQModel(args)
        m.encoder = vq_model.Encoder(ch=v.base_channels, ch_mult=v.ch_mult, num_res_blocks=v.num_res_blocks,
                                     z_channels=v.z_channels)
        m.decoder = vq_model.Decoder(ch=v.base_channels, ch_mult=v.ch_mult, num_res_blocks=v.num_res_blocks,
                                     z_channels=v.z_channels)
        return m

    real_vq16 = vq_model.VQ_models["VQ-16"]
    if v.base_channels != 128 or v.ch_mult != VQ_MULT or v.num_res_blocks != VQ_RES_BLOCKS or v.z_channels != VQ_Z:
        vq_model.VQ_models["VQ-16"] = bench_vq
    try:
        ref = modeling_vlm.MultiModalityCausalLM(config)
    finally:
        vq_model.VQ_models["VQ-16"] = real_vq16
    state = dict(model.state_dict())
    state.update({f"gen_vision_model.{k}": t for k, t in vq.state_dict().items()})
    result = ref.load_state_dict(state, strict=False)
    left = [k for k in result.missing_keys if not k.startswith(UNUSED_PREFIXES)]
    if result.unexpected_keys or left:
        raise RuntimeError(f"weights do not fit the reference: unexpected {result.unexpected_keys}, missing {left}")
    ref = ref.eval().requires_grad_(False)

    # generation_inference.py's generate(), taken from the checkout and run unchanged
    source = Path(path, "generation_inference.py").read_text(encoding="utf-8")
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "generate")
    fake_image = types.SimpleNamespace(save=lambda *a, **k: None)
    namespace = {"torch": torch, "np": np,
                 "os": types.SimpleNamespace(makedirs=lambda *a, **k: None, path=os.path),
                 "PIL": types.SimpleNamespace(Image=types.SimpleNamespace(fromarray=lambda a: fake_image)),
                 "MultiModalityCausalLM": modeling_vlm.MultiModalityCausalLM, "VLChatProcessor": object}
    code = compile(ast.get_source_segment(source, node), "generation_inference.py:generate", "exec")
    exec(code, namespace)  # noqa: S102 - the checkout's own function, unchanged
    generate = torch.inference_mode()(namespace["generate"])  # its decorator, which the segment leaves out
    processor = types.SimpleNamespace(tokenizer=types.SimpleNamespace(encode=lambda text: list(ids)), pad_id=PAD)
    attention = getattr(ref.language_model.config, "_attn_implementation", "?")
    return ref, generate, processor, attention


def clock(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", help="path to a deepseek-ai/Janus checkout")
    parser.add_argument("--side-packages", help="folder with transformers 4.44.2 & co., put first on sys.path with "
                                                "--official only")
    parser.add_argument("--batches", default="1,4", help="images per call (the reference's parallel_size)")
    parser.add_argument("--hidden", type=int, default=512, help="Llama width (a multiple of 64: heads of 64)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default hidden / 64)")
    parser.add_argument("--kv-heads", type=int, default=None, help="key-value heads (default = heads)")
    parser.add_argument("--intermediate", type=int, default=1408, help="Llama MLP width")
    parser.add_argument("--text-vocab", type=int, default=4096, help="text vocabulary (the prompt's ids)")
    parser.add_argument("--prompt-len", type=int, default=32, help="prompt tokens, BOS and image-start included")
    parser.add_argument("--grid", type=int, default=16, help="image tokens per side (24 = the release's 576)")
    parser.add_argument("--vq-channels", type=int, default=32, help="VQ decoder base channels (release: 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="untimed runs of each side first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    args.heads = args.heads or args.hidden // HEAD_DIM
    args.kv_heads = args.kv_heads or args.heads
    if args.hidden % args.heads or (args.hidden // args.heads) % 2:
        parser.error("--hidden must be a multiple of --heads with an even head width")
    if args.heads % args.kv_heads:
        parser.error("--heads must be a multiple of --kv-heads")
    if args.prompt_len < 3 or args.text_vocab <= 3 or args.grid < 1:
        parser.error("--prompt-len ≥ 3, --text-vocab > 3 and --grid ≥ 1 please")
    if args.vq_channels % 32:
        parser.error("--vq-channels must be a multiple of 32 (GroupNorm with 32 groups)")
    return args


def bench_batch(batch: int, model: JanusGenerator, vq: JanusVQ, ids, official, args) -> str:
    """One table row: the official generate and ours on the same prompt and seed, interleaved, medians over the
    repeats."""
    grid = args.grid
    uncond = unconditional_ids(ids, PAD)
    cond = JanusCondition((ids,) * batch, (uncond,) * batch, ("bench",) * batch)
    settings = SamplerSettings(cfg_scale=CFG, temperature=TEMPERATURE)
    decoded: list[tuple[torch.Tensor, float]] = []  # the reference's tokens and when it started decoding

    def ours():
        start = time.perf_counter()
        result = sample_ar(model, cond, settings, seed=args.seed)
        sampled = time.perf_counter()
        imaging.to_uint8(vq.decode_codes(result.tokens, (grid, grid)))
        return result.tokens, sampled - start

    def reference():
        ref, generate, processor, _ = official
        original_decode = ref.gen_vision_model.decode_code

        def decode_code(code_b, shape=None, channel_first=True):  # records, then passes through
            decoded.append((code_b.clone(), time.perf_counter()))
            return original_decode(code_b, shape=shape, channel_first=channel_first)

        decoded.clear()
        original_cuda = torch.Tensor.cuda
        ref.gen_vision_model.decode_code = decode_code
        torch.Tensor.cuda = lambda self, *a, **k: self
        try:
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            generate(ref, processor, "", temperature=TEMPERATURE, parallel_size=batch, cfg_weight=CFG,
                     image_token_num_per_image=grid * grid, img_size=grid * vq.downsample,
                     patch_size=vq.downsample)
            return decoded[-1][0].long(), decoded[-1][1] - start
        finally:
            torch.Tensor.cuda = original_cuda
            del ref.gen_vision_model.decode_code

    for _ in range(args.warmup):
        ours()
        if official is not None:
            reference()
    # Interleaved (official, ours) per repeat, so drifts in the machine's speed hit both sides alike.
    t_ref, s_ref, t_ours, s_ours, ref_tokens, tokens = [], [], [], [], None, None
    for _ in range(args.repeats):
        if official is not None:
            elapsed, (ref_tokens, sampling) = clock(reference)
            t_ref.append(elapsed)
            s_ref.append(sampling)
        elapsed, (tokens, sampling) = clock(ours)
        t_ours.append(elapsed)
        s_ours.append(sampling)
    nan = float("nan")
    med_ref, med_sref = (statistics.median(t_ref), statistics.median(s_ref)) if t_ref else (nan, nan)
    med_ours, med_sours = statistics.median(t_ours), statistics.median(s_ours)
    same = "-"
    if official is not None:
        same = "yes" if torch.equal(ref_tokens, tokens) else f"{(ref_tokens == tokens).float().mean().item():.1%}"
    return (f"{batch:>5} {med_ref / batch:>15.3f} {med_ours / batch:>11.3f} {med_ours / med_ref:>6.2f} "
            f"{med_sref / batch:>20.3f} {med_sours / batch:>16.3f} {med_sours / med_sref:>9.2f} {same:>12}")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model, vq = random_models(args)
    ids = prompt_ids(args)
    official = None
    if args.official:
        official = load_official(args.official, args.side_packages, model, vq, ids)
    c = model.config
    attention = f", official attention {official[3]}" if official else ""
    print(f"Janus-shaped random weights: Llama hidden {c.hidden_size} ({c.num_heads}×{c.head_dim}, "
          f"{c.num_kv_heads} kv heads), {c.num_layers} layers, intermediate {c.intermediate_size}, text vocab "
          f"{c.text_vocab_size}; codebook {c.image_vocab_size}×{c.gen_embed_dim}, grid {c.grid_size}×{c.grid_size} "
          f"({c.num_image_tokens} tokens, {c.image_size} px), VQ-16 layout with {vq.config.base_channels} base "
          f"channels; prompt {len(ids)} ids; cfg {CFG}, temperature {TEMPERATURE}, seed {args.seed}, cpu, "
          f"threads {torch.get_num_threads()}, fp32, VQ decode included{attention}")
    print(f"{'batch':>5} {'official s/img':>15} {'ours s/img':>11} {'ratio':>6} {'official to tokens':>20} "
          f"{'ours to tokens':>16} {'ratio':>9} {'same tokens':>12}")
    for batch in [int(b) for b in args.batches.split(",")]:
        print(bench_batch(batch, model, vq, ids, official, args), flush=True)


if __name__ == "__main__":
    main()
