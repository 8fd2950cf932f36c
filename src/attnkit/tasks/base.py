"""What a task hands the generic training run (``attnkit.train``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnkit.errors import UserError
from attnkit.model_dir import load_best_weights

log = logging.getLogger(__name__)


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


def check_cutoffs(cutoffs: list[int], num_words: int) -> None:
    """``model.adaptive_softmax``'s cutoffs must leave every cluster a word of the vocabulary."""
    if cutoffs and cutoffs[-1] >= num_words:
        raise UserError(f"model.adaptive_softmax: cutoffs {cutoffs} must stay below the {num_words} words the "
                        f"model predicts")


def init_dir(cfg, resume: bool) -> Path | None:
    """``training.init_from`` of a fresh run, checked to hold a trained model of the same task."""
    from attnkit.config import load_config, resolve_path

    if cfg.training.init_from is None or resume:  # a resumed run has its weights in last.safetensors
        return None
    path = resolve_path(cfg.training.init_from)
    for name in ("config.yaml", "model.safetensors"):
        if not (path / name).is_file():
            raise UserError(f"training.init_from: {path} is not a trained model directory ({name} is missing)")
    task = load_config(path / "config.yaml").task
    if task != cfg.task:
        raise UserError(f"training.init_from: {path} holds a {task} model, not a {cfg.task} model")
    return path


def init_weights(model: nn.Module, path: Path) -> None:
    """Start ``model`` from the best weights of the model directory ``path``."""
    doc = load_best_weights(model, path)
    log.info("starting from the weights of %s (step %s)", path, doc.get("step"))


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
