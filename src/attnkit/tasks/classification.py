"""Text classification (many to one): TSV in, one label per text out.

The run directory holds the tokenizer (``words.*``) and ``labels.txt`` beside ``config.yaml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnkit.config import ClassificationConfig, load_config, resolve_path
from attnkit.data.batching import pad, token_batches
from attnkit.data.text import read_lines
from attnkit.data.vocab import Tokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from attnkit.errors import UserError
from attnkit.models import build_classifier
from attnkit.specials import UNK
from attnkit.tasks.base import Prepared, apply_pretrained
from attnkit.training.checkpoint import load_weights, read_checkpoint
from attnkit.training.strategies import IGNORE, Supervised

log = logging.getLogger(__name__)


@dataclass
class Examples:
    texts: list[str]
    labels: list[str]


def read_tsv(path: str | Path, text_column: int, label_column: int | None, header: bool) -> Examples:
    """Texts (and labels) from a TSV file; a short row is an error naming the file and line."""
    lines = read_lines(path, strip=False)
    texts, labels = [], []
    for no, line in enumerate(lines, start=1):
        if header and no == 1:
            continue
        if not line.strip():
            continue
        cols = line.rstrip("\r").split("\t")
        need = max(text_column, label_column if label_column is not None else 0) + 1
        if len(cols) < need:
            raise UserError(f"{path}: line {no}: expected at least {need} tab-separated columns, found {len(cols)}")
        texts.append(cols[text_column].strip())
        labels.append(cols[label_column].strip() if label_column is not None else "")
    if not texts:
        raise UserError(f"{path}: no examples found")
    return Examples(texts, labels)


@dataclass
class TextBatch:
    words: Tensor  # (B, T) token ids, PAD on the right
    labels: Tensor  # (B,) label ids, IGNORE where unknown
    index: list[int]

    def inputs(self) -> dict:
        return {"words": self.words}

    @property
    def num_tokens(self) -> int:
        return int((self.words != 0).sum())


class Encoder:
    """Text -> ids with the tokenizer, labels -> ids, cut to ``max_len`` tokens."""

    def __init__(self, tok: Tokenizer, labels: list[str], max_len: int):
        self.tok, self.labels, self.max_len = tok, labels, max_len
        self.label_index = {label: i for i, label in enumerate(labels)}

    def ids(self, text: str) -> list[int]:
        return (self.tok.encode(text) or [UNK])[: self.max_len]

    def batch(self, ids: list[list[int]], labels: list[str] | None, index: list[int]) -> TextBatch:
        y = torch.tensor([self.label_index.get(lab, IGNORE) for lab in labels] if labels else [IGNORE] * len(ids))
        return TextBatch(pad(ids), y, index)


@torch.no_grad()
def predict(model: torch.nn.Module, enc: Encoder, texts: list[str], batch_tokens: int = 8000) -> Tensor:
    """(N, num_labels) probabilities, in the order of ``texts``."""
    model.eval()
    ids = [enc.ids(t) for t in texts]
    probs = torch.zeros(len(texts), len(enc.labels))
    for idx in token_batches([(len(i), len(i)) for i in ids], batch_tokens, 0, 0):
        out = model(**enc.batch([ids[i] for i in idx], None, idx).inputs())
        probs[idx] = torch.softmax(out.logits.float(), -1)
    return probs


def accuracy(model: torch.nn.Module, enc: Encoder, data: Examples) -> float:
    best = predict(model, enc, data.texts).argmax(-1).tolist()
    return round(100.0 * sum(enc.labels[b] == g for b, g in zip(best, data.labels)) / len(data.labels), 2)


def prepare(cfg: ClassificationConfig, out: Path, resume: bool) -> Prepared:
    d, v, t = cfg.data, cfg.vocab, cfg.training

    def read(path: str) -> Examples:
        return read_tsv(resolve_path(path), d.text_column, d.label_column, d.header)

    train, valid = read(d.train), read(d.valid)
    test = read(d.test) if d.test else None
    if resume:
        tok = load_tokenizer(out, "words", v.level)
        labels = (out / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
    else:
        texts = [x.lower() for x in train.texts] if v.lowercase else train.texts
        tok = train_tokenizer(texts, v.level, v.size, v.subword_model, v.min_freq, v.character_coverage, t.seed)
        labels = sorted(set(train.labels))
        save_tokenizer(tok, out, "words")
        (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for name, data in (("valid", valid), ("test", test)):
        unknown = sorted(set(data.labels) - set(labels)) if data else []
        if unknown:
            log.warning("%s: %d label(s) never seen in training (always counted wrong): %s",
                        getattr(d, name), len(unknown), " ".join(unknown))
    enc = Encoder(tok, labels, min(d.max_len, getattr(cfg.model, "max_positions", d.max_len)))
    lower = (lambda s: s.lower()) if v.lowercase else (lambda s: s)
    train_ids = [enc.ids(lower(x)) for x in train.texts]
    torch.manual_seed(t.seed)
    model = build_classifier(cfg.model, len(tok), len(labels))
    e = cfg.embeddings
    apply_pretrained(model, tok.itos, e.pretrained, e.freeze_pretrained, resume)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s with %s parameters; %d training texts, vocab %d, %d labels", cfg.model.arch, f"{n_params:,}",
             len(train.texts), len(tok), len(labels))

    def validate(m: torch.nn.Module) -> dict:
        probs = predict(m, enc, [lower(x) for x in valid.texts])
        gold = torch.tensor([enc.label_index.get(lab, -1) for lab in valid.labels])
        known = gold >= 0
        loss = -probs[known].gather(1, gold[known, None]).clamp_min(1e-12).log().mean()
        acc = 100.0 * (probs.argmax(-1) == gold).float().mean()
        return {"loss": round(float(loss), 4), "accuracy": round(float(acc), 2)}

    metric = "accuracy" if t.early_stopping == "auto" else t.early_stopping
    if metric not in ("accuracy", "loss"):
        raise UserError(f"training.early_stopping: a classifier picks its best model by accuracy or loss, "
                        f"not {metric}")
    lengths = [(len(i), len(i)) for i in train_ids]
    return Prepared(
        model=model, strategy=Supervised(t.label_smoothing),
        epoch_batches=lambda epoch: token_batches(lengths, t.batch_tokens, t.seed, epoch),
        make_batch=lambda idx: enc.batch([train_ids[i] for i in idx], [train.labels[i] for i in idx], idx),
        validate=validate,
        test=(lambda m: {"accuracy": accuracy(m, enc, Examples([lower(x) for x in test.texts], test.labels))})
        if test else None,
        metric=metric, higher_is_better=metric == "accuracy",
        reserve_factor=1.0 + (len(test.texts) / len(valid.texts) if test else 0.0),
        meta={"params": n_params},
    )


class Classifier:
    """A trained classifier directory, ready to classify."""

    def __init__(self, model: torch.nn.Module, enc: Encoder, cfg: ClassificationConfig):
        self.model, self.enc, self.cfg = model.eval(), enc, cfg

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{path}: model directory not found")
        for name in ("config.yaml", "model.safetensors", "labels.txt"):
            if not (path / name).is_file():
                raise UserError(f"{path}: model directory is incomplete, {name} is missing")
        cfg = load_config(path / "config.yaml")
        if cfg.task != "classification":
            raise UserError(f"{path}: holds a {cfg.task} model, not a classifier")
        tok = load_tokenizer(path, "words", cfg.vocab.level)
        labels = (path / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
        model = build_classifier(cfg.model, len(tok), len(labels))
        groups, doc = read_checkpoint(path / "model.safetensors")
        load_weights(model, groups["model"], doc["aliases"], path / "model.safetensors")
        max_len = min(cfg.data.max_len, getattr(cfg.model, "max_positions", cfg.data.max_len))
        return cls(model, Encoder(tok, labels, max_len), cfg)

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        """The most probable label of each text and its probability."""
        texts = [t.lower() for t in texts] if self.cfg.vocab.lowercase else texts
        probs = predict(self.model, self.enc, texts)
        p, best = probs.max(-1)
        return [(self.enc.labels[b], float(q)) for b, q in zip(best.tolist(), p.tolist())]
