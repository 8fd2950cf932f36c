"""Sequence taggers (many to many, synchronous): one tag per input word.

``RNNTagger``: word embeddings (+ a character BiLSTM per word, + optional contextual vectors such as
ELMo's) -> BiLSTM -> a linear layer per position. ``TransformerTagger``: word embeddings (+ the
same character and contextual features, projected to d_model and added) -> a Transformer encoder ->
a linear layer per position.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnkit.layers.char import CharWordEncoder
from attnkit.layers.dropout import dropout
from attnkit.layers.rnn import RNNEncoder
from attnkit.masks import padding_mask
from attnkit.models.base import EncoderOutput, WordModel
from attnkit.models.transformer import Embeddings, TransformerEncoder
from attnkit.specials import PAD


class RNNTagger(WordModel):
    def __init__(self, num_words: int, num_tags: int, embed_dim: int, hidden: int, num_layers: int,
                 dropout: float, cell: str = "lstm", num_chars: int = 0, char_dim: int = 0,
                 char_hidden: int = 0, extra_dim: int = 0):
        super().__init__()
        self.embed = nn.Embedding(num_words, embed_dim, padding_idx=PAD)
        self.chars = CharWordEncoder(num_chars, char_dim, char_hidden) if num_chars else None
        input_dim = embed_dim + (self.chars.output_dim if self.chars else 0) + extra_dim
        self.rnn = RNNEncoder(cell, input_dim, hidden, num_layers, bidirectional=True, dropout=dropout)
        self.W_out = nn.Linear(self.rnn.output_dim, num_tags)
        self.dropout = dropout

    def forward(self, words: Tensor, chars: Tensor | None = None, extra: Tensor | None = None) -> Tensor:
        """words (B, T), chars (B, T, C), extra (B, T, E) -> tag logits (B, T, num_tags)."""
        mask = padding_mask(words)
        parts = [self.embed(words)]
        if self.chars is not None:
            parts.append(self.chars(chars))
        if extra is not None:
            parts.append(extra.to(parts[0].dtype))
        x = dropout(torch.cat(parts, dim=-1), self.dropout, self.training)
        states, _, _ = self.rnn(x, mask.sum(1).clamp(min=1))
        return self.W_out(dropout(states, self.dropout, self.training))


class TransformerTagger(WordModel):
    def __init__(self, num_words: int, num_tags: int, d_model: int, num_heads: int, ff_dim: int,
                 num_layers: int, dropout: float, attention_dropout: float, positional: str, norm: str,
                 max_positions: int, num_chars: int = 0, char_dim: int = 0, char_hidden: int = 0,
                 extra_dim: int = 0):
        super().__init__()
        embed = Embeddings(num_words, d_model, positional, max_positions, dropout)
        self.encoder = TransformerEncoder(embed, num_layers, d_model, num_heads, ff_dim, dropout,
                                          attention_dropout, norm)
        self.chars = CharWordEncoder(num_chars, char_dim, char_hidden) if num_chars else None
        side_dim = (self.chars.output_dim if self.chars else 0) + extra_dim
        self.W_side = nn.Linear(side_dim, d_model, bias=False) if side_dim else None
        self.W_out = nn.Linear(d_model, num_tags)
        self.max_positions = max_positions

    def encode(self, words: Tensor, chars: Tensor | None = None, extra: Tensor | None = None,
               need_weights: bool = False) -> EncoderOutput:
        """words (B, T), chars (B, T, C), extra (B, T, E) -> the encoder's states (B, T, d_model) and,
        with ``need_weights``, its self-attention weights."""
        side = []
        if self.chars is not None:
            side.append(self.chars(chars))
        if extra is not None:
            side.append(extra)
        projected = self.W_side(torch.cat([s.to(self.W_side.weight.dtype) for s in side], dim=-1)) if side else None
        return self.encoder(words, need_weights, extra=projected)

    def forward(self, words: Tensor, chars: Tensor | None = None, extra: Tensor | None = None) -> Tensor:
        """words (B, T), chars (B, T, C), extra (B, T, E) -> tag logits (B, T, num_tags)."""
        return self.W_out(self.encode(words, chars, extra).memory)

    def self_attention(self, words: Tensor, chars: Tensor | None = None, extra: Tensor | None = None) -> Tensor:
        return self.encode(words, chars, extra, need_weights=True).attention["encoder"]
