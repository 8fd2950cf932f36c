"""The course's notebooks (notebooks/, issue 38): one per course page in English and in Russian, each
generated from its jupytext source, and each run top to bottom on a smoke budget (``FULL = False``:
a few updates per model) in a real Jupyter kernel; a cell that raises fails its test. The notebooks run
in the course's order, English before Russian, sharing one folder of models, as a student's would."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))
build = pytest.importorskip("build_notebooks", reason="notebooks/build_notebooks.py needs jupytext and nbclient")
SHARED = ROOT.parent / "shared" / "data"
COURSE = ROOT / "docs" / "course"


def sources() -> list[Path]:
    return build.sources()


def test_every_course_page_has_its_notebook():
    pages = sorted(p.stem for p in COURSE.glob("[0-9][0-9]-*.md"))
    assert [s.stem for s in sources()] == pages


@pytest.mark.parametrize("source", sources(), ids=lambda s: s.stem)
def test_the_notebook_files_are_generated_from_the_source(source):
    import nbformat

    for lang in build.LANGS:
        made = build.notebook(source, lang)
        kept = nbformat.read(build.target(source, lang), as_version=4)
        assert [(c.cell_type, c.source) for c in kept.cells] == [(c.cell_type, c.source) for c in made.cells], \
            f"notebooks/{lang}/{source.stem}.ipynb differs from its source: run make notebooks"


@pytest.mark.parametrize("source", sources(), ids=lambda s: s.stem)
def test_each_language_has_the_same_text_cells_and_a_parameters_cell(source):
    import jupytext

    cells = jupytext.read(source).cells
    langs = [c.metadata.get("lang") for c in cells if c.cell_type == "markdown"]
    assert None not in langs, f"{source.name}: a markdown cell without lang"
    assert langs.count("en") == langs.count("ru") and langs[:2] == ["en", "ru"], source.name
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "FULL = True" in params[0].source and "RUNS = " in params[0].source, source.name
    en, ru = (build.notebook(source, lang) for lang in build.LANGS)
    code = [[c.source for c in nb.cells if c.cell_type == "code"] for nb in (en, ru)]
    assert code[0] == code[1], f"{source.name}: the languages' code differs"


def needs(source: Path) -> list[str]:
    """The datasets of ../shared/data a notebook reads (``notebook.start(RUNS, data=(...))``)."""
    found = re.search(r"notebook\.start\(RUNS, data=\(([^)]*)\)", source.read_text(encoding="utf-8"))
    return re.findall(r'"(\w+)"', found.group(1)) if found else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook-runs")


RUN_ORDER = [(s, lang) for s in sources() for lang in build.LANGS]


@pytest.mark.parametrize(("source", "lang"), RUN_ORDER, ids=[f"{lang}/{s.stem}" for s, lang in RUN_ORDER])
def test_the_notebook_runs_top_to_bottom(source, lang, runs):
    missing = [name for name in needs(source) if not (SHARED / name).is_dir()]
    if missing:  # a clone without ../shared beside it: the notebook would download them
        pytest.skip(f"{source.stem} reads ../shared/data/{missing[0]}, which is not beside this checkout")
    ran = build.execute(build.smoke(build.notebook(source, lang), runs), lang)
    code = [c for c in ran.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]
