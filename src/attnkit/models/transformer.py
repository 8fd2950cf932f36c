"""Transformer encoder-decoder (Vaswani et al. 2017).

    encoder:  x = Embed(src) * sqrt(d_model) + PE;   N x [self-attention, feed-forward]
    decoder:  y = Embed(tgt) * sqrt(d_model) + PE;   N x [masked self-attention,
              encoder-decoder attention (Q from the decoder, K and V from the encoder), feed-forward]
    p(y_i | y_<i, x) = softmax(W_out y_i [+ b_out])  (W_out tied to the target embedding by default)

The options that imported models need (``attnkit import hf``): the embedding scale can be 1 instead
of sqrt(d_model), the feed-forward activation GELU or SiLU, and the output layer can have a bias
(Marian's ``final_logits_bias``).

Incremental decoding caches each layer's self-attention keys and values, and the encoder-decoder
keys and values are projected once per sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnkit.layers.dropout import dropout
from attnkit.layers.positional import make_positions
from attnkit.layers.transformer import DecoderLayer, EncoderLayer
from attnkit.masks import causal_mask, padding_mask
from attnkit.models.base import DecoderOutput, EncoderOutput
from attnkit.specials import PAD


class Embeddings(nn.Module):
    """Token embedding scaled by sqrt(d_model) (or not: ``scale=False``), plus positional encoding,
    then dropout."""

    def __init__(self, vocab_size: int, d_model: int, positional: str, max_positions: int, dropout: float,
                 scale: bool = True):
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        nn.init.normal_(self.token.weight, std=d_model**-0.5)
        nn.init.zeros_(self.token.weight[0])
        self.positions = make_positions(positional, d_model, max_positions)
        self.scale, self.dropout = math.sqrt(d_model) if scale else 1.0, dropout

    def forward(self, ids: Tensor, offset: int = 0, extra: Tensor | None = None) -> Tensor:
        """ids (B, T) -> (B, T, d_model), positions starting at ``offset``; ``extra`` (B, T, d_model),
        a word's other features already projected to d_model, is added to its scaled embedding."""
        x = self.token(ids) * self.scale
        if extra is not None:
            x = x + extra.to(x.dtype)
        return dropout(self.positions(x, offset), self.dropout, self.training)


def stack_weights(alphas: list[Tensor | None]) -> Tensor | None:
    """Per-layer (B, h, T, S) weights -> (B, layers, h, T, S)."""
    return torch.stack(alphas, dim=1) if alphas and alphas[0] is not None else None


class TransformerEncoder(nn.Module):
    def __init__(self, embed: Embeddings, num_layers: int, d_model: int, num_heads: int, ff_dim: int,
                 dropout: float, attention_dropout: float, norm: str, activation: str = "relu"):
        super().__init__()
        self.embed = embed
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, ff_dim, dropout, attention_dropout, norm,
                                                 activation) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()

    def forward(self, src: Tensor, need_weights: bool = False, extra: Tensor | None = None) -> EncoderOutput:
        """src (B, S), extra (B, S, d_model) added to the word embeddings (see ``Embeddings``)."""
        mask = padding_mask(src)  # (B, S)
        x = self.embed(src, extra=extra)
        alphas = []
        for layer in self.layers:
            x, alpha = layer(x, mask[:, None, None, :], need_weights)  # mask (B, 1, 1, S)
            alphas.append(alpha)
        weights = stack_weights(alphas)
        return EncoderOutput(self.final_norm(x), mask, None, {"encoder": weights} if weights is not None else {})


@dataclass
class TransformerState:
    enc: EncoderOutput
    memory_kv: list[tuple[Tensor, Tensor]]  # per layer, encoder-decoder keys and values (B, h, S, d_k)
    self_kv: list[tuple[Tensor, Tensor] | None]  # per layer, self-attention cache (B, h, t, d_k)
    position: int  # how many target tokens have been fed


class TransformerDecoder(nn.Module):
    def __init__(self, embed: Embeddings, vocab_size: int, num_layers: int, d_model: int, num_heads: int,
                 ff_dim: int, dropout: float, attention_dropout: float, norm: str, tie_embeddings: bool,
                 activation: str = "relu", output_bias: bool = False):
        super().__init__()
        self.embed = embed
        self.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, ff_dim, dropout, attention_dropout, norm,
                                                 activation=activation) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.W_out = nn.Linear(d_model, vocab_size, bias=output_bias)
        if output_bias:
            nn.init.zeros_(self.W_out.bias)
        if tie_embeddings:
            self.W_out.weight = self.embed.token.weight

    def _memory_kv(self, enc: EncoderOutput) -> list[tuple[Tensor, Tensor]]:
        return [layer.cross_attn.project_kv(enc.memory) for layer in self.layers]

    def _layers(self, x: Tensor, state: TransformerState, self_mask: Tensor | None,
                need_weights: bool) -> tuple[Tensor, list, list, list]:
        """x (B, T, d) -> the top states (B, T, d), the new self-attention cache, per-layer weights."""
        src_mask = state.enc.src_mask[:, None, None, :]  # (B, 1, 1, S)
        new_kv, self_alphas, cross_alphas = [], [], []
        for layer, memory_kv, past in zip(self.layers, state.memory_kv, state.self_kv):
            out = layer(x, memory_kv, src_mask, self_mask, past, need_weights)
            x = out.x
            new_kv.append(out.self_kv)
            self_alphas.append(out.self_alpha)
            cross_alphas.append(out.cross_alpha)
        return self.final_norm(x), new_kv, self_alphas, cross_alphas

    def forward(self, tgt_in: Tensor, enc: EncoderOutput, need_weights: bool = False) -> DecoderOutput:
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V), all positions at once under a causal mask."""
        state = TransformerState(enc, self._memory_kv(enc), [None] * len(self.layers), 0)
        T = tgt_in.size(1)
        hidden, _, self_alphas, cross_alphas = self._layers(
            self.embed(tgt_in), state, causal_mask(T, tgt_in.device), need_weights)
        attention = {}
        if need_weights:
            attention = {"self": stack_weights(self_alphas), "cross": stack_weights(cross_alphas)}
        return DecoderOutput(self.W_out(hidden), hidden, attention)

    def init_state(self, enc: EncoderOutput) -> TransformerState:
        return TransformerState(enc, self._memory_kv(enc), [None] * len(self.layers), 0)

    def step(self, tokens: Tensor, state: TransformerState) -> tuple[Tensor, TransformerState]:
        """tokens (B,) -> logits (B, V); one new position attends to the cached ones."""
        x = self.embed(tokens.unsqueeze(1), offset=state.position)  # (B, 1, d_model)
        hidden, new_kv, _, _ = self._layers(x, state, None, need_weights=False)
        return self.W_out(hidden).squeeze(1), TransformerState(state.enc, state.memory_kv, new_kv, state.position + 1)

    def reorder(self, state: TransformerState, index: Tensor) -> TransformerState:
        pick = lambda kv: None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))  # noqa: E731
        return TransformerState(state.enc.select(index), [pick(kv) for kv in state.memory_kv],
                                [pick(kv) for kv in state.self_kv], state.position)
