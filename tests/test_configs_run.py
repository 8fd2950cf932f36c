"""Every config under configs/ trains: its data read, its vocabulary built, its model made, and five
updates taken under the precision it asks for (bf16 where this CPU has it), as ``attnkit train
CONFIG --max-steps 5`` takes them. Validation is left out: the tiny-model tests cover it for every
model family, and on full-size data it would cost minutes.

The configs read the project's datasets from ``../shared/data``; without them these tests skip. The
ELMo configs read a trained biLM and the GloVe configs a vectors file, which are not in a fresh
clone: they get a biLM trained here for a few steps and a small vectors file of the right width.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from helpers import write_yaml
from tiny_runs import bilm

from attnkit.config import load_config
from attnkit.runtime import autocast, effective_precision
from attnkit.tasks import TASKS
from attnkit.tasks.base import Fitted
from attnkit.train import absolute_data_paths
from attnkit.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SHARED = ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"the datasets are not at {SHARED}")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list[str]]:
    """``--set`` options giving a config what a fresh clone lacks: a trained biLM, GloVe vectors."""
    from attnkit.cli.main import main

    root = tmp_path_factory.mktemp("inputs")
    cfg = write_yaml(root / "bilm.yaml", bilm(root / "data", [4]))
    assert main(["-q", "train", str(cfg), "--out", str(root / "bilm"), "--max-steps", "2"]) == 0
    vectors = root / "vectors.txt"
    vectors.write_text("".join(f"{w} {' '.join(['0.1'] * 100)}\n" for w in ("the", "a", ".")), encoding="utf-8")
    contextual, pretrained = [f"embeddings.contextual={root / 'bilm'}"], [f"embeddings.pretrained={vectors}"]
    return {"ewt-bilstm-elmo-tagger": contextual, "sst2-bilstm-elmo": contextual,
            "ewt-bilstm-glove-tagger": pretrained, "sst2-bilstm-glove": pretrained}


@pytest.fixture(scope="module", autouse=True)
def all_cores():
    """Full-size models: every core (the suite's default of one thread suits its tiny ones)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_takes_five_updates_under_its_own_precision(path, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository
    cfg = absolute_data_paths(load_config(path, inputs.get(path.stem, [])))
    prepared = TASKS[cfg.task].prepare(cfg, tmp_path, False)
    if isinstance(prepared, Fitted):  # counted, not trained (Kneser-Ney): reading its data is the check
        return
    t = cfg.training
    trainer = Trainer(prepared.model, prepared.strategy, t, tmp_path, prepared.epoch_batches, prepared.make_batch,
                      prepared.validate, prepared.meta, progress=False)
    batches = prepared.epoch_batches(0)[:5]
    assert len(batches) == 5
    for idx in batches:
        loss, tokens, _ = trainer.train_step(prepared.make_batch(idx))
        assert math.isfinite(loss) and tokens > 0
    with autocast(t.precision):  # what the steps ran under
        x = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    expected = torch.bfloat16 if effective_precision(t.precision) == "bf16" else torch.float32
    assert x.dtype == expected
