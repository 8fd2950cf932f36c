"""A trained model directory: ``config.yaml``, the best weights ``model.safetensors`` and the task's own
files (tokenizers, labels). Every loader opens one here, so each reports the same one-line errors:
the directory is missing, a file is missing, or it holds another task's model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnkit.checkpoint import load_weights, read_checkpoint
from attnkit.config import AnyConfig, load_config
from attnkit.errors import UserError

CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"


def require_files(path: Path, *names: str) -> None:
    for name in names:
        if name == WEIGHTS and not (path / name).is_file() and (path / "model.bin").is_file():
            raise UserError(f"{path}: a CTranslate2 export (attnkit export), not a PyTorch model directory; "
                            "add --engine ctranslate2")
        if not (path / name).is_file():
            raise UserError(f"{path}: model directory is incomplete, {name} is missing")


def open_model_dir(path: str | Path, task: str | None = None, what: str = "",
                   files: tuple[str, ...] = (WEIGHTS,)) -> tuple[Path, AnyConfig]:
    """Check that ``path`` is a model directory holding ``config.yaml`` and ``files`` (and, given
    ``task``, a model of that task, ``what`` naming it in the error); returns the path and config."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: model directory not found")
    require_files(path, CONFIG, *files)
    cfg = load_config(path / CONFIG)
    if task is not None and cfg.task != task:
        raise UserError(f"{path}: holds a {cfg.task} model, not {what or 'a ' + task + ' model'}")
    return path, cfg


def load_best_weights(model: nn.Module, path: Path) -> dict:
    """Load the directory's best weights into ``model``; returns the checkpoint's document (step,
    validation scores)."""
    groups, doc = read_checkpoint(path / WEIGHTS)
    load_weights(model, groups["model"], doc.get("aliases", {}), path / WEIGHTS)
    return doc
