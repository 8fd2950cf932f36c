"""What a GPU run depends on, tested on the CPU where it can be (issue 35): the GPU a model is loaded on
becomes the current one, batches are pinned whole and alone, the training-state check reads the
GPU's free memory, a GPU's out-of-memory error is one line naming ``training.batch_tokens``, and
``training.deterministic`` sets PyTorch's deterministic mode for the run and restores it after.
(The RNN's dtype under a GPU's bf16 autocast: tests/test_precision.py; the collective timeout:
tests/test_distributed.py.)"""

from __future__ import annotations

import os

import pytest
import torch

from attnkit import runtime
from attnkit.cli.main import main
from attnkit.errors import UserError
from attnkit.limits import require_memory
from attnkit.training.trainer import Trainer


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine that says it has two GPUs; records the devices made current."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return current


def test_the_gpu_picked_becomes_the_current_one(two_gpus):
    assert runtime.pick_device("cuda:1") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]  # pinned memory and bare launches now go to cuda:1, not 0
    assert runtime.pick_device("cpu") == torch.device("cpu") and len(two_gpus) == 1


def test_the_servers_model_thread_runs_on_the_models_gpu(monkeypatch):
    """The current GPU is per thread: the thread that runs every request makes the model's its own."""
    import threading

    from attnkit.server import Queue

    made_current = []
    monkeypatch.setattr(torch.cuda, "set_device",
                        lambda device: made_current.append((threading.current_thread().name, device)))
    queue = Queue(device=torch.device("cuda", 1))
    ran_on = queue.run(lambda: threading.current_thread().name)
    assert made_current == [(ran_on, torch.device("cuda", 1))] and ran_on.startswith("attnkit-model")
    assert Queue(device=torch.device("cpu")).run(lambda: 1) == 1 and len(made_current) == 1


def test_training_checks_its_state_against_the_device_it_trains_on(toy_config, tmp_path, monkeypatch):
    from attnkit import limits

    asked = []
    real = limits.device_memory
    monkeypatch.setattr(limits, "device_memory", lambda device=None: asked.append(device) or real(device))
    cfg = toy_config("transformer", training={"device": "cpu"})
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    assert torch.device("cpu") in asked


def test_a_batch_is_pinned_alone_not_with_the_storage_it_views(monkeypatch):
    pinned_bytes = []

    def pin_memory(self):  # a CPU build has no pinned memory: record what would be pinned
        pinned_bytes.append(self.untyped_storage().nbytes())
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    stream = torch.arange(100_000).view(20, 5_000)  # a carried-state LM's token stream, (rows, columns)
    columns = stream[:, 100:135]  # one batch: a strided view of it
    out = runtime.pinned(columns)
    assert torch.equal(out, columns) and out.is_contiguous()
    assert pinned_bytes == [columns.numel() * columns.element_size()]  # 5,600 bytes, not the stream's 800,000


def test_the_training_state_check_reads_the_gpus_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 1024**3, 80 * 1024**3))
    gpu = torch.device("cuda", 0)
    require_memory("training", 1024**3, "the arithmetic", device=gpu)  # fits in the 2 GiB free
    with pytest.raises(UserError, match=r"^training: needs 3\.0 GiB \(the arithmetic\); this GPU \(cuda:0\) has "
                                        r"2\.0 GiB free$"):
        require_memory("training", 3 * 1024**3, "the arithmetic", device=gpu)


def test_a_gpus_out_of_memory_error_is_one_line_naming_batch_tokens(toy_config, tmp_path, monkeypatch, capsys):
    def run(self, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(Trainer, "run", run)
    cfg = toy_config("transformer", training={"device": "cpu"})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the GPU ran out of memory" in err
    assert "lower training.batch_tokens (now 48)" in err and "training.accumulate" in err
    assert not (tmp_path / "run").exists()  # nothing was written yet, nothing is left


@pytest.mark.parametrize("asked", [True, False])
def test_deterministic_training_sets_pytorchs_deterministic_mode_for_the_run(asked, toy_config, tmp_path,
                                                                              monkeypatch):
    seen = {}
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    real_run = Trainer.run

    def run(self, **kwargs):
        seen["deterministic"] = torch.are_deterministic_algorithms_enabled()
        seen["cudnn"] = torch.backends.cudnn.deterministic
        seen["workspace"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        return real_run(self, **kwargs)

    monkeypatch.setattr(Trainer, "run", run)
    cfg = toy_config("transformer", training={"device": "cpu", "deterministic": asked})
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 0
    assert seen == ({"deterministic": True, "cudnn": True, "workspace": ":4096:8"} if asked else
                    {"deterministic": False, "cudnn": False, "workspace": None})
    # restored after the run
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
