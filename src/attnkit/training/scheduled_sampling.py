"""Scheduled sampling: training on inputs that are partly the model's own predictions.

Teacher forcing only ever shows the model gold prefixes; at inference it reads its own, and one early
mistake leads it where it never trained (exposure bias). Scheduled sampling (Bengio et al. 2015)
feeds, at each position, the gold token with probability eps and the model's own prediction
otherwise, with eps decaying over training (``eps_schedule``).

``ScheduledSampling`` is the original, step by step: the prediction at position i depends on the
mixed inputs before it. It decodes the batch once without gradients through the decoder contract
(``rollout``), then takes the loss on one teacher-forced pass over the mixed inputs: the same logits
as decoding step by step with gradients (the cached-equals-full invariant), at a fraction of the
cost. As in the paper, no gradient flows through the choice of a token.

``ParallelScheduledSampling`` (Duckworth et al. 2019) replaces the sequential decode by K passes
over the whole target in parallel: pass 1 reads the gold prefix, each further pass reads gold tokens
mixed with the previous pass's predictions, and the loss is taken on the last. K = 2 is the two-pass
scheduled sampling for Transformers of Mihaylova and Martins (2019); K = 1 is teacher forcing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnkit.config.strategies import MixingConfig, ParallelScheduledSamplingConfig, ScheduledSamplingConfig
from attnkit.data.batching import Batch
from attnkit.decoding.rollout import DecoderView, mix, own_choice, rollout
from attnkit.specials import PAD
from attnkit.training.strategies import Strategy, gold_rate, token_nll


def eps_schedule(cfg: MixingConfig, step: int) -> float:
    """eps_i, the probability of feeding the gold token at training step i (config/strategies.py)."""
    k, i = cfg.k, step
    if cfg.schedule == "constant":
        eps = k
    elif cfg.schedule == "linear":
        eps = k - cfg.c * i
    elif cfg.schedule == "exponential":
        eps = k**i
    else:  # inverse sigmoid; exp overflows to inf for huge i / k, where eps is 0
        eps = k / (k + math.exp(i / k)) if i / k < 700 else 0.0
    return min(1.0, max(cfg.eps_min, eps))


class ScheduledSampling(Strategy):
    name = "scheduled_sampling"

    def __init__(self, cfg: ScheduledSamplingConfig, label_smoothing: float = 0.0):
        self.cfg, self.label_smoothing = cfg, label_smoothing

    def loss(self, model, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        eps = eps_schedule(self.cfg, step)
        view = DecoderView(model, batch)
        # eps = 1 feeds nothing but gold: no decode needed, and the loss is teacher forcing's exactly
        fed = batch.tgt_in if eps >= 1.0 else rollout(view, batch.tgt_in, eps, self.cfg.feed, self.cfg.temperature)
        logits = view.forward(fed).logits
        stats = {"eps": eps, "gold_inputs": gold_rate(fed, batch.tgt_in)}
        return token_nll(logits, batch.tgt_out, self.label_smoothing), batch.num_tokens, stats


class ParallelScheduledSampling(Strategy):
    name = "parallel_scheduled_sampling"

    def __init__(self, cfg: ParallelScheduledSamplingConfig, label_smoothing: float = 0.0):
        self.cfg, self.label_smoothing = cfg, label_smoothing

    def inputs(self, view: DecoderView, tokens_in: Tensor, eps: float) -> Tensor:
        """The inputs of the last pass: passes 1..K-1 run without gradients, each predicting every
        position at once from the previous pass's inputs. tokens_in (B, T) -> (B, T)."""
        fed = tokens_in
        if eps >= 1.0:  # every input would be gold: the extra passes cannot change anything
            return fed
        for _ in range(self.cfg.passes - 1):
            with torch.no_grad():
                logits = view.forward(fed).logits[:, :-1]  # (B, T-1, V): predictions of inputs 1..T-1
            own = own_choice(logits, self.cfg.feed, self.cfg.temperature)
            fed = torch.cat([tokens_in[:, :1], mix(tokens_in[:, 1:], own, eps)], dim=1)
            fed = fed.masked_fill(tokens_in == PAD, PAD)
        return fed

    def loss(self, model, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        eps = eps_schedule(self.cfg, step)
        view = DecoderView(model, batch)
        fed = self.inputs(view, batch.tgt_in, eps)
        logits = view.forward(fed).logits
        stats = {"eps": eps, "gold_inputs": gold_rate(fed, batch.tgt_in)}
        return token_nll(logits, batch.tgt_out, self.label_smoothing), batch.num_tokens, stats
