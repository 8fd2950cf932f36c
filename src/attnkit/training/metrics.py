"""The metrics log of a run: ``metrics.jsonl`` always, TensorBoard event files when asked.

Each record is one JSON line. Training records carry ``step``, ``epoch``, ``loss`` (per target
token, averaged since the previous record), ``lr`` and ``tokens_per_s``; validation records carry
``step``, ``valid_<score>`` for each score, ``best`` and ``valid_seconds``. With
``training.tensorboard: true`` the same numbers also go to ``DIR/tensorboard/`` as scalars
``train/<name>`` and ``valid/<score>`` (``tensorboard --logdir DIR/tensorboard``).

A resumed run logs each step once: the records a killed run wrote after its checkpoint are dropped
from ``metrics.jsonl``, and its TensorBoard events are purged (TensorBoard's own ``purge_step``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from attnkit.checkpoint import atomic_write_text
from attnkit.errors import UserError

METRICS, TENSORBOARD = "metrics.jsonl", "tensorboard"


class MetricsLog:
    def __init__(self, out: Path, tensorboard: bool = False):
        self.path, self.tensorboard_dir = Path(out) / METRICS, Path(out) / TENSORBOARD
        self.tensorboard = tensorboard
        self.writer = None  # made on the first record, so a run that logs nothing leaves no files
        self.purge_step: int | None = None  # events from this step on, logged by a killed run, are discarded

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self.scalars(record)

    def truncate(self, step: int) -> int:
        """Drop the records logged after ``step``: a run killed between two checkpoints logged steps
        that its resumed run takes again (a fresh run, ``step`` 0, drops everything). Returns how many
        records were dropped."""
        if step == 0:
            shutil.rmtree(self.tensorboard_dir, ignore_errors=True)
        else:
            self.purge_step = step + 1
        if not self.path.is_file():
            return 0
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the torn last line of a killed run
                continue
            if record.get("step", 0) <= step:
                keep.append(line)
        if len(keep) < len(lines):
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))
        return len(lines) - len(keep)

    def scalars(self, record: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.tensorboard_dir), purge_step=self.purge_step)
        step = record["step"]
        for key, value in record.items():
            if key in ("step", "best") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            tag = "valid/" + key[len("valid_"):] if key.startswith("valid_") else "train/" + key
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run directory's ``metrics.jsonl``, in order; a torn last line (a run killed
    mid-write) is skipped."""
    path = Path(run_dir) / METRICS
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    if not path.is_file():
        raise UserError(f"{run_dir}: no {METRICS} (not a run directory, or the run has logged nothing yet)")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if no < len(lines):
                raise UserError(f"{path}: line {no} is not JSON") from None
    return records
