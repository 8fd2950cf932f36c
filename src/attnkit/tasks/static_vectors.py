"""Static word vectors: word2vec (skip-gram or CBOW) and fastText, trained by gensim on unlabelled
text (the same files the biLM reads). One vector per word type, the same in every sentence: the
lecture's reason why word2vec, fastText and GloVe are not contextual, and the baseline the biLM's
contextual vectors are compared with (``attnkit plot contexts``, ``bench/elmo_probe.py --static``).

The run directory holds ``vectors.txt`` in word2vec's text format (``COUNT DIM`` header, then a word
and its numbers per line, most frequent word first), which ``embeddings.pretrained`` reads (give it
the file or the run directory). gensim's own pickled model is not kept: a fastText model's
character n-grams are used in training and not saved, so words the text lacks have no vector.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import torch

from attnkit.checkpoint import atomic_write
from attnkit.config import StaticVectorsConfig
from attnkit.data.embeddings import VECTORS_FILE, load_vectors, vectors_file
from attnkit.errors import UserError
from attnkit.inspection import Inspectable
from attnkit.tasks.base import Fitted, Task
from attnkit.tasks.bilm import read_unlabelled

log = logging.getLogger(__name__)


def gensim_model(cfg: StaticVectorsConfig, sentences: list[list[str]]):
    """The trained gensim Word2Vec or FastText model of ``cfg.model`` on ``sentences``."""
    try:
        from gensim.models import FastText, Word2Vec
    except ImportError:
        raise UserError("task static_vectors trains with gensim: pip install 'attnkit[vectors]' (or gensim)") from None
    m = cfg.model
    settings = {"vector_size": m.dim, "window": m.window, "min_count": m.min_count, "negative": m.negative,
                "epochs": m.epochs, "workers": m.workers, "sg": int(m.algorithm == "skipgram"),
                "seed": cfg.training.seed}
    if m.arch == "fasttext":
        return FastText(sentences, min_n=m.min_n, max_n=m.max_n, **settings)
    return Word2Vec(sentences, **settings)


def write_vectors(path: Path, words: list[str], vectors) -> int:
    """word2vec text format, atomically: ``COUNT DIM``, then ``WORD x1 x2 ...`` per line. A word with a
    space in it (a CoNLL-U form may have one) cannot be written so and is left out, with a warning.
    Returns the number of words written."""
    keep = [i for i, word in enumerate(words) if not any(c.isspace() for c in word)]
    if len(keep) < len(words):
        log.warning("left out %d word(s) with a space in them (the word2vec text format cannot hold them)",
                    len(words) - len(keep))

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{len(keep)} {vectors.shape[1]}\n")
            for i in keep:
                f.write(words[i] + " " + " ".join(f"{x:.6g}" for x in vectors[i].tolist()) + "\n")

    atomic_write(path, write)
    return len(keep)


def coverage(words: set[str], sentences: list[list[str]]) -> float:
    """Percentage of the running words of ``sentences`` that have a vector."""
    tokens = [w for s in sentences for w in s]
    return round(100.0 * sum(w in words for w in tokens) / max(len(tokens), 1), 2)


def fit(cfg: StaticVectorsConfig, out: Path, train: list[list[str]]) -> dict:
    start = time.monotonic()
    if not train:
        raise UserError(f"{cfg.data.train}: no sentences to train word vectors on")
    counts = Counter(w for s in train for w in s)
    if max(counts.values(), default=0) < cfg.model.min_count:
        raise UserError(f"{cfg.data.train}: no word occurs model.min_count ({cfg.model.min_count}) times")
    log.info("training %s (%s, %d dimensions) on %d sentences, %d words", cfg.model.arch, cfg.model.algorithm,
             cfg.model.dim, len(train), counts.total())
    logging.getLogger("gensim").setLevel(logging.WARNING)  # its per-epoch INFO lines would drown ours
    model = gensim_model(cfg, train)
    words = list(model.wv.index_to_key)  # most frequent first
    written = write_vectors(out / VECTORS_FILE, words, model.wv.vectors)
    known = set(words)
    summary = {"task": cfg.task, "stopped": "fitted", "params": written * cfg.model.dim, "words": written,
               "seconds": round(time.monotonic() - start, 1),
               "valid": {"coverage": coverage(known, read_unlabelled(cfg.data.valid))}}
    if cfg.data.test:
        summary["test"] = {"coverage": coverage(known, read_unlabelled(cfg.data.test))}
    return summary


def vectors_dim(path: str | Path) -> tuple[Path, int]:
    """The vectors file of a static_vectors run directory (or the file itself) and its dimension, from
    its ``COUNT DIM`` header."""
    file = vectors_file(path)
    if not file.is_file():
        raise UserError(f"{path}: no {VECTORS_FILE} (train one with task: static_vectors)")
    with open(file, encoding="utf-8") as f:
        header = f.readline().split()
    if len(header) != 2 or not all(p.isdigit() for p in header):
        raise UserError(f"{file}: line 1: no 'COUNT DIM' header (word2vec text format)")
    return file, int(header[1])


def read_vectors(path: str | Path) -> tuple[list[str], torch.Tensor]:
    """Every word of a static_vectors run directory or vectors file, and its (words, dim) matrix."""
    file, dim = vectors_dim(path)
    with open(file, encoding="utf-8") as f:
        words = [line.split(" ", 1)[0] for line in f][1:]
    matrix, _ = load_vectors(file, words, dim, lowercase_fallback=False)
    return words, matrix


def nearest_words(words: list[str], matrix: torch.Tensor, word: str, k: int = 8) -> list[tuple[str, float]]:
    """The ``k`` words whose static vectors are closest (cosine) to ``word``'s: the same list whatever
    sentence the word is in."""
    if word not in words:
        return []
    unit = torch.nn.functional.normalize(matrix, dim=-1)
    sims = unit @ unit[words.index(word)]
    best = sims.topk(min(k + 1, len(words))).indices.tolist()
    return [(words[i], round(float(sims[i]), 3)) for i in best if words[i] != word][:k]


class WordVectors(Inspectable):
    """A static_vectors run's vectors (``attnkit.load``): one per word type, whatever its sentence."""

    def __init__(self, words: list[str], matrix: torch.Tensor):
        self.words, self.matrix = words, matrix  # (len(words), dim)
        self.index = {w: i for i, w in enumerate(words)}

    def vector(self, word: str) -> torch.Tensor | None:
        """The word's vector (dim,), or None for a word without one."""
        i = self.index.get(word)
        return None if i is None else self.matrix[i]

    def nearest(self, word: str, k: int = 8) -> list[tuple[str, float]]:
        """The ``k`` words closest to ``word`` (cosine), with the similarity; [] for a word without a vector."""
        return nearest_words(self.words, self.matrix, word, k)


