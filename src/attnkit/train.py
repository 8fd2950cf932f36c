"""Training any task from a config: the run directory, the task's data and model, the trainer loop,
the final scores."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from attnkit.checkpoint import atomic_write_text
from attnkit.config import AnyConfig, TrainingConfig, dump_config, load_config, parse_config, resolve_path
from attnkit.digests import digests
from attnkit.errors import UserError
from attnkit.limits import require_memory
from attnkit.model_dir import architecture, load_best_weights, read_files
from attnkit.runtime import deterministic, settle
from attnkit.tasks import TASKS
from attnkit.tasks.base import Fitted
from attnkit.training.deadline import DeadlineReached, time_limit
from attnkit.training.distributed import collective_timeout, join, leave, peer_lost, restarted, wait_for_main
from attnkit.training.trainer import BEST, LAST, STARTING, Limits, Trainer, check_resumable

log = logging.getLogger(__name__)

CONFIG = "config.yaml"


JOB = ".torchrun-job"  # the id of the torchrun job (TORCHELASTIC_RUN_ID) that made a run directory


def own_job(out: Path) -> bool:
    """Whether ``out`` was made by this torchrun job (an earlier attempt of it)."""
    return (out / JOB).is_file() and (out / JOB).read_text().strip() == os.environ.get("TORCHELASTIC_RUN_ID")


def resumes(out: Path, resume: bool, config: str | Path | None, max_steps: int | None = None,
            max_minutes: float | None = None) -> tuple[bool, str | Path | None, int | None, float | None]:
    """Whether a run continues from its ``last`` checkpoint, the config it starts from otherwise, and
    its limits (``max_steps``, ``max_minutes``: None, the run's own).

    It does with ``--resume``, unless the run stopped before its first checkpoint (a kill, a crash):
    that one starts afresh, from the config given or the one it saved, with the limits its first
    attempt was given (the mark of a starting run keeps them) unless given anew. A worker that torchrun
    restarted after a rank failed (``--max-restarts``) resumes in the run directory its own job made
    once that has a checkpoint. (A directory the job did not make is treated as the command says.)"""
    if restarted() and own_job(out):
        return (out / LAST).is_file(), config, max_steps, max_minutes
    if resume and starting(out):
        log.warning("%s: the run stopped before its first checkpoint: starting it afresh", out)
        if config is None and not (out / CONFIG).is_file():
            raise UserError(f"{out}: nothing to resume (the run stopped before it saved {CONFIG}); start it "
                            f"again with attnkit train CONFIG --out {out}")
        kept = first_limits(out)
        return (False, config if config is not None else out / CONFIG,
                kept.max_steps if max_steps is None else max_steps,
                kept.max_minutes if max_minutes is None else max_minutes)
    return resume, config, max_steps, max_minutes


def first_limits(out: Path) -> Limits:
    """The limits a run was started with, from the mark it has until its first checkpoint."""
    try:
        doc = json.loads((out / STARTING).read_text(encoding="utf-8"))
        return Limits(int(doc["max_steps"]), float(doc["max_minutes"]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise UserError(f"{out / STARTING}: damaged, so the limits the run was started with are unknown; start it "
                        f"again with attnkit train CONFIG --out {out} and its --max-steps / --max-minutes") from None


def starting(out: Path) -> bool:
    """Whether ``out`` holds a run that stopped (a kill, a crash) before its first ``last``."""
    return (out / STARTING).is_file() and not (out / LAST).is_file()


def prepare_out_dir(out: Path, resume: bool, limits: Limits | None = None) -> None:
    """Make ``out`` ready for a run; a fresh one is marked as starting, the mark keeping its ``limits``
    (what a --resume that finds no checkpoint yet starts again with)."""
    if resume:
        check_resumable(out)
    elif (out / LAST).exists():
        raise UserError(f"{out}: already holds a run; use --resume to continue it or --out for a new one")
    elif (out / BEST).exists() and not starting(out):
        raise UserError(f"{out}: holds a model ({BEST}) but no {LAST} to resume from; remove {out / BEST} to "
                        "train here, or use --out")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp*"):  # the half-written file of a checkpoint write that was killed
        stale.unlink()
    if not resume:  # what a run stopped before its first checkpoint left goes; the mark says one is starting
        (out / BEST).unlink(missing_ok=True)
        atomic_write_text(out / STARTING, json.dumps(asdict(limits or Limits())) + "\n")
    if "TORCHELASTIC_RUN_ID" in os.environ:  # this job now owns the directory (a restart of it resumes here)
        (out / JOB).write_text(os.environ["TORCHELASTIC_RUN_ID"] + "\n", encoding="utf-8")


def absolute_data_paths(cfg: AnyConfig) -> AnyConfig:
    """The same config with every data file path made absolute (``config.yaml`` of a run records it)."""
    raw = cfg.model_dump(mode="json")

    def fix(value):
        if isinstance(value, str):
            return str(resolve_path(value).resolve())
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    data = raw.get("data") or {}  # an imported model's config has none
    for split in ("train", "valid", "test", "prepared"):
        if data.get(split) is not None:
            data[split] = fix(data[split])
    if raw["training"].get("init_from") is not None:
        raw["training"]["init_from"] = fix(raw["training"]["init_from"])
    return parse_config(raw)


def run(config: str | Path | None, out: Path, overrides: list[str] | None = None, resume: bool = False,
        max_steps: int | None = None, max_minutes: float | None = None, progress: bool = True) -> dict:
    """A training run as ``attnkit train`` makes it: the run directory marked and logged
    (``train.log``), :func:`train`, then ``summary.json``; a run that fails before its first checkpoint
    leaves nothing behind. Another rank of a torchrun job trains beside rank 0 and writes nothing."""
    # also a torchrun restart (--max-restarts) of a run with a checkpoint; a run stopped before its first
    # checkpoint starts afresh
    resume, config, max_steps, max_minutes = resumes(out, resume, config, max_steps, max_minutes)
    world = join()
    if not world.main:  # another rank of a torchrun job: rank 0 owns the run directory and its logs
        return _follow(config, out, overrides, resume, max_steps, max_minutes, world.rank)
    created = not out.exists()
    prepare_out_dir(out, resume, Limits(max_steps or 0, max_minutes or 0.0))
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        summary = train(config, out, overrides, resume, max_steps, max_minutes, progress)
    except BaseException:
        if created and not any((out / name).exists() for name in (BEST, LAST)):
            shutil.rmtree(out, ignore_errors=True)  # a run that failed before its first checkpoint leaves nothing
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def summary_lines(summary: dict, out: Path) -> list[str]:
    """What a finished run says: why it stopped, its best validation, its test scores."""
    line = f"run: {out}  stopped: {summary['stopped']}"
    if "steps" in summary:
        line += (f" after {summary['steps']} steps ({summary['train_seconds']:.0f} s training, "
                 f"{summary['train_tokens_per_s']:.0f} tokens/s)")
    lines = [line]
    if summary.get("valid"):
        best = f", best at step {summary['best_step']}" if "best_step" in summary else ""
        lines.append(f"valid{best}: {_scores(summary['valid'])}")
    if "test" in summary:
        t = summary["test"]
        lines.append(f"test: {_scores(t)}" + (f"  [{t['bleu_signature']}]" if "bleu_signature" in t else ""))
    elif "test_skipped" in summary:
        lines.append(f"test: not scored ({summary['test_skipped']})")
    return lines


def _scores(scores: dict) -> str:
    return "  ".join(f"{k} {v}" for k, v in scores.items() if not k.endswith(("signature", "detail")))


def _follow(config, out: Path, overrides, resume: bool, max_steps, max_minutes, rank: int) -> dict:
    """Another rank's share of a torchrun job: it trains and says only what went wrong."""
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    try:
        return train(config, out, overrides, resume, max_steps, max_minutes, False)
    except RuntimeError as err:  # rank 0 stopped (a bad config, a run directory in use): it says why
        if not peer_lost(err):
            raise
        raise UserError(f"rank {rank}: the job ended under it (rank 0 stopped or another rank died: the "
                        "first error above says why)") from None


def train(config: str | Path | None, out: Path, overrides: list[str] | None = None, resume: bool = False,
          max_steps: int | None = None, max_minutes: float | None = None, progress: bool = True) -> dict:
    """Train (or resume) the task of ``config`` into ``out``; returns the final scores.

    ``max_steps`` bounds the updates in all, ``max_minutes`` the whole run's wall time: data preparation,
    training, validation and the final test scoring (what the deadline overtakes is cut short and said
    so). None: a resumed run keeps the limit it was started with, a fresh run has none."""
    start = time.monotonic()
    out = Path(out)
    resume, config, max_steps, max_minutes = resumes(out, resume, config, max_steps, max_minutes)
    world = join()
    if restarted() and own_job(out):
        if world.main:
            log.warning("torchrun restarted the job (attempt %s): %s",
                        int(os.environ["TORCHELASTIC_RESTART_COUNT"]) + 1,
                        f"resuming from {out / LAST}" if resume else "no checkpoint yet, starting afresh")
        if resume:  # the limits its first attempt set (given anew, --max-minutes would count from now)
            max_steps = max_minutes = None
    if world.main:
        prepare_out_dir(out, resume, Limits(max_steps or 0, max_minutes or 0.0))
    if resume:
        cfg = load_config(out / CONFIG, overrides)
        log.info("resuming %s with its saved config", out)
    else:
        cfg = load_config(config, overrides)
    if getattr(cfg, "data", "") is None:
        raise UserError(f"{config or out / CONFIG}: data: null; training needs data (an imported model's "
                        "config.yaml names none: copy it, give data, and start from the model with training.init_from)")
    cfg = absolute_data_paths(cfg)
    if world.size > 1 and not hasattr(cfg.training, "strategy"):
        raise UserError(f"task {cfg.task}: a library fits it in one process; run it without torchrun")
    if world.size > 1 and cfg.training.strategy.name == "professor_forcing":
        raise UserError("training.strategy: professor forcing's discriminator trains in one process for now")
    setup = settle(cfg.training.device, cfg.training.precision)  # before the data: a missing GPU fails at once
    if world.main:
        prepared = TASKS[cfg.task].prepare(cfg, out, resume)
        wait_for_main(world)
    else:  # the other ranks read the vocabularies rank 0 made, and take its weights below
        wait_for_main(world)
        prepared = TASKS[cfg.task].prepare(cfg, out, True)
    if not resume and world.main:
        atomic_write_text(out / CONFIG, dump_config(cfg))
    if isinstance(prepared, Fitted):  # counted or fitted, not trained: nothing to resume, no trainer
        summary = {**prepared.fit(), "wall_seconds": round(time.monotonic() - start, 1)}
        (out / STARTING).unlink(missing_ok=True)  # its model is written: a finished run, not a fresh one
        return summary

    require_training_memory(prepared.model, cfg.training.ema_decay > 0, setup.device)
    model = prepared.model.to(setup.device)
    if world.rank:  # each rank its own dropout masks and samples (the weights are rank 0's, from DDP)
        torch.manual_seed(cfg.training.seed + world.rank)
    # checked on load: the config's model section, and the tokenizers' and lists' checksums
    meta = {**prepared.meta, "architecture": architecture(cfg.model), "files": digests(out, read_files(out))}
    trainer = Trainer(model, prepared.strategy, cfg.training, out, prepared.epoch_batches, prepared.make_batch,
                      prepared.validate, meta, progress=progress and world.main, metric=prepared.metric,
                      higher_is_better=prepared.higher_is_better, started=start, world=world, setup=setup)
    if not resume and world.main:  # records of an earlier attempt here killed before its first checkpoint
        dropped = trainer.metrics.truncate(0)
        if dropped:
            log.info("dropped %d records of %s from an attempt that left no checkpoint", dropped, out / "metrics.jsonl")
    if resume:
        trainer.resume()
        trainer.limits = trainer.saved_limits.resumed(max_steps, max_minutes, trainer.wall_before)
        log_kept_limits(trainer.limits, trainer.wall_before, max_steps, max_minutes)
    else:
        trainer.limits = Limits(max_steps or 0, max_minutes or 0.0)
    limits = trainer.limits
    deadline = start + limits.max_minutes * 60 - trainer.wall_before if limits.max_minutes else None
    if resume and trainer.stopped_before == "time" and max_minutes is None and deadline is not None:
        deadline = min(deadline, start)  # it ended because its time was spent (the reserve is spent too)
    with deterministic(cfg.training.deterministic), gpu_memory_named(cfg.training), \
            collective_timeout(world, cfg.training.collective_timeout):
        result = trainer.run(max_steps=limits.max_steps, deadline=deadline, reserve_factor=prepared.reserve_factor)
    st = result.state
    if not world.main:  # rank 0 scores and reports; the others wait for it to end together
        leave(world)
        return {"task": cfg.task, "stopped": st.stopped, "steps": st.step, "rank": world.rank}

    # final scores with the best weights (there are none yet when stopped before the first validation)
    doc: dict = {}
    if (out / BEST).is_file():
        doc = load_best_weights(model, out)
    model.eval()
    summary = {"task": cfg.task, "stopped": st.stopped, "steps": st.step, "epochs": st.epoch, "ranks": world.size,
               "device": str(setup.device), "precision": setup.precision,
               "best_step": st.best_step, "params": prepared.meta.get("params"),
               "train_seconds": round(st.train_seconds, 1),
               "train_tokens_per_s": round(st.tokens / max(st.train_seconds, 1e-9), 1),
               "valid": doc.get("valid", {})}
    if prepared.test is not None and st.stopped != "interrupted":
        try:
            with torch.no_grad(), time_limit(deadline):
                summary["test"] = prepared.test(model)
        except DeadlineReached:
            summary["test_skipped"] = "the --max-minutes deadline came first; score it with attnkit evaluate"
            log.warning("test set not scored: the time limit (--max-minutes) came first; attnkit evaluate %s "
                        "scores it", out)
    summary["wall_seconds"] = round(time.monotonic() - start, 1)
    leave(world)
    return summary


def require_training_memory(model: torch.nn.Module, average: bool, device: torch.device | None = None) -> None:
    """Refuse to train a model whose training state would not fit on ``device`` (the CPU's memory, or
    the GPU's free memory): its weights, their gradients and the optimiser's two moments (and the
    weights' average), float32."""
    params = sum(p.numel() for p in model.parameters())
    copies = 5 if average else 4
    require_memory("training", 4 * copies * params,
                   f"{params:,} parameters x 4 bytes x {copies}: weights, gradients, Adam's two moments"
                   + (", the average" if average else ""), device=device)


@contextmanager
def gpu_memory_named(t: TrainingConfig) -> Iterator[None]:
    """A GPU's out-of-memory error as one line naming what to change (a CPU that runs out is killed)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"the GPU ran out of memory in training: lower training.batch_tokens (now {t.batch_tokens:,}) "
                        "and raise training.accumulate to keep the size of an update (in a validation: lower "
                        "decoding.batch_size)") from None


def log_kept_limits(limits: Limits, spent: float, max_steps: int | None, max_minutes: float | None) -> None:
    kept = []
    if max_steps is None and limits.max_steps:
        kept.append(f"--max-steps {limits.max_steps}")
    if max_minutes is None and limits.max_minutes:
        left = max(0.0, limits.max_minutes - spent / 60)
        kept.append(f"--max-minutes {limits.max_minutes:g} ({left:.1f} left)")
    if kept:
        log.info("resumed with the run's own limits: %s", ", ".join(kept))
