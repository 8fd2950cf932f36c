"""The fused token loss equals ``F.cross_entropy`` with label smoothing: value and gradient, in float32
and bf16, with padding, across row blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnkit.specials import PAD
from attnkit.training.token_loss import token_nll


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("vocab", [11, 3000])  # 3000: several row blocks of 87 rows
@pytest.mark.parametrize("scale", [1.0, 3.0])  # 1: the gradient kept is returned as it is
def test_the_fused_loss_and_its_gradient_equal_cross_entropy(dtype, smoothing, vocab, scale):
    g = torch.Generator().manual_seed(vocab)
    logits = (torch.randn(6, 50, vocab, generator=g) * 4).to(dtype)
    gold = torch.randint(4, vocab, (6, 50), generator=g)
    gold[:, 40:] = PAD
    gold[2, 10:] = PAD
    mine, ref = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = token_nll(mine, gold, smoothing)
    expected = F.cross_entropy(ref.float().flatten(0, 1), gold.flatten(), ignore_index=PAD,
                               label_smoothing=smoothing, reduction="sum")
    (loss * scale).backward()
    (expected * scale).backward()
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(mine.grad.float(), ref.grad.float(), atol=tol * 3, rtol=tol)
    assert (mine.grad[gold == PAD] == 0).all()
    with torch.no_grad():  # validation's path
        assert token_nll(logits, gold, smoothing).item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_fused_loss_leaves_its_input_alone():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    seen = logits.detach().clone()
    token_nll(logits * 1.0, torch.randint(4, 7, (2, 5)), 0.1).backward()  # a non-leaf float32 input
    assert torch.equal(logits.detach(), seen)
    x = logits * 1.0
    token_nll(x, torch.randint(4, 7, (2, 5)))
    assert torch.allclose(x, seen)  # (a float32 block used to be modified in place)
