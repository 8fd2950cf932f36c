"""The summed, label-smoothed cross-entropy of a batch's target tokens, with its gradient computed in
the forward pass, a block of rows at a time.

For a row's logits x (V,), gold token g and smoothing eps, with log-probabilities lp = x - logsumexp(x):

    loss = (1 - eps) * (-lp[g]) + eps * mean_v(-lp[v])          (PyTorch's label_smoothing)
    d loss / d x = softmax(x) - (1 - eps) * onehot(g) - eps / V

Padding rows count zero. ``F.cross_entropy`` on bf16 logits needs a float32 copy of all of them, its
log-softmax and that one's gradient, each (N, V) in float32, visited by a dozen passes over memory;
here each block of rows is made float32 while it is in the cache, and only the gradient is kept,
in the logits' own dtype. On 2 CPU cores, 2,688 rows of 8,000 (the peers batch, bf16): 155 ms for the
forward and backward passes by ``F.cross_entropy``, 70 ms here (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnkit.specials import PAD


class FusedTokenNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, gold: Tensor, smoothing: float) -> Tensor:
        """logits (N, V), gold (N,) -> the summed loss (a 0-dim float32 tensor)."""
        N, V = logits.shape
        rows = max(8, (1 << 18 if logits.device.type == "cpu" else 1 << 26) // V)  # ~1 MB of float32 on a CPU
        grad = torch.empty_like(logits)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, N, rows):
            x = logits[start : start + rows].to(torch.float32, copy=True)  # (n, V), a copy even in float32
            g = gold[start : start + rows].unsqueeze(1)  # (n, 1)
            pad = g == PAD  # (n, 1)
            x -= torch.logsumexp(x, -1, keepdim=True)  # log-probabilities
            nll = -x.gather(1, g)  # (n, 1)
            if smoothing:
                nll = (1 - smoothing) * nll - smoothing * x.mean(-1, keepdim=True)
            total += nll.masked_fill(pad, 0.0).sum()
            p = x.exp_()  # softmax(x), in place
            if smoothing:
                p -= smoothing / V
            p.scatter_add_(1, g, torch.full(g.shape, smoothing - 1.0, dtype=p.dtype, device=p.device))
            grad[start : start + rows] = p.masked_fill_(pad, 0.0)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (grad,) = ctx.saved_tensors
        if grad_out.device.type == "cpu" and grad_out.item() == 1.0:  # the usual case: no pass over (N, V)
            return grad, None, None
        return grad * grad_out.to(grad.dtype), None, None


def token_nll(logits: Tensor, gold: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed (label-smoothed) cross-entropy over non-pad positions. logits (B, T, V), gold (B, T)."""
    flat, gold = logits.flatten(0, 1), gold.flatten()
    if not (torch.is_grad_enabled() and logits.requires_grad):  # validation: no gradient to keep
        return torch.nn.functional.cross_entropy(flat.float(), gold, ignore_index=PAD,
                                                 label_smoothing=label_smoothing, reduction="sum")
    return FusedTokenNLL.apply(flat, gold, label_smoothing)
