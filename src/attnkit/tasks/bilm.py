"""Pretraining the bidirectional language model of ELMo-style contextual embeddings.

Unlabelled text: several files allowed, each plain text (one whitespace-tokenized sentence per line),
CoNLL-U (its word forms) or TSV (its first column). Each word is
read through its characters; the forward LM predicts the next word (``</s>`` after the last) and the
backward LM the previous one (``<s>`` before the first), over the ``vocab.size`` most frequent
words. The run directory holds ``words.vocab.txt`` and ``chars.vocab.txt``; taggers and classifiers
load it with ``embeddings.contextual: DIR``; ``attnkit embed DIR`` writes the contextual vectors of a
text (:func:`embed`).
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnkit.build import build_bilm
from attnkit.config import BiLMTaskConfig, load_config, resolve_path
from attnkit.data.batching import inference_batches, token_batches
from attnkit.data.conllu import read_conllu
from attnkit.data.text import read_lines
from attnkit.data.vocab import ListTokenizer
from attnkit.errors import UserError
from attnkit.inspection import Inspectable
from attnkit.model_dir import load_best_weights
from attnkit.models.bilm import BidirectionalLM, ContextualEmbedder
from attnkit.runtime import device_of, pick_device, to_device
from attnkit.specials import BOS, EOS, UNK
from attnkit.tasks.base import Prepared, Task, check_cutoffs, final_cost, parameter_count
from attnkit.training.strategies import IGNORE, make_strategy

log = logging.getLogger(__name__)

MAX_WORD_CHARS = 24
FILES = ("config.yaml", "words.vocab.txt", "chars.vocab.txt", "model.safetensors")


def read_unlabelled(paths: str | list[str]) -> list[list[str]]:
    """Whitespace-tokenized sentences from each file by its kind: CoNLL-U (``.conllu``) gives its word
    forms, TSV (``.tsv``, with a header line) its first column, anything else its lines."""
    sentences: list[list[str]] = []
    for p in [paths] if isinstance(paths, str) else paths:
        path = resolve_path(p)
        name = path.name.removesuffix(".gz")
        if name.endswith(".conllu"):
            sentences += [s.forms for s in read_conllu(path)]
        elif name.endswith(".tsv"):
            sentences += [line.split("\t")[0].split() for line in read_lines(path, strip=False)[1:]]
        else:
            sentences += [line.split() for line in read_lines(path)]
    return [s for s in sentences if s]


def char_tensor(chars: ListTokenizer, sentences: list[list[str]]) -> Tensor:
    """(B, T, C) character ids of each word of each sentence, 0-padded."""
    T = max(len(s) for s in sentences)
    C = max(min(len(w), MAX_WORD_CHARS) for s in sentences for w in s)
    out = torch.zeros(len(sentences), T, C, dtype=torch.long)
    for b, sent in enumerate(sentences):
        for t, word in enumerate(sent):
            ids = [chars.stoi.get(c, UNK) for c in word[:MAX_WORD_CHARS]]
            out[b, t, : len(ids)] = torch.tensor(ids)
    return out


@dataclass
class BiLMBatch:
    chars: Tensor  # (B, T, C)
    forward_labels: Tensor  # (B, T) the next word of each position (EOS after the last), IGNORE at padding
    backward_labels: Tensor  # (B, T) the previous word (BOS before the first)
    index: list[int]


def make_batch(words: ListTokenizer, chars: ListTokenizer, sentences: list[list[str]], index: list[int]) -> BiLMBatch:
    B, T = len(sentences), max(len(s) for s in sentences)
    fwd = torch.full((B, T), IGNORE, dtype=torch.long)
    bwd = torch.full((B, T), IGNORE, dtype=torch.long)
    for b, sent in enumerate(sentences):
        ids = [words.stoi.get(w, UNK) for w in sent]
        fwd[b, : len(ids)] = torch.tensor(ids[1:] + [EOS])
        bwd[b, : len(ids)] = torch.tensor([BOS] + ids[:-1])
    return BiLMBatch(char_tensor(chars, sentences), fwd, bwd, index)


def prepare(cfg: BiLMTaskConfig, out: Path, resume: bool) -> Prepared:
    d, v, t = cfg.data, cfg.vocab, cfg.training
    train = [s for s in read_unlabelled(d.train) if len(s) <= d.max_len]
    valid = read_unlabelled(d.valid)
    test = read_unlabelled(d.test) if d.test else None
    if resume:
        words = ListTokenizer.load(out / "words.vocab.txt", "word")
        chars = ListTokenizer.load(out / "chars.vocab.txt", "char")
    else:
        lines = [" ".join(s) for s in train]
        words = ListTokenizer.train(lines, "word", v.min_freq, v.size)
        chars = ListTokenizer.train(["".join(s) for s in train], "char", min_freq=5)
        words.save(out / "words.vocab.txt")
        chars.save(out / "chars.vocab.txt")
    torch.manual_seed(t.seed)
    check_cutoffs(cfg.model.adaptive_softmax, len(words))
    model = build_bilm(cfg.model, len(chars), len(words))
    n_params = parameter_count(model)
    log.info("bidirectional LM with %s parameters; %d training sentences, %d words, %d characters",
             f"{n_params:,}", len(train), len(words), len(chars))
    strategy = make_strategy(t, "bidirectional")

    def perplexity(m: torch.nn.Module, data: list[list[str]]) -> float:
        total, n, device = 0.0, 0, device_of(m)
        for idx in token_batches([(len(s), len(s)) for s in data], t.batch_tokens, 0, 0):
            batch = to_device(make_batch(words, chars, [data[i] for i in idx], idx), device)
            loss, k, _ = strategy.loss(m, batch, 0)
            total, n = total + float(loss), n + k
        return round(math.exp(total / max(n, 1)), 2)

    lengths = [(len(s), len(s)) for s in train]
    return Prepared(
        model=model, strategy=strategy,
        epoch_batches=lambda epoch, scale=1: token_batches(lengths, t.batch_tokens * scale, t.seed, epoch),
        make_batch=lambda idx: make_batch(words, chars, [train[i] for i in idx], idx),
        validate=lambda m: {"perplexity": perplexity(m, valid)},
        test=(lambda m: {"perplexity": perplexity(m, test)}) if test else None,
        metric="perplexity", higher_is_better=False,
        reserve_factor=final_cost(len(test) if test else 0, len(valid)),
        meta={"params": n_params},
    )


class Contextual(Inspectable):
    """A trained bidirectional LM for a downstream model (its character vocabulary and an embedder), or
    for ``embed`` (``attnkit.load``, ``attnkit embed``)."""

    def __init__(self, chars: ListTokenizer, embedder: ContextualEmbedder):
        self.chars, self.embedder = chars, embedder

    @classmethod
    def load(cls, path: str | Path, freeze: bool, weights: bool = True, cache: bool = False,
             device: str = "auto") -> Contextual:
        """From a bilm run directory (``weights``: load its trained weights; a downstream model's own
        checkpoint already holds them; ``cache``: see ``ContextualEmbedder``), the LM on ``device``
        (auto: the GPU when there is one)."""
        where = pick_device(device)
        path = Path(path)
        for name in FILES[: 4 if weights else 3]:
            if not (path / name).is_file():
                raise UserError(f"{path}: not a trained bidirectional LM ({name} is missing)")
        cfg = load_config(path / "config.yaml")
        if cfg.task != "bilm":
            raise UserError(f"{path}: holds a {cfg.task} model, not a bidirectional LM (task: bilm)")
        words = ListTokenizer.load(path / "words.vocab.txt", "word")
        chars = ListTokenizer.load(path / "chars.vocab.txt", "char")
        bilm = build_bilm(cfg.model, len(chars), len(words))
        if weights:
            load_best_weights(bilm, path)
        return cls(chars, ContextualEmbedder(bilm, freeze, cache).to(where))

    @staticmethod
    def copy_files(src: str | Path, dst: Path) -> None:
        """What a downstream model directory keeps of the bilm run to rebuild it (weights excluded)."""
        dst.mkdir(parents=True, exist_ok=True)
        for name in FILES[:3]:
            shutil.copyfile(Path(src) / name, dst / name)

    def chars_of(self, sentences: list[list[str]]) -> Tensor:
        return char_tensor(self.chars, sentences)

    def embed(self, sentences: list[list[str] | str], layer: str | int = "average",
              batch_size: int = 32) -> list[Tensor]:
        """Every word's contextual vector, (T_i, 2D) per sentence (``layer``: see ``select_layer``); a
        sentence is a list of words or a text split at spaces."""
        words = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        return embed(self.embedder.bilm, self.chars, words, layer, batch_size)


def select_layer(layers: Tensor, layer: str | int) -> Tensor:
    """One sentence's (L+1, T, 2D) layers -> what ``attnkit embed --layer`` asks for:
    ``average`` (the mean of all layers: ELMo's scalar mix before a task has tuned it), ``top`` (the last
    LSTM layer), ``all`` (every layer, (L+1, T, 2D)) or a layer number (0: the character-based word
    vectors, j: the j-th LSTM layer of both directions)."""
    if layer == "all":
        return layers
    if layer == "average":
        return layers.mean(0)
    if layer == "top":
        return layers[-1]
    if not 0 <= int(layer) < layers.size(0):
        raise UserError(f"--layer {layer}: the model has layers 0 to {layers.size(0) - 1}")
    return layers[int(layer)]


@torch.no_grad()
def embed(bilm: BidirectionalLM, chars: ListTokenizer, sentences: list[list[str]], layer: str | int = "average",
          batch_size: int = 32) -> list[Tensor]:
    """The contextual vectors of every word of every sentence, in input order: (T_i, 2D) per sentence,
    (L+1, T_i, 2D) with ``layer="all"``, on the CPU; an empty sentence gives T_i = 0."""
    bilm.eval()
    device = device_of(bilm)
    num_layers, dim = bilm.num_layers + 1, bilm.output_dim
    empty = torch.zeros(num_layers, 0, dim)
    out = [select_layer(empty, layer) for _ in sentences]
    todo = [i for i, s in enumerate(sentences) if s]
    for batch in inference_batches([len(sentences[i]) for i in todo], batch_size):
        rows = [todo[j] for j in batch]
        layers = bilm.layers(to_device(char_tensor(chars, [sentences[i] for i in rows]), device))
        layers = layers.float().cpu()  # (L+1, B, T, 2D)
        for b, i in enumerate(rows):
            out[i] = select_layer(layers[:, b, : len(sentences[i])], layer).contiguous()
    return out


class BiLMTask(Task):
    name, config, what = "bilm", BiLMTaskConfig, "a bidirectional LM"
    verbs = ("embed",)

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Contextual:
        return Contextual.load(path, freeze=True, device=device)


TASK = BiLMTask()
