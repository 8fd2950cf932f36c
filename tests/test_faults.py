"""Crash consistency (issue 26): a kill -9 at any moment, in the middle of a checkpoint write included,
loses nothing. The quick form of ``bench/faults.py`` runs here: real processes, real SIGKILLs, resumed
with the command a user types, compared bit for bit with the run left alone. Then each window a kill
could leave, made by hand: a run directory killed before its first checkpoint, a finished run resumed,
a corrupted or relabelled checkpoint, a failed write, TensorBoard events of a killed run."""

from __future__ import annotations

import errno
import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch

import attnkit.checkpoint as checkpoint
from attnkit.checkpoint import read_checkpoint, save_checkpoint
from attnkit.errors import UserError
from attnkit.train import train
from attnkit.training.metrics import read_metrics
from attnkit.training.trainer import BEST, LAST, STARTING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import faults  # noqa: E402  (bench/faults.py)


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    """bench/faults.py's task (20 updates) and its uninterrupted run."""
    root = tmp_path_factory.mktemp("faults")
    cfg = faults.config(root, faults.corpus(root, pairs=400), steps=20)
    ref, seconds = faults.reference(cfg, root, ranks=1)
    return root, cfg, ref, seconds


def test_killed_runs_resume_to_the_uninterrupted_run_bit_for_bit(fault_run):
    """Four SIGKILLs: half-way through writing the first last.safetensors, half-way through writing a
    model.safetensors (both before the first checkpoint: the run starts afresh), between two checkpoints
    (after update 14 of 20, checkpoints every 10), and after the last update (resumed from update 10,
    killed after 10 more, in the closing validation and scores). Every resume continues from what the
    kill left, and the end is the same run."""
    root, cfg, ref, _ = fault_run
    kills = [("dying in write", (LAST, 1)), ("dying in write", (BEST, 1)), ("updates", 14), ("updates", 10)]
    record = faults.campaign(cfg, ref, root / "killed", 1, kills)
    assert record.kills[:2] == [f"dying in write 1 of {LAST} (update 10)", f"dying in write 1 of {BEST} (update 10)"]
    assert record.kills[2].startswith("updates 14 (update 1")  # 14, or one or two more before the kill landed
    assert int(record.kills[2].split("update ")[-1][:-1]) < 20 and record.kills[3] == "updates 10 (update 20)"
    assert record.same == {"step_losses": True, "validations": True, LAST: True, BEST: True, "summary": True}
    assert not list((root / "killed").glob(".*.tmp*"))  # the killed writes' temporary files are gone


def test_the_comparison_sees_a_different_run(fault_run):
    """The check above is not vacuous: another seed is a different run, step by step and in the weights."""
    root, cfg, ref, _ = fault_run
    other = root / "other-seed.yaml"
    other.write_text(cfg.read_text().replace("seed: 7", "seed: 8"), encoding="utf-8")
    faults.finished(faults.start(other, root / "other", 1))
    same = faults.compare(ref, root / "other")
    assert not same["step_losses"] and not same[LAST] and not same[BEST]


# -- the windows a kill can leave, one by one ---------------------------------------------------------
def test_a_run_killed_after_its_first_best_model_and_before_its_first_last_resumes(tmp_path, toy_config):
    """The window between the first model.safetensors and the first last.safetensors: the directory holds
    a config, a best model and the mark of a starting run. ``--resume`` starts it afresh (from its saved
    config), and so does a fresh ``train``; both end as the run left alone."""
    cfg = toy_config("transformer", training={"valid_every": 3})
    train(cfg, tmp_path / "A", max_steps=6, progress=False)
    for how in ("resume", "fresh"):
        out = tmp_path / how
        train(cfg, out, max_steps=3, progress=False)
        (out / LAST).unlink()  # what the kill left: no last, a best model, the mark, metrics of steps 1-3
        (out / STARTING).write_text(json.dumps({"max_steps": 3, "max_minutes": 0.0}))
        (out / "summary.json").unlink(missing_ok=True)
        if how == "resume":
            summary = train(None, out, resume=True, max_steps=6, progress=False)
        else:
            summary = train(cfg, out, max_steps=6, progress=False)
        assert summary["steps"] == 6 and not (out / STARTING).exists()
        assert [r["step"] for r in read_metrics(out) if "loss" in r] == [r["step"] for r in read_metrics(
            tmp_path / "A") if "loss" in r]
        a, _ = read_checkpoint(tmp_path / "A" / LAST)
        b, _ = read_checkpoint(out / LAST)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_before_the_config_was_saved_says_what_to_do(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / STARTING).write_text("")
    with pytest.raises(UserError, match=r"nothing to resume \(the run stopped before it saved config.yaml\).*"
                                         r"attnkit train CONFIG --out"):
        train(None, out, resume=True, progress=False)


