"""Dropout with a cheaper random mask.

``torch.nn.functional.dropout`` on CPU draws one Bernoulli sample per element, which made it a
fifth of a Transformer training step here. This version draws 64 random bits per four elements and
reads them as four 16-bit integers u, uniform over [-2^15, 2^15): an element is kept when
u >= -2^15 + k, with k = round(p * 2^16), so it is kept with probability exactly 1 - k/2^16 (p to
within 2^-17) and the output is rescaled by the inverse of that, keeping the expectation.

All 64 bits must be random: ``random_()`` on int64 draws from [0, 2^63) and leaves the top bit 0,
which once made every fourth element here (every eighth, with bytes) dropped twice as often.
``random_(-2**63, None)`` draws the whole int64 range.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LEVELS = 1 << 16  # thresholds per unit of probability: p is kept to 1/65536
INT64_MIN = -(1 << 63)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[Tensor, float]:
    """A boolean mask of ``shape`` keeping each element with probability 1 - p (quantised to 1/65536),
    and that probability."""
    k = round(p * LEVELS)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(INT64_MIN, None)  # all 64 bits
    u = words.view(torch.int16)[:n].view(shape)  # (*shape) uniform over [-2^15, 2^15)
    return u >= k - LEVELS // 2, 1.0 - k / LEVELS


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    if not training or p <= 0.0:
        return x
    if round(p * LEVELS) >= LEVELS:
        return torch.zeros_like(x)
    keep, q = keep_mask(x.shape, p, x.device)
    return x * keep.to(x.dtype) * (1.0 / q)


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
