"""Recurrent encoder: uni- or bidirectional LSTM/GRU over padded batches."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnkit.runtime import recurrent

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNEncoder(nn.Module):
    """Runs an RNN over embedded tokens, skipping padding (packed sequences).

    Returns the states of every position, ``memory`` (B, S, H * directions), zero at padding,
    and the final state of the top layer, forward and backward concatenated: ``final_h`` (and for
    an LSTM ``final_c``), each (B, H * directions).
    """

    def __init__(self, cell: str, input_dim: int, hidden: int, num_layers: int,
                 bidirectional: bool, dropout: float):
        super().__init__()
        self.rnn = CELLS[cell](input_dim, hidden, num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.directions = 2 if bidirectional else 1
        self.output_dim = hidden * self.directions

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = recurrent(self.rnn, packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # (B, S, H*dirs)
        h, c = final if isinstance(final, tuple) else (final, None)

        def top(state: Tensor) -> Tensor:
            # state (layers * dirs, B, H) -> top layer, directions concatenated (B, H * dirs)
            L = state.size(0) // self.directions
            return state.view(L, self.directions, *state.shape[1:])[-1].transpose(0, 1).reshape(state.size(1), -1)

        return memory, top(h), (top(c) if c is not None else None)
