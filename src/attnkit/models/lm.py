"""Neural language models: p(w_1 .. w_T) = prod_t p(w_t | w_<t).

``LSTMLanguageModel`` (embedding, LSTM layers, tied softmax) and ``TransformerLanguageModel``
(decoder-only: masked self-attention blocks without encoder-decoder attention). Both are decoders
without an encoder, under the decoder contract of ``models/base.py``: their source is empty
(``encode`` gives ``EncoderOutput.empty``), ``decoder`` is the model itself, and ``init_state(enc)``,
``step(tokens, state)`` and ``reorder(state, index)`` drive the same greedy, beam and sampling code
and the same training strategies as translation; ``forward(tokens)`` (and ``decode``) is the
teacher-forced pass (tested equal to stepping). The LSTM LM can predict through a tied adaptive
softmax (``layers/adaptive_softmax.py``): its ``logits`` are then log-probabilities, and given the
``gold`` next tokens it computes only their clusters (``LMOutput.nll``), which is how it trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.layers.adaptive_softmax import TiedAdaptiveSoftmax
from attnkit.layers.dropout import dropout
from attnkit.layers.positional import make_positions
from attnkit.layers.transformer import DecoderLayer
from attnkit.masks import causal_mask
from attnkit.models.base import EncoderOutput
from attnkit.runtime import recurrent
from attnkit.specials import PAD


@dataclass
class LMOutput:
    logits: Tensor | None  # (B, T, V); None when the model was given the gold tokens and computed ``nll``
    hidden: Tensor | None = None  # (B, T, D) the top states, what the output layer reads
    state: object = None  # LSTM: the state after the last token (truncated BPTT carries it on)
    attention: list[Tensor | None] | None = None  # Transformer: per layer self-attention (B, h, T, T)
    nll: Tensor | None = None  # () the summed -log p of the gold tokens (not padding), when given them


@dataclass
class LSTMState:
    hidden: tuple[Tensor, Tensor] | None  # (layers, B, H) each; None before the first token
    batch_size: int

    def detach(self) -> LSTMState:
        """The same state cut from the graph that made it (truncated backpropagation through time)."""
        return LSTMState(None if self.hidden is None else tuple(h.detach() for h in self.hidden), self.batch_size)


class DecoderOnly(nn.Module):
    """What a language model adds to be driven like an encoder-decoder: an empty source."""

    @property
    def decoder(self) -> DecoderOnly:
        return self

    def encode(self, src: Tensor, need_weights: bool = False) -> EncoderOutput:
        """src (B, 0): a language model reads no source."""
        return EncoderOutput.empty(src.size(0), src.device)

    def decode(self, tgt_in: Tensor, enc: EncoderOutput, need_weights: bool = False) -> LMOutput:
        return self(tgt_in, need_weights=need_weights)


class LSTMLanguageModel(DecoderOnly):
    carries_state = True  # its state after one chunk of text is the context of the next

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, num_layers: int, dropout: float,
                 tie_embeddings: bool, adaptive_cutoffs: list[int] | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.rnn = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.proj = nn.Linear(hidden, embed_dim) if tie_embeddings and hidden != embed_dim else None
        out_dim = embed_dim if tie_embeddings else hidden
        if adaptive_cutoffs:
            weight = self.embed.weight if tie_embeddings else nn.Parameter(torch.empty(vocab_size, out_dim))
            self.W_out = TiedAdaptiveSoftmax(weight, adaptive_cutoffs)
            nn.init.uniform_(weight, -0.1, 0.1)
        else:
            self.W_out = nn.Linear(out_dim, vocab_size)
            if tie_embeddings:
                self.W_out.weight = self.embed.weight
        self.dropout = dropout
        self.max_positions = None
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def _top(self, h: Tensor) -> Tensor:
        """The LSTM's top states (..., H) -> what the output layer reads (..., D)."""
        h = dropout(h, self.dropout, self.training)
        return self.proj(h) if self.proj is not None else h

    def forward(self, tokens: Tensor, state: LSTMState | None = None, need_weights: bool = False,
                gold: Tensor | None = None) -> LMOutput:
        """tokens (B, T) -> logits (B, T, V), and the state after the last token (for truncated BPTT).
        Given ``gold`` (B, T), the next tokens, the summed -log p(gold) instead of the logits."""
        x = dropout(self.embed(tokens), self.dropout, self.training)
        h, hidden = recurrent(self.rnn, x, state.hidden if state is not None else None)  # (B, T, H)
        top, state = self._top(h), LSTMState(hidden, tokens.size(0))
        adaptive = isinstance(self.W_out, TiedAdaptiveSoftmax)
        if gold is None:
            return LMOutput(self.W_out.log_prob(top) if adaptive else self.W_out(top), h, state)
        real = gold.flatten() != PAD  # (B T,)
        top, gold = top.flatten(0, 1)[real], gold.flatten()[real]  # (N, D), (N,)
        if adaptive:
            nll = -self.W_out.target_log_prob(top, gold).sum()
        else:
            nll = F.cross_entropy(self.W_out(top).float(), gold, reduction="sum")
        return LMOutput(None, h, state, nll=nll)

    def init_state(self, enc: EncoderOutput) -> LSTMState:
        return LSTMState(None, enc.batch_size)

    def step(self, tokens: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        out = self(tokens.unsqueeze(1), state)
        return out.logits.squeeze(1), out.state

    def reorder(self, state: LSTMState, index: Tensor) -> LSTMState:
        if state.hidden is None:
            return LSTMState(None, index.numel())
        return LSTMState(tuple(h.index_select(1, index) for h in state.hidden), index.numel())


@dataclass
class TransformerLMState:
    self_kv: list[tuple[Tensor, Tensor] | None]  # per layer (B, h, t, d_k) each
    position: int


class TransformerLanguageModel(DecoderOnly):
    carries_state = False  # sees only the tokens of its own window

    def __init__(self, vocab_size: int, d_model: int, num_heads: int, ff_dim: int, num_layers: int,
                 dropout: float, attention_dropout: float, positional: str, norm: str, max_positions: int,
                 tie_embeddings: bool):
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        nn.init.normal_(self.token.weight, std=d_model**-0.5)
        self.positions = make_positions(positional, d_model, max_positions)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, ff_dim, dropout, attention_dropout, norm, cross_attention=False)
            for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.W_out = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.W_out.weight = self.token.weight
        self.scale, self.dropout, self.max_positions = math.sqrt(d_model), dropout, max_positions

    def _embed(self, tokens: Tensor, offset: int) -> Tensor:
        x = self.positions(self.token(tokens) * self.scale, offset)
        return dropout(x, self.dropout, self.training)

    def forward(self, tokens: Tensor, state: None = None, need_weights: bool = False) -> LMOutput:
        """tokens (B, T) -> logits (B, T, V), and per layer the self-attention weights (B, h, T, T)."""
        x = self._embed(tokens, 0)
        mask = causal_mask(tokens.size(1), tokens.device)
        alphas = []
        for layer in self.layers:
            out = layer(x, None, None, mask, None, need_weights)
            x = out.x
            alphas.append(out.self_alpha)
        x = self.final_norm(x)
        return LMOutput(self.W_out(x), x, None, alphas if need_weights else None)

    def init_state(self, enc: EncoderOutput) -> TransformerLMState:
        return TransformerLMState([None] * len(self.layers), 0)

    def step(self, tokens: Tensor, state: TransformerLMState) -> tuple[Tensor, TransformerLMState]:
        x = self._embed(tokens.unsqueeze(1), state.position)  # (B, 1, d)
        new_kv = []
        for layer, past in zip(self.layers, state.self_kv):
            out = layer(x, None, None, None, past)
            x = out.x
            new_kv.append(out.self_kv)
        logits = self.W_out(self.final_norm(x)).squeeze(1)
        return logits, TransformerLMState(new_kv, state.position + 1)

    def reorder(self, state: TransformerLMState, index: Tensor) -> TransformerLMState:
        def pick(kv):
            return None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))
        return TransformerLMState([pick(kv) for kv in state.self_kv], state.position)
