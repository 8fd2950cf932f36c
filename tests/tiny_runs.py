"""Tiny trained model directories of every task, made on demand with the CLI and kept for the
session (the ``tiny_runs`` fixture): ``tiny_runs["transformer"]`` trains on first use, a few steps on
a few dozen seeded lines, and returns the run directory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers import run_config, toy_pairs, write_parallel, write_yaml

WORDS = ["ab", "cd", "ef", "gh", "ij", "kl"]
TRAINING = {"batch_tokens": 64, "lr": 0.01, "schedule": "constant", "warmup_steps": 0, "label_smoothing": 0.0,
            "valid_every": 3, "log_every": 1, "patience": 0}
TRANSFORMER_ENCODER = {"d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 2, "dropout": 0.0,
                       "attention_dropout": 0.0, "max_positions": 32}


def lines(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))) for _ in range(n)]


def translation(data: Path, arch: str) -> dict:
    write_parallel(data, "train", toy_pairs(40, seed=1))
    write_parallel(data, "valid", toy_pairs(6, seed=2))
    raw = run_config(data, "transformer" if arch == "transformer" else "rnn")
    del raw["data"]["test"]
    if arch == "transformer":
        raw["model"].update(encoder_layers=2, decoder_layers=2, dropout=0.0, attention_dropout=0.0)
    return raw


def tagging(data: Path) -> dict:
    data.mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 1), ("valid", 2)):
        blocks = ["".join(f"{i}\t{w}\t{w}\t{'X' if w < 'g' else 'Y'}\t_\t_\t0\tdep\t_\t_\n"
                          for i, w in enumerate(line.split(), start=1)) for line in lines(30, seed)]
        (data / f"{split}.conllu").write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return {"task": "tagging", "data": {"train": str(data / "train.conllu"), "valid": str(data / "valid.conllu")},
            "vocab": {"level": "word"}, "model": {"arch": "transformer_tagger", **TRANSFORMER_ENCODER},
            "training": TRAINING}


def classification(data: Path, arch: str) -> dict:
    data.mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 1), ("valid", 2)):
        rows = [f"{line}\t{'pos' if 'ab' in line else 'neg'}\n" for line in lines(40, seed)]
        (data / f"{split}.tsv").write_text("text\tlabel\n" + "".join(rows), encoding="utf-8")
    if arch == "transformer":
        model = {"arch": "transformer_classifier", **TRANSFORMER_ENCODER, "pooling": "attention", "attention_dim": 8}
    else:
        model = {"arch": "rnn_classifier", "embed_dim": 8, "hidden": 8, "num_layers": 1, "pooling": "attention",
                 "attention_dim": 8, "dropout": 0.0}
    return {"task": "classification", "data": {"train": str(data / "train.tsv"), "valid": str(data / "valid.tsv")},
            "vocab": {"level": "word"}, "model": model, "training": TRAINING}


def language_model(data: Path) -> dict:
    data.mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 1), ("valid", 2)):
        (data / f"{split}.txt").write_text("\n".join(lines(60, seed)) + "\n", encoding="utf-8")
    model = {"arch": "transformer_lm", "d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 2, "dropout": 0.0,
             "attention_dropout": 0.0, "max_positions": 24}
    return {"task": "language_model", "data": {"train": str(data / "train.txt"), "valid": str(data / "valid.txt"),
                                               "max_len": 12},
            "vocab": {"level": "word"}, "model": model, "training": TRAINING,
            "generation": {"method": "greedy", "max_tokens": 6}}


def lstm_language_model(data: Path) -> dict:
    """The Transformer LM's data, read by an LSTM with a tied adaptive softmax, carrying its state."""
    raw = language_model(data)
    raw["model"] = {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0,
                    "tie_embeddings": True, "adaptive_softmax": [4]}
    return raw


def kneser_ney(data: Path) -> dict:
    """A trigram Kneser-Ney model of the LM's lines (counted, not trained)."""
    raw = language_model(data)
    raw["model"] = {"arch": "kneser_ney", "order": 3}
    return raw


def bilm(data: Path, cutoffs: list[int] | None = None) -> dict:
    """A character-reading bidirectional LM (ELMo) on the LM's lines; ``cutoffs``: an adaptive softmax."""
    raw = language_model(data)
    model = {"arch": "bilm", "char_dim": 8, "char_hidden": 8, "dim": 16, "num_layers": 2, "dropout": 0.0}
    return {"task": "bilm", "data": {"train": [raw["data"]["train"]], "valid": raw["data"]["valid"]},
            "vocab": {"level": "word", "min_freq": 1},
            "model": {**model, **({"adaptive_softmax": cutoffs} if cutoffs else {})}, "training": TRAINING}


def captioning(data: Path) -> dict:
    """Scenes of the shipped handwritten digits, 24x24, a CNN to a 6x6 grid and an attending LSTM."""
    return {"task": "captioning",
            "data": {"source": "digits", "train_scenes": 24, "valid_scenes": 4, "test_scenes": 2, "max_digits": 2},
            "image": {"height": 24, "width": 24, "channels": 1}, "vocab": {"level": "word", "size": 50},
            "model": {"arch": "show_attend_tell", "channels": [4, 8, 8], "feature_dim": 8, "embed_dim": 8,
                      "hidden": 16, "attention_dim": 8, "dropout": 0.0},
            "training": {**TRAINING, "batch_size": 8}, "decoding": {"beam": 2, "max_len": 12}}


CONFIGS = {
    "captioner": captioning,
    "transformer": lambda d: translation(d, "transformer"),
    "rnn": lambda d: translation(d, "rnn"),
    "tagger": tagging,
    "classifier": lambda d: classification(d, "rnn"),
    "transformer_classifier": lambda d: classification(d, "transformer"),
    "lm": language_model,
    "lstm_lm": lstm_language_model,
    "bilm": bilm,
}


class TinyRuns:
    def __init__(self, root: Path):
        self.root, self.done = root, {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.done:
            from attnkit.cli.main import main

            (self.root / name).mkdir(parents=True, exist_ok=True)
            raw = CONFIGS[name](self.root / name / "data")
            cfg = write_yaml(self.root / name / "cfg.yaml", raw)
            out = self.root / name / "run"
            assert main(["-q", "train", str(cfg), "--out", str(out), "--max-steps", "4"]) == 0
            self.done[name] = out
        return self.done[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny_runs"))
