"""An adaptive softmax whose word vectors can be the input embedding's (tied).

The vocabulary, most frequent word first, is cut at ``cutoffs`` c_1 < ... < c_k into a head (words
below c_1) and k tail clusters [c_i, c_{i+1}). The head is a softmax over its words and one entry per
cluster; a tail word's probability is its cluster's, times its own within the cluster:

    log p(w | h) = log p_head(w | h)                                  w < c_1
    log p(w | h) = log p_head(cluster i | h) + log p_i(w | h)         c_i <= w < c_{i+1}

with p_head = softmax([h E_head^T + b_head, h U^T + b_U]) and p_i = softmax(h E_i^T + b_i), where E
is the (V, D) matrix of word vectors, the input embedding's when the model ties them. It is a full
distribution over the same V words, so its perplexity compares with a full softmax's. Training needs
only the clusters its gold words fall in: the head for every position, a tail cluster for the few
positions whose gold word is in it. Grave et al. (2017) also shrink each tail cluster's dimension;
that would untie it from the embedding, so here every cluster reads h at full dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TiedAdaptiveSoftmax(nn.Module):
    def __init__(self, weight: nn.Parameter, cutoffs: list[int]):
        """weight (V, D): the word vectors, shared with an embedding or its own."""
        super().__init__()
        vocab_size, dim = weight.shape
        if not cutoffs or list(cutoffs) != sorted(set(cutoffs)) or cutoffs[0] <= 0 or cutoffs[-1] >= vocab_size:
            raise ValueError(f"adaptive softmax cutoffs {cutoffs} must increase within 1 .. {vocab_size - 1}")
        self.weight = weight
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.cluster = nn.Linear(dim, len(cutoffs))  # U, b_U: one logit per tail cluster
        self.bounds = [0, *cutoffs, vocab_size]
        self.register_buffer("cutoffs", torch.tensor(cutoffs), persistent=False)  # for bucketize

    def _log_softmax(self, h: Tensor, i: int) -> Tensor:
        """h (N, D) -> (N, n_i) log-probabilities within part i (0: the head, with the cluster entries last)."""
        lo, hi = self.bounds[i], self.bounds[i + 1]
        logits = F.linear(h, self.weight[lo:hi], self.bias[lo:hi])
        if i == 0:
            logits = torch.cat([logits, self.cluster(h)], -1)  # (N, c_1 + k)
        return torch.log_softmax(logits.float(), -1)

    def log_prob(self, h: Tensor) -> Tensor:
        """h (..., D) -> (..., V) log p(w | h) for every word."""
        flat = h.reshape(-1, h.size(-1))  # (N, D)
        head = self._log_softmax(flat, 0)
        c1 = self.bounds[1]
        parts = [head[:, :c1]]
        for i in range(1, len(self.bounds) - 1):
            parts.append(head[:, c1 + i - 1 : c1 + i] + self._log_softmax(flat, i))
        return torch.cat(parts, -1).view(*h.shape[:-1], -1)

    def target_log_prob(self, h: Tensor, targets: Tensor) -> Tensor:
        """h (N, D), targets (N,) -> (N,) log p(target | h), computing each tail cluster only for the
        positions whose target is in it."""
        head = self._log_softmax(h, 0)  # (N, c_1 + k)
        c1 = self.bounds[1]
        cluster = torch.bucketize(targets, self.cutoffs, right=True)
        head_index = torch.where(cluster == 0, targets, c1 + cluster - 1)  # a tail word: its cluster's entry
        out = head.gather(1, head_index.unsqueeze(1)).squeeze(1)
        for i in range(1, len(self.bounds) - 1):
            rows = (cluster == i).nonzero().squeeze(1)
            if rows.numel():
                within = self._log_softmax(h[rows], i).gather(1, (targets[rows] - self.bounds[i]).unsqueeze(1))
                out = out.index_add(0, rows, within.squeeze(1))
        return out
