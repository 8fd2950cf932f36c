"""An n-gram language model with interpolated modified Kneser-Ney smoothing (Chen and Goodman 1998).

For the highest order, with raw counts c, and for every lower order, with continuation counts
c'(h w) = |{v : c(v h w) > 0}| (in how many contexts the shorter n-gram was seen):

    P(w | h) = max(c(h w) - D(c(h w)), 0) / c(h) + gamma(h) P(w | h')
    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h)

where h' drops the oldest word of h, N_k(h .) counts the words seen exactly k (3+: at least 3)
times after h, and the discounts of each order come from its counts-of-counts n1..n4:
Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3. A context never
seen falls through to the lower order; the unigram level interpolates with the uniform
distribution 1/|V|. Every distribution sums to one over the vocabulary (tested).

The vocabulary is the training words plus ``</s>`` and ``<unk>``. A sentence starts with one ``<s>``,
which is never predicted: the first word's context is just ``(<s>)``, the second's ``(<s>, w1)``, as
SRILM and KenLM do, so an n-gram that starts with ``<s>`` is counted once, at its own order, with its
raw count (nothing can precede ``<s>``, so a continuation count would mean nothing).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

BOS_WORD, EOS_WORD, UNK_WORD = "<s>", "</s>", "<unk>"


@dataclass
class ContextStats:
    total: int  # sum of the (raw or continuation) counts after this context
    n1: int
    n2: int
    n3: int  # 3 or more


def discounts(counts_of_counts: Counter) -> tuple[float, float, float]:
    n1, n2, n3, n4 = (counts_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:  # too little data for modified KN: one absolute discount
        d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
        return d, d, d
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(x, 0.0), float(k)) for k, x in enumerate(d, start=1))  # 0 <= D_k <= k


class KneserNeyLM:
    def __init__(self, order: int):
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}
        # counts[k][context] -> {word: count}, k = context length 0..order-1
        self.counts: list[dict[tuple[str, ...], dict[str, int]]] = []
        self.stats: list[dict[tuple[str, ...], ContextStats]] = []
        self.D: list[tuple[float, float, float]] = []

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, sentences: list[list[str]], order: int) -> KneserNeyLM:
        lm = cls(order)
        words = sorted({w for s in sentences for w in s} | {EOS_WORD, UNK_WORD})
        lm.vocab = words
        lm.index = {w: i for i, w in enumerate(words)}
        n = order
        # raw counts: every n-gram at the highest order, and the shorter n-grams that start with <s>
        # (a word fewer than n - 1 words into its sentence) at their own order
        raw: list[dict[tuple[str, ...], Counter]] = [defaultdict(Counter) for _ in range(n)]
        for sent in sentences:
            padded = [BOS_WORD] + sent + [EOS_WORD]
            for i in range(1, len(padded)):
                h = tuple(padded[max(0, i - n + 1) : i])  # n - 1 words, or all since <s>
                raw[len(h)][h][padded[i]] += 1
        levels: list[dict[tuple[str, ...], dict[str, int]]] = [dict() for _ in range(n)]
        levels[n - 1] = {h: dict(c) for h, c in raw[n - 1].items()}
        for k in range(n - 2, -1, -1):  # continuation counts from the order above
            cont: dict[tuple[str, ...], Counter] = defaultdict(Counter)
            for h, ws in levels[k + 1].items():
                for w in ws:
                    cont[h[1:]][w] += 1
            cont.update(raw[k])
            levels[k] = {h: dict(c) for h, c in cont.items()}
        lm.counts = levels
        lm._index_counts()
        return lm

    def _index_counts(self) -> None:
        """Per-context totals and N1/N2/N3+, and each level's discounts, from ``self.counts``."""
        self.stats, self.D = [], []
        for level in self.counts:
            self.D.append(discounts(Counter(c for ws in level.values() for c in ws.values())))
            self.stats.append({h: ContextStats(sum(ws.values()), sum(1 for c in ws.values() if c == 1),
                                               sum(1 for c in ws.values() if c == 2),
                                               sum(1 for c in ws.values() if c >= 3))
                               for h, ws in level.items()})

    # -- probabilities ----------------------------------------------------------------------
    def _context(self, history: list[str]) -> tuple[str, ...]:
        """The last order-1 words of ``<s> history`` (unknown words as <unk>)."""
        n = self.order - 1
        if n == 0:
            return ()
        h = [w if w in self.index else UNK_WORD for w in history[-n:]]
        return tuple(([BOS_WORD] if len(h) < n else []) + h)[-n:]

    def _weights(self, k: int, h: tuple[str, ...]) -> tuple[dict[str, int], float, float] | None:
        """Counts after context h at level k, their normaliser, and the back-off weight gamma(h)."""
        st = self.stats[k].get(h)
        if st is None or st.total == 0:
            return None
        d1, d2, d3 = self.D[k]
        gamma = (d1 * st.n1 + d2 * st.n2 + d3 * st.n3) / st.total
        return self.counts[k][h], float(st.total), gamma

    def _discount(self, k: int, c: int) -> float:
        d1, d2, d3 = self.D[k]
        return d1 if c == 1 else d2 if c == 2 else d3

    def prob(self, word: str, history: list[str]) -> float:
        """P(word | history); unknown words are <unk>."""
        word = word if word in self.index else UNK_WORD
        h = self._context(history)
        p = 1.0 / len(self.vocab)
        for k in range(0, len(h) + 1):  # from the unigram level up to the longest context
            w = self._weights(k, h[len(h) - k :])
            if w is None:
                continue  # unseen context: this level passes the lower distribution through
            counts, total, gamma = w
            c = counts.get(word, 0)
            p = max(c - self._discount(k, c), 0.0) / total + gamma * p
        return p

    def distribution(self, history: list[str]) -> np.ndarray:
        """P(. | history) over ``self.vocab`` as a vector that sums to 1."""
        h = self._context(history)
        p = np.full(len(self.vocab), 1.0 / len(self.vocab))
        for k in range(0, len(h) + 1):
            w = self._weights(k, h[len(h) - k :])
            if w is None:
                continue
            counts, total, gamma = w
            p = gamma * p
            for word, c in counts.items():
                if word in self.index:
                    p[self.index[word]] += max(c - self._discount(k, c), 0.0) / total
        return p

    def sentence_log_prob(self, words: list[str]) -> tuple[float, int]:
        """Natural-log probability of a sentence and its </s>, and the number of predicted tokens."""
        total, history = 0.0, []
        for w in words + [EOS_WORD]:
            total += math.log(self.prob(w, history))
            history.append(w)
        return total, len(words) + 1

    def perplexity(self, sentences: list[list[str]]) -> float:
        lp, n = 0.0, 0
        for s in sentences:
            a, b = self.sentence_log_prob(s)
            lp, n = lp + a, n + b
        return math.exp(-lp / n)

    # -- saving (plain JSON, never pickle) ---------------------------------------------------
    def to_json(self) -> str:
        levels = [[[list(h), ws] for h, ws in level.items()] for level in self.counts]
        return json.dumps({"order": self.order, "vocab": self.vocab, "counts": levels})

    @classmethod
    def from_json(cls, text: str) -> KneserNeyLM:
        doc = json.loads(text)
        lm = cls(doc["order"])
        lm.vocab = doc["vocab"]
        lm.index = {w: i for i, w in enumerate(lm.vocab)}
        lm.counts = [{tuple(h): ws for h, ws in level} for level in doc["counts"]]
        lm._index_counts()
        return lm
