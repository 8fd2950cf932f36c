"""The dependency direction inside attnkit: layers know nothing of data, config, CLI, training or
decoding; models know nothing of the CLI, training or decoding. Checked on the source (ast), so an
import hidden inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import attnkit

PACKAGE = Path(attnkit.__file__).parent


def modules_in(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` (a module of ``package``) imports, and of every name
    it imports from a module (``from a import b`` gives ``a`` and ``a.b``); relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imported_modules(path: Path) -> set[str]:
    package = ".".join(("attnkit", *path.relative_to(PACKAGE).parent.parts))
    return modules_in(path.read_text(encoding="utf-8"), package)


def violations_in(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if any(name == f or name.startswith(f + ".") for f in forbidden))


def violations(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return violations_in(imported_modules(path), forbidden)


LAYER_FILES = sorted((PACKAGE / "layers").glob("*.py"))
MODEL_FILES = sorted((PACKAGE / "models").glob("*.py"))


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: p.name)
def test_layers_import_nothing_above_them(path):
    forbidden = ("attnkit.data", "attnkit.config", "attnkit.cli", "attnkit.training", "attnkit.decoding",
                 "attnkit.models", "attnkit.train", "attnkit.translator", "matplotlib")
    assert violations(path, forbidden) == []


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_models_import_nothing_from_cli_training_or_decoding(path):
    forbidden = ("attnkit.cli", "attnkit.training", "attnkit.decoding", "attnkit.train", "attnkit.translator",
                 "matplotlib")
    assert violations(path, forbidden) == []


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_models_know_tensors_not_configs(path):
    """A model is built from sizes; building one from a config is attnkit/build.py's, on the task side."""
    assert violations(path, ("attnkit.config", "attnkit.data", "attnkit.tasks", "attnkit.build")) == []


def files(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir()
                                                 else [PACKAGE / part]))


LOWER_THAN_TRAINING = ("attnkit.training", "attnkit.train", "attnkit.tasks", "attnkit.cli", "attnkit.server")


@pytest.mark.parametrize("path", files("decoding"), ids=lambda p: p.name)
def test_decoding_knows_models_not_training_configs_or_tasks(path):
    """The searches and the rollout drive the decoder contract; the strategies and the diagnostic use them."""
    assert violations(path, (*LOWER_THAN_TRAINING, "attnkit.config", "attnkit.build")) == []


@pytest.mark.parametrize("path", files("checkpoint.py", "model_dir.py", "diagnostics.py", "translator.py"),
                         ids=lambda p: p.name)
def test_reading_models_and_using_them_needs_no_training(path):
    """Checkpoints and model directories sit below both training and inference: loading a model to
    translate or to measure its exposure bias imports nothing of the trainer or its strategies."""
    assert violations(path, LOWER_THAN_TRAINING) == []


@pytest.mark.parametrize("path", files("config"), ids=lambda p: p.name)
def test_configs_know_nothing_of_what_they_configure(path):
    forbidden = ("attnkit.models", "attnkit.layers", "attnkit.data", "attnkit.decoding", "attnkit.build",
                 *LOWER_THAN_TRAINING)
    assert violations(path, forbidden) == []


@pytest.mark.parametrize("path", files("training"), ids=lambda p: p.name)
def test_training_knows_no_task_and_no_interface(path):
    assert violations(path, ("attnkit.tasks", "attnkit.train", "attnkit.cli", "attnkit.server",
                             "attnkit.plotting", "attnkit.inspection")) == []


@pytest.mark.parametrize("path", files("hf", "export.py"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_moving_models_between_libraries_needs_no_trainer_and_no_interface(path):
    """Import and export read and write model directories: nothing of the trainer, the CLI or the server."""
    assert violations(path, ("attnkit.training", "attnkit.train", "attnkit.cli", "attnkit.server",
                             "attnkit.plotting")) == []


def test_inspection_is_below_the_tasks():
    """The tasks' inspectors build on inspection.py; it knows none of them (no import cycle)."""
    assert violations(PACKAGE / "inspection.py", ("attnkit.tasks", "attnkit.train", "attnkit.training")) == []


@pytest.mark.parametrize("path", files("tasks"), ids=lambda p: p.name)
def test_tasks_know_no_interface(path):
    assert violations(path, ("attnkit.cli", "attnkit.server", "attnkit.plotting")) == []


def test_the_direction_checks_fail_when_broken():
    """Each check sees an import that breaks its direction."""
    bad = {"models": "from attnkit.config import RNNConfig\n", "decoding": "from attnkit.training import strategies\n",
           "config": "from attnkit.models.base import Seq2Seq\n", "training": "import attnkit.tasks.translation\n"}
    assert violations_in(modules_in(bad["models"], "attnkit.models"), ("attnkit.config",))
    assert violations_in(modules_in(bad["decoding"], "attnkit.decoding"), LOWER_THAN_TRAINING)
    assert violations_in(modules_in(bad["config"], "attnkit.config"), ("attnkit.models",))
    assert violations_in(modules_in(bad["training"], "attnkit.training"), ("attnkit.tasks",))


def test_the_checker_sees_imports():
    assert len(LAYER_FILES) >= 4 and len(MODEL_FILES) >= 3
    assert "attnkit.layers.attention.MultiHeadAttention" in imported_modules(PACKAGE / "layers" / "transformer.py")
    assert violations(PACKAGE / "train.py", ("attnkit.training",))  # train.py does use the trainer


def test_relative_and_nested_imports_are_resolved():
    source = ("import torch\nfrom ..data import batching\nfrom . import rnn\n"
              "def f():\n    import matplotlib.pyplot as plt\n")
    names = modules_in(source, "attnkit.layers")
    assert {"torch", "attnkit.data", "attnkit.data.batching", "attnkit.layers.rnn", "matplotlib.pyplot"} <= names
    assert violations_in(names, ("attnkit.data", "matplotlib")) == ["attnkit.data", "attnkit.data.batching",
                                                                    "matplotlib.pyplot"]


PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))


def importers_of(forbidden: tuple[str, ...]) -> list[str]:
    return [p.relative_to(PACKAGE).as_posix() for p in PACKAGE_FILES if violations(p, forbidden)]


def test_only_the_plotting_module_imports_matplotlib():
    assert importers_of(("matplotlib",)) == ["plotting.py"]


def test_only_the_server_imports_the_web_framework():
    assert importers_of(("fastapi", "starlette", "uvicorn")) == ["server.py"]


@pytest.mark.parametrize("path", LAYER_FILES + MODEL_FILES + [PACKAGE / "inspection.py"],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_models_and_inspection_know_nothing_of_pictures_or_the_server(path):
    assert violations(path, ("attnkit.plotting", "attnkit.server", "attnkit.cli", "matplotlib", "fastapi")) == []
