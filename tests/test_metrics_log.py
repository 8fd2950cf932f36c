"""Training you can watch: metrics.jsonl in every run, TensorBoard event files when asked."""

from __future__ import annotations

import json

import pytest
from helpers import write_yaml
from tiny_runs import CONFIGS

from attnkit.cli.main import main
from attnkit.errors import UserError
from attnkit.training.metrics import MetricsLog, read_metrics


def test_tensorboard_event_files_hold_the_same_numbers_as_the_metrics_log(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_yaml(tmp_path / "cfg.yaml", CONFIGS["rnn"](tmp_path / "data"))
    out = tmp_path / "run"
    assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", "3",
                 "--set", "training.tensorboard=true"]) == 0
    records = read_metrics(out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/tokens_per_s", "valid/loss", "valid/bleu", "valid/chrf"} <= tags
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in records if "loss" in r]
    bleu = [(e.step, e.value) for e in events.Scalars("valid/bleu")]
    assert bleu == [(r["step"], pytest.approx(r["valid_bleu"], rel=1e-6)) for r in records if "valid_bleu" in r]


def test_without_the_option_there_are_no_event_files(tiny_runs):
    run = tiny_runs["rnn"]
    assert read_metrics(run) and not (run / "tensorboard").exists()


def test_metrics_log_skips_a_torn_last_line_and_names_a_broken_one(tmp_path):
    log = MetricsLog(tmp_path)
    log.write({"step": 1, "loss": 2.0})
    log.write({"step": 2, "loss": 1.5})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a run killed mid-write
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(UserError, match="line 2 is not JSON"):
        read_metrics(tmp_path)
    assert json.loads(lines[0]) == {"step": 1, "loss": 2.0}
