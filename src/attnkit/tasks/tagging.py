"""Tagging (many to many, synchronous): CoNLL-U in, one UPOS or XPOS tag per word out.

The run directory holds ``words.vocab.txt`` (word level), ``chars.vocab.txt`` (the characters of
the training words) and ``tags.txt`` next to ``config.yaml`` and the checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnkit.build import build_tagger
from attnkit.config import TaggingConfig, resolve_path
from attnkit.data.batching import pad, token_batches
from attnkit.data.conllu import Sentence, read_conllu
from attnkit.data.text import read_utf8
from attnkit.data.vocab import ListTokenizer
from attnkit.errors import UserError
from attnkit.inspection import (
    TITLES,
    AttentionMap,
    Inspectable,
    Inspection,
    Inspector,
    Options,
    TaggingResult,
    encoder_attention,
)
from attnkit.model_dir import load_best_weights, open_model_dir
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
from attnkit.training.strategies import IGNORE, Supervised, make_strategy

log = logging.getLogger(__name__)

MAX_WORD_CHARS = 24


@dataclass
class TagBatch:
    words: Tensor  # (B, T) word ids, PAD on the right
    chars: Tensor  # (B, T, C) character ids of each word
    labels: Tensor  # (B, T) tag ids, IGNORE at padding
    index: list[int]
    bilm_chars: Tensor | None = None  # (B, T, C') in the contextual LM's character vocabulary

    def inputs(self) -> dict:
        extra = {"bilm_chars": self.bilm_chars} if self.bilm_chars is not None else {}
        return {"words": self.words, "chars": self.chars, **extra}

    @property
    def num_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


class Vocabularies:
    """Words, characters and tags of a tagger, saved as plain text files."""

    def __init__(self, words: ListTokenizer, chars: ListTokenizer, tags: list[str], lowercase: bool):
        self.words, self.chars, self.tags, self.lowercase = words, chars, tags, lowercase
        self.tag_index = {t: i for i, t in enumerate(tags)}
        self.contextual: Contextual | None = None  # set when the tagger reads ELMo vectors too

    @classmethod
    def build(cls, sentences: list[Sentence], tag: str, size: int, min_freq: int, lowercase: bool) -> Vocabularies:
        forms = [" ".join(s.forms) for s in sentences]
        words = ListTokenizer.train([f.lower() for f in forms] if lowercase else forms, "word", min_freq, size)
        chars = ListTokenizer.train(["".join(s.forms) for s in sentences], "char")
        tags = sorted({t for s in sentences for t in s.tags[tag]})
        return cls(words, chars, tags, lowercase)

    def save(self, out: Path) -> None:
        self.words.save(out / "words.vocab.txt")
        self.chars.save(out / "chars.vocab.txt")
        (out / "tags.txt").write_text("\n".join(self.tags) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, out: Path, lowercase: bool) -> Vocabularies:
        for name in ("words.vocab.txt", "chars.vocab.txt", "tags.txt"):
            if not (out / name).is_file():
                raise UserError(f"{out}: model directory is incomplete, {name} is missing")
        tags = read_utf8(out / "tags.txt").split("\n")[:-1]
        return cls(ListTokenizer.load(out / "words.vocab.txt", "word"),
                   ListTokenizer.load(out / "chars.vocab.txt", "char"), tags, lowercase)

    def word_ids(self, forms: list[str]) -> list[int]:
        return [self.words.stoi.get(f.lower() if self.lowercase else f, UNK) for f in forms]

    def char_ids(self, forms: list[str]) -> list[list[int]]:
        return [[self.chars.stoi.get(c, UNK) for c in f[:MAX_WORD_CHARS]] for f in forms]

    def batch(self, sentences: list[Sentence], tag: str | None, index: list[int]) -> TagBatch:
        words = pad([self.word_ids(s.forms) for s in sentences])
        B, T = words.shape
        chars = torch.zeros(B, T, max(len(f[:MAX_WORD_CHARS]) for s in sentences for f in s.forms),
                            dtype=torch.long)
        for b, s in enumerate(sentences):
            for t, ids in enumerate(self.char_ids(s.forms)):
                chars[b, t, : len(ids)] = torch.tensor(ids)
        labels = torch.full((B, T), IGNORE, dtype=torch.long)
        if tag is not None:
            for b, s in enumerate(sentences):
                for t, value in enumerate(s.tags[tag]):
                    labels[b, t] = self.tag_index.get(value, IGNORE)
        bilm_chars = self.contextual.chars_of([s.forms for s in sentences]) if self.contextual else None
        return TagBatch(words, chars, labels, index, bilm_chars)


@torch.no_grad()
def pieces(sentence: Sentence, limit: int | None) -> list[Sentence]:
    """The sentence cut into pieces of at most ``limit`` words (a Transformer's positions)."""
    if limit is None or len(sentence.forms) <= limit:
        return [sentence]
    return [Sentence(sentence.forms[i : i + limit], {k: v[i : i + limit] for k, v in sentence.tags.items()})
            for i in range(0, len(sentence.forms), limit)]


def model_limit(model: torch.nn.Module) -> int | None:
    return getattr(getattr(model, "model", model), "max_positions", None)


@torch.no_grad()
def predict(model: torch.nn.Module, vocabs: Vocabularies, sentences: list[Sentence],
            batch_words: int = 4000) -> list[list[str]]:
    """The most probable tag of every word of every sentence (empty sentences give no tags). A
    sentence longer than the model's positions is tagged in consecutive pieces, with a warning."""
    model.eval()
    limit = model_limit(model)
    cut = [(i, p) for i, s in enumerate(sentences) if s.forms for p in pieces(s, limit)]
    if len(cut) > sum(1 for s in sentences if s.forms):
        log.warning("tagging sentences longer than the model's %d positions in pieces", limit)
    tagged: list[list[str]] = [[] for _ in cut]
    device = device_of(model)
    for idx in token_batches([(len(p.forms),) * 2 for _, p in cut], batch_words, seed=0, epoch=0):
        batch = to_device(vocabs.batch([cut[k][1] for k in idx], None, idx), device)
        best = model(**batch.inputs()).argmax(-1).cpu()  # (B, T)
        for b, k in enumerate(idx):
            tagged[k] = [vocabs.tags[j] for j in best[b, : len(cut[k][1].forms)].tolist()]
    out: list[list[str]] = [[] for _ in sentences]
    for (i, _), tags in zip(cut, tagged):
        out[i] += tags
    return out


def check_tagged(path: str | Path, sentences: list[Sentence], tag: str) -> None:
    """A file to score must hold gold tags: one whose tag column is all ``_`` is an error, not accuracy 0."""
    if all(t == "_" for s in sentences for t in s.tags[tag]):
        column = {"upos": 4, "xpos": 5}[tag]
        raise UserError(f"{path}: no {tag.upper()} tags to score against (column {column} is '_' on every word)")


def accuracy(predicted: list[list[str]], sentences: list[Sentence], tag: str) -> float:
    pairs = [(p, g) for pred, s in zip(predicted, sentences) for p, g in zip(pred, s.tags[tag])]
    return round(100.0 * sum(p == g for p, g in pairs) / max(1, len(pairs)), 2)


def build(cfg: TaggingConfig, vocabs: Vocabularies, out: Path, fresh: bool) -> torch.nn.Module:
    """The tagger of ``cfg``; with ``embeddings.contextual``, wrapped with the bidirectional LM, whose
    files a fresh run copies into ``out/bilm`` (its weights travel in the tagger's checkpoint). On the CPU:
    whoever runs the tagger places it."""
    e = cfg.embeddings
    if e.contextual is None:
        return build_tagger(cfg.model, len(vocabs.words), len(vocabs.chars), len(vocabs.tags))
    # a fresh run reads the trained weights; a resumed one gets them from its own checkpoint
    vocabs.contextual = Contextual.load(resolve_path(e.contextual) if fresh else out / "bilm", e.freeze_contextual,
                                        weights=fresh, cache=e.cache_contextual, device="cpu")
    if fresh:
        Contextual.copy_files(resolve_path(e.contextual), out / "bilm")
    embedder = vocabs.contextual.embedder
    tagger = build_tagger(cfg.model, len(vocabs.words), len(vocabs.chars), len(vocabs.tags), embedder.output_dim)
    return WithContextualEmbeddings(tagger, embedder)


def prepare(cfg: TaggingConfig, out: Path, resume: bool) -> Prepared:
    d, v, t = cfg.data, cfg.vocab, cfg.training
    max_len = min(d.max_len, getattr(cfg.model, "max_positions", d.max_len))
    train = read_conllu(resolve_path(d.train))
    if any(len(s.forms) > max_len for s in train):
        log.warning("skipped %d training sentence(s) of more than %d words", sum(len(s.forms) > max_len
                                                                                  for s in train), max_len)
        train = [s for s in train if len(s.forms) <= max_len]
    valid = read_conllu(resolve_path(d.valid))
    test = read_conllu(resolve_path(d.test)) if d.test else None
    for path, sentences in ((d.train, train), (d.valid, valid), (d.test, test)):
        if sentences is not None:
            check_tagged(path, sentences, d.tag)
    if resume:
        vocabs = Vocabularies.load(out, v.lowercase)
    else:
        vocabs = Vocabularies.build(train, d.tag, v.size, v.min_freq, v.lowercase)
        vocabs.save(out)
    unseen = {g for s in valid for g in s.tags[d.tag]} - set(vocabs.tags)
    if unseen:
        log.warning("%s: tag(s) never seen in training: %s (always counted wrong)", d.valid, " ".join(sorted(unseen)))
    torch.manual_seed(t.seed)
    e = cfg.embeddings
    model = build(cfg, vocabs, out, fresh=not resume)
    apply_pretrained(word_embedding(model), vocabs.words.itos, e.pretrained, e.freeze_pretrained, resume)
    n_params = parameter_count(model)
    log.info("%s with %s parameters; %d training sentences, %d words, %d tags", cfg.model.arch, f"{n_params:,}",
             len(train), len(vocabs.words), len(vocabs.tags))
    lengths = [(len(s.forms), len(s.forms)) for s in train]
    strategy = make_strategy(t, "supervised")
    unsmoothed = Supervised(0.0)  # the validation loss: the plain cross-entropy

    limit = model_limit(model)
    scored = [p for s in valid for p in pieces(s, limit)]  # the loss, like the tags, by pieces

    def validate(m: torch.nn.Module) -> dict:
        loss, n, device = 0.0, 0, device_of(m)
        for idx in token_batches([(len(s.forms),) * 2 for s in scored], t.batch_tokens, 0, 0):
            batch = to_device(vocabs.batch([scored[i] for i in idx], d.tag, idx), device)
            a, b, _ = unsmoothed.loss(m, batch, 0)
            loss, n = loss + float(a), n + b
        return {"loss": round(loss / max(n, 1), 4), "accuracy": accuracy(predict(m, vocabs, valid), valid, d.tag)}

    metric = best_metric(t, "accuracy", ("accuracy", "loss"), "a tagger")
    return Prepared(
        model=model, strategy=strategy,
        epoch_batches=lambda epoch, scale=1: token_batches(lengths, t.batch_tokens * scale, t.seed, epoch),
        make_batch=lambda idx: vocabs.batch([train[i] for i in idx], d.tag, idx),
        validate=validate,
        test=(lambda m: {"accuracy": accuracy(predict(m, vocabs, test), test, d.tag)}) if test else None,
        metric=metric, higher_is_better=metric == "accuracy",
        reserve_factor=final_cost(len(test) if test else 0, len(valid)),
        meta={"params": n_params},
    )


class Tagger(Inspectable):
    """A trained tagger directory, ready to tag (and to ``inspect``, ``attnkit.inspection``)."""

    def __init__(self, model: torch.nn.Module, vocabs: Vocabularies, cfg: TaggingConfig):
        self.model, self.vocabs, self.cfg = model.eval(), vocabs, cfg

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Tagger:
        """The tagger of a model directory, on ``device`` (auto: the GPU when there is one)."""
        where = pick_device(device)
        path, cfg = open_model_dir(path, "tagging", "a tagger")
        vocabs = Vocabularies.load(path, cfg.vocab.lowercase)
        model = build(cfg, vocabs, path, fresh=False)
        load_best_weights(model, path)
        return cls(model.to(where), vocabs, cfg)

    def tag(self, sentences: list[Sentence | str | list[str]]) -> list[list[str]]:
        """The tags of each sentence: a CoNLL-U ``Sentence``, a list of words, or a text split at spaces."""
        sentences = [s if isinstance(s, Sentence) else Sentence(s.split() if isinstance(s, str) else list(s), {})
                     for s in sentences]
        return predict(self.model, self.vocabs, sentences)

    def inspector(self) -> TaggingInspector:
        return TaggingInspector(self)


class TaggingInspector(Inspector):
    task = "tagging"

    def __init__(self, tagger: Tagger):
        self.tagger, self.cfg = tagger, tagger.cfg

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def run(self, text: str, options: Options) -> Inspection:
        words = text.split()
        limit = model_limit(self.tagger.model)
        if limit is not None and len(words) > limit:
            raise UserError(f"the text has {len(words)} words; this tagger reads at most {limit} at once")
        tags = self.tagger.tag([Sentence(words, {})])[0]
        batch = to_device(self.tagger.vocabs.batch([Sentence(words, {})], None, [0]), device_of(self.tagger.model))
        alpha = encoder_attention(self.tagger.model, batch.inputs())
        maps = ([AttentionMap("encoder", TITLES["encoder"], words, words, alpha, "words", "words")]
                if alpha is not None else [])
        return Inspection(self.task, words, TaggingResult(words=words, tags=tags), maps)


class TaggingTask(Task):
    name, config, what = "tagging", TaggingConfig, "a tagger"
    verbs, inspects = ("tag",), True

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """Tag accuracy (UPOS or XPOS, as trained) on the gold CoNLL-U ``src``."""
        tagger = Tagger.load(path, request.device)
        src = src_file(request)
        gold = read_conllu(src)
        tag = tagger.cfg.data.tag
        check_tagged(src, gold, tag)
        predicted = tagger.tag(gold)
        scores = {tag + "_accuracy": accuracy(predicted, gold, tag), "sentences": len(gold)}
        return Evaluation(scores, plain_lines(scores))

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Tagger:
        return Tagger.load(path, device)


TASK = TaggingTask()
