"""One word in many sentences: a static vector and a contextual one for each occurrence.

The lecture asks why word2vec, fastText and GloVe are not contextual: they keep one vector per word
type, so "play" in "play the guitar" and in "a play by Chekhov" is the same point. An ELMo-style
biLM gives each occurrence its own vector, computed from the whole sentence. :func:`occurrences`
collects both for every sentence where a word occurs; the cosine similarities between occurrences
(:func:`cosines`) are all 1 for the static vectors and spread for the contextual ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attnkit.errors import UserError


@dataclass
class Occurrences:
    word: str
    sentences: list[list[str]]  # each sentence where the word occurs (once per occurrence)
    positions: list[int]  # where it is in each
    static: Tensor  # (n, d): the static vector of each occurrence
    contextual: Tensor  # (n, D): the biLM's vector of each occurrence

    def snippet(self, i: int, around: int = 4) -> str:
        """The words near occurrence ``i``, the word itself in brackets."""
        s, p = self.sentences[i], self.positions[i]
        left = ("... " if p > around else "") + " ".join(s[max(0, p - around) : p])
        right = " ".join(s[p + 1 : p + 1 + around]) + (" ..." if p + 1 + around < len(s) else "")
        return f"{left} [{s[p]}] {right}".strip()


def find(word: str, sentences: list[list[str]], limit: int) -> list[tuple[list[str], int]]:
    """The first ``limit`` occurrences of ``word`` (as written: a static vector belongs to a form, and
    "Play" has its own), as (sentence, position)."""
    found = []
    for s in sentences:
        for p, w in enumerate(s):
            if w == word:
                found.append((s, p))
                if len(found) == limit:
                    return found
    return found


def occurrences(word: str, sentences: list[list[str]], static: tuple[list[str], Tensor], bilm: str | Path,
                layer: str | int = "average", limit: int = 12) -> Occurrences:
    """The static vector (``static``: the words and matrix of ``static_vectors.read_vectors``) and the
    contextual vector (from a bilm run, ``layer`` as ``attnkit embed --layer``) of each of the first
    ``limit`` occurrences of ``word``."""
    from attnkit.tasks.bilm import Contextual, embed

    found = find(word, sentences, limit)
    if not found:
        raise UserError(f"--word {word}: not in any of the {len(sentences)} sentences given")
    words, matrix = static
    if word not in words:
        raise UserError(f"--word {word}: the static vectors have none for it (rarer than model.min_count?)")
    vectors = matrix[words.index(word)].expand(len(found), -1)  # one vector, whatever the sentence
    contextual = Contextual.load(bilm, freeze=True, device="cpu")
    with torch.no_grad():
        layers = embed(contextual.embedder.bilm, contextual.chars, [s for s, _ in found], layer)
    ctx = torch.stack([layers[i][p] for i, (_, p) in enumerate(found)])  # (n, D)
    return Occurrences(word, [s for s, _ in found], [p for _, p in found], vectors, ctx)


def cosines(x: Tensor) -> Tensor:
    """(n, d) vectors -> (n, n) cosine similarities."""
    x = F.normalize(x.float(), dim=-1)
    return x @ x.T
