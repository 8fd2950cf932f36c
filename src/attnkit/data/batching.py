"""Turning token-id sequences into padded batches.

Training batches hold about ``batch_tokens`` target tokens (padding included) and are bucketed
by length: each epoch shuffles the data with a seed derived from ``(seed, epoch)``, sorts pools of
nearby examples by length, cuts them into batches and shuffles the batches. The order is a pure
function of ``(seed, epoch)``, which is what lets ``--resume`` continue at the exact batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from attnkit.specials import BOS, EOS, PAD


@dataclass
class Batch:
    src: Tensor  # (B, S) source ids, EOS-terminated, PAD on the right
    tgt_in: Tensor  # (B, T) BOS + target
    tgt_out: Tensor  # (B, T) target + EOS
    index: list[int]  # positions of these examples in the dataset

    @property
    def num_tokens(self) -> int:
        return int((self.tgt_out != PAD).sum())

    def __len__(self) -> int:
        return self.src.size(0)


def pad(seqs: Sequence[Sequence[int]], value: int = PAD) -> Tensor:
    """(B, max_len) long tensor of right-padded sequences."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def make_batch(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], index: list[int]) -> Batch:
    """``src`` and ``tgt`` are raw token ids without specials."""
    return Batch(
        src=pad([list(s) + [EOS] for s in src]),
        tgt_in=pad([[BOS] + list(t) for t in tgt]),
        tgt_out=pad([list(t) + [EOS] for t in tgt]),
        index=index,
    )


def token_batches(lengths: Sequence[tuple[int, int]] | tuple[np.ndarray, np.ndarray], batch_tokens: int, seed: int,
                  epoch: int, pool_batches: int = 50) -> list[list[int]]:
    """Length-bucketed batches of example indices for one epoch.

    ``lengths[i]`` is ``(src_len, tgt_len)`` of example ``i`` (or ``lengths`` is the pair of arrays
    of all source and all target lengths, as a binarized corpus has them). A batch's cost is its size
    times its longest side (+1 for the EOS/BOS), kept at most ``batch_tokens``.
    """
    src, tgt = _length_arrays(lengths)
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(src)))
    rng.shuffle(order)
    shuffled = np.asarray(order, dtype=np.int64)
    cost = np.maximum(src, tgt) + 1
    pool_size = max(1, pool_batches * batch_tokens // max(1, int(cost.sum() / max(1, len(cost)))))
    batches: list[list[int]] = []
    for start in range(0, len(shuffled), pool_size):
        pool = shuffled[start : start + pool_size]
        pool = pool[np.lexsort((src[pool], tgt[pool]))]  # by target, then source length; stable
        batch: list[int] = []
        longest = 0
        for i, c in zip(pool.tolist(), cost[pool].tolist()):
            longest_if = max(longest, c)
            if batch and longest_if * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch, longest_if = [], c
            batch.append(i)
            longest = longest_if
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def _length_arrays(lengths) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(lengths, tuple) and len(lengths) == 2 and isinstance(lengths[0], np.ndarray):
        return lengths[0].astype(np.int64, copy=False), lengths[1].astype(np.int64, copy=False)
    pairs = np.asarray(lengths, dtype=np.int64).reshape(-1, 2)  # (N, 2): source, target
    return pairs[:, 0], pairs[:, 1]


def inference_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of indices sorted by length (longest first) for fast decoding; callers restore order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
