"""The dropout mask keeps what it should: each element with probability 1 - p, at every position
of the random words it is cut from, the same for the same seed, and the output mean unchanged."""

import math

import pytest
import torch

from attnkit.layers.dropout import Dropout, dropout

N = 10**6


def kept_and_mean(p: float, shape=(1000, 1000)) -> tuple[torch.Tensor, torch.Tensor]:
    out = dropout(torch.ones(shape), p, training=True)
    return (out != 0).flatten(), out.flatten()


@pytest.mark.parametrize("p", [0.1, 0.2, 0.33, 0.5, 0.9])
def test_the_kept_fraction_and_the_output_mean_are_those_of_p(p):
    torch.manual_seed(0)
    kept, out = kept_and_mean(p)
    se = math.sqrt(p * (1 - p) / N)  # of the kept fraction; the mean's is se / (1 - p)
    assert abs(kept.float().mean().item() - (1 - p)) < 4 * se
    assert abs(out.double().mean().item() - 1.0) < 4 * se / (1 - p)
    values = out.unique()
    assert values[0] == 0 and values[1:].tolist() == pytest.approx([1 / (1 - p)], rel=1e-4)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_every_byte_position_of_the_mask_keeps_as_often(p):
    """The mask is cut from 64-bit random words: element i takes bytes of word i // 4 (or // 8), so
    each position i mod 8 must keep 1 - p of its elements (a word whose top bit is never set drops
    one position twice as often)."""
    torch.manual_seed(1)
    kept, _ = kept_and_mean(p)
    per_position = kept.view(-1, 8).float().mean(0)  # (8,)
    se = math.sqrt(p * (1 - p) / (N // 8))
    assert ((per_position - (1 - p)).abs() < 4 * se).all(), per_position.tolist()


def test_a_fixed_seed_gives_the_same_mask_and_another_seed_another():
    x = torch.randn(37, 101)
    torch.manual_seed(5)
    a = dropout(x, 0.3, True)
    torch.manual_seed(5)
    b = dropout(x, 0.3, True)
    torch.manual_seed(6)
    c = dropout(x, 0.3, True)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_odd_sizes_low_precision_and_the_edges():
    torch.manual_seed(2)
    for shape in [(1,), (3,), (5, 7), (2, 3, 5)]:  # not a multiple of the 4 elements a word feeds
        out = dropout(torch.ones(shape), 0.5, True)
        assert out.shape == shape and set(out.unique().tolist()) <= {0.0, 2.0}
    half = dropout(torch.ones(4096, dtype=torch.bfloat16), 0.25, True)
    assert half.dtype == torch.bfloat16 and 0.7 < (half != 0).float().mean().item() < 0.8
    x = torch.randn(10, 10)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
    module = Dropout(0.5).eval()
    assert module(x) is x and "p=0.5" in repr(module)
