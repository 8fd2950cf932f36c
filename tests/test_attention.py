"""attnkit.layers.attention: the score functions, masking, and MultiHeadAttention against torch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnkit.layers.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    MultiHeadAttention,
    ScaledDotProductAttention,
    make_attention,
    masked_softmax,
)

LENGTHS = [5, 2, 4]  # real source lengths of a padded batch (S = 5)


def key_mask(lengths=LENGTHS) -> torch.Tensor:
    """(B, S) bool, True at real positions."""
    S = max(lengths)
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


def inputs(query_dim: int, key_dim: int, T: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    B, S = len(LENGTHS), max(LENGTHS)
    query = torch.randn(B, T, query_dim, generator=g)
    memory = torch.randn(B, S, key_dim, generator=g)
    return query, memory


def score_classes():
    torch.manual_seed(0)
    return {
        "dot": (DotAttention(), 6, 6),
        "scaled": (ScaledDotProductAttention(), 6, 6),
        "general": (GeneralAttention(5, 7), 5, 7),
        "additive": (AdditiveAttention(5, 7, 4), 5, 7),
    }


def test_masked_softmax_zero_at_masked_and_rows_sum_to_one():
    scores = torch.randn(3, 4, 5) * 10
    mask = key_mask()[:, None, :]
    alpha = masked_softmax(scores, mask)
    assert torch.equal(alpha.masked_select(~mask.expand_as(alpha)), torch.zeros(int((~mask.expand_as(alpha)).sum())))
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 4))
    # without a mask it is the plain softmax
    torch.testing.assert_close(masked_softmax(scores, None), torch.softmax(scores, -1))


@pytest.mark.parametrize("kind", ["dot", "scaled", "general", "additive"])
def test_padded_source_positions_get_exactly_zero_weight(kind):
    attn, dq, dk = score_classes()[kind]
    query, memory = inputs(dq, dk)
    mask = key_mask()
    context, alpha = attn(query, attn.project_keys(memory), memory, mask[:, None, :])
    assert alpha.shape == (3, 3, 5)
    for b, n in enumerate(LENGTHS):
        assert (alpha[b, :, n:] == 0.0).all()
        assert (alpha[b, :, :n] > 0.0).all()
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 3))
    torch.testing.assert_close(context, alpha @ memory)
    # garbage in the padded memory rows changes nothing
    noisy = memory.clone()
    noisy[~mask] = 1e3
    context2, alpha2 = attn(query, attn.project_keys(noisy), noisy, mask[:, None, :])
    assert torch.equal(alpha2, alpha)
    torch.testing.assert_close(context2, context)


@pytest.mark.parametrize("kind", ["dot", "scaled", "general", "additive"])
def test_scores_follow_their_formulas(kind):
    attn, dq, dk = score_classes()[kind]
    query, memory = inputs(dq, dk)
    scores = attn.score(query, attn.project_keys(memory))
    B, T, S = scores.shape
    expected = torch.empty(B, T, S)
    for b in range(B):
        for t in range(T):
            for j in range(S):
                q, h = query[b, t], memory[b, j]
                if kind == "dot":
                    expected[b, t, j] = q @ h
                elif kind == "scaled":
                    expected[b, t, j] = q @ h / math.sqrt(dq)
                elif kind == "general":
                    expected[b, t, j] = q @ attn.W.weight @ h  # h_dec^T W h_enc
                else:
                    expected[b, t, j] = attn.v.weight[0] @ torch.tanh(attn.W_q(q) + attn.W_k(h))
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)


def test_general_attention_with_encoder_size_different_from_decoder_size():
    attn = GeneralAttention(query_dim=40, key_dim=48)
    query, memory = inputs(40, 48)
    keys = attn.project_keys(memory)
    assert keys.shape == (3, 5, 40)
    context, alpha = attn(query, keys, memory, key_mask()[:, None, :])
    assert context.shape == (3, 3, 48)  # the context has the encoder's size
    assert alpha.shape == (3, 3, 5)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 3))
    assert (alpha[1, :, 2:] == 0).all()


def test_make_attention_by_name():
    assert isinstance(make_attention("dot", 8, 8, 3), DotAttention)
    assert isinstance(make_attention("general", 8, 6, 3), GeneralAttention)
    additive = make_attention("additive", 8, 6, 3)
    assert isinstance(additive, AdditiveAttention) and additive.W_q.out_features == 3
    with pytest.raises(ValueError, match="equal sizes"):
        make_attention("dot", 8, 6, 3)
    with pytest.raises(ValueError, match="unknown"):
        make_attention("cosine", 8, 8, 3)


# -- MultiHeadAttention --------------------------------------------------------------------------------

D, H = 12, 3


def mha_pair(seed: int = 0) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_bias.normal_()  # torch initialises the biases to zero: make them count
        ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(D, H).eval()
    wq, wk, wv = ref.in_proj_weight.chunk(3)
    bq, bk, bv = ref.in_proj_bias.chunk(3)
    with torch.no_grad():
        for lin, w, b in ((ours.W_Q, wq, bq), (ours.W_K, wk, bk), (ours.W_V, wv, bv),
                          (ours.W_O, ref.out_proj.weight, ref.out_proj.bias)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return ours, ref


def mha_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 4, D, generator=g), torch.randn(3, 5, D, generator=g)


@pytest.mark.parametrize("padded", [False, True])
def test_multihead_equals_torch_with_weights(padded):
    ours, ref = mha_pair()
    query, memory = mha_inputs()
    mask = key_mask()
    keys, values = ours.project_kv(memory)
    ours_mask = mask[:, None, None, :] if padded else None
    out, alpha = ours(query, keys, values, ours_mask, need_weights=True)
    kpm = ~mask if padded else None  # torch: True = ignore
    ref_out, ref_alpha = ref(query, memory, memory, key_padding_mask=kpm, need_weights=True)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha.mean(1), ref_alpha, atol=1e-6, rtol=1e-5)  # torch averages the heads
    _, ref_heads = ref(query, memory, memory, key_padding_mask=kpm, need_weights=True,
                       average_attn_weights=False)
    torch.testing.assert_close(alpha, ref_heads, atol=1e-6, rtol=1e-5)
    if padded:
        for b, n in enumerate(LENGTHS):
            assert (alpha[b, :, :, n:] == 0.0).all()
        torch.testing.assert_close(alpha.sum(-1), torch.ones(3, H, 4))


@pytest.mark.parametrize("padded", [False, True])
def test_multihead_fused_path_equals_torch(padded):
    ours, ref = mha_pair()
    query, memory = mha_inputs()
    mask = key_mask()
    keys, values = ours.project_kv(memory)
    out, alpha = ours(query, keys, values, mask[:, None, None, :] if padded else None, need_weights=False)
    assert alpha is None
    ref_out, _ = ref(query, memory, memory, key_padding_mask=~mask if padded else None, need_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)


def test_multihead_causal_self_attention_equals_torch():
    ours, ref = mha_pair(seed=2)
    x, _ = mha_inputs(seed=3)
    T = x.size(1)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    keys, values = ours.project_kv(x)
    for need in (True, False):
        out, alpha = ours(x, keys, values, causal, need_weights=need)
        ref_out, _ = ref(x, x, x, attn_mask=~causal, need_weights=False)
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
        if need:
            assert (alpha.triu(1) == 0).all()


def test_multihead_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)


def test_multihead_dropout_only_in_training():
    ours, _ = mha_pair()
    ours.dropout = 0.5
    query, memory = mha_inputs()
    keys, values = ours.project_kv(memory)
    ours.eval()
    a = ours(query, keys, values, None, need_weights=True)[0]
    b = ours(query, keys, values, None, need_weights=False)[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # eval: deterministic, both paths agree
    ours.train()
    torch.manual_seed(0)
    c = ours(query, keys, values, None, need_weights=True)[0]
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_query_on_the_cpu_takes_plain_products_equal_to_the_fused_kernel(dtype):
    """A decoding step's single query skips scaled_dot_product_attention on the CPU (its set-up costs
    more than the work there); the context is the kernel's, padding and all."""
    import torch.nn.functional as F

    from attnkit.layers.attention import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    query, memory = torch.randn(3, 1, 16), torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)[:, None, None, :]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        keys, values = mha.project_kv(memory)
        out, weights = mha(query, keys, values, mask)
        heads = F.scaled_dot_product_attention(mha.split_heads(mha.W_Q(query)), keys, values, attn_mask=mask)
        expected = mha.W_O(heads.transpose(1, 2).reshape(3, 1, 16))
    assert weights is None
    assert torch.allclose(out.float(), expected.float(), atol=1e-6 if dtype == torch.float32 else 2e-2)


