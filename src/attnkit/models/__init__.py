"""The models: encoder-decoders, taggers, classifiers, language models and the bidirectional LM, built
from tensors' sizes (``attnkit.build`` builds them from a config)."""

from __future__ import annotations

from attnkit.models.base import DecoderOutput, EncoderOutput, Seq2Seq

__all__ = ["DecoderOutput", "EncoderOutput", "Seq2Seq"]
