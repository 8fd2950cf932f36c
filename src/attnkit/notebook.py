"""What every notebook of the course (``notebooks/``) does first: work from the repository's folder
(the configs and ``../shared/data`` are relative to it), fetch the public datasets it reads where they
are missing (a Colab runtime), and say where it computes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from attnkit.datasets import fetch
from attnkit.errors import UserError


def repository(start: Path | None = None) -> Path:
    """The attnkit checkout the notebook runs in: the first folder from ``start`` (the current one) up,
    or its ``attnkit`` subfolder (where Colab's first cell cloned it), that holds ``configs/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for candidate in (folder, folder / "attnkit"):
            if (candidate / "configs").is_dir() and (candidate / "src" / "attnkit").is_dir():
                return candidate
    raise UserError(f"{here}: not inside an attnkit checkout (run the notebook from the repository's notebooks/)")


def start(runs: str | Path = "runs", data: tuple[str, ...] = ()) -> Path:
    """Move to the repository's folder, make sure the datasets ``data`` are in ``../shared/data`` (fetched
    where they are not), and return the folder the notebook's models go to."""
    root = repository()
    os.chdir(root)
    # a library that imports tqdm.auto in Jupyter without ipywidgets says so in every notebook's output
    warnings.filterwarnings("ignore", message="IProgress not found")
    for name in data:
        fetch(name, root.parent / "shared" / "data")
    _inline_figures()
    gpu = torch.cuda.is_available()
    device = f"cuda ({torch.cuda.get_device_name()})" if gpu else f"cpu, {torch.get_num_threads()} threads"
    print(f"attnkit in {root}; models go to {Path(runs)}; computing on {device}")
    return Path(runs)


def _inline_figures() -> None:
    """In Jupyter, a figure that a cell returns is shown as a picture (attnkit's figures are drawn without
    pyplot, which would otherwise register that)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:  # not in IPython
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")


def keep(figure, folder: str | Path, name: str):
    """Save ``figure`` as ``folder/name`` (a notebook's ``PICTURES``, ``course-img`` by default: the
    student's own folder; docs/course/img is redrawn by bench/course.sh) and return it, so that the
    cell shows it too."""
    from attnkit.plotting import save

    Path(folder).mkdir(parents=True, exist_ok=True)
    save(figure, Path(folder) / name)
    return figure
