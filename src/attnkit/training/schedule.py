"""Learning-rate schedules. Each is stepped after every optimiser update and told every
validation result; its state is a plain dict (saved as JSON in checkpoints)."""

from __future__ import annotations

import math


class Schedule:
    """Linear warmup to ``lr`` over ``warmup`` steps, then constant."""

    def __init__(self, lr: float, warmup: int):
        self.base, self.warmup, self.step_count, self.scale = lr, warmup, 0, 1.0

    def factor(self, step: int) -> float:
        return min(1.0, step / self.warmup) if self.warmup else 1.0

    def lr(self) -> float:
        """The learning rate of the next update (update number ``step_count + 1``)."""
        return self.base * self.scale * self.factor(self.step_count + 1)

    def step(self) -> None:
        self.step_count += 1

    def validated(self, improved: bool) -> None:
        pass

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self.scale = state["step_count"], state["scale"]


class InverseSqrt(Schedule):
    """Vaswani et al.: linear warmup, then decay with 1/sqrt(step); the peak ``lr`` is at ``warmup``."""

    def factor(self, step: int) -> float:
        if not self.warmup:
            return 1.0
        return min(step / self.warmup, math.sqrt(self.warmup / step))


class Plateau(Schedule):
    """Warmup, then multiply by ``factor`` after ``patience`` validations without improvement."""

    def __init__(self, lr: float, warmup: int, factor: float, patience: int, min_lr: float):
        super().__init__(lr, warmup)
        self.decay, self.patience, self.min_lr, self.bad = factor, patience, min_lr, 0

    def validated(self, improved: bool) -> None:
        self.bad = 0 if improved else self.bad + 1
        if self.bad > self.patience:
            self.scale = max(self.scale * self.decay, self.min_lr / self.base)
            self.bad = 0

    def state_dict(self) -> dict:
        return {**super().state_dict(), "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.bad = state["bad"]


class Linear(Schedule):
    """Warmup, then a straight line down to zero at the end of the run's budget: the schedule that
    does best when training time is fixed (Li et al. 2020, "Budgeted training"). The trainer sets
    ``progress``, the fraction of the budget (``max_steps`` or the time limit) already spent."""

    def __init__(self, lr: float, warmup: int):
        super().__init__(lr, warmup)
        self.progress = 0.0

    def factor(self, step: int) -> float:
        return super().factor(step) * max(0.0, 1.0 - self.progress)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "progress": self.progress}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.progress = state["progress"]


def make_schedule(kind: str, lr: float, warmup: int, factor: float, patience: int, min_lr: float) -> Schedule:
    if kind == "inverse_sqrt":
        return InverseSqrt(lr, warmup)
    if kind == "plateau":
        return Plateau(lr, warmup, factor, patience, min_lr)
    if kind == "constant":
        return Schedule(lr, warmup)
    if kind == "linear":
        return Linear(lr, warmup)
    raise ValueError(f"unknown schedule {kind!r}")
