"""Text classification (many to one): TSV in, one label per text out.

The run directory holds the tokenizer (``words.*``) and ``labels.txt`` beside ``config.yaml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnkit.build import build_classifier
from attnkit.config import ClassificationConfig, resolve_path
from attnkit.data.batching import pad, token_batches
from attnkit.data.text import read_lines, read_utf8
from attnkit.data.vocab import Tokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from attnkit.errors import UserError
from attnkit.inspection import (
    TITLES,
    AttentionMap,
    ClassificationResult,
    Inspectable,
    Inspection,
    Inspector,
    LabelProbability,
    Options,
    encoder_attention,
)
from attnkit.model_dir import WEIGHTS, load_best_weights, open_model_dir
from attnkit.models.bilm import WithContextualEmbeddings
from attnkit.runtime import device_of, pick_device, to_device
from attnkit.specials import UNK
from attnkit.tasks.base import (
    EvaluateRequest,
    Evaluation,
    Prepared,
    Task,
    apply_pretrained,
    best_metric,
    final_cost,
    parameter_count,
    plain_lines,
    src_file,
    word_embedding,
)
from attnkit.tasks.bilm import Contextual
from attnkit.training.strategies import IGNORE, make_strategy

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
        label = cols[label_column].strip() if label_column is not None else ""
        if label_column is not None and not label:
            raise UserError(f"{path}: line {no}: empty label (column {label_column + 1})")
        texts.append(cols[text_column].strip())
        labels.append(label)
    if not texts:
        raise UserError(f"{path}: no examples found")
    return Examples(texts, labels)


@dataclass
class TextBatch:
    words: Tensor  # (B, T) token ids, PAD on the right
    labels: Tensor  # (B,) label ids, IGNORE where unknown
    index: list[int]
    bilm_chars: Tensor | None = None  # (B, T, C) in the contextual LM's character vocabulary

    def inputs(self) -> dict:
        return {"words": self.words, **({"bilm_chars": self.bilm_chars} if self.bilm_chars is not None else {})}

    @property
    def num_tokens(self) -> int:
        return int((self.words != 0).sum())


class Encoder:
    """Text -> ids with the tokenizer (and, with contextual vectors, its words' characters),
    labels -> ids, cut to ``max_len`` tokens."""

    def __init__(self, tok: Tokenizer, labels: list[str], max_len: int, lowercase: bool = False,
                 contextual: Contextual | None = None):
        self.tok, self.labels, self.max_len, self.lowercase = tok, labels, max_len, lowercase
        self.contextual = contextual
        self.label_index = {label: i for i, label in enumerate(labels)}

    def ids(self, text: str) -> list[int]:
        return (self.tok.encode(text.lower() if self.lowercase else text) or [UNK])[: self.max_len]

    def words(self, text: str) -> list[str]:
        """The words the contextual LM reads: whitespace tokens, as the word-level tokenizer cuts them."""
        return (text.split() or ["<unk>"])[: self.max_len]

    def batch(self, texts: list[str], labels: list[str] | None, index: list[int]) -> TextBatch:
        y = torch.tensor([self.label_index.get(lab, IGNORE) for lab in labels] if labels else [IGNORE] * len(texts))
        chars = self.contextual.chars_of([self.words(t) for t in texts]) if self.contextual else None
        return TextBatch(pad([self.ids(t) for t in texts]), y, index, chars)


@torch.no_grad()
def predict(model: torch.nn.Module, enc: Encoder, texts: list[str], batch_tokens: int = 8000) -> Tensor:
    """(N, num_labels) probabilities on the CPU, in the order of ``texts``."""
    model.eval()
    lengths = [len(enc.ids(t)) for t in texts]
    probs = torch.zeros(len(texts), len(enc.labels))
    device = device_of(model)
    for idx in token_batches([(n, n) for n in lengths], batch_tokens, 0, 0):
        out = model(**to_device(enc.batch([texts[i] for i in idx], None, idx), device).inputs())
        probs[idx] = torch.softmax(out.logits.float(), -1).cpu()
    return probs


def check_labelled(path: str | Path, data: Examples, labels: list[str], column: int) -> None:
    """A file to score must hold labels the classifier knows: one whose label column holds none (an
    unlabelled test set, where the column is the text or an index) is an error, not accuracy 0."""
    if not set(data.labels) & set(labels):
        seen = next((lab for lab in data.labels if lab), "")
        raise UserError(f"{path}: column {column + 1} holds no label this classifier knows ({', '.join(labels)})"
                        + (f"; e.g. {seen[:40]!r}" if seen else ", only empty cells") + ": is the file labelled?")


def accuracy(model: torch.nn.Module, enc: Encoder, data: Examples) -> float:
    best = predict(model, enc, data.texts).argmax(-1).tolist()
    return round(100.0 * sum(enc.labels[b] == g for b, g in zip(best, data.labels)) / len(data.labels), 2)


def build(cfg: ClassificationConfig, tok: Tokenizer, labels: list[str], out: Path,
          fresh: bool) -> tuple[torch.nn.Module, Encoder]:
    """The classifier of ``cfg`` and its encoder; with ``embeddings.contextual``, wrapped with the
    bidirectional LM, whose files a fresh run copies into ``out/bilm``. On the CPU: whoever runs the
    classifier places it."""
    d, e = cfg.data, cfg.embeddings
    max_len = min(d.max_len, getattr(cfg.model, "max_positions", d.max_len))
    if e.contextual is None:
        return build_classifier(cfg.model, len(tok), len(labels)), Encoder(tok, labels, max_len, cfg.vocab.lowercase)
    # a fresh run reads the trained weights; a resumed one gets them from its own checkpoint
    ctx = Contextual.load(resolve_path(e.contextual) if fresh else out / "bilm", e.freeze_contextual,
                          weights=fresh, cache=e.cache_contextual, device="cpu")
    if fresh:
        Contextual.copy_files(resolve_path(e.contextual), out / "bilm")
    model = build_classifier(cfg.model, len(tok), len(labels), ctx.embedder.output_dim)
    return WithContextualEmbeddings(model, ctx.embedder), Encoder(tok, labels, max_len, cfg.vocab.lowercase, ctx)


def prepare(cfg: ClassificationConfig, out: Path, resume: bool) -> Prepared:
    d, v, t = cfg.data, cfg.vocab, cfg.training

    def read(path: str) -> Examples:
        return read_tsv(resolve_path(path), d.text_column, d.label_column, d.header)

    train, valid = read(d.train), read(d.valid)
    test = read(d.test) if d.test else None
    if resume:
        tok = load_tokenizer(out, "words", v.level)
        labels = read_utf8(out / "labels.txt").split("\n")[:-1]
    else:
        texts = [x.lower() for x in train.texts] if v.lowercase else train.texts
        tok = train_tokenizer(texts, v.level, v.size, v.subword_model, v.min_freq, v.character_coverage, t.seed)
        labels = sorted(set(train.labels))
        save_tokenizer(tok, out, "words")
        (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for name, data in (("valid", valid), ("test", test)):
        if data is not None:
            check_labelled(getattr(d, name), data, labels, d.label_column)
        unknown = sorted(set(data.labels) - set(labels)) if data else []
        if unknown:
            log.warning("%s: %d label(s) never seen in training (always counted wrong): %s",
                        getattr(d, name), len(unknown), " ".join(unknown))
    torch.manual_seed(t.seed)
    model, enc = build(cfg, tok, labels, out, fresh=not resume)
    e = cfg.embeddings
    apply_pretrained(word_embedding(model), tok.itos, e.pretrained, e.freeze_pretrained, resume)
    n_params = parameter_count(model)
    log.info("%s with %s parameters; %d training texts, vocab %d, %d labels", cfg.model.arch, f"{n_params:,}",
             len(train.texts), len(tok), len(labels))

    def validate(m: torch.nn.Module) -> dict:
        probs = predict(m, enc, valid.texts)
        gold = torch.tensor([enc.label_index.get(lab, -1) for lab in valid.labels])
        known = gold >= 0
        loss = -probs[known].gather(1, gold[known, None]).clamp_min(1e-12).log().mean()
        acc = 100.0 * (probs.argmax(-1) == gold).float().mean()
        return {"loss": round(float(loss), 4), "accuracy": round(float(acc), 2)}

    metric = best_metric(t, "accuracy", ("accuracy", "loss"), "a classifier")
    lengths = [(n, n) for n in (len(enc.ids(x)) for x in train.texts)]
    return Prepared(
        model=model, strategy=make_strategy(t, "supervised"),
        epoch_batches=lambda epoch, scale=1: token_batches(lengths, t.batch_tokens * scale, t.seed, epoch),
        make_batch=lambda idx: enc.batch([train.texts[i] for i in idx], [train.labels[i] for i in idx], idx),
        validate=validate,
        test=(lambda m: {"accuracy": accuracy(m, enc, test)}) if test else None,
        metric=metric, higher_is_better=metric == "accuracy",
        reserve_factor=final_cost(len(test.texts) if test else 0, len(valid.texts)),
        meta={"params": n_params},
    )


class Classifier(Inspectable):
    """A trained classifier directory, ready to classify (and to ``inspect``, ``attnkit.inspection``)."""

    def __init__(self, model: torch.nn.Module, enc: Encoder, cfg: ClassificationConfig):
        self.model, self.enc, self.cfg = model.eval(), enc, cfg

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Classifier:
        """The classifier of a model directory, on ``device`` (auto: the GPU when there is one)."""
        where = pick_device(device)
        path, cfg = open_model_dir(path, "classification", "a classifier", files=(WEIGHTS, "labels.txt"))
        tok = load_tokenizer(path, "words", cfg.vocab.level)
        labels = read_utf8(path / "labels.txt").split("\n")[:-1]
        model, enc = build(cfg, tok, labels, path, fresh=False)
        load_best_weights(model, path)
        return cls(model.to(where), enc, cfg)

    def classify(self, texts: list[str]) -> list[tuple[str, float] | None]:
        """The most probable label of each text and its probability; None for an empty text (nothing to
        classify)."""
        todo = [i for i, text in enumerate(texts) if text.strip()]
        out: list[tuple[str, float] | None] = [None] * len(texts)
        if todo:
            p, best = predict(self.model, self.enc, [texts[i] for i in todo]).max(-1)
            for i, b, q in zip(todo, best.tolist(), p.tolist()):
                out[i] = (self.enc.labels[b], float(q))
        return out

    def accuracy(self, path: str | Path) -> tuple[float, int]:
        """Accuracy (%) on a labelled TSV file of the config's layout, and its number of texts."""
        d = self.cfg.data
        data = read_tsv(path, d.text_column, d.label_column, d.header)
        check_labelled(path, data, self.enc.labels, d.label_column)
        return accuracy(self.model, self.enc, data), len(data.labels)

    def inspector(self) -> ClassificationInspector:
        return ClassificationInspector(self)


class ClassificationInspector(Inspector):
    task = "classification"

    def __init__(self, classifier: Classifier):
        self.classifier, self.cfg = classifier, classifier.cfg

    def count_tokens(self, text: str) -> int:
        return len(self.classifier.enc.ids(text))

    def run(self, text: str, options: Options) -> Inspection:
        c = self.classifier
        batch = to_device(c.enc.batch([text], None, [0]), device_of(c.model))
        out = c.model(**batch.inputs())  # ClassifierOutput: logits (1, C), pooling weights (1, T) or None
        probs = torch.softmax(out.logits[0].float(), -1).tolist()
        ranked = sorted(zip(c.enc.labels, probs), key=lambda lp: -lp[1])
        tokens = c.enc.tok.pieces(batch.words[0].tolist())
        maps = []
        alpha = encoder_attention(c.model, batch.inputs())
        if alpha is not None:
            maps.append(AttentionMap("encoder", TITLES["encoder"], tokens, tokens, alpha, "tokens", "tokens"))
        if out.attention is not None:  # one learned query over the words
            pooled = out.attention[0].float().cpu().view(1, 1, 1, -1)  # (1, 1, 1, T)
            maps.append(AttentionMap("pooling", TITLES["pooling"], ["<query>"], tokens, pooled,
                                     "learned query", "tokens"))
        result = ClassificationResult(label=ranked[0][0], probabilities=[
            LabelProbability(label=lab, probability=round(p, 4)) for lab, p in ranked])
        return Inspection(self.task, tokens, result, maps)


class ClassificationTask(Task):
    name, config, what = "classification", ClassificationConfig, "a classifier"
    verbs, inspects = ("classify",), True

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """Accuracy on the labelled TSV ``src`` (the columns of the model's config)."""
        acc, n = Classifier.load(path, request.device).accuracy(src_file(request))
        scores = {"accuracy": acc, "texts": n}
        return Evaluation(scores, plain_lines(scores))

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Classifier:
        return Classifier.load(path, device)


TASK = ClassificationTask()
