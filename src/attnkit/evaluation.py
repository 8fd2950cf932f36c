"""Scores on detokenized text with sacreBLEU: BLEU and chrF, each with its signature."""

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
