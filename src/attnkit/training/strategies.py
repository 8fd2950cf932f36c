"""Training strategies: how a batch becomes a loss. Kept apart from the models and the trainer.

``TeacherForcing`` feeds the gold prefix at every position (the default; the lecture's
"teacher forcing"). Later strategies (scheduled sampling, professor forcing) share the interface:
``loss(model, batch, step) -> (summed loss, number of target tokens, stats)``.
``Supervised`` is the plain loss of taggers and classifiers: the model's outputs against gold
labels, ``IGNORE`` where there is no label (padding).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from attnkit.data.batching import Batch
from attnkit.models.base import Seq2Seq
from attnkit.specials import PAD


def token_nll(logits: Tensor, gold: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed (label-smoothed) cross-entropy over non-pad positions. logits (B, T, V), gold (B, T)."""
    return F.cross_entropy(logits.float().flatten(0, 1), gold.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing, reduction="sum")


class TeacherForcing:
    name = "teacher_forcing"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, model: Seq2Seq, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        # a language model's batch has no source: the model reads the target prefix alone
        logits = (model(batch.tgt_in) if batch.src is None else model(batch.src, batch.tgt_in)).logits
        loss = token_nll(logits, batch.tgt_out, self.label_smoothing)
        return loss, batch.num_tokens, {}


IGNORE = -100  # the label of positions that have none (padding)


class Supervised:
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


def make_strategy(name: str, label_smoothing: float) -> TeacherForcing:
    if name == "teacher_forcing":
        return TeacherForcing(label_smoothing)
    raise ValueError(f"unknown training strategy {name!r}")
