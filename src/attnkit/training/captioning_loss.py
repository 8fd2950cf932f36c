"""The captioner's loss: teacher forcing plus Xu et al.'s (2015) doubly stochastic attention
regulariser,

    L = - sum_t log p(y_t | a, y_<t)  +  lambda * sum_i (1 - sum_t alpha_ti)^2

summed over the sentences of a batch (the trainer divides by the number of target tokens, so the
two terms keep the paper's ratio). The weights alpha_ti already sum to 1 over the cells i at each
step t; the regulariser asks that, summed over the steps, every cell gets about as much attention
as any other, so that the caption looks at the whole image. Steps after EOS (padding) do not count.
For the Transformer the "alpha" is the cross attention averaged over layers and heads.
"""

from __future__ import annotations

from torch import Tensor

from attnkit.data.batching import Batch
from attnkit.models.base import Seq2Seq
from attnkit.specials import PAD
from attnkit.training.strategies import Strategy, token_nll


def attention_coverage(alpha: Tensor, tgt_out: Tensor) -> Tensor:
    """sum_t alpha_ti over the real (non-pad) steps: alpha (B, T, L), tgt_out (B, T) -> (B, L)."""
    real = (tgt_out != PAD).unsqueeze(-1).to(alpha.dtype)  # (B, T, 1)
    return (alpha * real).sum(1)


def doubly_stochastic_penalty(alpha: Tensor, tgt_out: Tensor) -> Tensor:
    """sum over the batch of sum_i (1 - sum_t alpha_ti)^2."""
    return ((1.0 - attention_coverage(alpha.float(), tgt_out)) ** 2).sum()


def cross_attention(weights: Tensor) -> Tensor:
    """A decoder's "cross" weights (B, layers, heads, T, L) -> (B, T, L), averaged over layers and heads."""
    return weights.float().mean(dim=(1, 2))


class DoublyStochasticAttention(Strategy):
    """Teacher forcing with the regulariser; ``lam = 0`` is plain teacher forcing."""

    name = "doubly_stochastic_attention"

    def __init__(self, lam: float, label_smoothing: float = 0.0):
        self.lam, self.label_smoothing = lam, label_smoothing

    def loss(self, model: Seq2Seq, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        """batch.src holds the images (B, C, H, W)."""
        out = model(batch.src, batch.tgt_in, need_weights=self.lam > 0)
        nll = token_nll(out.logits, batch.tgt_out, self.label_smoothing)
        if self.lam == 0:
            return nll, batch.num_tokens, {}
        penalty = doubly_stochastic_penalty(cross_attention(out.attention["cross"]), batch.tgt_out)
        return nll + self.lam * penalty, batch.num_tokens, {"penalty": float(penalty.detach()) / len(batch)}
