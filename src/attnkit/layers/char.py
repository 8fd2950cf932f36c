"""Word vectors from characters: a bidirectional LSTM reads each word's characters and its two
final states (forward after the last character, backward after the first) form the word's vector
(Ling et al. 2015; Plank et al. 2016). Gives taggers a view of prefixes, suffixes and capitals,
and a vector for words never seen in training."""

from __future__ import annotations

from torch import Tensor, nn

from attnkit.layers.rnn import RNNEncoder
from attnkit.specials import PAD


class CharWordEncoder(nn.Module):
    def __init__(self, num_chars: int, char_dim: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=PAD)
        self.rnn = RNNEncoder("lstm", char_dim, hidden, 1, bidirectional=True, dropout=0.0)
        self.output_dim = 2 * hidden

    def forward(self, chars: Tensor) -> Tensor:
        """chars (B, T, C) character ids of each word, 0-padded -> (B, T, 2 * hidden), zero at padding words."""
        B, T, C = chars.shape
        flat = chars.view(B * T, C)  # (B*T, C)
        lengths = (flat != 0).sum(1)
        real = lengths.nonzero().squeeze(1)  # words with at least one character
        out = chars.new_zeros(B * T, self.output_dim, dtype=self.embed.weight.dtype)
        if real.numel():
            _, final, _ = self.rnn(self.embed(flat[real]), lengths[real])  # (N, 2 * hidden)
            out = out.index_copy(0, real, final.to(out.dtype))
        return out.view(B, T, self.output_dim)  # (B, T, 2 * hidden)
