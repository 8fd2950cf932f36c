"""Exposure bias, measured: how much worse a translator predicts the reference when it reads its own
prefix instead of the gold one.

For each reference y and output position i the model is scored twice on the gold token y_i:

    teacher forced:  p(y_i | y_<i, x)        the prefix is the reference (how it trained)
    self fed:        p(y_i | y^_<i, x)       the prefix is its own greedy output y^ (how it is used)

Both use one teacher-forced pass; the self-fed inputs come from ``rollout`` with eps = 0 (the
greedy decode, continued past an early EOS to the reference's length). At position 0 both read only
BOS and agree. The gap between the two, and how it grows along the output, is what scheduled
sampling and professor forcing set out to close.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnkit.data.batching import make_batch, token_batches
from attnkit.decoding.rollout import DecoderView, rollout
from attnkit.runtime import device_of, to_device
from attnkit.specials import PAD


@torch.no_grad()
def exposure_bias(model: torch.nn.Module, src: list[list[int]], tgt: list[list[int]], batch_tokens: int = 4096,
                  max_position: int = 30) -> dict:
    """Per output position 0..max_position-1 (the last bucket holds every later one): the mean NLL and
    accuracy (argmax == reference) of the reference token, teacher forced and self fed, and their
    token-weighted means. The sums add up on the model's device."""
    model.eval()
    P, device = max_position, device_of(model)
    sums = {name: {"nll": torch.zeros(P, device=device), "correct": torch.zeros(P, device=device)}
            for name in ("teacher_forced", "self_fed")}
    count = torch.zeros(P, device=device)
    for idx in token_batches([(len(s), len(t)) for s, t in zip(src, tgt)], batch_tokens, seed=0, epoch=0):
        batch = to_device(make_batch([src[i] for i in idx], [tgt[i] for i in idx], idx), device)
        view = DecoderView(model, batch)
        real = batch.tgt_out != PAD  # (B, T)
        position = torch.arange(real.size(1), device=device).clamp(max=P - 1).expand_as(real)[real]  # (N,)
        count += torch.bincount(position, minlength=P)
        inputs = {"teacher_forced": batch.tgt_in, "self_fed": rollout(view, batch.tgt_in, eps=0.0, feed="greedy")}
        for name, tokens in inputs.items():
            logits = view.forward(tokens).logits.float()  # (B, T, V)
            nll = F.cross_entropy(logits.transpose(1, 2), batch.tgt_out, ignore_index=PAD, reduction="none")
            correct = (logits.argmax(-1) == batch.tgt_out).float()
            sums[name]["nll"] += torch.bincount(position, weights=nll[real], minlength=P)
            sums[name]["correct"] += torch.bincount(position, weights=correct[real], minlength=P)
    count = count.cpu()
    sums = {name: {k: v.cpu() for k, v in s.items()} for name, s in sums.items()}
    seen = count.clamp_min(1)
    out: dict = {"positions": list(range(P)), "tokens": count.long().tolist()}
    for name, s in sums.items():
        out[name] = {"nll": [round(float(v), 4) for v in s["nll"] / seen],
                     "accuracy": [round(float(v), 4) for v in 100 * s["correct"] / seen],
                     "mean_nll": round(float(s["nll"].sum() / count.sum()), 4),
                     "mean_accuracy": round(float(100 * s["correct"].sum() / count.sum()), 2)}
    out["nll_gap"] = round(out["self_fed"]["mean_nll"] - out["teacher_forced"]["mean_nll"], 4)
    out["accuracy_gap"] = round(out["teacher_forced"]["mean_accuracy"] - out["self_fed"]["mean_accuracy"], 2)
    return out


def softmax_entropy(d_k: int, keys: int = 20, scaled: bool = True, samples: int = 2000, seed: int = 0) -> float:
    """The mean entropy (nats) of softmax(q . k_j) over ``keys`` keys, for query and keys of ``d_k``
    independent N(0, 1) numbers: the dot product's variance is d_k, so unscaled scores spread as d_k
    grows and the softmax saturates towards one key (entropy 0); divided by sqrt(d_k) they keep
    variance 1 and the entropy stays where it was. log(keys) is the uniform distribution's."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(samples, 1, d_k, generator=g)
    k = torch.randn(samples, keys, d_k, generator=g)
    scores = (q * k).sum(-1) / (d_k**0.5 if scaled else 1.0)  # (samples, keys)
    p = scores.softmax(-1)
    return float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())
