"""What a task hands the generic training run (``attnkit.train``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Prepared:
    model: nn.Module
    strategy: Any  # batch -> loss (training/strategies.py)
    epoch_batches: Callable[[int], list[list[int]]]  # the batches of an epoch, as example indices
    make_batch: Callable[[list[int]], Any]
    validate: Callable[[nn.Module], dict]  # scores on the validation set (the model is in eval mode)
    test: Callable[[nn.Module], dict] | None  # final scores on the test set, if there is one
    metric: str  # the validation score that picks the best model
    higher_is_better: bool
    reserve_factor: float = 1.0  # the final test's cost, in validations (for --max-minutes)
    meta: dict = field(default_factory=dict)  # saved with every checkpoint


@dataclass
class Fitted:
    """A model that is counted, not trained by gradient descent (the n-gram LM): ``fit`` does it all
    and returns the summary."""

    fit: Callable[[], dict]


def word_embedding(model: nn.Module) -> nn.Embedding:
    """The word-embedding table of a tagger or classifier (possibly wrapped with contextual vectors)."""
    model = getattr(model, "model", model)  # WithContextualEmbeddings
    if isinstance(getattr(model, "embed", None), nn.Embedding):
        return model.embed
    return model.encoder.embed.token  # Transformer encoders


def apply_pretrained(table: nn.Embedding, words: list[str], path: str | None, freeze: bool, resume: bool) -> None:
    """Load static vectors (word2vec / GloVe text) into a word-embedding table, logging how many of
    the vocabulary's words the file has; ``freeze`` keeps them fixed during training."""
    if path is None:
        return
    from attnkit.config import resolve_path
    from attnkit.data.embeddings import load_vectors

    if not resume:  # a resumed run gets its (possibly fine-tuned) vectors from the checkpoint
        matrix, _ = load_vectors(resolve_path(path), words, table.embedding_dim)
        found = matrix.abs().sum(1) > 0
        with torch.no_grad():
            table.weight[found] = matrix[found].to(table.weight.dtype)
    if freeze:
        table.weight.requires_grad_(False)
