"""Neural language models and sampling: the causal invariant, the decoder contract, the sampler."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize

from attnkit.decoding.search import beam_decode, filter_logits, greedy_decode, sample_categorical, sample_decode
from attnkit.models.base import EncoderOutput
from attnkit.models.lm import LSTMLanguageModel, TransformerLanguageModel
from attnkit.specials import EOS, PAD

V = 17


def lstm_lm(cutoffs=None):
    return randomize(LSTMLanguageModel(V, 12, 16, 2, 0.1, tie_embeddings=True, adaptive_cutoffs=cutoffs),
                     std=0.5).eval()


def transformer_lm(positional="sinusoidal", norm="pre"):
    m = TransformerLanguageModel(V, 16, 2, 32, 2, 0.1, 0.1, positional, norm, 64, tie_embeddings=True)
    return randomize(m, std=0.5).eval()


MODELS = [pytest.param(lstm_lm, id="lstm"), pytest.param(lambda: lstm_lm([6, 11]), id="lstm-adaptive-softmax"),
          pytest.param(transformer_lm, id="transformer"),
          pytest.param(lambda: transformer_lm("learned", "post"), id="transformer-learned-post")]


@pytest.mark.parametrize("make", MODELS)
def test_changing_a_future_token_never_changes_earlier_logits(make):
    model = make()
    torch.manual_seed(0)
    x = torch.randint(4, V, (3, 9))
    base = model(x).logits
    for t in range(9):
        y = x.clone()
        y[:, t] = (y[:, t] + 1 - 4) % (V - 4) + 4
        out = model(y).logits
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t:], base[:, t:])


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_adaptive_softmax_is_a_distribution_and_scores_the_gold_words_as_the_full_pass(tie):
    model = randomize(LSTMLanguageModel(V, 12, 12, 1, 0.0, tie, adaptive_cutoffs=[6, 11]), std=0.5).eval()
    assert (model.W_out.weight is model.embed.weight) == tie
    x = torch.randint(4, V, (3, 8), generator=torch.Generator().manual_seed(2))
    gold = torch.randint(1, V, (3, 8), generator=torch.Generator().manual_seed(3))
    gold[0, -3:] = PAD
    log_p = model(x).logits  # (3, 8, V)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(3, 8))
    want = -(log_p.gather(-1, gold.unsqueeze(-1)).squeeze(-1) * (gold != PAD)).sum()
    torch.testing.assert_close(model(x, gold=gold).nll, want)
    # every cluster takes part: head words, and words of both tail clusters
    assert {0, 1, 2} <= set(torch.bucketize(gold[gold != PAD], torch.tensor([6, 11]), right=True).tolist())


def test_the_full_softmax_scores_the_gold_words_as_its_logits():
    model = lstm_lm()
    x, gold = torch.randint(4, V, (2, 6)), torch.randint(1, V, (2, 6))
    gold[1, 0] = PAD
    want = torch.nn.functional.cross_entropy(model(x).logits.flatten(0, 1), gold.flatten(), ignore_index=PAD,
                                             reduction="sum")
    torch.testing.assert_close(model(x, gold=gold).nll, want)


@pytest.mark.parametrize("make", MODELS)
def test_stepping_equals_the_teacher_forced_pass(make):
    model = make()
    x = torch.randint(4, V, (4, 7), generator=torch.Generator().manual_seed(1))
    full = model(x).logits
    state = model.init_state(EncoderOutput.empty(4))
    steps = []
    for t in range(7):
        logits, state = model.step(x[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    # reorder keeps each row's own history
    state = model.reorder(state, torch.tensor([2, 0]))
    logits, _ = model.step(torch.tensor([5, 5]), state)
    again = model(torch.cat([x[[2, 0]], torch.tensor([[5], [5]])], 1)).logits[:, -1]
    torch.testing.assert_close(logits, again, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", MODELS)
def test_beam_one_equals_greedy_and_sampling_at_low_temperature_is_greedy(make):
    model = make()
    start = torch.tensor([4, 7, 9])
    limit = torch.tensor([6, 6, 6])
    g = greedy_decode(model, model.init_state(EncoderOutput.empty(3)), start, limit)
    b = beam_decode(model, model.init_state(EncoderOutput.empty(3)), start, 1, limit)
    assert [h[0].tokens for h in g] == [h[0].tokens for h in b]
    s = sample_decode(model, model.init_state(EncoderOutput.empty(3)), start, limit, temperature=1e-4,
                      generator=torch.Generator().manual_seed(0))
    assert [h[0].tokens for h in s] == [h[0].tokens for h in g]
    s1 = sample_decode(model, model.init_state(EncoderOutput.empty(3)), start, limit, top_k=1,
                       generator=torch.Generator().manual_seed(5))
    assert [h[0].tokens for h in s1] == [h[0].tokens for h in g]


def test_sampling_is_seeded_and_draws_from_the_distribution():
    model = lstm_lm()
    start = torch.full((400,), 4)
    limit = torch.full((400,), 1)
    draw = lambda seed: sample_decode(model, model.init_state(EncoderOutput.empty(400)), start, limit,  # noqa: E731
                                      generator=torch.Generator().manual_seed(seed))
    a, b = draw(3), draw(3)
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]
    first = torch.tensor([h[0].tokens[0] if h[0].tokens else EOS for h in a])
    logits, _ = model.step(torch.tensor([4]), model.init_state(EncoderOutput.empty(1)))
    p = torch.softmax(logits[0].float(), -1)
    p[[PAD, 2]] = 0  # never PAD or BOS (the search's constraints)
    p = p / p.sum()
    freq = torch.bincount(first, minlength=V).float() / 400
    assert (freq - p).abs().max() < 0.1


def test_sample_categorical_draws_each_row_from_its_distribution():
    """The inverse-CDF sampler: each row's frequencies match its own (unnormalised) weights, tokens of
    weight 0 (first, middle, last) are never drawn, and a seeded generator repeats its draws."""
    weights = torch.tensor([[0.0, 2.0, 0.0, 1.0, 5.0, 0.0, 2.0, 0.0],   # sums to 10
                            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]])
    n = 40_000
    draws = sample_categorical(weights.expand(n, 2, 8), torch.Generator().manual_seed(1))  # (n, 2)
    assert draws.shape == (n, 2)
    freq = torch.bincount(draws[:, 0], minlength=8).float() / n
    assert (freq - weights[0] / 10).abs().max() < 0.01  # about 4 standard errors at p = 0.5
    assert (draws[:, 1] == 7).all()
    again = sample_categorical(weights.expand(n, 2, 8), torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert filter_logits(logits, top_k=2).exp().tolist()[0] == pytest.approx([0.625, 0.375, 0, 0])
    assert filter_logits(logits, top_p=0.8).exp().tolist()[0] == pytest.approx([0.625, 0.375, 0, 0])
    assert filter_logits(logits, top_p=0.81).exp().tolist()[0] == pytest.approx([0.5 / 0.95, 0.3 / 0.95,
                                                                                   0.15 / 0.95, 0])
    assert filter_logits(logits, temperature=1.0).exp().sum() == pytest.approx(1.0)
    sharp = filter_logits(logits, temperature=0.5).exp()[0]
    assert sharp[0] > 0.5 and sharp.sum() == pytest.approx(1.0)
