"""``--device``: every command that runs a model runs it, its inputs and its decoding on the device asked
for; a GPU the machine lacks, or a device name that is none, is a one-line error. The GPU tests run
where there is one: CPU and GPU training agree, fp16 and bf16 learn, a GPU-trained model translates
the same on the CPU, and nothing a model is given stays behind on the CPU."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import run_config, toy_pairs, write_parallel, write_yaml
from PIL import Image
from test_cli import fails
from tiny_runs import CONFIGS

from attnkit import runtime
from attnkit.cli.main import main
from attnkit.config import load_config
from attnkit.data.batching import Batch, make_batch, pad
from attnkit.data.conllu import Sentence
from attnkit.data.images import to_tensor
from attnkit.data.vocab import ListTokenizer
from attnkit.specials import BOS, EOS
from attnkit.tasks import TASKS, bilm, language_model
from attnkit.tasks.classification import Encoder
from attnkit.tasks.tagging import Vocabularies

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
without_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]


@contextmanager
def inputs_on_the_model_device():
    """Every tensor given to a module whose weights are on a device must be on that device too (a
    forward pre-hook on every module); yields the list of the devices the checked calls ran on."""
    ran_on, wrong = [], []

    def hook(module, args):
        weight = next(module.parameters(), None)
        if weight is None:
            return
        ran_on.append(weight.device.type)
        wrong.extend(f"{type(module).__name__} on {weight.device} given a tensor on {a.device}"
                     for a in args if isinstance(a, torch.Tensor) and a.device != weight.device)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield ran_on
    finally:
        handle.remove()
    assert not wrong, wrong[:5]


def train_tiny(raw: dict, where: Path, device: str, steps: int = 3) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    out = where / "run"
    cfg = write_yaml(where / "cfg.yaml", raw)
    assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", str(steps), "--device", device]) == 0
    return out


def run_commands(name: str, run: Path, data: Path, tmp: Path, device: str) -> None:
    """What a trained model of ``name`` is used for, each command on ``device``."""
    texts = tmp / "texts.txt"
    texts.write_text("ab cd ef\ngh ij\n\nkl ab cd ab\n", encoding="utf-8")
    image = tmp / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24), dtype=np.uint8)).save(image)
    plot = ["plot", "attention", str(run), "--text", "ab cd ef", "--out", str(tmp / "attention.png")]
    lm = [["generate", str(run), "--prompt", "ab cd", "--method", "sample", "--seed", "1"],
          ["generate", str(run), "--prompt", "ab", "--method", "beam", "--beam", "2"],
          ["evaluate", str(run), "--src", str(data / "valid.txt")]]
    commands = {
        "transformer": [["translate", str(run), "--input", str(texts), "--output", str(tmp / "out.txt")],
                        ["evaluate", str(run), "--src", str(data / "valid.src"), "--ref", str(data / "valid.tgt"),
                         "--exposure", "--beam", "1"], plot],
        "tagger": [["tag", str(run), "--tokens", "--input", str(texts), "--output", str(tmp / "out.conllu")],
                   ["evaluate", str(run), "--src", str(data / "valid.conllu")], plot],
        "classifier": [["classify", str(run), "--input", str(texts), "--output", str(tmp / "out.txt")],
                       ["evaluate", str(run), "--src", str(data / "valid.tsv")], plot],
        "lm": [*lm, plot],
        "lstm_lm": lm,
        "bilm": [["embed", str(run), "--input", str(texts), "--output", str(tmp / "vectors.txt")]],
        "captioner": [["caption", str(run), str(image), "--attention-dir", str(tmp / "att")], ["evaluate", str(run)],
                      ["plot", "attention", str(run), "--image", str(image), "--out", str(tmp / "attention.png")]],
    }
    commands["rnn"] = commands["transformer"]
    commands["transformer_classifier"] = commands["classifier"]
    for argv in commands[name]:
        assert main(["-q", *argv, "--device", device]) == 0, argv


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_task_trains_and_runs_on_the_device_asked_for(name, device, tmp_path, capsys):
    """Training (its validation and test scoring too) and every command of the task, with --device:
    the inputs of every module are on the device of its weights, and the model runs there (a captioner
    also runs its image backbone once on the CPU as it is built, to learn the size of its grid)."""
    data = tmp_path / "data"
    raw = CONFIGS[name](data)
    with inputs_on_the_model_device() as ran_on:
        run = train_tiny(raw, tmp_path, device)
        run_commands(name, run, data, tmp_path, device)
    assert device in ran_on
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["device"] == device  # = --set
    assert json.loads((run / "summary.json").read_text())["device"].startswith(device)


@pytest.mark.parametrize("device", DEVICES)
def test_a_tagger_reading_cached_elmo_vectors_runs_on_the_device(device, tmp_path, capsys):
    """The frozen bidirectional LM's cache keys its sentences by their bytes, read on the CPU, while
    the layers it keeps stay on the LM's device."""
    lm = train_tiny(CONFIGS["bilm"](tmp_path / "data"), tmp_path / "bilm", device)
    raw = CONFIGS["tagger"](tmp_path / "data")
    raw["embeddings"] = {"contextual": str(lm), "freeze_contextual": True, "cache_contextual": True}
    with inputs_on_the_model_device() as ran_on:
        run = train_tiny(raw, tmp_path / "tagger", device, steps=6)  # the second epoch reads the cache
        run_commands("tagger", run, tmp_path / "data", tmp_path, device)
    assert device in ran_on


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["transformer", "tagger", "classifier", "lm", "captioner"])
def test_every_loader_places_its_model_on_the_device(name, device, tiny_runs):
    inspector = TASKS[load_config(tiny_runs[name] / "config.yaml").task].inspector(tiny_runs[name], device)
    loaded = next(v for k, v in vars(inspector).items() if k != "cfg")  # its Translator, Tagger, ...
    assert {p.device.type for p in loaded.model.parameters()} == {device}