@pytest.mark.parametrize("training", [False, True])
def test_plain_products_and_the_fused_kernel_give_the_same_context_and_gradients(training, monkeypatch):
    """Whichever path ``plain_products`` picks, the outputs and gradients are the same (no dropout, so
    that both are deterministic), with padding and a causal mask."""
    from attnkit.layers import attention
    from attnkit.masks import causal_mask

    torch.manual_seed(0)
    mha = attention.MultiHeadAttention(16, 4, dropout=0.0).train(training)
    x = torch.randn(3, 6, 16)
    pad = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)[:, None, None, :]
    results = []
    for plain in (True, False):
        monkeypatch.setattr(attention, "plain_products", lambda *a, plain=plain: plain)
        for mask in (pad, causal_mask(6, x.device)):
            mha.zero_grad()
            out, _ = mha(x, *mha.project_kv(x), mask)
            out.square().sum().backward()
            results.append((out.detach(), mha.W_Q.weight.grad.clone(), mha.W_V.weight.grad.clone()))
    for a, b in zip(results[:2], results[2:]):
        for x_plain, x_fused in zip(a, b):
            torch.testing.assert_close(x_plain, x_fused, atol=1e-5, rtol=1e-4)


def test_where_plain_products_are_taken():
    from attnkit.layers.attention import plain_products

    q = lambda T, dtype=torch.float32: torch.zeros(2, 4, T, 8, dtype=dtype)  # noqa: E731
    assert plain_products(q(1), 300, 0.0, False)  # a decoding step
    assert plain_products(q(30, torch.bfloat16), 30, 0.0, True) and plain_products(q(30), 30, 0.1, True)
    assert not plain_products(q(30), 30, 0.0, True)  # fp32 without dropout: the kernel
    assert not plain_products(q(300, torch.bfloat16), 300, 0.1, True)  # longer than measured: the kernel
    assert plain_products(q(30), 64, 0.0, False) and not plain_products(q(30), 100, 0.0, False)
    assert not plain_products(q(30).to("meta"), 30, 0.1, True)  # not a CPU: the kernel
