"""attnkit.layers.positional, .rnn and .transformer: formulas and padding invariants."""

from __future__ import annotations

import math

import pytest
import torch

from attnkit.layers.positional import (
    LearnedPositions,
    SinusoidalPositions,
    make_positions,
    sinusoidal_table,
)
from attnkit.layers.rnn import RNNEncoder
from attnkit.layers.transformer import FeedForward, Sublayer
from attnkit.masks import causal_mask, padding_mask
from attnkit.specials import PAD


@pytest.mark.parametrize("d_model", [8, 7])
def test_sinusoidal_table_formula(d_model):
    table = sinusoidal_table(20, d_model)
    assert table.shape == (20, d_model)
    for pos in (0, 1, 7, 19):
        for i in range(d_model):
            angle = pos / 10000 ** ((i - i % 2) / d_model)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert table[pos, i].item() == pytest.approx(expected, abs=1e-5)


def test_positions_add_the_right_rows_at_an_offset():
    x = torch.zeros(2, 3, 8)
    sin = SinusoidalPositions(8, 16)
    torch.testing.assert_close(sin(x, offset=4), sinusoidal_table(16, 8)[4:7].expand(2, 3, 8))
    torch.manual_seed(0)
    learned = LearnedPositions(8, 16)
    torch.testing.assert_close(learned(x, offset=5), learned.embedding.weight[5:8].expand(2, 3, 8))
    assert isinstance(make_positions("learned", 8, 16), LearnedPositions)
    with pytest.raises(ValueError):
        make_positions("rotary", 8, 16)


def test_masks():
    ids = torch.tensor([[5, 6, 3], [7, 3, PAD]])
    assert padding_mask(ids).tolist() == [[True, True, True], [True, True, False]]
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_encoder_skips_padding(cell, bidirectional):
    torch.manual_seed(0)
    enc = RNNEncoder(cell, 5, 4, num_layers=2, bidirectional=bidirectional, dropout=0.0).eval()
    lengths = torch.tensor([3, 6, 1])
    x = torch.randn(3, 6, 5)
    memory, final_h, final_c = enc(x, lengths)
    dirs = 2 if bidirectional else 1
    assert memory.shape == (3, 6, 4 * dirs) and final_h.shape == (3, 4 * dirs)
    assert (final_c is None) == (cell == "gru")
    for b, n in enumerate(lengths.tolist()):
        assert (memory[b, n:] == 0).all()  # zero at padding
        # each sentence alone, without padding, gives the same states
        alone, h_alone, _ = enc(x[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(memory[b : b + 1, :n], alone, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(final_h[b : b + 1], h_alone, atol=1e-6, rtol=1e-5)
        # the final state is the forward state at the last real word (and the backward state at the first)
        torch.testing.assert_close(final_h[b, :4], memory[b, n - 1, :4])
        if bidirectional:
            torch.testing.assert_close(final_h[b, 4:], memory[b, 0, 4:])


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_sublayer_residual_and_norm(norm):
    torch.manual_seed(0)
    sub = Sublayer(6, dropout=0.0, norm=norm).eval()
    x, y = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    if norm == "pre":
        torch.testing.assert_close(sub.inp(x), sub.norm(x))
        torch.testing.assert_close(sub.out(x, y), x + y)
    else:
        assert torch.equal(sub.inp(x), x)
        torch.testing.assert_close(sub.out(x, y), sub.norm(x + y))


def test_feed_forward_formula():
    torch.manual_seed(0)
    ff = FeedForward(6, 10, dropout=0.0).eval()
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(ff(x), ff.W_2(torch.relu(ff.W_1(x))))
