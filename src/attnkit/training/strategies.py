"""Training strategies: how a batch becomes a loss. Kept apart from the models and from the trainer.

Every strategy has ``loss(model, batch, step) -> (summed loss, number of target tokens, stats)``;
the trainer divides the sum by the count, and logs the stats (eps, discriminator accuracy, ...).

    TeacherForcing              the gold prefix at every position (the default; the lecture's)
    CarriedState                teacher forcing over text read in order, each batch starting from
                                the state the one before ended in (an LSTM LM's truncated BPTT)
    ScheduledSampling           Bengio et al. 2015                    training/scheduled_sampling.py
    ParallelScheduledSampling   Duckworth et al. 2019; Mihaylova and Martins 2019 with two passes
    ProfessorForcing            Lamb et al. 2016                      training/professor_forcing.py
    Supervised                  the plain loss of taggers and classifiers: outputs against gold labels

The autoregressive strategies see a model only through :class:`DecoderView` (a translator's
decoder over its encoded source, or a language model) and its decoder contract, so each works for
the RNN and the Transformer translators and for the language models alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.config import TrainingConfig
from attnkit.data.batching import Batch
from attnkit.decoding.search import sample_categorical
from attnkit.models.base import Seq2Seq
from attnkit.specials import BOS, PAD

IGNORE = -100  # the label of positions that have none (padding)


def token_nll(logits: Tensor, gold: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed (label-smoothed) cross-entropy over non-pad positions. logits (B, T, V), gold (B, T)."""
    return F.cross_entropy(logits.float().flatten(0, 1), gold.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing, reduction="sum")


class DecoderView:
    """One batch's decoder, whatever the model: a seq2seq decoder over its encoded source (encoded
    once, here), or a language model, which is its own decoder (a batch without ``src``)."""

    def __init__(self, model: Seq2Seq, batch: Batch):
        self.model, self.is_lm = model, batch.src is None
        self.enc = None if self.is_lm else model.encode(batch.src)
        self.decoder = model if self.is_lm else model.decoder

    def forward(self, tokens_in: Tensor):
        """The teacher-forced pass over ``tokens_in`` (B, T): ``.logits`` (B, T, V), ``.hidden`` (B, T, D)."""
        return self.model(tokens_in) if self.is_lm else self.decoder(tokens_in, self.enc)

    def init_state(self, batch_size: int):
        return self.decoder.init_state(batch_size if self.is_lm else self.enc)


def own_choice(logits: Tensor, feed: str, temperature: float = 1.0) -> Tensor:
    """The model's own next input: (..., V) logits -> (...) its argmax (``greedy``) or a sample at
    ``temperature`` (``sample``); never PAD or BOS."""
    logits = logits.detach().float().clone()
    logits[..., PAD] = float("-inf")
    logits[..., BOS] = float("-inf")
    if feed == "greedy":
        return logits.argmax(-1)
    return sample_categorical(torch.softmax(logits / temperature, dim=-1))


def gold_rate(fed: Tensor, tokens_in: Tensor) -> float:
    """The fraction of inputs after the first that are the gold token (padding excluded)."""
    real = tokens_in[:, 1:] != PAD
    return float(((fed[:, 1:] == tokens_in[:, 1:]) & real).sum() / real.sum().clamp_min(1))


class TeacherForcing:
    name = "teacher_forcing"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, model: Seq2Seq, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        logits = DecoderView(model, batch).forward(batch.tgt_in).logits
        return token_nll(logits, batch.tgt_out, self.label_smoothing), batch.num_tokens, {}


class CarriedState:
    """Teacher forcing for a language model that reads its training text in order (Zaremba et al.
    2014): batch k holds the next ``chunk`` tokens of the same parallel rows as batch k - 1, so the
    model starts from the state batch k - 1 ended in, detached (gradients stop at the boundary:
    truncated backpropagation through time). A batch with ``continues`` false starts from zero, and
    so does the first batch after ``--resume`` (the state is not checkpointed)."""

    name = "teacher_forcing"

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


def make_strategy(cfg: TrainingConfig):
    """The strategy ``training.strategy`` names, for a translator or a language model."""
    from attnkit.training.professor_forcing import ProfessorForcing
    from attnkit.training.scheduled_sampling import ParallelScheduledSampling, ScheduledSampling

    s, ls = cfg.strategy, cfg.label_smoothing
    if s.name == "teacher_forcing":
        return TeacherForcing(ls)
    if s.name == "scheduled_sampling":
        return ScheduledSampling(s, ls)
    if s.name == "parallel_scheduled_sampling":
        return ParallelScheduledSampling(s, ls)
    if s.name == "professor_forcing":
        return ProfessorForcing(s, ls)
    raise ValueError(f"unknown training strategy {s.name!r}")
