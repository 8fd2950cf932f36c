"""What each layer of a trained biLM knows about parts of speech: a linear probe per layer.

For every layer of ``attnkit embed DIR --layer all`` (0: the character-based word vectors, which see
no context; 1..L: the LSTM layers, both directions concatenated) and for their average, a softmax
regression from the frozen vector of each word to its UPOS tag is trained on the UD English EWT
training set and scored on its dev set. Beside them, the probe-free reference: each word's most
frequent training tag (the commonest tag overall for unseen words). Peters et al. (2018, section 5.3)
ran the same kind of probe and found parts of speech best in the first LSTM layer.

With ``--static DIR`` (a ``task: static_vectors`` run, or any word2vec-format file) the same probe reads
static vectors too: one per word form, the same in every sentence (a word without one reads zeros).

    python bench/elmo_probe.py runs/bilm-elmo
    python bench/elmo_probe.py runs/bilm-elmo --static runs/static-word2vec
    python bench/elmo_probe.py --static runs/static-word2vec      # the static rows alone
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

import torch
import torch.nn.functional as F

from attnkit.data.conllu import read_conllu
from attnkit.tasks.bilm import Contextual, embed

DATA = "../shared/data/ud_english_ewt/en_ewt-ud-{}.conllu.gz"


def most_frequent_tag(train, dev) -> float:
    counts: dict[str, Counter] = defaultdict(Counter)
    for s in train:
        for w, t in zip(s.forms, s.tags["upos"]):
            counts[w][t] += 1
    commonest = Counter(t for s in train for t in s.tags["upos"]).most_common(1)[0][0]
    pairs = [(counts[w].most_common(1)[0][0] if w in counts else commonest, t)
             for s in dev for w, t in zip(s.forms, s.tags["upos"])]
    return 100.0 * sum(p == g for p, g in pairs) / len(pairs)


def vectors(contextual: Contextual, sentences) -> torch.Tensor:
    """Every word's layers, (L+1, N, 2D) for the N words of ``sentences`` in order."""
    layers = embed(contextual.embedder.bilm, contextual.chars, [s.forms for s in sentences], layer="all")
    return torch.cat(layers, dim=1)


def static_features(path: str, sentences) -> tuple[torch.Tensor, float]:
    """Every word's static vector (N, d): its own form's, else its lowercase form's, else zeros (as
    ``embeddings.pretrained`` loads them); and the share of words that had one (%)."""
    from attnkit.data.embeddings import load_vectors
    from attnkit.tasks.static_vectors import vectors_dim

    forms = sorted({w for s in sentences for w in s.forms})
    file, dim = vectors_dim(path)
    table, _ = load_vectors(file, forms, dim)
    row = {w: i for i, w in enumerate(forms)}
    x = table[[row[w] for s in sentences for w in s.forms]]
    return x, 100.0 * float((x.abs().sum(1) > 0).float().mean())


def probe(x: torch.Tensor, y: torch.Tensor, x_dev: torch.Tensor, y_dev: torch.Tensor, classes: int,
          epochs: int = 8, batch: int = 1024, seed: int = 0) -> float:
    """Dev accuracy (%) of a softmax regression trained on (x (N, F), y (N,)) with Adam."""
    g = torch.Generator().manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6  # standardised features: one learning rate fits every layer
    W = torch.nn.Linear(x.size(1), classes)
    opt = torch.optim.Adam(W.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(x.size(0), generator=g).split(batch):
            loss = F.cross_entropy(W((x[idx] - mean) / std), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return 100.0 * float((W((x_dev - mean) / std).argmax(-1) == y_dev).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bilm", nargs="?", help="a trained bilm run directory, e.g. runs/bilm-elmo")
    ap.add_argument("--static", metavar="DIR", help="also static word vectors: a static_vectors run (or vectors file)")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    if not args.bilm and not args.static:
        ap.error("give a bilm run directory, --static DIR, or both")
    train, dev = read_conllu(DATA.format("train")), read_conllu(DATA.format("dev"))
    tags = sorted({t for s in train for t in s.tags["upos"]})
    index = {t: i for i, t in enumerate(tags)}
    y = torch.tensor([index[t] for s in train for t in s.tags["upos"]])
    y_dev = torch.tensor([index.get(t, -1) for s in dev for t in s.tags["upos"]])  # -1: never right
    rows = {"most frequent tag of the word": most_frequent_tag(train, dev)}
    if args.static:
        (x, covered), (x_dev, covered_dev) = static_features(args.static, train), static_features(args.static, dev)
        name = f"static vectors ({covered:.0f}% / {covered_dev:.0f}% of words)"
        rows[name] = probe(x, y, x_dev, y_dev, len(tags), args.epochs)
    if args.bilm:
        contextual = Contextual.load(args.bilm, freeze=True)
        with torch.no_grad():
            x, x_dev = vectors(contextual, train), vectors(contextual, dev)  # (L+1, N, 2D)
        for layer in range(x.size(0)):
            name = "layer 0 (characters, no context)" if layer == 0 else f"layer {layer} (LSTM)"
            rows[name] = probe(x[layer], y, x_dev[layer], y_dev, len(tags), args.epochs)
        rows["average of the layers"] = probe(x.mean(0), y, x_dev.mean(0), y_dev, len(tags), args.epochs)
    what = " and ".join(filter(None, [args.static, args.bilm]))
    print(f"EWT dev UPOS accuracy of a linear probe on {what} ({y.numel():,} training words):")
    for name, acc in rows.items():
        print(f"  {name:44s} {acc:6.2f}")
    print(json.dumps({k: round(v, 2) for k, v in rows.items()}))


if __name__ == "__main__":
    main()
