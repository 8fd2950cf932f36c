"""RNN encoder-decoder with the lecture's context options (Luong et al. 2015 style decoder).

At target step i the decoder RNN reads the previous word (and, with input feeding, the previous
attentional vector) and produces ``h_i``; then

    none:      c_i is absent: the decoder knows the source only through its initial state,
               made from the encoder's final state (the bottleneck)
    mean:      c_i = mean_j h_j                  every source word weighs the same
    attention: c_i = sum_j alpha_ij h_j,  alpha_i = softmax_j score(h_i, h_j)   (dot/general/additive)

    h~_i = tanh(W_c [c_i; h_i]),   p(y_i | y_<i, x) = softmax(W_out h~_i)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from attnkit.layers.attention import make_attention
from attnkit.layers.dropout import dropout
from attnkit.layers.rnn import CELLS, RNNEncoder
from attnkit.masks import padding_mask
from attnkit.models.base import DecoderOutput, EncoderOutput
from attnkit.runtime import recurrent
from attnkit.specials import PAD

ATTENTION_CONTEXTS = ("dot", "general", "additive")


class RNNSourceEncoder(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, cell: str, hidden: int, num_layers: int,
                 bidirectional: bool, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.rnn = RNNEncoder(cell, embed_dim, hidden, num_layers, bidirectional, dropout)
        self.dropout = dropout
        self.output_dim = self.rnn.output_dim

    def forward(self, src: Tensor, need_weights: bool = False) -> EncoderOutput:
        mask = padding_mask(src)  # (B, S)
        x = dropout(self.embed(src), self.dropout, self.training)
        memory, final_h, final_c = self.rnn(x, mask.sum(1))
        return EncoderOutput(memory, mask, (final_h, final_c) if final_c is not None else (final_h,))


@dataclass
class RNNState:
    hidden: Tensor | tuple[Tensor, Tensor]  # (layers, B, H), a pair (h, c) for an LSTM
    feed: Tensor | None  # (B, D_out) the previous attentional vector h~ (input feeding), else None
    enc: EncoderOutput
    keys: Tensor | None  # (B, S, D_key) keys projected once by the attention, None without attention
    mean: Tensor | None  # (B, D_enc) the mean context, only for context = "mean"


class RNNDecoder(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, cell: str, hidden: int, num_layers: int,
                 encoder_dim: int, context: str, attention_dim: int, input_feeding: bool,
                 dropout: float, tie_embeddings: bool):
        super().__init__()
        self.cell, self.hidden, self.num_layers = cell, hidden, num_layers
        self.context, self.input_feeding, self.dropout = context, input_feeding, dropout
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.out_dim = embed_dim if tie_embeddings else hidden
        self.attention = (make_attention(context, hidden, encoder_dim, attention_dim)
                          if context in ATTENTION_CONTEXTS else None)
        self.rnn = CELLS[cell](embed_dim + (self.out_dim if input_feeding else 0), hidden, num_layers,
                               batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.bridge = nn.Linear(encoder_dim, num_layers * hidden)  # final encoder state -> h_0
        self.bridge_c = nn.Linear(encoder_dim, num_layers * hidden) if cell == "lstm" else None
        context_dim = 0 if context == "none" else encoder_dim
        self.W_c = nn.Linear(hidden + context_dim, self.out_dim, bias=False)
        self.W_out = nn.Linear(self.out_dim, vocab_size)
        if tie_embeddings:
            self.W_out.weight = self.embed.weight

    # -- the decoder contract -------------------------------------------------------------
    def init_state(self, enc: EncoderOutput) -> RNNState:
        B = enc.memory.size(0)

        def layers(bridge: nn.Linear, final: Tensor) -> Tensor:
            h0 = torch.tanh(bridge(final)).view(B, self.num_layers, self.hidden)  # (B, L, H)
            return h0.transpose(0, 1).contiguous()  # (L, B, H)

        hidden = layers(self.bridge, enc.final[0])
        if self.bridge_c is not None:
            hidden = (hidden, layers(self.bridge_c, enc.final[1]))
        feed = enc.memory.new_zeros(B, self.out_dim) if self.input_feeding else None
        keys = self.attention.project_keys(enc.memory) if self.attention is not None else None
        mean = None
        if self.context == "mean":
            m = enc.src_mask.unsqueeze(-1).to(enc.memory.dtype)  # (B, S, 1)
            mean = (enc.memory * m).sum(1) / m.sum(1)  # (B, D_enc)
        return RNNState(hidden, feed, enc, keys, mean)

    def step(self, tokens: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        """tokens (B,) -> logits (B, V)."""
        logits, _, _, state = self._run(tokens.unsqueeze(1), state)
        return logits.squeeze(1), state

    def reorder(self, state: RNNState, index: Tensor) -> RNNState:
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        hidden = state.hidden
        hidden = (tuple(h.index_select(1, index) for h in hidden) if isinstance(hidden, tuple)
                  else hidden.index_select(1, index))
        return RNNState(hidden, pick(state.feed), state.enc.select(index), pick(state.keys), pick(state.mean))

    def forward(self, tgt_in: Tensor, enc: EncoderOutput, need_weights: bool = False) -> DecoderOutput:
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V). Without input feeding the RNN runs over
        the whole target in one call; with it, one step at a time (h~_{i-1} is an input of step i)."""
        state = self.init_state(enc)
        if not self.input_feeding:
            logits, alpha, hidden, _ = self._run(tgt_in, state)
        else:
            steps = []
            for i in range(tgt_in.size(1)):
                *out_i, state = self._run(tgt_in[:, i : i + 1], state)
                steps.append(out_i)
            logits, alpha, hidden = (None if parts[0] is None else torch.cat(parts, dim=1) for parts in zip(*steps))
        attention = {"cross": alpha[:, None, None]} if (need_weights and alpha is not None) else {}
        return DecoderOutput(logits, hidden, attention)  # cross attention (B, 1, 1, T, S)

    # -- the shared computation -----------------------------------------------------------
    def _run(self, tokens: Tensor, state: RNNState) -> tuple[Tensor, Tensor | None, Tensor, RNNState]:
        """tokens (B, T) -> logits (B, T, V), attention weights (B, T, S) or None, the attentional
        vectors h~ (B, T, D_out), new state. T must be 1 with input feeding."""
        x = dropout(self.embed(tokens), self.dropout, self.training)  # (B, T, E)
        if self.input_feeding:
            x = torch.cat([x, state.feed.unsqueeze(1)], dim=-1)  # (B, 1, E + D_out)
        h, hidden = recurrent(self.rnn, x, state.hidden)  # h: (B, T, H), the top layer
        alpha = None
        if self.context == "none":
            features = h
        elif self.context == "mean":
            features = torch.cat([state.mean.unsqueeze(1).expand(-1, h.size(1), -1), h], dim=-1)
        else:
            context, alpha = self.attention(h, state.keys, state.enc.memory, state.enc.src_mask.unsqueeze(1))
            features = torch.cat([context, h], dim=-1)  # (B, T, D_enc + H)
        attentional = torch.tanh(self.W_c(features))  # h~ (B, T, D_out)
        logits = self.W_out(dropout(attentional, self.dropout, self.training))
        feed = attentional[:, -1] if self.input_feeding else None
        return logits, alpha, attentional, replace(state, hidden=hidden, feed=feed)
