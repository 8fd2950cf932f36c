"""Text classifiers (many to one, and the one-to-one baseline).

``BagOfEmbeddings``: the average of the word embeddings through an MLP; word order is invisible to
it, the baseline every sequence model must beat. ``RNNClassifier``: a BiLSTM whose states are pooled
by the last state, their mean, or attention. ``TransformerClassifier``: a Transformer encoder,
pooled by mean or attention. Attention pooling returns its weights over the words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnkit.layers.dropout import dropout
from attnkit.layers.pooling import AttentionPool, last_pool, mean_pool
from attnkit.layers.rnn import RNNEncoder
from attnkit.masks import padding_mask
from attnkit.models.base import EncoderOutput, WordModel
from attnkit.models.transformer import Embeddings, TransformerEncoder
from attnkit.specials import PAD


@dataclass
class ClassifierOutput:
    logits: Tensor  # (B, num_classes)
    attention: Tensor | None = None  # (B, T) attention-pooling weights


class MLPHead(nn.Module):
    def __init__(self, input_dim: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.hidden = nn.Linear(input_dim, hidden)
        self.out = nn.Linear(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        h = dropout(x, self.dropout, self.training)
        return self.out(dropout(self.hidden(h).relu(), self.dropout, self.training))


class BagOfEmbeddings(WordModel):
    def __init__(self, num_words: int, num_classes: int, embed_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(num_words, embed_dim, padding_idx=PAD)
        self.head = MLPHead(embed_dim, hidden, num_classes, dropout)

    def forward(self, words: Tensor, extra: Tensor | None = None) -> ClassifierOutput:
        return ClassifierOutput(self.head(mean_pool(self.embed(words), padding_mask(words))))


class Pooling(nn.Module):
    def __init__(self, kind: str, dim: int, attention_dim: int, bidirectional: bool = True):
        super().__init__()
        self.kind, self.bidirectional = kind, bidirectional
        self.attention = AttentionPool(dim, attention_dim) if kind == "attention" else None

    def forward(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.kind == "attention":
            return self.attention(states, mask)
        if self.kind == "mean":
            return mean_pool(states, mask), None
        return last_pool(states, mask, self.bidirectional), None


class RNNClassifier(WordModel):
    def __init__(self, num_words: int, num_classes: int, embed_dim: int, hidden: int, num_layers: int,
                 pooling: str, attention_dim: int, dropout: float, cell: str = "lstm", extra_dim: int = 0):
        super().__init__()
        self.embed = nn.Embedding(num_words, embed_dim, padding_idx=PAD)
        self.rnn = RNNEncoder(cell, embed_dim + extra_dim, hidden, num_layers, bidirectional=True,
                              dropout=dropout)
        self.pool = Pooling(pooling, self.rnn.output_dim, attention_dim)
        self.head = MLPHead(self.rnn.output_dim, hidden, num_classes, dropout)
        self.dropout = dropout

    def forward(self, words: Tensor, extra: Tensor | None = None) -> ClassifierOutput:
        mask = padding_mask(words)
        x = self.embed(words)
        if extra is not None:
            x = torch.cat([x, extra.to(x.dtype)], dim=-1)
        states, _, _ = self.rnn(dropout(x, self.dropout, self.training), mask.sum(1).clamp(min=1))
        pooled, alpha = self.pool(states, mask)
        return ClassifierOutput(self.head(pooled), alpha)


class TransformerClassifier(WordModel):
    def __init__(self, num_words: int, num_classes: int, d_model: int, num_heads: int, ff_dim: int,
                 num_layers: int, dropout: float, attention_dropout: float, positional: str, norm: str,
                 max_positions: int, pooling: str, attention_dim: int, extra_dim: int = 0):
        super().__init__()
        embed = Embeddings(num_words, d_model, positional, max_positions, dropout)
        self.W_extra = nn.Linear(extra_dim, d_model, bias=False) if extra_dim else None  # contextual vectors
        self.encoder = TransformerEncoder(embed, num_layers, d_model, num_heads, ff_dim, dropout,
                                          attention_dropout, norm)
        self.pool = Pooling("mean" if pooling == "last" else pooling, d_model, attention_dim)
        self.head = MLPHead(d_model, d_model, num_classes, dropout)
        self.max_positions = max_positions

    def encode(self, words: Tensor, extra: Tensor | None = None, need_weights: bool = False) -> EncoderOutput:
        """words (B, T), extra (B, T, E) -> the encoder's states (B, T, d_model) and, with
        ``need_weights``, its self-attention weights."""
        projected = self.W_extra(extra.to(self.W_extra.weight.dtype)) if extra is not None else None
        return self.encoder(words, need_weights, extra=projected)

    def forward(self, words: Tensor, extra: Tensor | None = None) -> ClassifierOutput:
        """words (B, T), extra (B, T, E) -> logits (B, classes) and the pooling's weights."""
        enc = self.encode(words, extra)
        pooled, alpha = self.pool(enc.memory, enc.src_mask)
        return ClassifierOutput(self.head(pooled), alpha)

    def self_attention(self, words: Tensor, extra: Tensor | None = None) -> Tensor:
        return self.encode(words, extra, need_weights=True).attention["encoder"]

