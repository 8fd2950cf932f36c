"""A bidirectional language model whose layers give contextual word vectors (ELMo, Peters et al. 2018).

Each word is read through its characters (``CharWordEncoder``) into x_t. A forward LSTM stack reads
x_1..x_t and predicts w_{t+1}; a separate backward stack reads x_T..x_t and predicts w_{t-1}. Neither
direction ever sees the word it predicts. The contextual vector of word t mixes the layers

    layer 0:  [x_t ; x_t]               layer j:  [h_fwd_{t,j} ; h_bwd_{t,j}]

with learned softmax weights and a scale (``ScalarMix``), one mix per downstream task.

Both directions share one output layer: a full softmax, or an adaptive softmax (Grave et al. 2017)
whose rarer words sit in smaller clusters that only their own positions pay for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnkit.layers.char import CharWordEncoder
from attnkit.layers.dropout import dropout
from attnkit.layers.scalar_mix import ScalarMix
from attnkit.masks import padding_mask
from attnkit.runtime import full_precision, recurrent


@dataclass
class BiLMOutput:
    forward_logits: Tensor  # (B, T, V): position t predicts word t+1 (log-probabilities if adaptive)
    backward_logits: Tensor  # (B, T, V): position t predicts word t-1
    layers: Tensor  # (L + 1, B, T, 2 * D) the representations ELMo mixes


class LSTMStack(nn.Module):
    """Single-layer LSTMs stacked with residual connections above the first, exposing every layer."""

    def __init__(self, dim: int, num_layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in range(num_layers))
        self.dropout = dropout

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, lstm in enumerate(self.layers):
            h, _ = recurrent(lstm, x)
            x = h + x if i > 0 else h
            outs.append(x)
            x = dropout(x, self.dropout, self.training)
        return outs


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``lengths[b]`` positions, leaving padding in place. x (B, T, ...)."""
    B, T = x.shape[:2]
    pos = torch.arange(T, device=x.device).expand(B, T)
    idx = torch.where(pos < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - pos, pos)  # (B, T)
    return x.gather(1, idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


class BidirectionalLM(nn.Module):
    def __init__(self, num_chars: int, vocab_size: int, char_dim: int, char_hidden: int, dim: int,
                 num_layers: int, dropout: float, adaptive_cutoffs: list[int] | None = None):
        super().__init__()
        self.chars = CharWordEncoder(num_chars, char_dim, char_hidden)
        self.project = nn.Linear(self.chars.output_dim, dim)
        self.forward_lm = LSTMStack(dim, num_layers, dropout)
        self.backward_lm = LSTMStack(dim, num_layers, dropout)
        # one output layer shared by both directions; word ids must run from the most frequent
        self.W_out = (nn.AdaptiveLogSoftmaxWithLoss(dim, vocab_size, adaptive_cutoffs, div_value=4.0)
                      if adaptive_cutoffs else nn.Linear(dim, vocab_size))
        self.dropout, self.num_layers, self.dim = dropout, num_layers, dim

    @property
    def output_dim(self) -> int:
        return 2 * self.dim

    def layers(self, chars: Tensor) -> Tensor:
        """chars (B, T, C) character ids of each word -> (L+1, B, T, 2D) every layer, without the
        softmax (all that contextual vectors need)."""
        mask = padding_mask(chars[..., 0])  # (B, T) a word is real if it has a first character
        lengths = mask.sum(1)
        x = self.project(self.chars(chars))  # (B, T, D)
        x_in = dropout(x, self.dropout, self.training)
        fwd = self.forward_lm(x_in)  # each (B, T, D)
        bwd = [reverse_padded(h, lengths) for h in self.backward_lm(reverse_padded(x_in, lengths))]
        return torch.stack([torch.cat([x, x], -1)] + [torch.cat([f, b], -1) for f, b in zip(fwd, bwd)])

    def tops(self, chars: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The top layer of each direction (after dropout), each (B, T, D), and all layers (L+1, B, T, 2D)."""
        layers = self.layers(chars)
        top_f, top_b = dropout(layers[-1], self.dropout, self.training).chunk(2, -1)
        return top_f, top_b, layers

    def forward(self, chars: Tensor) -> BiLMOutput:
        """chars (B, T, C) character ids of each word -> logits of both directions and all layers."""
        top_f, top_b, layers = self.tops(chars)
        return BiLMOutput(self.logits(top_f), self.logits(top_b), layers)

    def logits(self, h: Tensor) -> Tensor:
        """(..., D) -> (..., V) over every word (an adaptive softmax's log-probabilities: all its clusters)."""
        if isinstance(self.W_out, nn.AdaptiveLogSoftmaxWithLoss):
            with full_precision(h.device):
                return self.W_out.log_prob(h.reshape(-1, h.size(-1)).float()).view(*h.shape[:-1], -1)
        return self.W_out(h)

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """h (N, D), targets (N,) -> (N,) log P(target); an adaptive softmax computes only the clusters the
        targets fall in."""
        if isinstance(self.W_out, nn.AdaptiveLogSoftmaxWithLoss):
            with full_precision(h.device):  # torch's adaptive softmax writes its clusters into one fp32 tensor
                return self.W_out(h.float(), targets).output
        return torch.log_softmax(self.W_out(h).float(), -1).gather(1, targets.unsqueeze(1)).squeeze(1)


class ContextualEmbedder(nn.Module):
    """ELMo vectors for a downstream model: the bidirectional LM's layers mixed by a task-specific
    ``ScalarMix``. With ``freeze`` the LM's weights stay fixed (and run without gradients); the mix is
    always trained.

    A frozen LM gives a sentence the same layers every epoch, so with ``cache`` they are computed once,
    during training, and kept (4 (L + 1) 2D bytes a word: 6 KB for configs/bilm-elmo.yaml): the LM then
    runs in the first epoch only."""

    def __init__(self, bilm: BidirectionalLM, freeze: bool, cache: bool = False):
        super().__init__()
        self.bilm, self.freeze = bilm, freeze
        self.mix = ScalarMix(bilm.num_layers + 1)
        self.cache: dict[bytes, Tensor] | None = {} if freeze and cache else None
        if freeze:
            self.bilm.requires_grad_(False)

    @property
    def output_dim(self) -> int:
        return self.bilm.output_dim

    def train(self, mode: bool = True) -> ContextualEmbedder:
        super().train(mode)
        if self.freeze:
            self.bilm.eval()  # a frozen LM keeps its dropout off, even while the tagger trains
        return self

    def forward(self, chars: Tensor) -> Tensor:
        """chars (B, T, C) in the bidirectional LM's character vocabulary -> (B, T, 2 * D)."""
        if self.cache is not None and self.training:
            return self.mix(self.cached_layers(chars))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            layers = self.bilm.layers(chars)  # (L+1, B, T, 2D)
        return self.mix(layers)

    @torch.no_grad()
    def cached_layers(self, chars: Tensor) -> Tensor:
        """The frozen LM's layers (L+1, B, T, 2D), each sentence's computed only the first time it is
        seen (zero at padding, where the LM's own output means nothing)."""
        B, T, _ = chars.shape
        host = chars.cpu()  # the keys are the sentences' bytes; the cached layers stay on the LM's device
        lengths = (host[..., 0] != 0).sum(1).tolist()
        keys = []
        for b, n in enumerate(lengths):
            words = host[b, :n]  # (n, C) with the batch's padding width: cut to this sentence's own
            width = int((words != 0).sum(1).max()) if n else 0
            keys.append(width.to_bytes(2, "little") + words[:, :width].numpy().tobytes())
        todo = [b for b, k in enumerate(keys) if k not in self.cache]
        if todo:
            fresh = self.bilm.layers(chars[todo])  # (L+1, len(todo), T, 2D)
            for i, b in enumerate(todo):
                self.cache[keys[b]] = fresh[:, i, : lengths[b]].clone()
        out = chars.new_zeros(self.bilm.num_layers + 1, B, T, self.output_dim, dtype=self.mix.w.dtype)
        for b, k in enumerate(keys):
            out[:, b, : lengths[b]] = self.cache[k]
        return out


class WithContextualEmbeddings(nn.Module):
    """A tagger or classifier whose ``extra`` input is ELMo vectors of its words."""

    def __init__(self, model: nn.Module, embedder: ContextualEmbedder):
        super().__init__()
        self.model, self.embedder = model, embedder

    def forward(self, bilm_chars: Tensor, **inputs: Tensor):
        return self.model(**inputs, extra=self.embedder(bilm_chars))

    def self_attention(self, bilm_chars: Tensor, **inputs: Tensor) -> Tensor | None:
        """The wrapped model's ``self_attention``, with the ELMo vectors as its ``extra`` input."""
        return self.model.self_attention(**inputs, extra=self.embedder(bilm_chars))
