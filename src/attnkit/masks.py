"""Masks, made in one place.

Convention everywhere in attnkit: a mask is a bool tensor that is ``True`` where attention is
allowed (a real token, a past position) and ``False`` where it is not. It broadcasts against
scores of shape ``(B, [heads,] T_q, T_k)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnkit.specials import PAD


def padding_mask(ids: Tensor, pad_id: int = PAD) -> Tensor:
    """(B, S) ids -> (B, S) bool, True at real tokens."""
    return ids != pad_id


def causal_mask(size: int, device: torch.device | None = None) -> Tensor:
    """(T, T) bool, True on and below the diagonal: position i may look at positions j <= i."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
