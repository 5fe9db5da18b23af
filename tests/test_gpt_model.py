"""Internal consistency of the GPT: cached decoding, multi-token forward, truncation, dtypes, shapes."""

from __future__ import annotations

import pytest
import torch

from arsample.models.llamagen import GPT_SIZES, LlamaGenCondition, LlamaGenGPT, gpt_config
from arsample.models.llamagen.config import ffn_hidden_size

from tinymodels import randomize_, tiny_gpt_config


def _cond(model, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if model.config.model_type == "c2i":
        return LlamaGenCondition(labels=torch.randint(0, model.config.num_classes, (batch,), generator=gen))
    c = model.config
    caption = torch.randn(batch, c.cls_token_num, c.caption_dim, generator=gen)
    mask = torch.ones(batch, c.cls_token_num, dtype=torch.long)
    mask[0, : c.cls_token_num - 3] = 0  # sample 0: only 3 real caption tokens (left padding)
    caption = caption * mask[..., None]
    return LlamaGenCondition(caption=caption, caption_mask=mask)


@pytest.mark.parametrize("fixture", ["tiny_c2i", "tiny_t2i"])
def test_cached_decode_equals_teacher_forced_forward(request, fixture):
    model = request.getfixturevalue(fixture)
    cond = _cond(model)
    tokens = torch.randint(0, model.vocab_size, (2, model.num_image_tokens))
    full = model(cond, tokens)  # (B, N, V): row k predicts token k
    session = model.start_session(cond, guidance=False)
    steps = [session.prefill()[0]]
    for k in range(model.num_image_tokens - 1):
        steps.append(session.extend(tokens[:, k:k + 1])[0][:, -1])
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_c2i", "tiny_t2i"])
def test_multi_token_extend_equals_one_token_steps(request, fixture):
    model = request.getfixturevalue(fixture)
    cond = _cond(model)
    tokens = torch.randint(0, model.vocab_size, (2, 9))
    a = model.start_session(cond, guidance=True)
    a.prefill()
    one = [a.extend(tokens[:, i:i + 1]) for i in range(9)]
    b = model.start_session(cond, guidance=True)
    b.prefill()
    first, rest = b.extend(tokens[:, :2]), b.extend(tokens[:, 2:])
    for half in (0, 1):  # conditional and unconditional logits
        multi = torch.cat([first[half], rest[half]], 1)
        torch.testing.assert_close(multi, torch.cat([o[half] for o in one], 1), atol=2e-5, rtol=1e-5)


def test_truncate_then_extend_equals_fresh_prefix(tiny_c2i):
    cond = _cond(tiny_c2i)
    good = torch.randint(0, 64, (2, 5))
    junk = torch.randint(0, 64, (2, 6))
    nxt = torch.randint(0, 64, (2, 3))
    s = tiny_c2i.start_session(cond, guidance=False)
    s.prefill()
    s.extend(good)
    s.extend(junk)  # rejected drafts
    s.truncate(5)
    after = s.extend(nxt)
    fresh = tiny_c2i.start_session(cond, guidance=False)
    fresh.prefill()
    fresh.extend(good)
    torch.testing.assert_close(after[0], fresh.extend(nxt)[0], atol=1e-5, rtol=1e-5)
    assert s.cached_image_tokens() == [8, 8]


def test_condition_changes_output(tiny_c2i):
    a = tiny_c2i.start_session(LlamaGenCondition(labels=torch.tensor([1])), guidance=False).prefill()[0]
    b = tiny_c2i.start_session(LlamaGenCondition(labels=torch.tensor([2])), guidance=False).prefill()[0]
    assert (a - b).abs().max() > 1e-3


def test_guided_rows_are_cond_then_null(tiny_c2i):
    labels = torch.tensor([3, 4])
    guided, null = tiny_c2i.start_session(LlamaGenCondition(labels=labels), guidance=True).prefill()
    cond, none = tiny_c2i.start_session(LlamaGenCondition(labels=labels), guidance=False).prefill()
    assert none is None
    torch.testing.assert_close(guided, cond)
    torch.testing.assert_close(null[0], null[1])  # both null rows see the same null class
    assert (null[0] - cond[0]).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gives_float32_logits_close_to_fp32(tiny_c2i, dtype):
    cond = _cond(tiny_c2i)
    ref = torch.cat(tiny_c2i.start_session(cond, guidance=True).prefill())
    half = randomize_(LlamaGenGPT(tiny_c2i.config), seed=1).to(dtype)
    out = torch.cat(half.start_session(cond, guidance=True).prefill())
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()


def test_grouped_query_attention_is_consistent():
    model = randomize_(LlamaGenGPT(tiny_gpt_config(n_kv_head=2)), seed=4)
    assert model.layers[0].attention.wqkv.weight.shape[0] == (4 + 2 * 2) * 16
    cond = _cond(model)
    tokens = torch.randint(0, 64, (2, 16))
    s = model.start_session(cond, guidance=False)
    steps = [s.prefill()[0]] + [s.extend(tokens[:, k:k + 1])[0][:, -1] for k in range(15)]
    torch.testing.assert_close(torch.stack(steps, 1), model(cond, tokens), atol=2e-5, rtol=1e-5)


# Parameter counts of the reference configs (values from instantiating the official classes).
OFFICIAL_PARAMS = {"GPT-B": 110_888_448, "GPT-L": 342_910_976, "GPT-XL": 774_699_520, "GPT-XXL": 1_410_972_672,
                   "GPT-3B": 3_096_659_200}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_official_configs_have_reference_shapes(name):
    with torch.device("meta"):
        model = LlamaGenGPT(gpt_config(name))
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]
    assert len(model.state_dict()) == 2 + 7 * GPT_SIZES[name][0] + 2


def test_official_t2i_xl_layout():
    with torch.device("meta"):
        model = LlamaGenGPT(gpt_config("GPT-XL", model_type="t2i"))
    sd = model.state_dict()
    assert tuple(sd["cls_embedding.uncond_embedding"].shape) == (120, 2048)
    assert tuple(sd["cls_embedding.cap_proj.fc1.weight"].shape) == (1280, 2048)
    assert sum(p.numel() for p in model.parameters()) == 777_678_080
    assert model.config.cls_token_num == 120


def test_ffn_hidden_matches_reference_rule():
    assert [ffn_hidden_size(d) for d in (768, 1024, 1280, 1536, 3200)] == [2048, 2816, 3584, 4096, 8704]


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
def test_small_batch_linear_path_equals_reference_linear(rows):
    from arsample.models.llamagen.gpt import Linear

    layer = Linear(48, 80, bias=False)
    x = torch.randn(rows, 1, 48)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight), atol=1e-5, rtol=1e-5)
    assert layer(x).shape == (rows, 1, 80)
