"""Training any task from a config: the run directory, the task's data and model, the trainer loop,
the final scores."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from attnkit.config import AnyConfig, dump_config, load_config, parse_config, resolve_path
from attnkit.errors import UserError
from attnkit.model_dir import load_best_weights
from attnkit.tasks import TASKS
from attnkit.tasks.base import Fitted
from attnkit.training.checkpoint import atomic_write_text
from attnkit.training.trainer import BEST, LAST, Trainer, check_resumable

log = logging.getLogger(__name__)

CONFIG = "config.yaml"


def prepare_out_dir(out: Path, resume: bool) -> None:
    if resume:
        check_resumable(out)
    elif any((out / name).exists() for name in (BEST, LAST)):
        raise UserError(f"{out}: already holds a run; use --resume to continue it or --out for a new one")
    out.mkdir(parents=True, exist_ok=True)


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

    for split in ("train", "valid", "test"):
        if raw["data"].get(split) is not None:
            raw["data"][split] = fix(raw["data"][split])
    if raw["training"].get("init_from") is not None:
        raw["training"]["init_from"] = fix(raw["training"]["init_from"])
    return parse_config(raw)


def train(config: str | Path | None, out: Path, overrides: list[str] | None = None, resume: bool = False,
          max_steps: int = 0, max_minutes: float = 0.0, progress: bool = True) -> dict:
    """Train (or resume) the task of ``config`` into ``out``; returns the final scores."""
    start = time.monotonic()
    out = Path(out)
    prepare_out_dir(out, resume)
    if resume:
        cfg = load_config(out / CONFIG, overrides)
        log.info("resuming %s with its saved config", out)
    else:
        cfg = load_config(config, overrides)
    cfg = absolute_data_paths(cfg)
    prepared = TASKS[cfg.task](cfg, out, resume)
    if not resume:
        atomic_write_text(out / CONFIG, dump_config(cfg))
    if isinstance(prepared, Fitted):  # counted, not trained: nothing to resume, no trainer
        return {**prepared.fit(), "wall_seconds": round(time.monotonic() - start, 1)}

    model = prepared.model
    trainer = Trainer(model, prepared.strategy, cfg.training, out, prepared.epoch_batches, prepared.make_batch,
                      prepared.validate, prepared.meta, progress=progress, metric=prepared.metric,
                      higher_is_better=prepared.higher_is_better)
    if resume:
        trainer.resume()
    deadline = start + max_minutes * 60 if max_minutes else None
    result = trainer.run(max_steps=max_steps, deadline=deadline, reserve_factor=prepared.reserve_factor)
    st = result.state

    # final scores with the best weights (there are none yet when stopped before the first validation)
    doc: dict = {}
    if (out / BEST).is_file():
        doc = load_best_weights(model, out)
    model.eval()
    summary = {"task": cfg.task, "stopped": st.stopped, "steps": st.step, "epochs": st.epoch,
               "best_step": st.best_step, "params": prepared.meta.get("params"),
               "train_seconds": round(st.train_seconds, 1),
               "train_tokens_per_s": round(st.tokens / max(st.train_seconds, 1e-9), 1),
               "valid": doc.get("valid", {})}
    if prepared.test is not None and st.stopped != "interrupted":
        with torch.no_grad():
            summary["test"] = prepared.test(model)
    summary["wall_seconds"] = round(time.monotonic() - start, 1)
    return summary
