"""Shared fixtures: tiny parallel corpora written to tmp_path, tiny run configs, a trained model directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from helpers import run_config, toy_pairs, write_parallel, write_yaml

# The models under test are tiny: one thread is faster than two and, on a shared 2-core machine,
# immune to the thread oversubscription that makes a second process slow everything 100-fold.
torch.set_num_threads(1)


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Path:
    """A word-level reversal corpus: train (40 pairs), valid (8), test (6) under tmp_path/data."""
    data = tmp_path / "data"
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    write_parallel(data, "test", toy_pairs(6, seed=3))
    return data


@pytest.fixture
def toy_config(tmp_path: Path, toy_corpus: Path):
    """Factory: write a tiny run config (``arch``, section overrides) and return its path."""
    def make(arch: str = "transformer", name: str = "cfg.yaml", **sections) -> Path:
        return write_yaml(tmp_path / name, run_config(toy_corpus, arch, **sections))
    return make


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny Transformer trained for 6 steps with the CLI (max_positions 12, for the truncation test)."""
    from attnkit.cli.main import main

    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    write_parallel(data, "test", toy_pairs(6, seed=3))
    cfg = write_yaml(root / "cfg.yaml", run_config(data, "transformer", model={"max_positions": 12}))
    out = root / "run"
    assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", "6"]) == 0
    return out


from tiny_runs import tiny_runs  # noqa: E402, F401  (trained model directories of every task, on demand)
