"""One task, one object: ``TASKS`` is the only registry, it agrees with the config's tasks, and
nothing outside the tasks dispatches on a task's name or probes a strategy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import attnkit
from attnkit.config.tasks import ARCHS, TASK_CONFIGS, model_archs
from attnkit.tasks import TASKS, base
from attnkit.training.strategies import Strategy

PACKAGE = Path(attnkit.__file__).parent


def test_every_config_task_has_its_task_object_and_no_other():
    assert list(TASKS) == list(TASK_CONFIGS)
    for name, task in TASKS.items():
        assert isinstance(task, base.Task) and task.name == name and task.config is TASK_CONFIGS[name]
    assert len(ARCHS) == len(set(ARCHS)) == sum(len(model_archs(c)) for c in TASK_CONFIGS.values())


def test_each_task_module_defines_one_task():
    for path in sorted((PACKAGE / "tasks").glob("*.py")):
        if path.stem in ("__init__", "base"):
            continue
        defined = re.findall(r"^class (\w+)\(Task\):", path.read_text(encoding="utf-8"), flags=re.M)
        assert len(defined) == 1, (path.name, defined)
        assert re.search(r"^TASK = \w+\(\)$", path.read_text(encoding="utf-8"), flags=re.M), path.name


NAME_COMPARISON = re.compile(r"""\btask\s*[!=]=\s*["']|["']\s*[!=]=\s*\w*\.?task\b""")
OUTSIDE_THE_TASKS = [p for p in sorted(PACKAGE.rglob("*.py")) if p.parent.name not in ("tasks", "config")]


@pytest.mark.parametrize("path", OUTSIDE_THE_TASKS, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_dispatch_on_a_task_name_outside_the_tasks(path):
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if NAME_COMPARISON.search(line)]
    assert lines == []


def test_the_name_checker_sees_a_dispatch():
    assert NAME_COMPARISON.search('    if task == "tagging":')
    assert NAME_COMPARISON.search("if cfg.task != 'captioning':")
    assert not NAME_COMPARISON.search("if task is not None and cfg.task != task:")


def test_the_trainer_calls_strategies_without_probing_them():
    source = (PACKAGE / "training" / "trainer.py").read_text(encoding="utf-8")
    assert not re.search(r"hasattr\(self\.strategy", source)
    assert Strategy().state_dict() == ({}, {})  # a strategy that learns nothing has nothing to save


def test_the_help_names_every_task_and_its_commands():
    from attnkit.cli.main import build_parser

    text = " ".join(build_parser().format_help().split())
    for name, task in TASKS.items():
        assert name in text and all(verb in text for verb in task.verbs), name


@pytest.mark.parametrize("name", ["transformer", "captioner"])
def test_validation_and_test_score_the_model_they_are_given(name, tmp_path):
    """The trainer validates the weight average when there is one: the scores must be that model's,
    not those of the model being trained (which is in training mode, dropout on, between updates)."""
    import copy

    import yaml
    from helpers import randomize, run_config, toy_pairs, write_parallel
    from tiny_runs import CONFIGS

    from attnkit.config import load_config

    data = tmp_path / "data"
    if name == "transformer":
        for split, n, seed in (("train", 40, 1), ("valid", 8, 2), ("test", 8, 3)):
            write_parallel(data, split, toy_pairs(n, seed))
        raw = run_config(data, "transformer")
    else:
        raw = CONFIGS[name](data)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "run").mkdir()
    cfg = load_config(tmp_path / "cfg.yaml", [])
    prepared = TASKS[cfg.task].prepare(cfg, tmp_path / "run", False)
    given = randomize(copy.deepcopy(prepared.model), seed=3).eval()
    before = prepared.validate(given), prepared.test(given)
    randomize(prepared.model, seed=4).train()
    assert (prepared.validate(given), prepared.test(given)) == before
    assert prepared.validate(prepared.model.eval()) != before[0]
