"""Tasks: what each ``task:`` of a config trains, scores and shows. ``TASKS`` is the one registry: the
training run, the CLI, the server, ``evaluate``, ``bench`` and the plots find a task's code through it.
A new task is one module with a ``Task`` subclass (``tasks/base.py``) and one line here."""

from __future__ import annotations

from pathlib import Path

from attnkit.inspection import Inspector
from attnkit.model_dir import open_model_dir
from attnkit.tasks import bilm, captioning, classification, language_model, static_vectors, tagging, translation
from attnkit.tasks.base import Task

TASKS: dict[str, Task] = {task.name: task for task in (
    translation.TASK,
    tagging.TASK,
    classification.TASK,
    language_model.TASK,
    bilm.TASK,
    static_vectors.TASK,
    captioning.TASK,
)}


def load_inspector(path: str | Path, device: str = "auto") -> Inspector:
    """The inspector of the model directory ``path``, its model on ``device``, from its task
    (``Task.inspector``)."""
    path, cfg = open_model_dir(path, files=())
    return TASKS[cfg.task].inspector(path, device)
