"""The course's notebooks: one jupytext source per page (``notebooks/NN-*.py``, the percent format, its
markdown cells in English and in Russian, marked ``lang="en"`` / ``lang="ru"``, its code cells shared)
becomes ``notebooks/en/NN-*.ipynb`` and ``notebooks/ru/NN-*.ipynb``.

    python notebooks/build_notebooks.py            # the .ipynb files from the sources (outputs of unchanged code kept)
    python notebooks/build_notebooks.py --execute  # ... each run at full budget, outputs kept (make notebooks)
    python notebooks/build_notebooks.py --execute --smoke --runs /tmp/nb  # a few updates a model: do the cells run?

Every notebook has a cell tagged ``parameters`` (``FULL = True``, ``RUNS = "runs"``, ``PICTURES =
"course-img"``); a smoke run puts ``FULL = False``, its ``RUNS`` and ``PICTURES`` in a cell after it.
Run in order, English before Russian, the notebooks share their ``RUNS``: a model one notebook trained,
the next that asks for it loads (``attnkit.fit``'s ``reuse``)."""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
LANGS = ("en", "ru")
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_TIMEOUT = 900  # seconds: the longest cell of a full run is a training of a few minutes


def sources() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]-*.py"))


def notebook(source: Path, lang: str) -> nbformat.NotebookNode:
    """The notebook of ``source`` in ``lang``: its shared cells and the cells of that language."""
    nb = jupytext.read(source)
    nb.cells = [copy.deepcopy(c) for c in nb.cells if c.metadata.get("lang", lang) == lang]
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("lang", None)
        cell.id = f"{lang}-{i}"  # stable: a rebuilt notebook differs from the last only where its source does
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    return nb


def target(source: Path, lang: str) -> Path:
    return HERE / lang / f"{source.stem}.ipynb"


def carry_outputs(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """``nb`` with the outputs that the notebook at ``path`` has for the same code, code cell for code
    cell: an edited cell loses its outputs, the others keep theirs (after an edit that changes what later
    cells print, run the notebook again: make notebooks)."""
    if not path.is_file():
        return nb
    old = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for cell, was in zip((c for c in nb.cells if c.cell_type == "code"), old):
        if cell.source == was.source:
            cell.outputs, cell.execution_count = was.outputs, was.execution_count
    return nb


def smoke(nb: nbformat.NotebookNode, runs: Path) -> nbformat.NotebookNode:
    """``nb`` with ``FULL = False`` and ``RUNS`` set in a cell after its parameters cell."""
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb = copy.deepcopy(nb)
    source = f"FULL = False\nRUNS = {str(runs)!r}\nPICTURES = {str(runs / 'pictures')!r}"
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}, id="smoke")
    nb.cells.insert(at + 1, cell)
    return nb


def execute(nb: nbformat.NotebookNode, lang: str) -> nbformat.NotebookNode:
    """``nb`` run top to bottom in a fresh kernel, in the folder of its language; a cell that raises raises."""
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL["name"],
                   resources={"metadata": {"path": str(HERE / lang)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs")
    parser.add_argument("--smoke", action="store_true", help="with --execute: a few updates a model; outputs not kept")
    parser.add_argument("--runs", default="runs", help="with --smoke: where the models go")
    parser.add_argument("names", nargs="*", help="only these notebooks (e.g. 06-self-attention)")
    args = parser.parse_args(argv)
    chosen = [s for s in sources() if not args.names or s.stem in args.names]
    for source in chosen:
        for lang in LANGS:
            nb = notebook(source, lang)
            if args.execute:
                began = time.monotonic()
                ran = execute(smoke(nb, Path(args.runs)) if args.smoke else nb, lang)
                print(f"{lang}/{source.stem}: {time.monotonic() - began:.0f} s", flush=True)
                if args.smoke:
                    continue
                nb = ran
            else:
                nb = carry_outputs(nb, target(source, lang))
            target(source, lang).parent.mkdir(exist_ok=True)
            nbformat.write(nb, target(source, lang))
    return 0


if __name__ == "__main__":
    sys.exit(main())
