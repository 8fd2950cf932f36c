"""The training loop. It knows nothing about the model or the task: it gets a strategy that turns a
batch into a loss, a function that lists an epoch's batches, and a function that validates.

Checkpoints, in the run directory:
    model.safetensors   the best weights so far (by validation BLEU or loss); with
                        ``training.ema_decay``, the best of the weights' moving average
    last.safetensors    the latest weights + optimiser + RNG + loop position (+ the average):
                        ``--resume`` starts here
    .starting           a fresh run's mark until its first ``last``: a run stopped before that
                        (a kill, a crash) starts afresh, with ``train`` or ``--resume``
Both are written atomically; Ctrl-C or SIGTERM stops after the current step and saves ``last``;
a kill at any moment leaves a directory that ``--resume`` continues exactly.

The model and its strategy run as one module (:class:`Objective`), which is what DDP wraps when
torchrun starts several ranks (``training/distributed.py``).
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from attnkit.checkpoint import load_weights, model_tensors, optimizer_state, read_checkpoint, save_checkpoint
from attnkit.config import TrainingConfig
from attnkit.data.batching import Batch
from attnkit.errors import UserError
from attnkit.runtime import Setup, device_of, settle, to_device
from attnkit.training.averaging import WeightAverage
from attnkit.training.deadline import DeadlineReached, time_limit
from attnkit.training.distributed import (
    World,
    from_main,
    from_main_numbers,
    gather,
    lost_rank,
    peer_lost,
    replicate,
    sum_over_ranks,
)
from attnkit.training.metrics import METRICS, MetricsLog
from attnkit.training.schedule import make_schedule
from attnkit.training.strategies import Strategy

log = logging.getLogger(__name__)

BEST, LAST = "model.safetensors", "last.safetensors"
STARTING = ".starting"  # a fresh run's mark until its first ``last``: stopped before it, it starts afresh
STOPS = ("", "converged", "max_steps", "max_epochs", "time", "interrupted")  # why a run ended ("": it has not)


@dataclass
class LoopState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed
    best: float | None = None
    best_step: int = 0
    bad_validations: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0  # the run's wall time so far, every invocation's (data preparation included)
    validation_due: bool = False  # the deadline cut the validation of this step short: resuming takes it first
    stopped: str = ""  # why the last run ended: converged, max_steps, max_epochs, time, interrupted


@dataclass
class Limits:
    """A run's budget, kept in its checkpoint so that ``--resume`` keeps it: updates in all and
    wall-clock minutes in all, every invocation's (0: no limit)."""

    max_steps: int = 0
    max_minutes: float = 0.0

    def resumed(self, max_steps: int | None, max_minutes: float | None, spent_seconds: float) -> Limits:
        """The limits of a resumed run: these, except for those given anew; new minutes count from now."""
        return Limits(self.max_steps if max_steps is None else max_steps,
                      self.max_minutes if max_minutes is None
                      else (spent_seconds / 60 + max_minutes if max_minutes else 0.0))


@dataclass
class Result:
    state: LoopState
    last_validation: dict


def make_optimizer(model: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter (much faster than a Python loop over them on CPU)
    if cfg.optimizer == "sgd":  # the classic LSTM LM recipe: a large learning rate, cut on plateaus
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, fused=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay,
               fused=True)


ECHO_SECONDS = 0.5  # a signal this soon after the first is its echo: torchrun passes Ctrl-C on to its ranks


@contextmanager
def stop_on_signal(flag: dict):
    """SIGINT / SIGTERM set ``flag["stop"]``; the loop stops after the current step. A second
    Ctrl-C interrupts at once (one within ``ECHO_SECONDS`` of the first is the same Ctrl-C, which
    under torchrun reaches a rank twice: from the terminal and from torchrun)."""
    def handler(signum, frame):
        if flag.get("stop"):
            if time.monotonic() - flag["at"] < ECHO_SECONDS:
                return
            raise KeyboardInterrupt
        flag["stop"], flag["at"] = signal.Signals(signum).name, time.monotonic()
        log.warning("%s received: stopping after this step (again to abort)", flag["stop"])

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signal handling
        old = {}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Objective(torch.nn.Module):
    """A model and the strategy that turns a batch into its loss, as one module: its forward pass is the
    strategy's whole computation, which is what DDP needs to see (it syncs what a forward pass used)."""

    def __init__(self, model: torch.nn.Module, strategy: Strategy):
        super().__init__()
        self.model, self.strategy = model, strategy

    def forward(self, batch, step: int):
        return self.strategy.loss(self.model, batch, step)