class StaticVectorsTask(Task):
    name, config, what = "static_vectors", StaticVectorsConfig, "static word vectors"

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> WordVectors:
        return WordVectors(*read_vectors(path))

    def prepare(self, cfg: StaticVectorsConfig, out: Path, resume: bool) -> Fitted:
        train = read_unlabelled(cfg.data.train)  # read now: a file's error comes before any work
        return Fitted(lambda: fit(cfg, out, train))


TASK = StaticVectorsTask()


ALGORITHMS = {"skipgram": "skip-gram", "cbow": "CBOW"}


def vectors_name(path: str | Path) -> str:
    """What made the static vectors at ``path`` (a static_vectors run directory or its vectors file), from
    the run's config: "word2vec skip-gram", "fastText CBOW"; a vectors file with no run's config beside
    it is named by its file name."""
    from attnkit.config import load_config
    from attnkit.model_dir import CONFIG

    file = vectors_file(path)
    if not (file.parent / CONFIG).is_file():
        return f"vectors of {file.name}"
    cfg = load_config(file.parent / CONFIG)
    if cfg.task != "static_vectors":
        raise UserError(f"{path}: holds a {cfg.task} model, not static vectors")
    arch = {"word2vec": "word2vec", "fasttext": "fastText"}[cfg.model.arch]
    return f"{arch} {ALGORITHMS[cfg.model.algorithm]}"