def test_a_model_directory_without_the_mark_is_not_deleted(tmp_path, toy_config):
    """A best model without ``last`` and without the mark is somebody's model (a copied run directory):
    training into it is refused, not a restart that deletes it."""
    out = tmp_path / "run"
    train(toy_config("transformer"), out, max_steps=2, progress=False)
    (out / LAST).unlink()
    with pytest.raises(UserError, match="holds a model"):
        train(toy_config("transformer"), out, max_steps=2, progress=False)
    assert (out / BEST).is_file()


def test_resuming_a_finished_run_trains_nothing(tmp_path, toy_config):
    """``--resume`` of a run that reached its --max-steps (a kill during its closing validation or summary
    leads there) trains no step more, however often it is repeated."""
    cfg = toy_config("transformer", training={"valid_every": 2})
    out = tmp_path / "run"
    first = train(cfg, out, max_steps=5, progress=False)
    shutil.copy(out / LAST, tmp_path / "finished")
    records = read_metrics(out)
    for _ in range(2):
        again = train(None, out, resume=True, progress=False)
        assert (again["steps"], again["stopped"], again["test"]) == (5, "max_steps", first["test"])
    assert read_metrics(out) == records
    a, _ = read_checkpoint(tmp_path / "finished")
    b, _ = read_checkpoint(out / LAST)
    assert all(torch.equal(a[g][k], b[g][k]) for g in a for k in a[g])


def test_tensorboard_holds_each_step_once_after_a_kill(tmp_path, toy_config):
    """Events a killed run logged past its checkpoint are purged when it resumes (TensorBoard's purge_step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = toy_config("transformer", training={"valid_every": 3, "log_every": 1, "tensorboard": True})
    out = tmp_path / "run"
    train(cfg, out, max_steps=3, progress=False)
    shutil.copy(out / LAST, tmp_path / "at3")
    train(None, out, resume=True, max_steps=5, progress=False)  # went on to step 5, then "killed" ...
    shutil.copy(tmp_path / "at3", out / LAST)  # ... so its checkpoint is still the one of step 3
    (out / "summary.json").unlink(missing_ok=True)
    train(None, out, resume=True, max_steps=6, progress=False)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == steps


# -- checkpoints: checksums and failed writes ---------------------------------------------------------
@pytest.fixture
def saved(tmp_path) -> Path:
    model = torch.nn.Linear(4, 3)
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, {"step": 1})
    return path


def data_start(path: Path) -> int:
    """Where the tensor bytes of a safetensors file begin (after the 8-byte length and the JSON header)."""
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + n


def test_a_flipped_bit_in_the_weights_is_a_one_line_error(saved):
    raw = bytearray(saved.read_bytes())
    raw[data_start(saved) + 5] ^= 0x10
    saved.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=rf"{saved}: damaged: its tensors do not match the checksum"):
        read_checkpoint(saved)


def test_a_tensor_relabelled_with_another_dtype_is_refused(saved):
    raw = saved.read_bytes()
    start = data_start(saved)
    header = raw[8:start].replace(b'"F32"', b'"I32"')  # the same size: safetensors alone accepts it
    saved.write_bytes(raw[:8] + header + raw[start:])
    with pytest.raises(UserError, match="damaged"):
        read_checkpoint(saved)


def test_aliases_that_name_no_tensor_are_refused(tmp_path):
    from attnkit.checkpoint import load_weights

    model = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="aliases"):
        load_weights(model, {"weight": torch.zeros(2, 2)}, {"bias": "nope"}, tmp_path / "x")
    with pytest.raises(UserError, match="aliases"):
        load_weights(model, {"weight": torch.zeros(2, 2)}, ["bias"], tmp_path / "x")


def test_a_write_that_fails_keeps_the_previous_checkpoint_and_names_the_file(saved, monkeypatch):
    before = saved.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(UserError, match=rf"{saved}: could not be written \(No space left on device\); "
                                        "the previous one is kept"):
        save_checkpoint(saved, torch.nn.Linear(4, 3), {"step": 2})
    assert saved.read_bytes() == before and not list(saved.parent.glob(".*.tmp*"))
    assert json.loads(json.dumps(read_checkpoint(saved)[1]["step"])) == 1
