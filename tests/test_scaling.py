"""Bigger updates than one forward pass holds: ``training.accumulate`` sums micro-batches into one
update that is the update of one batch of them all (the ground the data-parallel ranks stand on)."""

from __future__ import annotations

import json

import pytest
from helpers import differing_weights

from attnkit.checkpoint import read_checkpoint
from attnkit.train import train

NO_DROPOUT = {"transformer": {"dropout": 0.0, "attention_dropout": 0.0}, "rnn": {"dropout": 0.0}}


def losses(run) -> list[float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r and "valid_loss" not in r]


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_accumulating_two_micro_batches_is_one_batch_twice_the_size(arch, toy_config, tmp_path):
    runs = {}
    for name, batch_tokens, accumulate in (("one", 96, 1), ("two", 48, 2)):
        cfg = toy_config(arch, name=f"{name}.yaml", model=NO_DROPOUT[arch],
                         training={"batch_tokens": batch_tokens, "accumulate": accumulate, "valid_every": 100})
        summary = train(cfg, tmp_path / name, max_steps=20, progress=False)
        assert summary["steps"] == 20
        runs[name] = tmp_path / name
    assert losses(runs["one"]) == pytest.approx(losses(runs["two"]), rel=1e-5)
    one, two = (read_checkpoint(runs[n] / "last.safetensors")[0]["model"] for n in ("one", "two"))
    assert differing_weights(one, two) == []


def test_a_carried_state_lm_refuses_accumulate(tmp_path, capsys):
    from helpers import write_yaml
    from tiny_runs import lstm_language_model

    from attnkit.cli.main import main

    raw = lstm_language_model(tmp_path / "data")
    raw["model"]["carry_state"] = True
    raw["training"] = {**raw["training"], "accumulate": 2}
    assert main(["-q", "train", str(write_yaml(tmp_path / "lm.yaml", raw)), "--out", str(tmp_path / "run")]) == 2
    assert "training.accumulate" in capsys.readouterr().err


def test_python_dash_m_attnkit_is_the_command_line():
    """``python -m attnkit`` (what ``torchrun -m attnkit`` starts) is the ``attnkit`` command."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "attnkit", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("attnkit ")
