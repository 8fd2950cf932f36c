"""What every autoregressive model shares: the encoder's output and the decoder contract.

The decoder contract is what every search (greedy, beam, sampling) and every training strategy
drives, whatever the model:

    enc = model.encode(src)                      # the source, encoded once
    state = model.decoder.init_state(enc)        # from the encoder's output
    logits, state = model.decoder.step(tokens, state)  # one new token per row -> next-token logits
    state = model.decoder.reorder(state, index)  # keep / duplicate / reorder rows (beams)

and ``model.decode(tgt_in, enc)`` is the teacher-forced pass over a whole target at once. For the
same tokens, the two give the same logits (tested). A language model is a decoder without an
encoder: its source is empty, (B, 0), and ``encode`` gives :meth:`EncoderOutput.empty`, so the same
calls drive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn


@dataclass
class EncoderOutput:
    memory: Tensor  # (B, S, D_enc) the encoder state of every source position
    src_mask: Tensor  # (B, S) bool, True at real tokens
    final: Any = None  # what the decoder starts from (RNN final states); None for the Transformer
    attention: dict[str, Tensor] = field(default_factory=dict)  # "encoder" self-attention, if asked for

    @classmethod
    def empty(cls, batch_size: int, device: torch.device | None = None) -> EncoderOutput:
        """What a decoder without an encoder (a language model) is conditioned on: no source positions."""
        return cls(torch.zeros(batch_size, 0, 0, device=device), torch.zeros(batch_size, 0, dtype=torch.bool,
                                                                              device=device))

    @property
    def batch_size(self) -> int:
        return self.src_mask.size(0)

    def select(self, index: Tensor) -> EncoderOutput:
        """Rows ``index`` of the batch (beam expansion, dropping finished sentences)."""
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        final = tuple(pick(t) for t in self.final) if isinstance(self.final, tuple) else pick(self.final)
        return EncoderOutput(pick(self.memory), pick(self.src_mask), final)


@dataclass
class DecoderOutput:
    logits: Tensor  # (B, T, V)
    hidden: Tensor | None = None  # (B, T, D) the decoder's top states, what the output layer reads
    # attention weights by name, each (B, layers, heads, T, S) for "cross" (RNN: layers = heads = 1),
    # plus (B, layers, heads, T, T) "self" and (B, layers, heads, S, S) "encoder" for the Transformer
    attention: dict[str, Tensor] = field(default_factory=dict)

class Decoder(Protocol):
    def forward(self, tgt_in: Tensor, enc: EncoderOutput, need_weights: bool = False) -> DecoderOutput: ...
    def init_state(self, enc: EncoderOutput) -> Any: ...
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...
    def reorder(self, state: Any, index: Tensor) -> Any: ...


class WordModel(nn.Module):
    """A tagger or a classifier: ``forward(**inputs)`` gives its outputs, and ``self_attention(**inputs)``
    the self-attention its encoder computed over the same inputs, (B, layers, heads, T, T); None for a
    model without one (recurrent, bag of embeddings). The weights are returned, never stored."""

    def self_attention(self, **inputs: Tensor) -> Tensor | None:
        return None


class Seq2Seq(nn.Module):
    """An encoder and a decoder; decoding lives outside, in :mod:`attnkit.decoding`."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, max_positions: int | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.max_positions = max_positions  # longest sequence the model can take (None: unbounded)

    def encode(self, src: Tensor, need_weights: bool = False) -> EncoderOutput:
        """src (B, S) EOS-terminated, right-padded ids."""
        return self.encoder(src, need_weights=need_weights)

    def decode(self, tgt_in: Tensor, enc: EncoderOutput, need_weights: bool = False) -> DecoderOutput:
        """The teacher-forced pass over ``tgt_in`` (B, T) given the encoded source."""
        return self.decoder(tgt_in, enc, need_weights=need_weights)

    def forward(self, src: Tensor, tgt_in: Tensor, need_weights: bool = False) -> DecoderOutput:
        """Teacher-forced pass: logits (B, T, V) for every target position at once."""
        enc = self.encode(src, need_weights=need_weights)
        out = self.decoder(tgt_in, enc, need_weights=need_weights)
        out.attention.update(enc.attention)
        return out
