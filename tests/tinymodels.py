"""Tiny random LlamaGen models in the official layout, for tests."""

from __future__ import annotations

import torch

from arsample.models.llamagen import GPTConfig, VQConfig


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values of a scale that makes logits informative."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen) if name.endswith("weight") else
                        0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("uncond_embedding"):
                b.copy_(torch.randn(b.shape, generator=gen))
    return model.eval().requires_grad_(False)


def tiny_gpt_config(**overrides) -> GPTConfig:
    base = dict(dim=64, n_layer=2, n_head=4, vocab_size=64, num_classes=10, grid_size=4, multiple_of=32)
    if overrides.get("model_type") == "t2i":
        base.update(caption_dim=16, caption_tokens=12, cls_token_num=12)
    base.update(overrides)
    return GPTConfig(**base)


def tiny_vq_config(**overrides) -> VQConfig:
    base = dict(codebook_size=64, codebook_embed_dim=8, z_channels=32, base_channels=32, ch_mult=(1, 2),
                num_res_blocks=1)
    base.update(overrides)
    return VQConfig(**base)


def write_official_standins(models_dir) -> dict:
    """Tiny random models saved under the official LlamaGen file names, as official-style pickles.

    ``autoregressive/c2i_L_384.pt`` (c2i, 1000 classes, 384 px → 24x24 tokens) and
    ``vq/vq_ds16_c2i.pt`` (16x downsampling, same codebook size), plus a VQ file put
    in the GPT folder by mistake (``autoregressive/vq_in_wrong_folder.pt``).
    """
    from pathlib import Path

    from arsample.models.llamagen import LlamaGenGPT, LlamaGenVQ

    root = Path(models_dir)
    (root / "autoregressive").mkdir(parents=True, exist_ok=True)
    (root / "vq").mkdir(parents=True, exist_ok=True)
    # n_head 1: a file named c2i_L_* whose width matches no official size gets head_dim 64.
    gpt = randomize_(LlamaGenGPT(tiny_gpt_config(vocab_size=16384, num_classes=1000, n_head=1, grid_size=24)), seed=5)
    vq = randomize_(LlamaGenVQ(tiny_vq_config(codebook_size=16384, ch_mult=(1, 1, 1, 1, 1), z_channels=32)), seed=6)
    paths = {"gpt": root / "autoregressive" / "c2i_L_384.pt", "vq": root / "vq" / "vq_ds16_c2i.pt",
             "wrong": root / "autoregressive" / "vq_in_wrong_folder.pt"}
    torch.save({"model": gpt.state_dict()}, paths["gpt"])
    torch.save({"model": vq.state_dict()}, paths["vq"])
    torch.save({"model": vq.state_dict()}, paths["wrong"])
    return paths


def write_t2i_standins(models_dir, golden_dir) -> dict:
    """Tiny random text-to-image files under the official names: ``autoregressive/t2i_XL_stage1_256.pt``
    (120 caption tokens of width 16), ``vq/vq_ds16_t2i.pt``, and ``text_encoders/flan-t5-xl/`` (the golden
    tiny T5 folder: config.json + model.safetensors, width 16, the real T5 vocabulary, no tokenizer files)."""
    import shutil
    from pathlib import Path

    from arsample.models.llamagen import LlamaGenGPT, LlamaGenVQ

    root = Path(models_dir)
    for sub in ("autoregressive", "vq", "text_encoders"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    gpt = randomize_(LlamaGenGPT(tiny_gpt_config(model_type="t2i", vocab_size=16384, n_head=1, grid_size=16,
                                                 caption_dim=16, caption_tokens=120, cls_token_num=120)), seed=7)
    vq = randomize_(LlamaGenVQ(tiny_vq_config(codebook_size=16384, ch_mult=(1, 1, 1, 1, 1), z_channels=32)), seed=8)
    paths = {"gpt": root / "autoregressive" / "t2i_XL_stage1_256.pt", "vq": root / "vq" / "vq_ds16_t2i.pt",
             "t5": root / "text_encoders" / "flan-t5-xl"}
    torch.save({"model": gpt.state_dict()}, paths["gpt"])
    torch.save({"model": vq.state_dict()}, paths["vq"])
    shutil.copytree(Path(golden_dir) / "t5_tiny", paths["t5"], dirs_exist_ok=True)
    return paths


def write_var_standins(models_dir) -> dict:
    """Tiny random VAR files under the official names, as the official raw-state-dict pickles:
    ``autoregressive/var_d16.pth`` (depth 2, width 64, 1000 classes, VAR's 256 px scale list) and
    ``vq/vae_ch160v4096z32.pth`` (a 16x multi-scale VQ-VAE with the same 4096-code codebook)."""
    from pathlib import Path

    from arsample.models.var import PATCH_NUMS, VARConfig, VARTransformer, VARVQVAE, VQVAEConfig

    root = Path(models_dir)
    (root / "autoregressive").mkdir(parents=True, exist_ok=True)
    (root / "vq").mkdir(parents=True, exist_ok=True)
    var = randomize_(VARTransformer(VARConfig(depth=2, embed_dim=64, num_heads=2, mlp_hidden=128, num_classes=1000,
                                              vocab_size=4096, cvae=8, patch_nums=PATCH_NUMS[256])), seed=7)
    vae = randomize_(VARVQVAE(VQVAEConfig(vocab_size=4096, z_channels=8, ch=32, ch_mult=(1, 1, 1, 1, 1),
                                          num_res_blocks=1, using_sa=False, using_mid_sa=False)), seed=8)
    paths = {"var": root / "autoregressive" / "var_d16.pth", "vae": root / "vq" / "vae_ch160v4096z32.pth"}
    torch.save(var.state_dict(), paths["var"])
    torch.save(vae.state_dict(), paths["vae"])
    return paths
