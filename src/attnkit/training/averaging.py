"""An exponential moving average of the weights (Polyak & Juditsky 1992; the "exponential smoothing"
of Marian, fairseq's ``--ema-decay``): after every update

    avg <- d_t * avg + (1 - d_t) * theta,   d_t = min(d, (1 + t) / (10 + t))

where t counts the updates. The ramp of d_t keeps the first steps from being tied to the random
initialisation (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``); later d_t = d,
so the average covers about the last 1 / (1 - d) updates. The trainer validates the average, and the
best checkpoint holds it: the iterates of SGD at a high learning rate jitter around a valley, and
their average lies nearer its floor.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)  # shares no tensor with ``model``

    def rate(self) -> float:
        """d_t for the update about to be made."""
        t = self.updates + 1
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights; buffers (constant tables) are copied."""
        weight = 1.0 - self.rate()
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), weight)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)
        self.updates += 1
