"""Feeding a decoder its own predictions, whatever the model: what the exposure-bias remedies train
on and what the exposure-bias diagnostic measures (``training/scheduled_sampling.py``,
``training/professor_forcing.py``, ``diagnostics.py``).

:class:`DecoderView` is one batch's decoder behind the decoder contract; :func:`rollout` decodes a
batch step by step, feeding at each position the gold token with probability eps and the model's
own choice otherwise (eps = 0: its greedy or sampled output, continued to the reference's length).
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnkit.data.batching import Batch
from attnkit.decoding.search import sample_categorical
from attnkit.models.base import Seq2Seq
from attnkit.specials import BOS, PAD


class DecoderView:
    """One batch's decoder over its source, encoded once, here, through the decoder contract
    (``models/base.py``): an encoder-decoder's, or a language model's (whose source is empty)."""

    def __init__(self, model: Seq2Seq, batch: Batch):
        self.model, self.decoder = model, model.decoder
        self.enc = model.encode(batch.src)

    def forward(self, tokens_in: Tensor):
        """The teacher-forced pass over ``tokens_in`` (B, T): ``.logits`` (B, T, V), ``.hidden`` (B, T, D)."""
        return self.model.decode(tokens_in, self.enc)

    def init_state(self):
        return self.decoder.init_state(self.enc)


def own_choice(logits: Tensor, feed: str, temperature: float = 1.0) -> Tensor:
    """The model's own next input: (..., V) logits -> (...) its argmax (``greedy``) or a sample at
    ``temperature`` (``sample``); never PAD or BOS."""
    logits = logits.detach().float().clone()
    logits[..., PAD] = float("-inf")
    logits[..., BOS] = float("-inf")
    if feed == "greedy":
        return logits.argmax(-1)
    return sample_categorical(torch.softmax(logits / temperature, dim=-1))


def mix(gold: Tensor, own: Tensor, eps: float) -> Tensor:
    """Each position independently: the gold token with probability eps, else the model's own."""
    return torch.where(torch.rand(gold.shape, device=gold.device) < eps, gold, own)


@torch.no_grad()
def rollout(view: DecoderView, tokens_in: Tensor, eps: float, feed: str = "greedy",
            temperature: float = 1.0) -> Tensor:
    """Bengio et al.'s inputs, decoding step by step: input 0 is gold (BOS, or a language model's first
    token); input i+1 is gold with probability eps, else the model's choice after reading inputs 0..i.
    tokens_in (B, T) gold inputs -> (B, T) the inputs fed, PAD where the gold is PAD."""
    B, T = tokens_in.shape
    fed = tokens_in.clone()
    state = view.init_state()
    for i in range(T - 1):
        logits, state = view.decoder.step(fed[:, i], state)  # (B, V)
        fed[:, i + 1] = mix(tokens_in[:, i + 1], own_choice(logits, feed, temperature), eps)
    return fed.masked_fill(tokens_in == PAD, PAD)
