"""Transformer encoder and decoder layers (Vaswani et al. 2017).

Each sublayer (self-attention, encoder-decoder attention, feed-forward) is wrapped in a residual
connection with LayerNorm, either after the sum (``post``, the paper) or before the sublayer
(``pre``, more stable to train):

    post:  x = LayerNorm(x + Dropout(sublayer(x)))
    pre:   x = x + Dropout(sublayer(LayerNorm(x)))

The two ablations the lecture's claims ask for: ``none``, no LayerNorm at all, and a stack without its
residual connections (``without_residuals``), where each sublayer's output replaces its input:

    post, no residual:  x = LayerNorm(Dropout(sublayer(x)))
    pre, no residual:   x = Dropout(sublayer(LayerNorm(x)))

The feed-forward sublayer's activation is ReLU in the paper; GELU (BERT, GPT) and SiLU, also called
swish (Marian, the OPUS-MT translators), are options.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.layers.attention import MultiHeadAttention
from attnkit.layers.dropout import dropout

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}  # gelu: the exact one, x * Phi(x)


class FeedForward(nn.Module):
    """Position-wise FFN(x) = W_2 Dropout(f(W_1 x)), f = ReLU by default."""

    def __init__(self, d_model: int, ff_dim: int, dropout: float, activation: str = "relu"):
        super().__init__()
        self.W_1, self.W_2 = nn.Linear(d_model, ff_dim), nn.Linear(ff_dim, d_model)
        self.dropout, self.f = dropout, ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.W_2(dropout(self.f(self.W_1(x)), self.dropout, self.training))


class Sublayer(nn.Module):
    """Residual connection + LayerNorm around one sublayer: pre-norm, post-norm or no norm (``none``)."""

    def __init__(self, d_model: int, dropout: float, norm: str):
        super().__init__()
        self.norm = nn.LayerNorm(d_model) if norm != "none" else nn.Identity()
        self.pre, self.dropout, self.residual = norm == "pre", dropout, True

    def inp(self, x: Tensor) -> Tensor:
        """What the sublayer reads."""
        return self.norm(x) if self.pre else x

    def out(self, x: Tensor, y: Tensor) -> Tensor:
        """Combine the residual stream ``x`` with the sublayer's output ``y``."""
        y = dropout(y, self.dropout, self.training)
        x = x + y if self.residual else y
        return x if self.pre else self.norm(x)


def without_residuals(model: nn.Module) -> nn.Module:
    """``model`` with every sublayer's residual connection cut (an ablation: ``model.residual: false``)."""
    for sublayer in model.modules():
        if isinstance(sublayer, Sublayer):
            sublayer.residual = False
    return model


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float,
                 attention_dropout: float, norm: str, activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, attention_dropout)
        self.ff = FeedForward(d_model, ff_dim, dropout, activation)
        self.sub_attn, self.sub_ff = Sublayer(d_model, dropout, norm), Sublayer(d_model, dropout, norm)

    def forward(self, x: Tensor, mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, S, d), mask (B, 1, 1, S) -> x (B, S, d), self-attention weights (B, h, S, S)."""
        h = self.sub_attn.inp(x)
        keys, values = self.self_attn.project_kv(h)
        y, alpha = self.self_attn(h, keys, values, mask, need_weights)
        x = self.sub_attn.out(x, y)
        x = self.sub_ff.out(x, self.ff(self.sub_ff.inp(x)))
        return x, alpha


@dataclass
class DecoderLayerOutput:
    x: Tensor  # (B, T, d)
    self_kv: tuple[Tensor, Tensor]  # keys, values of all positions so far, each (B, h, T_total, d_k)
    self_alpha: Tensor | None  # (B, h, T, T_total)
    cross_alpha: Tensor | None  # (B, h, T, S)


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder attention, feed-forward. Without ``cross_attention``
    it is the block of a decoder-only language model."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float,
                 attention_dropout: float, norm: str, cross_attention: bool = True, activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, attention_dropout) if cross_attention else None
        self.ff = FeedForward(d_model, ff_dim, dropout, activation)
        self.sub_self, self.sub_cross, self.sub_ff = (Sublayer(d_model, dropout, norm) for _ in range(3))
        if not cross_attention:
            self.sub_cross = None

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor] | None, src_mask: Tensor | None,
                self_mask: Tensor | None, past_kv: tuple[Tensor, Tensor] | None = None,
                need_weights: bool = False) -> DecoderLayerOutput:
        """x (B, T, d): the T newest target positions; ``past_kv`` caches earlier ones.

        memory_kv: the encoder output projected by ``cross_attn.project_kv``, each (B, h, S, d_k)
        (None without cross-attention).
        self_mask: (T, T_total) causal mask, or None when T == 1 (one new position sees all the past).
        """
        h = self.sub_self.inp(x)
        keys, values = self.self_attn.project_kv(h)  # (B, h, T, d_k)
        if past_kv is not None:
            keys, values = torch.cat([past_kv[0], keys], dim=2), torch.cat([past_kv[1], values], dim=2)
        y, self_alpha = self.self_attn(h, keys, values, self_mask, need_weights)
        x = self.sub_self.out(x, y)
        cross_alpha = None
        if self.cross_attn is not None:
            y, cross_alpha = self.cross_attn(self.sub_cross.inp(x), *memory_kv, src_mask, need_weights)
            x = self.sub_cross.out(x, y)
        x = self.sub_ff.out(x, self.ff(self.sub_ff.inp(x)))
        return DecoderLayerOutput(x, (keys, values), self_alpha, cross_alpha)
