"""A trained model directory: ``config.yaml``, the best weights ``model.safetensors`` and the task's own
files (tokenizers, labels). Every loader opens one here, so each reports the same one-line errors:
the directory is missing, a file is missing, it holds another task's model, or (a stranger's
directory) its config or tokenizers are not those its weights were trained with."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnkit.checkpoint import load_weights, read_checkpoint, read_document
from attnkit.config import AnyConfig, load_config
from attnkit.digests import check_digests
from attnkit.errors import UserError, quoted

CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"
# the files besides config and weights that the tasks' loaders read: tokenizers, label and tag lists,
# and (bilm/) the bidirectional LM a tagger or classifier embeds
READ_SUFFIXES = (".spm", ".pieces.txt", ".vocab.txt")
READ_NAMES = frozenset({"labels.txt", "tags.txt"})
# what only training reads of a model section: a config may change it after training
TRAINING_ONLY = frozenset({"dropout", "attention_dropout", "torchvision_weights", "freeze_backbone", "carry_state"})


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
    if WEIGHTS in files:
        check_model_dir(path, cfg)
    return path, cfg


def architecture(model_cfg) -> dict:
    """What a checkpoint records of the model section it was trained with (``doc["architecture"]``):
    every field but those only training reads. Fields that change no shape (heads, norm placement,
    activation, positions' kind) would otherwise load into a model that computes something else."""
    return {k: v for k, v in model_cfg.model_dump(mode="json").items() if k not in TRAINING_ONLY}


def check_model_dir(path: Path, cfg: AnyConfig, doc: dict | None = None) -> None:
    """Refuse a model directory whose config disagrees with what its weights were trained with, or
    whose tokenizers or lists differ from those they were trained with (as the checkpoint, or its
    document ``doc``, recorded them; one written before it recorded them is not checked).
    ``open_model_dir`` calls it before anything is built, ``load_best_weights`` again."""
    doc = read_document(path / WEIGHTS) if doc is None else doc
    recorded = doc.get("architecture")
    if isinstance(recorded, dict) and getattr(cfg, "model", None) is not None:
        now = architecture(cfg.model)
        for key in sorted(recorded.keys() & now.keys()):  # a field added since takes its default
            if recorded[key] != now[key]:
                raise UserError(f"{path / CONFIG}: model.{key} is {quoted(now[key])}, but {WEIGHTS} was trained "
                                f"with {quoted(recorded[key])}; a config and its weights must agree")
    if "files" in doc:
        check_digests(path, doc["files"], str(path / WEIGHTS))


def read_files(path: Path) -> list[str]:
    """The names (relative to ``path``) of the files of a model directory its loaders read besides
    config.yaml and the weights; each checkpoint records their checksums (``doc["files"]``)."""
    return sorted(f.relative_to(path).as_posix() for f in path.rglob("*")
                  if f.is_file() and (f.name.endswith(READ_SUFFIXES) or f.name in READ_NAMES
                                      or f.relative_to(path).parts[0] == "bilm"))


def load_best_weights(model: nn.Module, path: Path) -> dict:
    """Load the directory's best weights into ``model``, once the directory is checked
    (:func:`check_model_dir`); returns the checkpoint's document (step, validation scores)."""
    groups, doc = read_checkpoint(path / WEIGHTS)
    if (path / CONFIG).is_file():
        check_model_dir(path, load_config(path / CONFIG), doc)
    load_weights(model, groups["model"], doc.get("aliases", {}), path / WEIGHTS)
    return doc
