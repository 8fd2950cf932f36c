"""Training strategies: how a batch becomes a loss. Kept apart from the models and from the trainer.

Every strategy is a :class:`Strategy`: ``loss(model, batch, step) -> (summed loss, number of target
tokens, stats)``; the trainer divides the sum by the count, and logs the stats (eps, discriminator
accuracy, ...). ``state_dict`` / ``load_state_dict`` carry what a strategy learns itself (professor
forcing's discriminator) through checkpoints; for the others they are empty. :func:`make_strategy`
is the one place that builds them, from a task's objective and its training section:

    objective        strategy
    autoregressive   training.strategy's: TeacherForcing (the lecture's default), ScheduledSampling
                     (Bengio et al. 2015), ParallelScheduledSampling (Duckworth et al. 2019), or
                     ProfessorForcing (Lamb et al. 2016)
    carried          CarriedState: teacher forcing over text read in order, each batch starting from
                     the state the one before ended in (an LSTM LM's truncated BPTT)
    supervised       Supervised: taggers' and classifiers' outputs against gold labels
    bidirectional    BidirectionalTeacherForcing: the biLM's two directions
    captioning       DoublyStochasticAttention: teacher forcing plus Xu et al.'s attention regulariser

The autoregressive strategies see a model only through :class:`DecoderView` (a translator's
decoder over its encoded source, or a language model) and its decoder contract, so each works for
the RNN and the Transformer translators and for the language models alike.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.config import TrainingConfig
from attnkit.data.batching import Batch
from attnkit.decoding.rollout import DecoderView
from attnkit.models.base import Seq2Seq
from attnkit.specials import PAD
from attnkit.training.token_loss import token_nll  # noqa: F401  (the strategies modules take it from here)

IGNORE = -100  # the label of positions that have none (padding)


def gold_rate(fed: Tensor, tokens_in: Tensor) -> float:
    """The fraction of inputs after the first that are the gold token (padding excluded)."""
    real = tokens_in[:, 1:] != PAD
    return float(((fed[:, 1:] == tokens_in[:, 1:]) & real).sum() / real.sum().clamp_min(1))


class Strategy:
    """How a batch becomes a loss: the one interface the trainer calls."""

    name = "strategy"

    def loss(self, model, batch, step: int) -> tuple[Tensor, int, dict]:
        """(summed loss, number of target tokens, numbers to log) of one batch at training ``step``."""
        raise NotImplementedError

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        """What the strategy learned itself (tensors, a JSON document), for ``last.safetensors``."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, Tensor], doc: dict) -> None:
        """Continue from ``state_dict``'s output (``--resume``); nothing for a strategy that learns nothing."""


class TeacherForcing(Strategy):
    name = "teacher_forcing"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, model: Seq2Seq, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        logits = DecoderView(model, batch).forward(batch.tgt_in).logits
        return token_nll(logits, batch.tgt_out, self.label_smoothing), batch.num_tokens, {}


class CarriedState(Strategy):
    """Teacher forcing for a language model that reads its training text in order (Zaremba et al.
    2014): batch k holds the next ``chunk`` tokens of the same parallel rows as batch k - 1, so the
    model starts from the state batch k - 1 ended in, detached (gradients stop at the boundary:
    truncated backpropagation through time). A batch with ``continues`` false starts from zero, and
    so does the first batch after ``--resume`` (the state is not checkpointed)."""

    name = "carried_state"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing
        self.state = None  # the last batch's final state, cut from its graph

    def loss(self, model, batch, step: int) -> tuple[Tensor, int, dict]:
        state = self.state if batch.continues else None
        if self.label_smoothing:  # smoothing needs the whole distribution
            out = model(batch.tgt_in, state)
            nll = token_nll(out.logits, batch.tgt_out, self.label_smoothing)
        else:  # the model scores the gold tokens only (an adaptive softmax: only their clusters)
            out = model(batch.tgt_in, state, gold=batch.tgt_out)
            nll = out.nll
        self.state = out.state.detach()
        return nll, batch.num_tokens, {}


class Supervised(Strategy):
    """Cross-entropy of ``model(**batch.inputs())`` against ``batch.labels``: (B, T) per token for
    taggers, (B,) per text for classifiers."""

    name = "supervised"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, model, batch, step: int) -> tuple[Tensor, int, dict]:
        out = model(**batch.inputs())
        logits = getattr(out, "logits", out)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch.labels.reshape(-1),
                               ignore_index=IGNORE, label_smoothing=self.label_smoothing, reduction="sum")
        return loss, int((batch.labels != IGNORE).sum()), {}


class BidirectionalTeacherForcing(Strategy):
    """Teacher forcing for both directions of a bidirectional LM: the sum of their cross-entropies."""

    name = "bidirectional_teacher_forcing"

    def loss(self, model, batch, step: int) -> tuple[Tensor, int, dict]:
        top_f, top_b, _ = model.tops(batch.chars)  # each (B, T, D)
        loss, n = top_f.new_zeros((), dtype=torch.float32), 0
        for h, labels in ((top_f, batch.forward_labels), (top_b, batch.backward_labels)):
            real = labels != IGNORE  # (B, T)
            loss = loss - model.target_log_probs(h[real], labels[real]).sum()
            n += int(real.sum())
        return loss, n, {}


Objective = Literal["autoregressive", "carried", "supervised", "bidirectional", "captioning"]


def make_strategy(cfg: TrainingConfig, objective: Objective = "autoregressive") -> Strategy:
    """The strategy of a task's ``objective`` (see the module's docstring); an autoregressive model's is
    the one ``training.strategy`` names."""
    from attnkit.training.captioning_loss import DoublyStochasticAttention
    from attnkit.training.professor_forcing import ProfessorForcing
    from attnkit.training.scheduled_sampling import ParallelScheduledSampling, ScheduledSampling

    ls = cfg.label_smoothing
    fixed = {"carried": lambda: CarriedState(ls), "supervised": lambda: Supervised(ls),
             "bidirectional": BidirectionalTeacherForcing,
             "captioning": lambda: DoublyStochasticAttention(cfg.doubly_stochastic, ls)}
    if objective in fixed:
        return fixed[objective]()
    chosen = {"teacher_forcing": lambda s: TeacherForcing(ls), "scheduled_sampling": lambda s: ScheduledSampling(s, ls),
              "parallel_scheduled_sampling": lambda s: ParallelScheduledSampling(s, ls),
              "professor_forcing": lambda s: ProfessorForcing(s, ls)}
    return chosen[cfg.strategy.name](cfg.strategy)
