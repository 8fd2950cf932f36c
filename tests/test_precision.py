"""Every model family trains and decodes under bf16 autocast, the precision most configs ask for.

On a CPU without native bf16 the toolkit runs such configs in fp32 (runtime.effective_precision), so
the autocast path would never run there: these tests force it, at tiny sizes, on any CPU. A bug that
only bf16 shows (an fp32 buffer filled from a bf16 product, as the biLM's adaptive softmax once did)
fails here on every machine.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import write_yaml
from tiny_runs import CONFIGS, bilm, classification, tagging

from attnkit import runtime
from attnkit.cli.main import main


@pytest.fixture
def bf16(monkeypatch):
    """bf16 autocast wherever a config asks for it, and a record of the dtypes Linear layers produced."""
    monkeypatch.setattr(runtime, "effective_precision", lambda precision, device_type="cpu": precision)
    seen: set[torch.dtype] = set()

    def hook(module, args, output):
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield seen
    handle.remove()


def train_bf16(tmp_path, raw: dict, name: str = "run") -> str:
    raw = {**raw, "training": {**raw["training"], "precision": "bf16", "valid_every": 2}}
    cfg = write_yaml(tmp_path / f"{name}.yaml", raw)
    out = tmp_path / name
    assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", "3"]) == 0
    summary = (out / "summary.json").read_text()
    assert "NaN" not in summary and "Infinity" not in summary
    return str(out)


def with_model(builder, **model):
    def make(data):
        raw = builder(data)
        raw["model"] = {**raw["model"], **model} if "arch" not in model else model
        return raw
    return make


TRANSFORMER_ENCODER = {"d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 1, "dropout": 0.0,
                       "attention_dropout": 0.0, "max_positions": 32}
FAMILIES = {
    "transformer": (CONFIGS["transformer"], ["translate", "--beam", "2"]),
    "rnn": (CONFIGS["rnn"], ["translate", "--beam", "2"]),
    "rnn_scheduled_sampling": (lambda d: {**CONFIGS["rnn"](d), "training": {
        **CONFIGS["rnn"](d)["training"], "strategy": {"name": "scheduled_sampling", "schedule": "constant", "k": 0.5}}},
        ["translate", "--beam", "1"]),
    "rnn_professor_forcing": (lambda d: {**CONFIGS["rnn"](d), "training": {
        **CONFIGS["rnn"](d)["training"], "strategy": {"name": "professor_forcing", "disc_hidden": 8}}},
        ["translate", "--beam", "1"]),
    "transformer_tagger": (CONFIGS["tagger"], ["tag", "--tokens"]),
    "rnn_tagger": (with_model(tagging, arch="rnn_tagger", embed_dim=8, hidden=8, num_layers=1, dropout=0.0,
                              char_dim=4, char_hidden=4), ["tag", "--tokens"]),
    "rnn_classifier": (CONFIGS["classifier"], ["classify"]),
    "transformer_classifier": (CONFIGS["transformer_classifier"], ["classify"]),
    "bag_of_embeddings": (with_model(lambda d: classification(d, "rnn"), arch="bag_of_embeddings", embed_dim=8,
                                     hidden=8, dropout=0.0), ["classify"]),
    "transformer_lm": (CONFIGS["lm"], ["generate", "--method", "beam", "--beam", "2"]),
    "lstm_lm_adaptive_softmax": (CONFIGS["lstm_lm"], ["generate", "--method", "sample", "--seed", "1"]),
    "bilm": (lambda d: bilm(d), ["embed"]),
    "bilm_adaptive_softmax": (lambda d: bilm(d, [4]), ["embed"]),
    "show_attend_tell": (CONFIGS["captioner"], ["evaluate", "--beam", "2"]),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_and_decodes_under_bf16_autocast(family, tmp_path, bf16, capsys):
    builder, command = FAMILIES[family]
    run = train_bf16(tmp_path, builder(tmp_path / "data"))
    assert torch.bfloat16 in bf16  # the products really ran in bf16
    capsys.readouterr()
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("ab cd ef\ngh ij\n", encoding="utf-8")
    args = ["-q", command[0], run, *command[1:]] + ([] if command[0] == "evaluate" else ["--input", str(inputs)])
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if command[0] != "evaluate":
        assert len(out.rstrip("\n").split("\n")) >= 2 and out.strip()


def test_the_caption_transformer_and_an_elmo_tagger_train_under_bf16(tmp_path, bf16):
    raw = CONFIGS["captioner"](tmp_path / "c")
    raw["model"] = {"arch": "caption_transformer", "channels": [4, 8], "d_model": 16, "num_heads": 2, "ff_dim": 16,
                    "decoder_layers": 1, "dropout": 0.0, "attention_dropout": 0.0}
    train_bf16(tmp_path, raw, "captioner")
    lm = train_bf16(tmp_path, bilm(tmp_path / "lm", [4]), "bilm")
    raw = tagging(tmp_path / "t")
    raw["embeddings"] = {"contextual": lm, "freeze_contextual": True}
    train_bf16(tmp_path, raw, "elmo_tagger")
    assert torch.bfloat16 in bf16


def test_the_adaptive_softmax_under_autocast_matches_fp32():
    """The biLM's adaptive softmax computes in fp32 even inside bf16 autocast (its clusters are
    written into one fp32 tensor), so its log-probabilities are the fp32 ones."""
    from attnkit.models.bilm import BidirectionalLM

    torch.manual_seed(0)
    model = BidirectionalLM(20, 30, 4, 4, 16, 1, 0.0, [8]).eval()
    h, targets = torch.randn(6, 16), torch.tensor([0, 3, 9, 12, 29, 7])
    want = model.target_log_probs(h, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model.target_log_probs(h, targets)
        full = model.logits(h)
    assert got.dtype == torch.float32 and torch.allclose(got, want)
    assert torch.allclose(full.gather(1, targets[:, None]).squeeze(1), want, atol=1e-6)
    assert math.isclose(float(full.detach().exp().sum(-1).mean()), 1.0, rel_tol=1e-5)


def test_an_fp16_update_that_overflows_is_skipped_and_counts_for_nothing(tmp_path):
    """fp16's loss scaler skips an update whose scaled gradients overflowed: the weights, the weight
    average and the schedule stay where they were, the log says it, and the scale is lowered."""
    from attnkit.config import TrainingConfig
    from attnkit.runtime import Setup
    from attnkit.training.strategies import Strategy
    from attnkit.training.trainer import Trainer

    class Scaled(Strategy):
        def loss(self, model, batch, step):
            x, factor = batch
            return model(x).sum() * factor, 1, {}

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    cfg = TrainingConfig(batch_tokens=1, ema_decay=0.9, schedule="constant", clip_norm=0.0)
    trainer = Trainer(model, Scaled(), cfg, tmp_path, lambda epoch, scale=1: [], None, None, {}, progress=False,
                      setup=Setup(torch.device("cpu"), "fp16"))
    before = [p.detach().clone() for p in model.parameters()]
    scale = trainer.scaler.get_scale()
    _, _, stats = trainer.train_step((torch.ones(2, 4), 1e35))  # x 2^16: inf gradients
    assert stats == {"skipped_updates": 1.0} and trainer.scaler.get_scale() < scale
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert trainer.schedule.state_dict()["step_count"] == 0 and trainer.average.updates == 0
    _, _, stats = trainer.train_step((torch.ones(2, 4), 1.0))
    assert stats == {"skipped_updates": 0.0}
    assert not torch.equal(before[0], model.weight) and trainer.schedule.state_dict()["step_count"] == 1
    assert trainer.average.updates == 1


def test_an_rnn_under_bf16_on_a_gpu_runs_in_fp32_not_fp16():
    """cuDNN's RNN under CUDA autocast is cast to fp16 whatever autocast's dtype, with no loss scaler
    under bf16: attnkit's policy runs it in fp32 there, and leaves fp16 runs and the CPU to autocast."""
    assert runtime.rnn_dtype("cuda", torch.bfloat16) == torch.float32
    assert runtime.rnn_dtype("cuda", torch.float16) is None  # fp16 autocast, with the run's loss scaler
    # on the CPU, oneDNN's RNN in real bf16 where it has bf16 kernels, else (an AVX2 CPU) in fp32
    assert runtime.rnn_dtype("cpu", torch.bfloat16) == (None if runtime.onednn_bf16() else torch.float32)
    assert runtime.rnn_dtype("cpu", None) is None and runtime.rnn_dtype("cuda", None) is None


