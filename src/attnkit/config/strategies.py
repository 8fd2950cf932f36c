"""Training strategies (``training.strategy``): how an autoregressive model is fed while it learns.

A strategy is named by ``name``; the plain string ``teacher_forcing`` (the default) is short for
``{name: teacher_forcing}``. The scheduled-sampling strategies share the schedule of eps, the
probability of feeding the gold token (Bengio et al. 2015, section 2.4; ``i`` is the training step):

    constant:         eps_i = k
    linear:           eps_i = max(eps_min, k - c * i)       (0 <= k <= 1, c > 0)
    exponential:      eps_i = max(eps_min, k ** i)          (0 < k < 1)
    inverse_sigmoid:  eps_i = max(eps_min, k / (k + exp(i / k)))   (k >= 1)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from attnkit.config.base import MAX_LAYERS, MAX_WIDTH, Section


class TeacherForcingConfig(Section):
    """Feed the gold prefix at every position (the lecture's teacher forcing)."""

    name: Literal["teacher_forcing"] = "teacher_forcing"


class MixingConfig(Section):
    """What the scheduled-sampling strategies share: the eps schedule and what a non-gold input is."""

    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "inverse_sigmoid"
    k: float = Field(500.0, ge=0.0, description="the schedule's k (see the table above)")
    c: float = Field(0.0, ge=0.0, description="linear: eps falls by c per step")
    eps_min: float = Field(0.0, ge=0.0, le=1.0, description="eps never falls below this")
    feed: Literal["greedy", "sample"] = Field(
        "sample", description="a non-gold input is the model's argmax or a sample from its distribution")
    temperature: float = Field(1.0, gt=0.0, description="of the distribution 'sample' draws from")

    @model_validator(mode="after")
    def _k_fits_schedule(self):
        s, k = self.schedule, self.k
        if s in ("constant", "linear") and k > 1.0:
            raise ValueError(f"k: the {s} schedule starts at eps = k, which must be at most 1 (got {k})")
        if s == "linear" and self.c <= 0.0:
            raise ValueError("c: the linear schedule needs a slope c > 0")
        if s == "exponential" and not 0.0 < k < 1.0:
            raise ValueError(f"k: the exponential schedule needs 0 < k < 1 (got {k})")
        if s == "inverse_sigmoid" and k < 1.0:
            raise ValueError(f"k: the inverse_sigmoid schedule needs k >= 1 (got {k})")
        return self


class ScheduledSamplingConfig(MixingConfig):
    """Bengio et al. 2015: decoding step by step, each input is gold with probability eps, else the
    model's own prediction at the previous step."""

    name: Literal["scheduled_sampling"]


class ParallelScheduledSamplingConfig(MixingConfig):
    """Duckworth et al. 2019: ``passes`` teacher-forced passes, each mixing gold tokens with tokens
    predicted by the previous pass; the loss is taken on the last. ``passes: 2`` is the two-pass
    scheduled sampling for Transformers of Mihaylova and Martins (2019); ``passes: 1`` is teacher forcing."""

    name: Literal["parallel_scheduled_sampling"]
    passes: int = Field(2, ge=1, le=16, description="decoder passes; the first reads the gold prefix")


class ProfessorForcingConfig(Section):
    """Lamb et al. 2016: a discriminator learns to tell the decoder's hidden states under teacher
    forcing from those of free running; the model learns to fool it beside the likelihood loss."""

    name: Literal["professor_forcing"]
    weight: float = Field(1.0, ge=0.0,
                          description="of the adversarial cost (one per sequence) beside the sequence's summed NLL")
    feed: Literal["greedy", "sample"] = Field("sample", description="how the free-running pass picks its inputs")
    temperature: float = Field(1.0, gt=0.0)
    disc_hidden: int = Field(256, ge=1, le=MAX_WIDTH, description="the discriminator's GRU size per direction")
    disc_layers: int = Field(1, ge=1, le=MAX_LAYERS)
    disc_lr: float = Field(1e-3, gt=0.0)
    disc_steps: int = Field(1, ge=1, le=100, description="discriminator updates per model update")
    generator_min_accuracy: float = Field(
        0.75, ge=0.0, le=1.0, description="the model learns from the discriminator only while its accuracy is this")
    discriminator_max_accuracy: float = Field(
        0.99, ge=0.0, le=1.0, description="the discriminator is not updated while its accuracy is above this")
    teacher_forced_term: bool = Field(
        False, description="also push teacher-forced states toward free-running ones (Lamb et al.'s optional term)")


StrategyConfig = Annotated[
    TeacherForcingConfig | ScheduledSamplingConfig | ParallelScheduledSamplingConfig | ProfessorForcingConfig,
    Field(discriminator="name")]
STRATEGY_NAMES = ("teacher_forcing", "scheduled_sampling", "parallel_scheduled_sampling", "professor_forcing")
