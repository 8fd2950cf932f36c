"""Plain helpers shared by the tests: tiny model configs, random padded batches, tiny corpora.

Everything here is deterministic (explicit seeds) and sized to run in milliseconds on one core.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import yaml

from attnkit.build import build_model
from attnkit.config import RNNConfig, TransformerConfig
from attnkit.data.batching import pad
from attnkit.specials import BOS, EOS

RNN_CONTEXTS = ("none", "mean", "dot", "general", "additive")

# word-level toy language: 8 "words"; the target of a line is the line reversed
WORDS = ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op"]


def tiny_rnn(**kw) -> RNNConfig:
    """A tiny RNN config; dot attention needs decoder_hidden == 2 * encoder_hidden (bidirectional)."""
    base = {"cell": "lstm", "embed_dim": 8, "encoder_hidden": 6, "decoder_hidden": 12, "bidirectional": True,
            "encoder_layers": 1, "decoder_layers": 2, "context": "additive", "attention_dim": 7,
            "input_feeding": True, "dropout": 0.0}
    base.update(kw)
    return RNNConfig(**base)


def tiny_transformer(**kw) -> TransformerConfig:
    base = {"d_model": 16, "num_heads": 2, "ff_dim": 24, "encoder_layers": 2, "decoder_layers": 2,
            "dropout": 0.0, "attention_dropout": 0.0, "positional": "sinusoidal", "norm": "pre",
            "tie_embeddings": False, "share_src_tgt_embeddings": False, "max_positions": 64}
    base.update(kw)
    return TransformerConfig(**base)


def randomize(model: torch.nn.Module, std: float = 0.7, seed: int = 1) -> torch.nn.Module:
    """Overwrite every weight (LayerNorms excepted) with N(0, std^2): a freshly initialised model
    emits the same token at every step, which would make search comparisons vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def random_model(cfg, vocab: int = 13, seed: int = 0, std: float = 0.7) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize(build_model(cfg, vocab, vocab), std, seed + 1).eval()


def random_src(lengths=(2, 5, 3, 7, 1, 4), vocab: int = 13, seed: int = 3) -> torch.Tensor:
    """(B, S) EOS-terminated, right-padded source ids of the given lengths (EOS not counted)."""
    g = torch.Generator().manual_seed(seed)
    return pad([torch.randint(4, vocab, (n,), generator=g).tolist() + [EOS] for n in lengths])


def random_tgt_in(lengths=(3, 6, 1, 4, 5, 2), vocab: int = 13, seed: int = 4) -> torch.Tensor:
    """(B, T) BOS-started, right-padded decoder inputs."""
    g = torch.Generator().manual_seed(seed)
    return pad([[BOS] + torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths])


def toy_pairs(n: int, seed: int, min_len: int = 2, max_len: int = 6) -> list[tuple[str, str]]:
    r = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [r.choice(WORDS) for _ in range(r.randint(min_len, max_len))]
        pairs.append((" ".join(words), " ".join(reversed(words))))
    return pairs


def write_parallel(directory: Path, name: str, pairs: list[tuple[str, str]]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    src, tgt = directory / f"{name}.src", directory / f"{name}.tgt"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    tgt.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return src, tgt


def run_config(data_dir: Path, arch: str = "transformer", **sections) -> dict:
    """A raw config dict for a tiny word-level run on the corpus in ``data_dir`` (see ``toy_corpus``)."""
    if arch == "transformer":
        model = {"arch": "transformer", "d_model": 16, "num_heads": 2, "ff_dim": 32, "encoder_layers": 1,
                 "decoder_layers": 1, "dropout": 0.1, "attention_dropout": 0.1, "max_positions": 32,
                 "share_src_tgt_embeddings": True}
    else:
        model = {"arch": "rnn", "cell": "lstm", "embed_dim": 8, "encoder_hidden": 8, "decoder_hidden": 16,
                 "encoder_layers": 1, "decoder_layers": 1, "context": "additive", "attention_dim": 8,
                 "input_feeding": True, "dropout": 0.1}
    cfg = {
        "data": {"train": {"src": str(data_dir / "train.src"), "tgt": str(data_dir / "train.tgt")},
                 "valid": {"src": str(data_dir / "valid.src"), "tgt": str(data_dir / "valid.tgt")},
                 "test": {"src": str(data_dir / "test.src"), "tgt": str(data_dir / "test.tgt")},
                 "max_len": 20},
        "vocab": {"level": "word", "joint": True, "size": 100},
        "model": model,
        "training": {"seed": 7, "batch_tokens": 48, "lr": 0.003, "schedule": "inverse_sqrt", "warmup_steps": 4,
                     "label_smoothing": 0.1, "valid_every": 3, "log_every": 1, "patience": 0,
                     "precision": "fp32"},
        "decoding": {"beam": 2, "max_len_a": 1.0, "max_len_b": 3, "batch_size": 8},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def differing_weights(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor], atol: float = 1e-5) -> list[str]:
    """The tensors of two state dicts that differ beyond ``atol``, the attention key biases aside: a key's
    bias adds the same q.b to every score of a row, which softmax ignores, so its gradient is zero up to
    rounding, and Adam, which divides by the gradient's size, turns rounding into steps."""
    assert one.keys() == two.keys()
    compared = [key for key in one if not key.endswith("W_K.bias")]
    assert len(compared) > 10
    return [key for key in compared if not torch.allclose(one[key], two[key], atol=atol)]


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
