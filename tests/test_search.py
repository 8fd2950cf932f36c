"""attnkit.decoding.search: greedy and beam search against each other, against the teacher-forced
model, and against exhaustive search on a tiny vocabulary."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import RNN_CONTEXTS, random_model, random_src, tiny_rnn, tiny_transformer

from attnkit.decoding.search import (
    NEG_INF,
    Hypothesis,
    beam_search,
    best_finished,
    constrain,
    greedy,
    length_penalty,
    max_lengths,
)
from attnkit.specials import BOS, EOS, PAD, UNK

RNN_VARIANTS = [
    pytest.param(tiny_rnn(context=ctx, cell=cell, input_feeding=feed),
                 id=f"{ctx}-{cell}-{'feed' if feed else 'nofeed'}")
    for ctx, cell, feed in itertools.product(RNN_CONTEXTS, ["lstm", "gru"], [True, False])
]
TRANSFORMER_VARIANTS = [pytest.param(tiny_transformer(norm=norm, tie_embeddings=False), id=norm)
                        for norm in ("pre", "post")]


def tokens(hyps):
    return [h[0].tokens for h in hyps]


@pytest.mark.parametrize("cfg", RNN_VARIANTS + TRANSFORMER_VARIANTS)
def test_beam_one_equals_greedy(cfg):
    model = random_model(cfg, std=0.5 if cfg.arch == "transformer" else 0.7)
    src = random_src((2, 5, 3, 7, 1, 4, 6, 2))
    limit = max_lengths(src, 1.5, 5, model.max_positions)
    g = greedy(model, src, limit)
    b = beam_search(model, src, 1, limit)
    assert tokens(b) == tokens(g)
    assert len({tuple(t) for t in tokens(g)}) > 1  # the random model does not say the same thing everywhere
    for hg, hb in zip(g, b):
        assert hb[0].log_prob == pytest.approx(hg[0].log_prob, abs=1e-4)


def teacher_forced_log_probs(model, src, hyp_tokens, limit, min_len=0):
    """Sum of log p(token) under the teacher-forced pass, with the search's rules: each step's
    distribution is over the tokens it may produce (no PAD, no BOS, no EOS before ``min_len``), and a
    hypothesis of ``limit`` tokens ends there without EOS."""
    tgt = [BOS] + hyp_tokens
    with torch.no_grad():
        logits = model(src, torch.tensor([tgt])).logits[0].float()
    logits[:, [PAD, BOS]] = NEG_INF
    logits[:min_len, EOS] = NEG_INF
    lp = torch.log_softmax(logits, -1)
    assert len(hyp_tokens) <= limit
    out = hyp_tokens + ([EOS] if len(hyp_tokens) < limit else [])
    return sum(float(lp[t, tok]) for t, tok in enumerate(out)), lp


@pytest.mark.parametrize("cfg", [tiny_rnn(context="additive"), tiny_transformer()], ids=["rnn", "transformer"])
def test_greedy_picks_the_argmax_of_the_teacher_forced_distribution(cfg):
    model = random_model(cfg, std=0.5)
    src = random_src((3, 6))
    limit = max_lengths(src, 1.5, 5, model.max_positions)
    for b, hyp in enumerate(greedy(model, src, limit)):
        n = int((src[b] != PAD).sum())
        h = hyp[0]
        total, lp = teacher_forced_log_probs(model, src[b : b + 1, :n], h.tokens, int(limit[b]))
        assert h.log_prob == pytest.approx(total, abs=1e-4)
        for t, tok in enumerate(h.tokens):
            assert tok == int(lp[t].argmax())


def exhaustive_ranking(model, src_row, max_len, alpha, vocab):
    """Every output of at most ``max_len`` tokens as (score, tokens, log P), best first, scored
    log P / lp(|Y|+1) like beam search."""
    words = [UNK] + list(range(4, vocab))
    ranking = []
    for n in range(max_len + 1):
        for seq in itertools.product(words, repeat=n):
            total, _ = teacher_forced_log_probs(model, src_row, list(seq), max_len)
            ranking.append((total / length_penalty(n + 1, alpha), list(seq), total))
    return sorted(ranking, key=lambda r: -r[0])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_wide_beam_is_exhaustive_search(arch, alpha):
    """With a beam as wide as the whole hypothesis space, beam search finds the exact best output."""
    vocab, max_len = 6, 3  # outputs: UNK, 4, 5 (PAD and BOS are never produced): 1 + 3 + 9 + 27 = 40
    cfg = tiny_rnn(context="dot") if arch == "rnn" else tiny_transformer()
    model = random_model(cfg, vocab=vocab, std=0.6, seed=4)
    src = random_src((3, 1), vocab=vocab)
    limit = torch.tensor([max_len, max_len])
    hyps = beam_search(model, src, 40, limit, alpha=alpha, nbest=40)
    for b in range(2):
        n = int((src[b] != PAD).sum())
        ranking = exhaustive_ranking(model, src[b : b + 1, :n], max_len, alpha, vocab)
        assert len(hyps[b]) == len(ranking) == 40  # every hypothesis finished
        assert [h.tokens for h in hyps[b][:10]] == [seq for _, seq, _ in ranking[:10]]
        for h, (score, _, total) in zip(hyps[b], ranking):
            assert h.score == pytest.approx(score, abs=1e-4)
            assert h.log_prob == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("cfg", [tiny_rnn(context="general"), tiny_transformer()], ids=["rnn", "transformer"])
def test_beam_nbest_is_sorted_distinct_and_scored(cfg):
    model = random_model(cfg, std=0.5)
    src = random_src((2, 5, 3))
    limit = max_lengths(src, 1.5, 5, model.max_positions)
    alpha = 0.6
    hyps = beam_search(model, src, 4, limit, alpha=alpha, nbest=3)
    for b, sent in enumerate(hyps):
        assert len(sent) == 3
        assert [h.score for h in sent] == sorted((h.score for h in sent), reverse=True)
        assert len({tuple(h.tokens) for h in sent}) == 3
        for h in sent:
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, alpha))
            assert len(h.tokens) <= int(limit[b])
            assert EOS not in h.tokens and PAD not in h.tokens and BOS not in h.tokens
            n = int((src[b] != PAD).sum())
            total, _ = teacher_forced_log_probs(model, src[b : b + 1, :n], h.tokens, int(limit[b]))
            assert h.log_prob == pytest.approx(total, abs=1e-4)


def test_beam_batch_equals_one_sentence_at_a_time():
    model = random_model(tiny_transformer(), std=0.5)
    src = random_src((2, 5, 3, 7))
    limit = max_lengths(src, 1.5, 5, model.max_positions)
    batch = beam_search(model, src, 3, limit, nbest=2)
    for b in range(src.size(0)):
        n = int((src[b] != PAD).sum())
        alone = beam_search(model, src[b : b + 1, :n], 3, limit[b : b + 1], nbest=2)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batch[b]]


@pytest.mark.parametrize("cfg", [tiny_transformer(), tiny_rnn(context="general")], ids=["transformer", "rnn"])
def test_greedy_batch_equals_one_sentence_at_a_time(cfg):
    """Rows that finish leave the batch; the others go on exactly as they would alone."""
    model = random_model(cfg, std=0.5)
    src = random_src((2, 5, 3, 7, 1, 4))
    limit = max_lengths(src, 1.5, 5, model.max_positions)
    batch = greedy(model, src, limit)
    assert len({len(h[0].tokens) for h in batch}) > 1  # rows finished at different steps
    for b in range(src.size(0)):
        n = int((src[b] != PAD).sum())
        alone = greedy(model, src[b : b + 1, :n], limit[b : b + 1])[0][0]
        assert alone.tokens == batch[b][0].tokens and alone.score == pytest.approx(batch[b][0].score, abs=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_min_and_max_length_are_respected(search):
    model = random_model(tiny_rnn(context="additive"), std=0.7)
    src = random_src((2, 5, 3, 7, 1, 4))
    limit = torch.tensor([4, 1, 6, 3, 2, 5])
    run = (lambda mn: greedy(model, src, limit, mn)) if search == "greedy" else \
          (lambda mn: beam_search(model, src, 3, limit, 1.0, 1, mn))
    for h, lim in zip(tokens(run(0)), limit.tolist()):
        assert len(h) <= lim
    for h, lim in zip(tokens(run(2)), limit.tolist()):
        assert min(2, lim) <= len(h) <= lim


def test_constrain_rules():
    logits = torch.zeros(3, 8)
    out = constrain(logits.clone(), step=0, min_len=1)
    assert (out[:, PAD] == NEG_INF).all() and (out[:, BOS] == NEG_INF).all()
    assert (out[:, EOS] == NEG_INF).all()  # before min_len
    assert (out[:, UNK] == 0).all() and (out[:, 4:] == 0).all()
    out = constrain(logits.clone(), step=1, min_len=1)
    assert (out[:, EOS] == 0).all()
    # the searches normalise what is left: the distribution over the tokens a search may produce
    assert torch.log_softmax(out, -1)[0, EOS].exp().item() == pytest.approx(1 / 6)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_hypothesis_at_its_limit_ends_there_without_eos(search):
    """The limit is the last step: what a row chose there ends it (CTranslate2's rule), so a model
    that never says EOS still gives ``limit`` tokens, scored by the tokens it produced."""
    model = random_model(tiny_transformer(), std=0.5)
    src = random_src((3, 5))
    limit, never = torch.tensor([4, 2]), 10  # min_len past the limit: EOS is never allowed
    run = greedy(model, src, limit, never) if search == "greedy" else beam_search(model, src, 3, limit, 1.0, 3, never)
    for b, hyps in enumerate(run):
        n = int((src[b] != PAD).sum())
        assert len(hyps) == (1 if search == "greedy" else 3)
        for h in hyps:
            assert len(h.tokens) == int(limit[b]) and EOS not in h.tokens
            total, _ = teacher_forced_log_probs(model, src[b : b + 1, :n], h.tokens, int(limit[b]), never)
            assert h.log_prob == pytest.approx(total, abs=1e-4)


def test_best_finished_keeps_the_most_probable_k_and_ranks_them_by_score():
    hyps = [Hypothesis([4], -1.0, -1.0), Hypothesis([4, 5, 6, 7], -0.5, -3.0),
            Hypothesis([5, 5], -0.9, -2.0), Hypothesis([6, 6, 6], -0.8, -2.5)]
    assert [h.log_prob for h in best_finished(hyps, 3)] == [-2.5, -2.0, -1.0]  # the best score, least probable
    assert [h.log_prob for h in best_finished(hyps, 4)] == [-3.0, -2.5, -2.0, -1.0]


def test_length_penalty_and_max_lengths():
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(1, 0.5) == pytest.approx(1.0)
    src = torch.tensor([[5, 6, 7, EOS], [5, EOS, PAD, PAD]])
    assert max_lengths(src, 1.5, 10, None).tolist() == [16, 13]
    assert max_lengths(src, 1.5, 10, 15).tolist() == [14, 13]  # capped at the model's limit - 1
    assert max_lengths(src, 0.0, 2, None).tolist() == [2, 2]
    assert max_lengths(src, 0.0, 0, None).tolist() == [1, 1]  # at least one step: EOS, or a token


def test_beam_rejects_nbest_above_beam():
    model = random_model(tiny_rnn())
    with pytest.raises(ValueError, match="nbest"):
        beam_search(model, random_src((2,)), 2, torch.tensor([3]), nbest=3)


def test_transformer_search_stays_within_max_positions():
    """max_lengths caps the output so the decoder never runs past its position table."""
    model = random_model(tiny_transformer(positional="learned", max_positions=6), std=0.5)
    src = random_src((3, 4))
    limit = max_lengths(src, 3.0, 10, model.max_positions)
    assert limit.tolist() == [5, 5]
    for hyps in (greedy(model, src, limit), beam_search(model, src, 2, limit)):
        assert all(len(h[0].tokens) <= 5 for h in hyps)
    assert math.isfinite(greedy(model, src, limit)[0][0].log_prob)
