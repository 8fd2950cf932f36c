"""ELMo's scalar mix (Peters et al. 2018): a task-specific weighting of a model's layers,

    ELMo_k = gamma * sum_j s_j h_{k,j},   s = softmax(w)

with one learned scalar w_j per layer and a learned scale gamma.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScalarMix(nn.Module):
    def __init__(self, num_layers: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def weights(self) -> Tensor:
        """s = softmax(w): non-negative, summing to 1."""
        return torch.softmax(self.w, dim=0)

    def forward(self, layers: Tensor) -> Tensor:
        """layers (L, B, T, D) -> (B, T, D)."""
        s = self.weights().to(layers.dtype)
        return self.gamma * torch.einsum("l,lbtd->btd", s, layers)
