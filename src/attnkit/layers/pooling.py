"""Sequence -> vector: the many-to-one step of a classifier.

    last:       the final state of each direction (h_T forward, h_1 backward)
    mean:       the average of the states, padding excluded
    attention:  sum_j alpha_j h_j with alpha = softmax_j(v . tanh(W h_j + b)): additive attention
                whose query is one learned vector (Yang et al. 2016), through the same signature
                as every other attention
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnkit.layers.attention import AdditiveAttention


def mean_pool(states: Tensor, mask: Tensor) -> Tensor:
    """states (B, T, D), mask (B, T) -> (B, D)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1.0)


def last_pool(states: Tensor, mask: Tensor, bidirectional: bool) -> Tensor:
    """The forward direction's state at the last real token and, if bidirectional, the backward
    direction's state at the first token. states (B, T, D) -> (B, D)."""
    last = mask.sum(1).clamp(min=1) - 1  # (B,)
    rows = torch.arange(states.size(0), device=states.device)
    if not bidirectional:
        return states[rows, last]
    half = states.size(-1) // 2
    return torch.cat([states[rows, last, :half], states[:, 0, half:]], dim=-1)


class AttentionPool(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))  # the learned "what matters" query
        self.attention = AdditiveAttention(dim, dim, hidden)

    def forward(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """states (B, T, D), mask (B, T) -> pooled (B, D), weights alpha (B, T)."""
        keys = self.attention.project_keys(states)
        query = self.query.expand(states.size(0), -1, -1).to(states.dtype)
        context, alpha = self.attention(query, keys, states, mask.unsqueeze(1))
        return context.squeeze(1), alpha.squeeze(1)
