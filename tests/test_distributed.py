"""Data-parallel training with torchrun on the CPU (gloo), started as a user starts it: two ranks with
batch B train exactly as one process with batch 2B, a stopped and resumed 2-rank run is the
uninterrupted one, a rank that dies or hangs ends the job with a message, and torchrun's restarts
resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from helpers import differing_weights, run_config, toy_pairs, write_parallel, write_yaml

from attnkit.checkpoint import read_checkpoint

NO_DROPOUT = {"transformer": {"dropout": 0.0, "attention_dropout": 0.0}, "rnn": {"dropout": 0.0}}
CPU = {"device": "cpu"}  # gloo on the CPU, also on a machine with a GPU
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def launcher(ranks: int, *torchrun: str) -> list[str]:
    if ranks == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), *torchrun]


def attnkit(*args: str, ranks: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher(ranks), "-m", "attnkit", "-q", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def losses(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    return data


def config(corpus: Path, path: Path, arch: str = "transformer", **training) -> Path:
    raw = run_config(corpus, arch, training={**CPU, "valid_every": 100, **training})
    del raw["data"]["test"]
    return write_yaml(path, raw)


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_two_ranks_with_batch_b_train_as_one_process_with_batch_2b(arch, corpus, tmp_path):
    """Also with accumulate 2 on each rank: 4 micro-batches of B/2, the first of each rank under DDP's
    no_sync, make the same update."""
    runs = {}
    for name, ranks, batch_tokens, accumulate in (("one", 1, 96, 1), ("two", 2, 48, 1), ("two_acc", 2, 24, 2)):
        raw = run_config(corpus, arch, model=NO_DROPOUT[arch], training={**CPU, "batch_tokens": batch_tokens,
                                                                          "accumulate": accumulate, "valid_every": 100})
        del raw["data"]["test"]
        cfg = write_yaml(tmp_path / f"{name}.yaml", raw)
        done = attnkit("train", str(cfg), "--out", str(tmp_path / name), "--max-steps", "20", ranks=ranks)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = read_checkpoint(tmp_path / name / "last.safetensors")
    one = runs["one"]
    for name in ("two", "two_acc"):
        assert runs[name][1]["loop"]["step"] == 20 and runs[name][1]["ranks"] == 2
        assert differing_weights(one[0]["model"], runs[name][0]["model"]) == [], name
    # the two-rank run is an ordinary run directory: one process translates with it
    out = attnkit("translate", str(tmp_path / "two"), "--input", str(corpus / "valid.src"))
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 8


def test_rank_0s_learning_rate_cuts_reach_every_rank(corpus, tmp_path):
    """A plateau schedule cuts the learning rate on rank 0's validations; every rank follows, so 2 ranks
    still train as 1 process with the batch twice the size."""
    plateau = {"schedule": "plateau", "plateau_patience": 0, "warmup_steps": 0, "valid_every": 3}
    runs = {}
    for ranks, batch_tokens in ((1, 96), (2, 48)):
        cfg = config(corpus, tmp_path / f"{ranks}.yaml", **plateau, batch_tokens=batch_tokens)
        cfg.write_text(cfg.read_text().replace("dropout: 0.1", "dropout: 0.0"))
        done = attnkit("train", str(cfg), "--out", str(tmp_path / str(ranks)), "--max-steps", "15", ranks=ranks)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[ranks] = read_checkpoint(tmp_path / str(ranks) / "last.safetensors")
    assert runs[2][1]["schedule"]["scale"] < 1.0  # it did cut
    assert runs[1][1]["schedule"] == runs[2][1]["schedule"]
    assert differing_weights(runs[1][0]["model"], runs[2][0]["model"]) == []


def test_a_stopped_and_resumed_two_rank_run_is_the_uninterrupted_one(corpus, tmp_path):
    """With dropout, so each rank's own random state has to come back from the checkpoint."""
    cfg = config(corpus, tmp_path / "c.yaml", valid_every=5)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert attnkit("train", str(cfg), "--out", str(whole), "--max-steps", "12", ranks=2).returncode == 0
    assert attnkit("train", str(cfg), "--out", str(parts), "--max-steps", "7", ranks=2).returncode == 0
    done = attnkit("train", "--resume", "--out", str(parts), "--max-steps", "12", ranks=2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert losses(parts) == losses(whole) and len(losses(whole)) == 12
    (a, doc_a), (b, doc_b) = (read_checkpoint(run / "last.safetensors") for run in (whole, parts))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert "torch_rng.rank1" in a["extra"] and not torch.equal(a["extra"]["torch_rng"], a["extra"]["torch_rng.rank1"])
    # the batches and random states are those of 2 ranks: resuming in one process is refused in one line
    one = attnkit("train", "--resume", "--out", str(parts), "--max-steps", "14")
    assert one.returncode == 2 and "written by a run of 2 rank(s), resumed with 1" in one.stderr
    assert len(one.stderr.strip().splitlines()) == 1


def test_a_one_process_model_starts_a_two_rank_run(corpus, tmp_path):
    """A checkpoint written by one process is read by two ranks (fine-tuning from it)."""
    cfg = config(corpus, tmp_path / "c.yaml")
    assert attnkit("train", str(cfg), "--out", str(tmp_path / "one"), "--max-steps", "3").returncode == 0
    done = attnkit("train", str(cfg), "--out", str(tmp_path / "two"), "--max-steps", "3",
                   "--set", f"training.init_from={tmp_path / 'one'}", ranks=2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "starting from the weights of" in (tmp_path / "two" / "train.log").read_text()


def workers(out: Path) -> dict[int, int]:
    """rank -> pid of the running attnkit processes that train into ``out``."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(out) in (proc / "cmdline").read_text():
                env = dict(v.split("=", 1) for v in (proc / "environ").read_text().split("\0") if "=" in v)
                if "RANK" in env and "attnkit" in (proc / "cmdline").read_text():
                    found[int(env["RANK"])] = int(proc.name)
        except OSError:
            continue
    return found


@contextmanager
def started(cfg: Path, out: Path, *torchrun: str, steps: int = 100_000):
    """A 2-rank training job in the background; whatever the test's outcome, nothing of it outlives it."""
    job = subprocess.Popen([*launcher(2, *torchrun), "-m", "attnkit", "-q", "train", str(cfg), "--out", str(out),
                            "--max-steps", str(steps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=ENV)
    try:
        yield job
    finally:
        for pid in [job.pid, *workers(out).values()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        job.wait(timeout=30)


def wait_for(condition, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
def test_killing_one_rank_ends_the_job_with_a_message_naming_it(corpus, tmp_path):
    cfg, out = config(corpus, tmp_path / "c.yaml"), tmp_path / "run"
    with started(cfg, out) as job:
        wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size > 0)
        ranks = workers(out)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = job.communicate(timeout=60)
        ended = time.monotonic() - killed
    assert job.returncode != 0 and ended < 20, ended
    # torchrun's report names the dead rank as the root cause; the survivor says what happened in one line
    root = stderr[stderr.index("Root Cause"):]
    assert "rank      : 1" in root or "rank: 1" in root, root
    assert "rank 0: another rank of the job ended at step" in stderr
    time.sleep(0.5)
    assert workers(out) == {}  # no process is left behind
    assert all(not Path(f"/proc/{pid}").exists() for pid in ranks.values())


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
def test_a_rank_that_hangs_ends_the_job_after_the_collective_timeout(corpus, tmp_path):
    """A stopped rank keeps its connections open, so nothing tells the others it is gone: they wait in
    the next collective for ``training.collective_timeout`` (here 6 s) and end with one line."""
    cfg, out = config(corpus, tmp_path / "c.yaml", collective_timeout=0.1), tmp_path / "run"
    with started(cfg, out) as job:
        wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size > 0)
        ranks = workers(out)
        os.kill(ranks[1], signal.SIGSTOP)
        stopped = time.monotonic()
        _, stderr = job.communicate(timeout=120)
        ended = time.monotonic() - stopped
    assert job.returncode != 0 and 5 < ended < 60, ended
    assert "rank 0: another rank of the job did not answer within training.collective_timeout at step" in stderr, \
        stderr[-4000:]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
def test_torchrun_restarts_resume_from_the_last_checkpoint(corpus, tmp_path):
    """With --max-restarts, a rank killed mid-run restarts the job, which resumes from ``last``: the
    run ends as the uninterrupted one, step for step."""
    cfg = config(corpus, tmp_path / "c.yaml", valid_every=40)
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert attnkit("train", str(cfg), "--out", str(whole), "--max-steps", "300", ranks=2).returncode == 0
    with started(cfg, out, "--max-restarts", "1", steps=300) as job:
        wait_for(lambda: (out / "last.safetensors").is_file())
        os.kill(workers(out)[1], signal.SIGKILL)
        _, stderr = job.communicate(timeout=240)
    assert job.returncode == 0, stderr[-3000:]
    assert "torchrun restarted the job (attempt 2): resuming from" in (out / "train.log").read_text()
    assert losses(out) == losses(whole) and len(losses(whole)) == 300
    a, b = (read_checkpoint(run / "last.safetensors")[0]["model"] for run in (whole, out))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_what_one_process_keeps_for_itself_is_refused_across_ranks(corpus, tmp_path):
    """Professor forcing's discriminator and a carried-state LSTM LM's fixed rows are one process's:
    asked of several ranks, each is a one-line error, not a silently different training."""
    from attnkit.errors import UserError
    from attnkit.tasks.language_model import in_order

    epoch_batches, _ = in_order(torch.arange(200), chunk=4, batch_tokens=16)
    with pytest.raises(UserError, match="fixed parallel rows"):
        epoch_batches(0, scale=2)
    raw = run_config(corpus, "rnn", training={**CPU, "strategy": "professor_forcing"})
    del raw["data"]["test"]
    done = attnkit("train", str(write_yaml(tmp_path / "pf.yaml", raw)), "--out", str(tmp_path / "pf"), ranks=2)
    assert done.returncode != 0 and "professor forcing's discriminator trains in one process" in done.stderr


def test_a_parameter_no_rank_used_keeps_no_gradient():
    """The DDP replica leaves a parameter that no rank's batch reached without a gradient (as in one
    process), so the optimiser leaves it alone instead of stepping on a zero."""
    import socket

    import torch.distributed as dist

    from attnkit.training.distributed import World, replicate

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        unused = torch.nn.Parameter(torch.zeros(4))
        model.register_parameter("unused", unused)
        replica = replicate(model, World(0, 1), torch.device("cpu"))
        replica(torch.ones(1, 3)).sum().backward()
        assert unused.grad is None and model.weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_gloos_words_for_a_hung_peer_are_recognised():
    """Where the wait ends decides gloo's words: in a backward's all-reduce, a stopped peer is "Application
    timeout caused pair closure" (seen in CI), elsewhere "Timed out waiting ... for recv"."""
    from attnkit.training.distributed import World, lost_rank, peer_lost

    for words in ("Application timeout caused pair closure", "[gloo/transport/tcp/unbound_buffer.cc:81] Timed out "
                  "waiting 6000ms for recv operation to complete"):
        assert peer_lost(RuntimeError(words))
        assert "did not answer within training.collective_timeout at step 4" in str(lost_rank(World(0, 2), 3,
                                                                                               RuntimeError(words)))
    assert not peer_lost(RuntimeError("CUDA out of memory"))
    assert "ended at step 4" in str(lost_rank(World(0, 2), 3, RuntimeError("Connection reset by peer")))
