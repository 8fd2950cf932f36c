"""Every attention of the lecture behind one signature.

    keys = attn.project_keys(memory)                 # once per source sentence
    context, alpha = attn(query, keys, values, mask)  # every decoder step (or all at once)

with ``alpha = softmax(score(query, keys))`` over the source positions the mask allows and
``context = sum_j alpha_j values_j``. Scores:

=================  ==========================================  =========================
class              score(q, k_j)                                project_keys(h_j)
=================  ==========================================  =========================
DotAttention       q . h_j                                      h_j
GeneralAttention   q . (W h_j)        (bilinear, Luong)         W h_j   (enc -> dec size)
AdditiveAttention  v . tanh(W_q q + W_k h_j)   (Bahdanau)       W_k h_j
ScaledDotProduct   q . k_j / sqrt(d_k)                          h_j
=================  ==========================================  =========================

:class:`MultiHeadAttention` keeps the same call, with keys *and* values projected per head by
``project_kv``. Nothing is stored on a module between calls: weights are returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.layers.dropout import dropout


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dim; positions where ``mask`` is False get exactly zero weight."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(scores.dtype)


class Attention(nn.Module):
    """Base class: subclasses define ``score`` and, if they have one, a key projection."""

    def project_keys(self, memory: Tensor) -> Tensor:
        """(B, S, D_enc) -> keys (B, S, D_key) in the form ``score`` expects."""
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (B, T, D_q), keys (B, S, D_key) -> scores (B, T, S)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, values: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """query (B, T, D_q), keys from ``project_keys``, values (B, S, D_v), mask (B, 1|T, S).

        Returns context (B, T, D_v) and weights alpha (B, T, S), each row summing to 1.
        """
        alpha = masked_softmax(self.score(query, keys), mask)  # (B, T, S)
        return alpha @ values, alpha


class DotAttention(Attention):
    """score = h_dec . h_enc: no parameters; decoder and encoder sizes must match."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)  # (B, T, S)


class ScaledDotProductAttention(Attention):
    """score = q . k / sqrt(d_k) (Vaswani et al. 2017)."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2) / math.sqrt(query.size(-1))


class GeneralAttention(Attention):
    """Bilinear score h_dec W h_enc; W maps encoder size to decoder size, which may differ."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.W = nn.Linear(key_dim, query_dim, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.W(memory)  # (B, S, D_q)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)


class AdditiveAttention(Attention):
    """Bahdanau's concat score v . tanh(W_q h_dec + W_k h_enc)."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=True)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.W_k(memory)  # (B, S, H)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.W_q(query).unsqueeze(2)  # (B, T, 1, H)
        return self.v(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)


def plain_products(q: Tensor, S: int, p: float, training: bool) -> bool:
    """Whether plain products (scores, softmax, weighted sum) beat ``F.scaled_dot_product_attention``
    for queries q (B, h, T, d_k) over S keys. On a CPU they do, 2 cores measured (docs/BENCHMARKS.md):
    for one query (a decoding step: the kernel's set-up costs more than the work); in training in bf16
    or with attention dropout, up to 256 positions (2-7x forward and backward under 100: the kernel
    draws its dropout mask one Bernoulli sample at a time, and its bf16 path is slow); and forward
    only, up to 64 keys. On a GPU the fused kernel always."""
    if q.device.type != "cpu":
        return False
    if q.size(-2) == 1:
        return True
    if training and torch.is_grad_enabled():
        return S <= 256 and (q.dtype != torch.float32 or p > 0)
    return S <= 64


class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product attention, concatenated and mixed by W^O.

    ``keys, values = mha.project_kv(x)`` gives per-head keys and values (B, h, S, d_k); for
    self-attention pass the same ``x`` as query. With ``need_weights=False`` the fused kernel
    ``F.scaled_dot_product_attention`` is used and no weights are returned.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        self.W_Q = nn.Linear(d_model, d_model, bias=bias)
        self.W_K = nn.Linear(d_model, d_model, bias=bias)
        self.W_V = nn.Linear(d_model, d_model, bias=bias)
        self.W_O = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.d_k).transpose(1, 2)  # (B, h, T, d_k)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, d_model) -> keys, values, each (B, h, S, d_k)."""
        return self.split_heads(self.W_K(x)), self.split_heads(self.W_V(x))

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """query (B, T, d_model); keys, values (B, h, S, d_k); mask broadcastable to (B, h, T, S).

        Returns context (B, T, d_model) and weights (B, h, T, S) (None unless ``need_weights``).
        """
        B, T, _ = query.shape
        q = self.split_heads(self.W_Q(query))  # (B, h, T, d_k)
        p = self.dropout if self.training else 0.0
        if need_weights or plain_products(q, keys.size(-2), p, self.training):
            scores = q @ keys.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, h, T, S)
            alpha = masked_softmax(scores, mask)
            heads = dropout(alpha, p, self.training) @ values  # (B, h, T, d_k)
            alpha = alpha if need_weights else None
        else:
            alpha = None
            heads = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=p)
        heads = heads.transpose(1, 2).reshape(B, T, self.num_heads * self.d_k)  # (B, T, d_model)
        return self.W_O(heads), alpha


def make_attention(kind: str, query_dim: int, key_dim: int, hidden_dim: int) -> Attention:
    """The RNN decoder's attention by its config name."""
    if kind == "dot":
        if query_dim != key_dim:
            raise ValueError(f"dot attention needs equal sizes, got decoder {query_dim} and encoder {key_dim}")
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_dim, key_dim)
    if kind == "additive":
        return AdditiveAttention(query_dim, key_dim, hidden_dim)
    raise ValueError(f"unknown attention score {kind!r}")
