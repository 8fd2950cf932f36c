"""Positional encodings, added to the (scaled) token embeddings.

Sinusoidal (Vaswani et al. 2017): ``PE[pos, 2i] = sin(pos / 10000^(2i/d))`` and
``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``; or a learned embedding per position.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(num_positions: int, d_model: int) -> Tensor:
    """(num_positions, d_model) matrix of sine/cosine encodings."""
    pos = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)  # (P, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(num_positions, d_model)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq[: d_model // 2])
    return table


class SinusoidalPositions(nn.Module):
    def __init__(self, d_model: int, max_positions: int):
        super().__init__()
        self.max_positions = max_positions
        self.register_buffer("table", sinusoidal_table(max_positions, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, T, d_model) -> x + PE[offset : offset + T]."""
        return x + self.table[offset : offset + x.size(1)].to(x.dtype)


class LearnedPositions(nn.Module):
    def __init__(self, d_model: int, max_positions: int):
        super().__init__()
        self.max_positions = max_positions
        self.embedding = nn.Embedding(max_positions, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        pos = torch.arange(offset, offset + x.size(1), device=x.device)
        return x + self.embedding(pos).to(x.dtype)


def make_positions(kind: str, d_model: int, max_positions: int) -> nn.Module:
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_positions)
    if kind == "learned":
        return LearnedPositions(d_model, max_positions)
    raise ValueError(f"unknown positional encoding {kind!r}")
