"""Seconds per update of the SST-2 attention BiLSTM with frozen ELMo vectors, with and without
``embeddings.cache_contextual``, and without ELMo (docs/BENCHMARKS.md, ELMo notes). The biLM has
random weights (the cost is the same); six batches of about 3,000 words, two passes over them: the
first pass fills the cache, the second reads it.

    python bench/elmo_cache.py
"""

from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from attnkit.data.vocab import ListTokenizer
from attnkit.models.bilm import BidirectionalLM, ContextualEmbedder, WithContextualEmbeddings
from attnkit.models.classifier import RNNClassifier
from attnkit.tasks.bilm import char_tensor

TRAIN = "../shared/data/sst2/glue/train.tsv"


def batches(lines: list[str], words: ListTokenizer, chars: ListTokenizer, n: int = 6, tokens: int = 3000):
    r, out = random.Random(0), []
    for _ in range(n):
        sents: list[list[str]] = []
        while sum(map(len, sents)) < tokens:
            sents.append(r.choice(lines).split() or ["."])
        ids = torch.zeros(len(sents), max(map(len, sents)), dtype=torch.long)  # (B, T)
        for i, s in enumerate(sents):
            ids[i, : len(s)] = torch.tensor([words.stoi.get(w, 1) for w in s])
        out.append((ids, char_tensor(chars, sents), torch.randint(0, 2, (len(sents),))))
    return out


def seconds_per_step(model: torch.nn.Module, data, elmo: bool) -> tuple[float, float]:
    """Mean seconds of an update in the first pass (its first update left out) and in the second."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    model.train()
    times = []
    for _ in range(2):
        for ids, chars, y in data:
            start = time.perf_counter()
            out = model(words=ids, **({"bilm_chars": chars} if elmo else {}))
            opt.zero_grad()
            F.cross_entropy(out.logits, y).backward()
            opt.step()
            times.append(time.perf_counter() - start)
    n = len(data)
    return sum(times[1:n]) / (n - 1), sum(times[n:]) / n


def main() -> None:
    torch.manual_seed(0)
    lines = [line.split("\t")[0] for line in open(TRAIN, encoding="utf-8").read().splitlines()[1:]]
    words = ListTokenizer.train(lines, "word")
    chars = ListTokenizer.train(lines, "char", min_freq=5)
    data = batches(lines, words, chars)

    def classifier(extra: int) -> RNNClassifier:
        return RNNClassifier(len(words), 2, 300, 256, 1, "attention", 128, 0.4, extra_dim=extra)

    for cache in (False, True):
        bilm = BidirectionalLM(len(chars), 10000, 32, 128, 256, 2, 0.1)  # configs/bilm-elmo.yaml's sizes
        model = WithContextualEmbeddings(classifier(bilm.output_dim), ContextualEmbedder(bilm, True, cache))
        first, second = seconds_per_step(model, data, True)
        print(f"frozen ELMo, cache {cache!s:5} s/update, pass 1 / pass 2: {first:.3f} / {second:.3f}")
    first, second = seconds_per_step(classifier(0), data, False)
    print(f"without ELMo              s/update, pass 1 / pass 2: {first:.3f} / {second:.3f}")


if __name__ == "__main__":
    main()
