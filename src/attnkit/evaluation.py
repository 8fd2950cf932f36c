"""Scores on detokenized text with sacreBLEU: BLEU and chrF, each with its signature; the same by
source length, and long inputs made by joining short ones."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


def score_corpus(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU (cased, 13a tokenization) and chrF of detokenized hypotheses against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_detail": str(b),
    }


# -- quality by source length (Bahdanau et al. 2015, figure 2) -------------------------------------
LENGTH_EDGES = (10, 15, 20, 25, 30, 40, 50, 60)  # source words; buckets 1-9, 10-14, ..., 50-59, 60+


def join_lines(lines: list[str], k: int) -> list[str]:
    """Consecutive groups of ``k`` lines joined by a space (the last group may be shorter): long inputs
    made from short ones, for sources and references alike, so each joined pair is still a translation."""
    return [" ".join(lines[i : i + k]) for i in range(0, len(lines), k)]


Bucket = tuple[int, int | None, list[int]]  # low, high (None: no bound), the positions in it


def length_buckets(lengths: list[int], edges: tuple[int, ...] = LENGTH_EDGES) -> list[Bucket]:
    """A partition of the positions of ``lengths``: (low, high or None for the last, indices with
    low <= length < high), one per bucket that holds any, in order of length."""
    bounds = [0, *edges]
    buckets = []
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        index = [j for j, n in enumerate(lengths) if n >= low and (high is None or n < high)]
        if index:
            buckets.append((low, high, index))
    return buckets


def score_by_length(hypotheses: list[str], references: list[str], sources: list[str],
                    edges: tuple[int, ...] = LENGTH_EDGES) -> list[dict]:
    """Corpus BLEU and chrF of each source-length bucket (length: whitespace words of the source, so
    every model is bucketed alike whatever its tokenizer)."""
    rows = []
    for low, high, index in length_buckets([len(s.split()) for s in sources], edges):
        scores = score_corpus([hypotheses[i] for i in index], [references[i] for i in index])
        rows.append({"words": f"{max(low, 1)}-{high - 1}" if high is not None else f"{low}+", "low": low,
                     "high": high, "sentences": len(index), "bleu": scores["bleu"], "chrf": scores["chrf"]})
    return rows