@pytest.mark.parametrize("device", DEVICES)
def test_the_contextual_lm_goes_to_the_device(device, tiny_runs):
    ctx = bilm.Contextual.load(tiny_runs["bilm"], freeze=True, device=device)
    assert {p.device.type for p in ctx.embedder.parameters()} == {device}


# -- errors --------------------------------------------------------------------------------------------


@without_gpu
def test_a_gpu_this_machine_lacks_is_one_line(model_dir, toy_config, tmp_path, capsys):
    data = model_dir.parent / "data"
    for argv in (["translate", str(model_dir), "--input", str(data / "test.src")],
                 ["evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref", str(data / "test.tgt")],
                 ["bench", "translate", str(model_dir), "--src", str(data / "test.src")],
                 ["plot", "attention", str(model_dir), "--text", "ab", "--out", str(tmp_path / "a.png")],
                 ["serve", str(model_dir), "--port", "0"],
                 ["bench", "train", str(toy_config())]):
        fails(capsys, ["-q", *argv, "--device", "cuda"], "device cuda", "no GPU")
    out = tmp_path / "run"
    fails(capsys, ["-q", "train", str(toy_config()), "--out", str(out), "--device", "cuda:1"], "device cuda:1",
          "no GPU")
    assert not out.exists()  # nothing trained, nothing left


