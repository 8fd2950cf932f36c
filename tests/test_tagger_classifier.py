"""Taggers, classifiers, pooling, scalar mix and the bidirectional LM, as modules."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize

from attnkit.layers.char import CharWordEncoder
from attnkit.layers.pooling import AttentionPool, last_pool, mean_pool
from attnkit.layers.scalar_mix import ScalarMix
from attnkit.models.bilm import BidirectionalLM, reverse_padded
from attnkit.models.classifier import BagOfEmbeddings, RNNClassifier, TransformerClassifier
from attnkit.models.tagger import RNNTagger, TransformerTagger

WORDS = torch.tensor([[5, 6, 7, 8], [9, 4, 0, 0], [4, 0, 0, 0]])  # 3 sentences, 4 / 2 / 1 words


def chars_of(words: torch.Tensor, max_chars: int = 5) -> torch.Tensor:
    """Fake character ids: word w has (w % 4) + 1 characters, all id w % 7 + 2; padding words none."""
    out = torch.zeros(*words.shape, max_chars, dtype=torch.long)
    for idx in words.nonzero().tolist():
        w = int(words[tuple(idx)])
        out[idx[0], idx[1], : w % 4 + 1] = w % 7 + 2
    return out


def test_scalar_mix_weights_are_a_softmax_and_mix_layers():
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.w.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(2.0)
    s = mix.weights()
    assert torch.allclose(s, torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0))
    assert s.sum().item() == pytest.approx(1.0) and (s > 0).all()
    layers = torch.randn(3, 2, 4, 6)
    torch.testing.assert_close(mix(layers), 2.0 * (s[:, None, None, None] * layers).sum(0))


def test_pooling():
    states = torch.randn(3, 4, 6)
    mask = WORDS != 0
    torch.testing.assert_close(mean_pool(states, mask)[1], states[1, :2].mean(0))
    last = last_pool(states, mask, bidirectional=True)
    torch.testing.assert_close(last[1], torch.cat([states[1, 1, :3], states[1, 0, 3:]]))
    pool = randomize(AttentionPool(6, 5))
    pooled, alpha = pool(states, mask)
    assert alpha.shape == (3, 4)
    assert (alpha[~mask] == 0).all()
    torch.testing.assert_close(alpha.sum(1), torch.ones(3))
    torch.testing.assert_close(pooled, (alpha.unsqueeze(-1) * states).sum(1))


def test_char_encoder_gives_zero_for_padding_and_context_free_word_vectors():
    enc = randomize(CharWordEncoder(10, 4, 3)).eval()
    chars = chars_of(WORDS)
    chars[1, 1] = chars[0, 3]  # the same spelling in another sentence and position
    out = enc(chars)
    assert out.shape == (3, 4, 6)
    assert (out[WORDS == 0] == 0).all()
    torch.testing.assert_close(out[0, 3], out[1, 1])  # a word's vector depends on its characters only


@pytest.mark.parametrize("make, inputs", [
    (lambda: RNNTagger(12, 5, 8, 6, 2, 0.1, num_chars=10, char_dim=4, char_hidden=3), "chars"),
    (lambda: RNNTagger(12, 5, 8, 6, 1, 0.1, cell="gru", extra_dim=7), "extra"),
    (lambda: TransformerTagger(12, 5, 8, 2, 16, 2, 0.1, 0.1, "sinusoidal", "pre", 32), "words"),
    (lambda: TransformerTagger(12, 5, 8, 2, 16, 2, 0.1, 0.1, "sinusoidal", "pre", 32, num_chars=10, char_dim=4,
                               char_hidden=3, extra_dim=7), "chars+extra"),
], ids=["bilstm-chars", "bigru-extra", "transformer", "transformer-chars-extra"])
def test_tagger_gives_one_tag_per_word_independent_of_padding(make, inputs):
    tagger = randomize(make()).eval()
    extra = torch.randn(3, 6, 7)

    def run(words):
        return tagger(words, chars=chars_of(words) if "chars" in inputs else None,
                      extra=extra[:, : words.size(1)] if "extra" in inputs else None)

    logits = run(WORDS)
    assert logits.shape == (3, 4, 5)
    padded = torch.cat([WORDS, torch.zeros(3, 2, dtype=torch.long)], 1)
    more = run(padded)
    torch.testing.assert_close(more[:, :4][WORDS != 0], logits[WORDS != 0], atol=1e-5, rtol=1e-5)


def test_a_transformer_taggers_attention_is_the_one_its_tags_came_from():
    tagger = randomize(TransformerTagger(12, 5, 8, 2, 16, 2, 0.1, 0.1, "sinusoidal", "pre", 32, num_chars=10,
                                         char_dim=4, char_hidden=3, extra_dim=7)).eval()
    chars, extra = chars_of(WORDS), torch.randn(3, 4, 7)
    enc = tagger.encode(WORDS, chars, extra, need_weights=True)
    torch.testing.assert_close(tagger.W_out(enc.memory), tagger(WORDS, chars, extra))
    weights = enc.attention["encoder"]  # (B, layers, heads, T, T)
    assert weights.shape == (3, 2, 2, 4, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 2, 4))
    # the characters and the contextual vectors change what the words attend to
    words_alone = tagger.encoder(WORDS, need_weights=True).attention["encoder"]
    assert not torch.allclose(weights, words_alone)


@pytest.mark.parametrize("make", [
    lambda: BagOfEmbeddings(12, 3, 8, 6, 0.1),
    lambda: RNNClassifier(12, 3, 8, 6, 1, "last", 5, 0.1),
    lambda: RNNClassifier(12, 3, 8, 6, 2, "mean", 5, 0.1),
    lambda: RNNClassifier(12, 3, 8, 6, 1, "attention", 5, 0.1),
    lambda: TransformerClassifier(12, 3, 8, 2, 16, 1, 0.1, 0.1, "sinusoidal", "pre", 32, "attention", 5),
    lambda: TransformerClassifier(12, 3, 8, 2, 16, 1, 0.1, 0.1, "sinusoidal", "pre", 32, "mean", 5, extra_dim=7),
], ids=["boe", "bilstm-last", "bilstm-mean", "bilstm-attention", "transformer-attention", "transformer-extra"])
def test_classifier_one_prediction_per_text_independent_of_padding(make):
    model = randomize(make()).eval()
    extra = torch.randn(3, 7, 7) if getattr(model, "W_extra", None) is not None else None
    out = model(WORDS, extra=None if extra is None else extra[:, :4])
    assert out.logits.shape == (3, 3)
    padded = torch.cat([WORDS, torch.zeros(3, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded, extra=extra).logits, out.logits, atol=1e-5, rtol=1e-5)
    if out.attention is not None:
        assert (out.attention[WORDS == 0] == 0).all()


def test_bag_of_embeddings_ignores_word_order():
    model = randomize(BagOfEmbeddings(12, 3, 8, 6, 0.1)).eval()
    a = model(torch.tensor([[5, 6, 7]])).logits
    b = model(torch.tensor([[7, 5, 6]])).logits
    torch.testing.assert_close(a, b)


def test_reverse_padded():
    x = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    assert reverse_padded(x, torch.tensor([4, 2])).tolist() == [[4, 3, 2, 1], [6, 5, 0, 0]]


@pytest.mark.parametrize("cutoffs", [None, [4, 9]], ids=["softmax", "adaptive"])
def test_bilm_directions_never_see_the_word_they_predict(cutoffs):
    lm = randomize(BidirectionalLM(10, 15, 4, 3, 16, 2, 0.1, cutoffs)).eval()
    words = torch.tensor([[5, 6, 7, 8, 9]])
    base = lm(chars_of(words))
    assert base.layers.shape == (3, 1, 5, 32)
    for t in range(5):
        changed = words.clone()
        changed[0, t] = 11  # different characters
        out = lm(chars_of(changed))
        # forward position s predicts word s+1 from words <= s: unaffected for s < t
        torch.testing.assert_close(out.forward_logits[0, :t], base.forward_logits[0, :t])
        # backward position s predicts word s-1 from words >= s: unaffected for s > t
        torch.testing.assert_close(out.backward_logits[0, t + 1 :], base.backward_logits[0, t + 1 :])
        assert not torch.allclose(out.forward_logits[0, t:], base.forward_logits[0, t:])


@pytest.mark.parametrize("cutoffs", [None, [4, 9]], ids=["softmax", "adaptive"])
def test_bilm_output_is_a_distribution_and_target_log_probs_read_it(cutoffs):
    lm = randomize(BidirectionalLM(10, 15, 4, 3, 16, 2, 0.1, cutoffs), std=0.3).eval()
    h = torch.randn(7, 16)
    log_p = torch.log_softmax(lm.logits(h).float(), -1)  # (7, 15): every word of every cluster
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(7))
    targets = torch.tensor([0, 3, 4, 8, 9, 14, 2])  # words of the head and of both tail clusters
    torch.testing.assert_close(lm.target_log_probs(h, targets), log_p.gather(1, targets[:, None]).squeeze(1))


@pytest.mark.parametrize("freeze", [True, False])
def test_contextual_embedder_mixes_the_bilm_layers_and_trains_only_what_is_not_frozen(freeze):
    from attnkit.models.bilm import ContextualEmbedder

    lm = randomize(BidirectionalLM(10, 15, 4, 3, 6, 2, 0.1))
    chars = chars_of(WORDS)
    embedder = ContextualEmbedder(lm, freeze=freeze).train()
    assert lm.training is not freeze  # a frozen LM runs without dropout, even in training
    lm.eval()
    torch.testing.assert_close(lm.layers(chars), lm(chars).layers)  # layers skip only the softmax
    embedder(chars).square().sum().backward()
    assert embedder.mix.w.grad is not None and embedder.mix.gamma.grad is not None  # the mix always learns
    below_softmax = [p for name, p in lm.named_parameters() if not name.startswith("W_out")]
    assert all((p.grad is None) is freeze for p in below_softmax)
    assert lm.W_out.weight.grad is None


def test_cached_frozen_layers_equal_the_lm_and_are_computed_once_per_sentence():
    from attnkit.models.bilm import ContextualEmbedder

    lm = randomize(BidirectionalLM(10, 15, 4, 3, 6, 2, 0.1))
    embedder = ContextualEmbedder(lm, freeze=True, cache=True).train()
    calls = []
    layers = lm.layers
    lm.layers = lambda chars: calls.append(chars.size(0)) or layers(chars)
    chars = chars_of(WORDS)
    cached = embedder.cached_layers(chars)
    mask = (WORDS != 0)[None, :, :, None]  # real words; padding is zero in the cache
    torch.testing.assert_close(cached, layers(chars) * mask, atol=1e-6, rtol=1e-5)
    assert calls == [3] and len(embedder.cache) == 3
    # the same sentences again, in another order, another batch width and padding: nothing computed
    again = chars_of(torch.tensor([[4, 0, 0, 0, 0], [5, 6, 7, 8, 0]]), max_chars=7)
    torch.testing.assert_close(embedder.cached_layers(again)[:, :, :4], cached[:, [2, 0]])
    assert calls == [3]
    mixed = embedder(chars_of(torch.tensor([[9, 4], [8, 8]])))  # one sentence seen, one new
    assert calls == [3, 1] and mixed.shape == (2, 2, lm.output_dim)
    embedder.eval()
    embedder(chars)  # evaluation reads the LM itself, and keeps nothing
    assert calls == [3, 1, 3] and len(embedder.cache) == 4
    assert ContextualEmbedder(lm, freeze=False, cache=True).cache is None  # a fine-tuned LM changes: no cache
