"""Dropout with a cheaper random mask.

``torch.nn.functional.dropout`` on CPU draws one Bernoulli sample per element, which made it a
fifth of a Transformer training step here. This version draws 8 random bytes per int64 and keeps
an element when its byte is >= ``round(p * 256)``: the keep-probability is ``1 - k/256`` exactly and
the output is rescaled by its inverse, so the expectation is unchanged (p is quantised to 1/256).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    if not training or p <= 0.0:
        return x
    k = round(p * 256)
    if k >= 256:
        return torch.zeros_like(x)
    n = x.numel()
    bytes_ = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_().view(torch.uint8)
    keep = bytes_[:n].view(x.shape) >= k
    return x * keep.to(x.dtype) * (256.0 / (256 - k))


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