COMMANDS = [["translate", "DIR"], ["evaluate", "DIR"], ["tag", "DIR"], ["classify", "DIR"], ["generate", "DIR"],
            ["caption", "DIR", __file__], ["embed", "DIR"], ["plot", "attention", "DIR"], ["serve", "DIR"],
            ["bench", "train", __file__], ["bench", "translate", "DIR", "--src", __file__], ["train", __file__],
            ["demo"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(w for w in c[:2] if w != __file__))
def test_a_device_that_is_none_is_refused_by_the_option_check(command, capsys):
    fails(capsys, [*command, "--device", "gpu"], "--device", "'gpu'", "cuda")


def test_bench_train_says_where_and_at_which_precision_it_ran(toy_config, capsys):
    assert main(["-q", "bench", "train", str(toy_config()), "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--set", "training.precision=bf16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["precision"] == runtime.effective_precision("bf16", "cpu")


# -- batches -------------------------------------------------------------------------------------------


def one_batch_of_each_task() -> dict:
    words = ["ab", "cd", "ef", "gh"]
    sentences = [Sentence(["ab", "cd", "ef"], {"upos": ["X", "Y", "X"]}), Sentence(["gh"], {"upos": ["Y"]})]
    tagging = Vocabularies.build(sentences, "upos", 100, 1, False)
    tok = ListTokenizer.train([" ".join(words)], "word")
    ids = torch.arange(4, 40) % 8 + 4
    lm_batches = language_model.shuffled_chunks(ids, 5, 10, 0)[1], language_model.in_order(ids, 5, 10)[1]
    pixels = [np.zeros((24, 24, 1), dtype=np.uint8)] * 2
    return {
        "translation": make_batch([[4, 5, 6], [7]], [[5], [6, 7]], [0, 1]),
        "tagging": tagging.batch(sentences, "upos", [0, 1]),
        "classification": Encoder(tok, ["neg", "pos"], 10).batch(["ab cd", "ef"], ["pos", "neg"], [0, 1]),
        "language model": lm_batches[0]([0, 2]),
        "language model, carried": lm_batches[1]([1]),
        "bilm": bilm.make_batch(tok, ListTokenizer.train(["abcdefgh"], "char"), [words[:3], words[3:]], [0, 1]),
        "captioning": Batch(to_tensor(pixels), pad([[BOS, 4], [BOS]]), pad([[4, EOS], [EOS]]), [0, 1]),
    }


@pytest.mark.parametrize("kind", list(one_batch_of_each_task()))
def test_every_batch_moves_whole(kind):
    """to_device rebuilds a task's batch with every tensor moved and the rest kept: on the CPU an equal
    batch, on the meta device one whose every tensor went there."""
    batch = one_batch_of_each_task()[kind]
    same = runtime.to_device(batch, torch.device("cpu"))
    meta = runtime.to_device(batch, torch.device("meta"))
    assert type(same) is type(meta) is type(batch)
    for f in fields(batch):
        before, after, moved = getattr(batch, f.name), getattr(same, f.name), getattr(meta, f.name)
        if isinstance(before, torch.Tensor):
            assert torch.equal(before, after) and after.device.type == "cpu"
            assert moved.device.type == "meta" and moved.shape == before.shape and moved.dtype == before.dtype
        else:
            assert before == after == moved


# -- on a GPU ------------------------------------------------------------------------------------------


def train_losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "lr" in r]


@pytest.fixture(scope="module")
def cpu_and_gpu_runs(tmp_path_factory) -> dict[str, Path]:
    """The same tiny Transformer (no dropout) trained 200 steps on the CPU and on the GPU."""
    root = tmp_path_factory.mktemp("cpu_and_gpu")
    data = root / "data"
    for split, n, seed in (("train", 40, 1), ("valid", 8, 2), ("test", 6, 3)):
        write_parallel(data, split, toy_pairs(n, seed))
    raw = run_config(data, model={"dropout": 0.0, "attention_dropout": 0.0},
                     training={"label_smoothing": 0.0, "valid_every": 100, "log_every": 20})
    return {device: train_tiny(raw, root / device, device, steps=200) for device in ("cpu", "cuda")}


@needs_gpu
def test_training_on_the_gpu_follows_the_cpu(cpu_and_gpu_runs):
    cpu, gpu = (train_losses(cpu_and_gpu_runs[d]) for d in ("cpu", "cuda"))
    assert len(cpu) == len(gpu) == 10
    assert gpu == pytest.approx(cpu, rel=0.02)
    assert json.loads((cpu_and_gpu_runs["cuda"] / "summary.json").read_text())["device"].startswith("cuda")


@needs_gpu
def test_a_gpu_trained_model_translates_the_same_on_the_cpu(cpu_and_gpu_runs, tmp_path):
    run = cpu_and_gpu_runs["cuda"]
    src = run.parent.parent / "data" / "valid.src"
    out = {}
    for device in ("cpu", "cuda"):
        out[device] = tmp_path / f"{device}.txt"
        assert main(["-q", "translate", str(run), "--input", str(src), "--beam", "1", "--device", device,
                     "--output", str(out[device])]) == 0
    cpu, gpu = (out[d].read_text().splitlines() for d in ("cpu", "cuda"))
    assert len(cpu) == len(gpu) == 8
    assert sum(a == b for a, b in zip(cpu, gpu)) >= 7  # greedy: only a near tie may go the other way


@needs_gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_learns_on_the_gpu(precision, toy_config, tmp_path):
    if precision == "bf16" and not runtime.native_gpu_bf16():
        pytest.skip("this GPU has no native bf16 (attnkit runs bf16 configs in fp32 there)")
    cfg = toy_config(model={"dropout": 0.0, "attention_dropout": 0.0},
                     training={"precision": precision, "lr": 0.01, "schedule": "constant", "warmup_steps": 0,
                               "label_smoothing": 0.0, "valid_every": 100, "log_every": 10})
    out = tmp_path / "run"
    assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", "150", "--device", "cuda"]) == 0
    losses = train_losses(out)
    assert losses[-1] < 0.5 * losses[0], losses  # about 2.3 to 0.4 in fp32
    assert json.loads((out / "summary.json").read_text())["precision"] == precision
