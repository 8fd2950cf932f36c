"""Data-parallel training with torchrun on the CPU (gloo), started as a user starts it: two ranks
with batch B train exactly as one process with batch 2B, and what they write is an ordinary run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import differing_weights, run_config, toy_pairs, write_parallel, write_yaml

from attnkit.checkpoint import read_checkpoint

NO_DROPOUT = {"transformer": {"dropout": 0.0, "attention_dropout": 0.0}, "rnn": {"dropout": 0.0}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def attnkit(*args: str, ranks: int = 1) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                if ranks > 1 else [sys.executable])
    return subprocess.run([*launcher, "-m", "attnkit", "-q", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


@pytest.mark.parametrize("arch", ["transformer", "rnn"])
def test_two_ranks_with_batch_b_train_as_one_process_with_batch_2b(arch, tmp_path):
    data = tmp_path / "data"
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    runs = {}
    for ranks, batch_tokens in ((1, 96), (2, 48)):
        raw = run_config(data, arch, model=NO_DROPOUT[arch], training={"batch_tokens": batch_tokens,
                                                                        "valid_every": 100})
        del raw["data"]["test"]
        cfg = write_yaml(tmp_path / f"r{ranks}.yaml", raw)
        done = attnkit("train", str(cfg), "--out", str(tmp_path / f"r{ranks}"), "--max-steps", "20", ranks=ranks)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[ranks] = tmp_path / f"r{ranks}"
    one, two = (read_checkpoint(runs[r] / "last.safetensors") for r in (1, 2))
    assert one[1]["loop"]["step"] == two[1]["loop"]["step"] == 20
    assert differing_weights(one[0]["model"], two[0]["model"]) == []
    # the two-rank run is an ordinary run directory: one process translates with it
    out = attnkit("translate", str(runs[2]), "--input", str(data / "valid.src"))
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 8


def test_resuming_a_multi_rank_run_is_refused_with_one_line(tmp_path):
    data = tmp_path / "data"
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    raw = run_config(data, "rnn")
    del raw["data"]["test"]
    cfg = write_yaml(tmp_path / "c.yaml", raw)
    assert attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "2").returncode == 0
    done = attnkit("train", "--resume", "--out", str(tmp_path / "run"), ranks=2)
    assert done.returncode != 0 and "not supported yet: resume it in one process" in done.stderr


def test_what_one_process_keeps_for_itself_is_refused_across_ranks(tmp_path):
    """Professor forcing's discriminator and a carried-state LSTM LM's fixed rows are one process's:
    asked of several ranks, each is a one-line error, not a silently different training."""
    from attnkit.errors import UserError
    from attnkit.tasks.language_model import in_order

    epoch_batches, _ = in_order(torch.arange(200), chunk=4, batch_tokens=16)
    with pytest.raises(UserError, match="fixed parallel rows"):
        epoch_batches(0, scale=2)
    data = tmp_path / "data"
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    raw = run_config(data, "rnn", training={"strategy": "professor_forcing"})
    del raw["data"]["test"]
    done = attnkit("train", str(write_yaml(tmp_path / "pf.yaml", raw)), "--out", str(tmp_path / "pf"), ranks=2)
    assert done.returncode != 0 and "professor forcing's discriminator trains in one process" in done.stderr


def test_summed_gradients_leave_a_parameter_no_rank_used_without_one(toy_config, tmp_path):
    """After the all-reduce, a parameter that no rank's micro-batches reached has no gradient (as in one
    process), so the optimiser leaves it alone instead of stepping on a zero."""
    import socket

    import torch.distributed as dist

    from attnkit.training.distributed import World
    from attnkit.training.trainer import Trainer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        unused = torch.nn.Parameter(torch.zeros(4))
        model.register_parameter("unused", unused)
        from attnkit.config import TrainingConfig

        trainer = Trainer(model, None, TrainingConfig(), tmp_path, lambda epoch, scale=1: [], None, None, {},
                          progress=False, world=World(0, 2))  # summing over a one-process group: the identity
        model(torch.ones(1, 3)).sum().backward()
        weight_grad = model.weight.grad.clone()
        loss, tokens = trainer.sum_gradients(5.0, 7)
        assert (loss, tokens) == (5.0, 7) and unused.grad is None and torch.equal(model.weight.grad, weight_grad)
    finally:
        dist.destroy_process_group()
