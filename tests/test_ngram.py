"""attnkit.models.ngram: interpolated modified Kneser-Ney."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from attnkit.models.ngram import EOS_WORD, UNK_WORD, KneserNeyLM, discounts


def corpus(n: int = 300, seed: int = 0) -> list[list[str]]:
    r = random.Random(seed)
    words = "the cat dog sat on mat a log ran".split()
    return [[r.choice(words) for _ in range(r.randint(1, 9))] for _ in range(n)]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distribution_sums_to_one_for_every_context(order):
    lm = KneserNeyLM.train(corpus(), order)
    histories = [[], ["the"], ["the", "cat"], ["never", "seen", "words"], ["mat"] * 6, ["dog", "ran", "on"]]
    for history in histories:
        p = lm.distribution(history)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (p > 0).all()  # interpolation with the uniform distribution: nothing impossible
        for w in lm.vocab:  # the scalar and vector paths agree
            assert lm.prob(w, history) == pytest.approx(p[lm.index[w]], abs=1e-15)


def test_vocabulary_and_unknown_words():
    lm = KneserNeyLM.train(corpus(), 3)
    assert EOS_WORD in lm.vocab and UNK_WORD in lm.vocab and "<s>" not in lm.vocab
    assert lm.prob("zebra", ["the"]) == lm.prob(UNK_WORD, ["the"])


def test_higher_order_fits_training_data_better_and_round_trips():
    data = corpus()
    ppl = [KneserNeyLM.train(data, n).perplexity(data) for n in (1, 2, 3)]
    assert ppl[0] > ppl[1] > ppl[2]
    lm = KneserNeyLM.train(data, 3)
    again = KneserNeyLM.from_json(lm.to_json())
    assert again.perplexity(data[:40]) == lm.perplexity(data[:40])


def test_perplexity_is_exp_of_mean_negative_log_prob():
    lm = KneserNeyLM.train(corpus(), 2)
    sents = corpus(5, seed=9)
    total = sum(math.log(lm.prob(w, s[:i])) for s in sents for i, w in enumerate(s + [EOS_WORD]))
    n = sum(len(s) + 1 for s in sents)
    assert lm.perplexity(sents) == pytest.approx(math.exp(-total / n))


def test_modified_discounts_follow_chen_and_goodman():
    from collections import Counter

    n1, n2, n3, n4 = 100, 40, 20, 10
    y = n1 / (n1 + 2 * n2)
    d = discounts(Counter({1: n1, 2: n2, 3: n3, 4: n4}))
    assert d == pytest.approx((1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3))


def test_sentences_start_with_one_bos_counted_raw_at_its_own_order():
    """As SRILM and KenLM: the first word's context is (<s>), its n-grams keep their raw counts."""
    data = corpus()
    lm = KneserNeyLM.train(data, 5)
    for level in lm.counts:
        for h in level:
            assert "<s>" not in h[1:]  # never padded with several <s>, never mid-context
    first = Counter(s[0] for s in data)
    assert lm.counts[1][("<s>",)] == dict(first)  # raw counts of the first words, not continuation counts
    second = Counter((s + [EOS_WORD])[1] for s in data if s[0] == "the")
    assert lm.counts[2][("<s>", "the")] == dict(second)
    assert lm._context([]) == ("<s>",) and lm._context(["the"]) == ("<s>", "the")
    assert lm._context("a the cat sat zebra".split()) == ("the", "cat", "sat", "<unk>")