class Trainer:
    def __init__(self, model: torch.nn.Module, strategy: Strategy, cfg: TrainingConfig, out_dir: Path,
                 epoch_batches: Callable[[int], list[list[int]]], make_batch: Callable[[list[int]], Batch],
                 validate: Callable[[torch.nn.Module], dict], meta: dict, progress: bool = True,
                 metric: str | None = None, higher_is_better: bool | None = None, started: float | None = None,
                 world: World = World(), setup: Setup | None = None):
        """``started``: the ``time.monotonic()`` at which this invocation began (its data preparation
        counts towards the time limit); default: now. ``setup``: the device (where ``model`` already is)
        and precision (``runtime.settle``); default: the model's device at ``cfg.precision``."""
        self.model, self.strategy, self.cfg, self.out = model, strategy, cfg, Path(out_dir)
        self.world = world  # the ranks of a torchrun job (training/distributed.py); rank 0 validates and writes
        self.setup = setup or settle(str(device_of(model)), cfg.precision)
        # fp16's loss scale (it passes everything through otherwise); the losses are sums over a batch's
        # tokens, so it starts that much lower than PyTorch's 2^16 for a mean
        self.scaler = self.setup.grad_scaler(2.0**16 / cfg.batch_tokens)
        self.objective = Objective(model, strategy)
        if world.size > 1:
            self.objective = replicate(self.objective, world, self.setup.device)
        self.epoch_batches, self.make_batch, self.validate_fn = epoch_batches, make_batch, validate
        self.meta = meta  # saved with every checkpoint (what the model directory needs to be read back)
        self.optimizer = make_optimizer(model, cfg)
        self.schedule = make_schedule(cfg.schedule, cfg.lr, cfg.warmup_steps, cfg.plateau_factor,
                                      cfg.plateau_patience, cfg.min_lr)
        self.state = LoopState()
        self.started = time.monotonic() if started is None else started
        self.wall_before = 0.0  # wall seconds of the invocations before this one (resumed runs)
        self.limits = Limits()  # set by the caller; saved with ``last`` for --resume
        self.saved_limits = Limits()  # what the resumed checkpoint had
        self.stopped_before = ""
        self.average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None
        self.progress = progress
        self.metrics = MetricsLog(self.out, cfg.tensorboard)  # metrics.jsonl, and TensorBoard if asked
        # the validation score that picks the best model, and its direction
        self.metric = metric or ("loss" if cfg.early_stopping == "auto" else cfg.early_stopping)
        self.higher_is_better = (higher_is_better if higher_is_better is not None
                                 else self.metric in ("bleu", "accuracy"))

    # -- checkpoints ----------------------------------------------------------------------
    def save_last(self) -> None:
        """Write ``last``: the whole loop, to continue exactly. Every rank calls it (each one's random
        state goes into the file); rank 0 writes."""
        rngs = gather(torch.get_rng_state(), self.world)
        cuda = self.setup.device.type == "cuda"
        cuda_rngs = gather(torch.cuda.get_rng_state(self.setup.device), self.world) if cuda else []
        if not self.world.main:
            return
        extra = {_rank_key("torch_rng", r): t for r, t in enumerate(rngs)}
        extra.update({_rank_key("cuda_rng", r): t for r, t in enumerate(cuda_rngs)})
        self.state.wall_seconds = self.wall_before + time.monotonic() - self.started
        meta = {**self.meta, "loop": asdict(self.state), "schedule": self.schedule.state_dict(),
                "python_rng": _json_rng(random.getstate()), "limits": asdict(self.limits), "ranks": self.world.size}
        if self.scaler.is_enabled():
            meta["grad_scaler"] = self.scaler.state_dict()
        tensors, meta["strategy"] = self.strategy.state_dict()  # what it learns itself, if anything
        extra.update({f"strategy.{k}": v for k, v in tensors.items()})
        if self.average is not None:
            tensors, aliases = model_tensors(self.average.model)
            extra.update({f"average.{k}": v for k, v in tensors.items()})
            meta["average"] = {"updates": self.average.updates, "aliases": aliases}
        save_checkpoint(self.out / LAST, self.model, meta, self.optimizer, extra)
        (self.out / STARTING).unlink(missing_ok=True)

    def resume(self) -> None:
        groups, doc = read_checkpoint(self.out / LAST)
        try:
            self.restore(groups, doc)
        except (KeyError, TypeError, ValueError, IndexError) as err:  # a hand-edited document
            raise UserError(f"{self.out / LAST}: damaged: its training state does not read back "
                            f"({type(err).__name__}: {err})") from None
        dropped = self.metrics.truncate(self.state.step)
        if dropped:
            log.info("dropped %d records of %s logged after the checkpoint (they are taken again)",
                     dropped, METRICS)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", self.out / LAST, self.state.step,
                 self.state.epoch, self.state.batch_in_epoch)

    def restore(self, groups: dict[str, dict[str, torch.Tensor]], doc: dict) -> None:
        """The loop, model, optimiser, schedule, strategy, average and random state of a ``last`` file."""
        ranks = doc.get("ranks", 1)
        if ranks != self.world.size:
            how = ("in one process" if ranks == 1 else f"with torchrun --nproc_per_node {ranks} (or {ranks} "
                   "ranks over several machines)")
            raise UserError(f"{self.out / LAST}: written by a run of {ranks} rank(s), resumed with "
                            f"{self.world.size}: each update's batches and random state are those of "
                            f"{ranks} rank(s); resume it {how}")
        load_weights(self.model, groups["model"], doc["aliases"], self.out / LAST)
        self.optimizer.load_state_dict(optimizer_state(groups["optim"], doc["optimizer"]))
        self.schedule.load_state_dict(doc["schedule"])
        self.state = LoopState(**{**doc["loop"], "stopped": ""})
        self.stopped_before = doc["loop"].get("stopped", "")  # why the run it continues had ended
        self.wall_before = self.state.wall_seconds
        self.saved_limits = Limits(**doc.get("limits", {}))
        # before the RNG: building a strategy's parts (professor forcing's discriminator) draws numbers
        self.strategy.load_state_dict(_prefixed(groups["extra"], "strategy."), doc.get("strategy", {}))
        if self.average is not None:
            if "average" not in doc:
                raise UserError(f"{self.out / LAST}: written without training.ema_decay, so there is no "
                                "average to resume")
            load_weights(self.average.model, _prefixed(groups["extra"], "average."), doc["average"]["aliases"],
                         self.out / LAST)
            self.average.updates = doc["average"]["updates"]
        torch.set_rng_state(groups["extra"][_rank_key("torch_rng", self.world.rank)])
        cuda_rng = groups["extra"].get(_rank_key("cuda_rng", self.world.rank))
        if cuda_rng is not None and self.setup.device.type == "cuda":  # a CPU run's resume on a GPU starts it afresh
            torch.cuda.set_rng_state(cuda_rng, self.setup.device)
        if "grad_scaler" in doc and self.scaler.is_enabled():
            self.scaler.load_state_dict(doc["grad_scaler"])
        random.setstate(_py_rng(doc["python_rng"]))

    def log_metrics(self, record: dict) -> None:
        if self.world.main:
            self.metrics.write(record)

    # -- the loop -------------------------------------------------------------------------
    def train_step(self, *micro: Batch) -> tuple[float, int, dict]:
        """One update over one or more micro-batches (``training.accumulate``): the mean loss per token,
        the token count, and the strategy's stats (averaged over the micro-batches).

        Each micro-batch's summed loss is backpropagated as it is, and the summed gradients are then
        divided by the update's token count: the gradient of the loss per token over the whole update,
        whatever way its examples were cut into micro-batches or ranks (tested equal to one batch of
        them all). Across ranks DDP averages the gradients in the last micro-batch's backward pass (the
        others run under ``no_sync``), so the division is by the tokens of all ranks over their number."""
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr()
        self.optimizer.zero_grad(set_to_none=True)
        loss_total, n_tokens, stats = 0.0, 0, {}
        for i, batch in enumerate(micro):
            last = i == len(micro) - 1
            with nullcontext() if last or self.world.size == 1 else self.objective.no_sync():
                with self.setup.autocast():
                    loss_sum, n, batch_stats = self.objective(batch, self.state.step)
                self.scaler.scale(loss_sum).backward()
            loss_total, n_tokens = loss_total + loss_sum.item(), n_tokens + n
            for k, v in batch_stats.items():
                stats[k] = stats.get(k, 0.0) + v / len(micro)
        if self.world.size > 1:  # every rank's losses and tokens, added up
            totals = sum_over_ranks(torch.tensor([loss_total, n_tokens], dtype=torch.float64), self.world)
            loss_total, n_tokens = float(totals[0]), int(totals[1])
        self.scaler.unscale_(self.optimizer)  # fp16: the true gradients, before they are scaled and clipped
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        torch._foreach_mul_(grads, self.world.size / n_tokens)
        if self.cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed, and the scale lowered
        self.scaler.update()
        skipped = self.scaler.get_scale() < scale
        if self.scaler.is_enabled():
            stats["skipped_updates"] = float(skipped)  # the fraction logged: how often fp16 overflowed
        if skipped:  # no update was made: the average and the schedule wait too
            return loss_total / n_tokens, n_tokens, stats
        if self.average is not None:
            self.average.update(self.model)
        self.schedule.step()
        return loss_total / n_tokens, n_tokens, stats

    def train_on(self, micro: list[list[int]]) -> tuple[float, int, dict]:
        """``train_step`` over the micro-batches of these example indices, made and moved to the device."""
        return self.train_step(*(to_device(self.make_batch(idx), self.setup.device) for idx in micro))

    def updates(self, epoch: int) -> list[list[list[int]]]:
        """The epoch's updates, each a list of micro-batches (example indices): batches of ``accumulate``
        times the configured size, formed as the task forms them, each cut into ``accumulate`` shares
        of its examples taken in turn (a batch is sorted by length, so the shares are alike)."""
        k, ranks = self.cfg.accumulate, self.world.size
        if k * ranks == 1:
            return [[batch] for batch in self.epoch_batches(epoch)]
        scale, mine = k * ranks, slice(self.world.rank * k, (self.world.rank + 1) * k)  # this rank's shares
        return [[batch[i::scale] for i in range(scale)][mine] for batch in self.epoch_batches(epoch, scale=scale)
                if len(batch) >= scale]

    def validate(self, count_for_stopping: bool = True, deadline: float | None = None) -> dict | None:
        """Score the model (or its average) on the validation set, keep it if best; None when the
        ``deadline`` came first (nothing is scored or saved then)."""
        start = time.monotonic()
        model = self.average.model if self.average is not None else self.model
        model.eval()
        try:
            with torch.no_grad(), self.setup.autocast(), time_limit(deadline):
                scores = self.validate_fn(model)
        except DeadlineReached:
            log.warning("step %d: validation cut short by the time limit (--max-minutes): not scored",
                        self.state.step)
            return None
        value = scores[self.metric]
        better = (self.state.best is None or (value > self.state.best if self.higher_is_better
                                              else value < self.state.best))
        if better:
            self.state.best, self.state.best_step = value, self.state.step
            save_checkpoint(self.out / BEST, model, {**self.meta, "step": self.state.step, "valid": scores})
        if count_for_stopping:
            self.state.bad_validations = 0 if better else self.state.bad_validations + 1
            self.schedule.validated(better)
        seconds = time.monotonic() - start
        record = {"step": self.state.step, **{f"valid_{k}": v for k, v in scores.items()},
                  "best": better, "valid_seconds": round(seconds, 2)}
        self.log_metrics(record)
        log.info("step %d: %s%s", self.state.step,
                 "  ".join(f"{k} {v:.4g}" for k, v in scores.items()), "  (best)" if better else "")
        self.last_valid_seconds = seconds
        return scores

    @contextmanager
    def on_lost_rank(self):
        """A collective that failed because another rank died or hung becomes one line (torchrun ends the
        job)."""
        self.step_started = time.monotonic()
        try:
            yield
        except RuntimeError as err:
            if self.world.size == 1 or not peer_lost(err):
                raise
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's own SIGTERM must not cut the line short
            # a wait as long as the timeout is one, whatever words the backend chose for it
            waited = time.monotonic() - self.step_started >= 0.9 * 60 * self.cfg.collective_timeout
            raise lost_rank(self.world, self.state.step, err, waited) from None

    def budget(self, max_steps: int, deadline: float | None) -> Callable[[int, float], float] | None:
        """For a schedule that decays over the budget: (step, now) -> the fraction of it spent, the larger
        of the steps' and the time's. The time counts from this call, starting where a resumed
        schedule left off."""
        if not hasattr(self.schedule, "progress"):
            return None
        if not max_steps and deadline is None:
            raise UserError(f"training.schedule: {self.cfg.schedule} decays to zero at the end of the budget; "
                            "give training.max_steps, --max-steps or --max-minutes")
        start, done = time.monotonic(), self.schedule.progress

        def spent(step: int, now: float) -> float:
            by_steps = step / max_steps if max_steps else 0.0
            by_time = (done + (1.0 - done) * (now - start) / max(deadline - start, 1e-9)
                       if deadline is not None else 0.0)
            return min(1.0, max(by_steps, by_time))

        return spent

    def ended(self, max_steps: int, deadline: float | None, reserve: float = 0.0) -> str:
        """Why the run ends now, "" if it goes on: ``max_steps`` reached, the ``deadline`` less ``reserve``
        seconds passed, validation stopped improving, or ``max_epochs`` done."""
        st, cfg = self.state, self.cfg
        if max_steps and st.step >= max_steps:
            return "max_steps"
        if deadline is not None and time.monotonic() + reserve >= deadline:
            return "time"
        if cfg.patience and st.bad_validations >= cfg.patience:
            return "converged"
        if cfg.max_epochs and st.epoch >= cfg.max_epochs:
            return "max_epochs"
        return ""

    def run(self, max_steps: int = 0, deadline: float | None = None, reserve_factor: float = 1.0) -> Result:
        """Train until convergence (early stopping), ``max_steps``, ``max_epochs`` or ``deadline``
        (a ``time.monotonic()`` value). The loop leaves ``reserve_factor`` x the last validation's
        duration for the final validation (and test), a sixth of the time left before the first;
        a validation the deadline still overtakes is cut short, and said so."""
        cfg, st = self.cfg, self.state
        max_steps = max_steps or cfg.max_steps
        budget = self.budget(max_steps, deadline)
        self.last_valid_seconds = 0.0
        first_reserve = (deadline - time.monotonic()) / 6 if deadline is not None else 0.0
        flag: dict = {}
        last_scores: dict = {}
        validated_at = -1
        bar = tqdm(total=max_steps or None, initial=st.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True, desc="train")
        window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
        window_stats: dict[str, list[float]] = {}  # the strategy's stats (eps, discriminator accuracy, ...)
        # log lines print above the bar, which stays at the bottom (and on the screen once done)
        redirect = logging_redirect_tqdm([logging.getLogger()]) if self.progress else nullcontext()
        if st.step:  # a resumed run that had already ended trains nothing (unless given new limits)
            ended = STOPS[from_main(STOPS.index(self.ended(max_steps, deadline)), self.world)]
            if ended:
                st.stopped, validated_at = ended, st.step
            elif st.validation_due and self.world.main:  # the validation the deadline cut short, first
                scores = self.validate(deadline=deadline)
                if scores is not None:
                    last_scores, validated_at = scores, st.step
                    st.validation_due = False
        with self.on_lost_rank(), stop_on_signal(flag), redirect:
            while not st.stopped:
                if cfg.max_epochs and st.epoch >= cfg.max_epochs:
                    st.stopped = "max_epochs"
                    break
                batches = self.updates(st.epoch)
                while st.batch_in_epoch < len(batches):
                    t0 = self.step_started = time.monotonic()
                    if budget:
                        self.schedule.progress = budget(st.step, t0)
                    if self.world.size > 1:  # rank 0's clock and validations set every rank's learning rate
                        self.schedule.load_state_dict(from_main_numbers(self.schedule.state_dict(), self.world))
                    reserve = self.last_valid_seconds * reserve_factor if self.last_valid_seconds else first_reserve
                    loss, n_tok, stats = self.train_on(batches[st.batch_in_epoch])
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss} at step {st.step + 1}; lower training.lr")
                    st.batch_in_epoch += 1
                    st.step += 1
                    st.tokens += n_tok
                    st.train_seconds += time.monotonic() - t0
                    window_loss += loss * n_tok
                    window_tokens += n_tok
                    for k, v in stats.items():
                        window_stats.setdefault(k, []).append(v)
                    bar.update(1)
                    if st.step % cfg.log_every == 0:
                        elapsed = time.monotonic() - window_start
                        record = {"step": st.step, "epoch": st.epoch, "loss": window_loss / window_tokens,
                                  "lr": self.schedule.lr(), "tokens_per_s": window_tokens / max(elapsed, 1e-9),
                                  **{k: sum(v) / len(v) for k, v in window_stats.items()}}
                        self.log_metrics(record)
                        log.info("step %d: train loss %.4f  lr %.3g  %.0f tokens/s", st.step, record["loss"],
                                 record["lr"], record["tokens_per_s"])
                        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}",
                                        tok_s=f"{record['tokens_per_s']:.0f}")
                        window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
                        window_stats = {}
                    if st.step % cfg.valid_every == 0:
                        if self.world.main:
                            scores = self.validate(deadline=deadline)
                            if scores is None:  # cut short by the deadline: no time for a closing one either
                                st.stopped, validated_at, st.validation_due = "time", st.step, True
                            else:
                                last_scores, validated_at = scores, st.step
                        self.save_last()
                        window_start = time.monotonic()
                    st.stopped = "interrupted" if flag.get("stop") else self.ended(max_steps, deadline, reserve) \
                        or st.stopped
                    if self.world.size > 1:  # rank 0 decides for every rank
                        st.stopped = STOPS[from_main(STOPS.index(st.stopped), self.world)]
                    if st.stopped:
                        break
                else:
                    st.epoch += 1
                    st.batch_in_epoch = 0
            bar.close()
            # ``last`` keeps the loop exactly as it was after the final step, so --resume reproduces an
            # uninterrupted run; the closing validation only updates the best model.
            self.save_last()
        if self.world.size > 1:  # the ranks' training together is over: the DDP replica lets go of the group
            self.objective = self.objective.module
        if not self.world.main:
            return Result(st, last_scores)
        if st.stopped != "interrupted" and validated_at != st.step:
            last_scores = self.validate(count_for_stopping=False, deadline=deadline) or last_scores
        if st.stopped != "interrupted" and not (self.out / BEST).is_file():
            # no validation finished (the deadline cut it): the model directory still gets weights
            log.warning("no validation finished before the run ended: %s holds the weights of step %d, "
                        "unvalidated", BEST, st.step)
            model = self.average.model if self.average is not None else self.model
            save_checkpoint(self.out / BEST, model, {**self.meta, "step": st.step, "valid": {}})
        self.metrics.close()
        return Result(st, last_scores)


def _rank_key(name: str, rank: int) -> str:
    """The name of a rank's tensor in ``last``: rank 0's is the one a single process writes."""
    return name if rank == 0 else f"{name}.rank{rank}"


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, under the rest of their names."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _json_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_rng(doc: list) -> tuple:
    return (doc[0], tuple(doc[1]), doc[2])


def check_resumable(out_dir: Path) -> None:
    if not (Path(out_dir) / LAST).is_file():
        raise UserError(f"{out_dir}: nothing to resume ({LAST} is missing)")