RNN_FAMILIES = ["rnn", "rnn_professor_forcing", "rnn_tagger", "rnn_classifier", "lstm_lm_adaptive_softmax", "bilm",
                "show_attend_tell"]


@pytest.mark.parametrize("family", RNN_FAMILIES)
def test_every_rnn_runs_in_the_dtype_the_policy_chooses(family, tmp_path, bf16, monkeypatch):
    """With the policy told to run RNNs in fp32 under the CPU's bf16 autocast (as it does under a GPU's),
    every LSTM and GRU of a family, in training and decoding, gets fp32 inputs with autocast off: each
    goes through ``runtime.recurrent``."""
    monkeypatch.setattr(runtime, "rnn_dtype", lambda device_type, dtype: torch.float32)
    calls = []

    def hook(module, args):
        x = args[0]
        data = x.data if isinstance(x, torch.nn.utils.rnn.PackedSequence) else x
        calls.append((data.dtype, torch.is_autocast_enabled("cpu")))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: hook(module, args) if isinstance(module, torch.nn.RNNBase) else None)
    try:
        builder, _ = FAMILIES[family]
        train_bf16(tmp_path, builder(tmp_path / "data"))
    finally:
        handle.remove()
    assert calls and set(calls) == {(torch.float32, False)}
    assert torch.bfloat16 in bf16  # the rest of the model did run in bf16
