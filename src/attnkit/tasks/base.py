"""A task, end to end: :class:`Task` is everything the rest of attnkit knows of one (its config class,
how it prepares a training run, how a trained model of it is scored and looked into, which commands
read its models), and :class:`Prepared` is what it hands the generic training run (``attnkit.train``).
``attnkit.tasks.TASKS`` maps each ``task:`` name to its Task: the CLI, the server, ``evaluate``,
``bench`` and the plots dispatch through it and never on a task's name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from attnkit.errors import UserError
from attnkit.inspection import Inspector
from attnkit.model_dir import load_best_weights

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    model: nn.Module
    strategy: Any  # batch -> loss (training/strategies.py)
    # (epoch, scale=1) -> the batches of an epoch, as example indices, ``scale`` times the configured size
    # (training.accumulate: the trainer cuts each into that many micro-batches)
    epoch_batches: Callable[..., list[list[int]]]
    make_batch: Callable[[list[int]], Any]
    validate: Callable[[nn.Module], dict]  # scores on the validation set (the model is in eval mode)
    test: Callable[[nn.Module], dict] | None  # final scores on the test set, if there is one
    metric: str  # the validation score that picks the best model
    higher_is_better: bool
    reserve_factor: float = 1.0  # the final test's cost, in validations (for --max-minutes)
    meta: dict = field(default_factory=dict)  # saved with every checkpoint


@dataclass
class EvaluateRequest:
    """What ``attnkit evaluate`` asks of a trained model (each task reads what it needs)."""

    src: str | None = None  # the test file: source sentences, CoNLL-U, TSV or text
    ref: str | None = None  # translation: the references
    beam: int | None = None  # None: the config's
    batch_size: int | None = None
    exposure: bool = False  # translation: also the exposure-bias diagnostic
    progress: bool = False  # a progress bar on the terminal
    device: str = "auto"  # where the model runs: auto (the GPU when there is one), cpu, cuda or cuda:N
    engine: str = "torch"  # translation: torch, or ctranslate2 for a directory attnkit export wrote
    by_length: tuple[int, ...] | None = None  # translation: also score each source-length bucket (these edges)
    join: int = 1  # translation: score inputs made of this many consecutive test sentences (and references)


@dataclass
class Evaluation:
    scores: dict  # what --json prints
    lines: list[str]  # what a person reads
    outputs: list[str] | None = None  # the model's outputs, one per input (for --output)


class Task:
    """One task. A subclass per ``tasks/<name>.py``; ``TASKS`` holds one instance of each."""

    name: ClassVar[str]  # the config's ``task:``
    config: ClassVar[type]  # its config class (attnkit/config/tasks.py)
    what: ClassVar[str]  # how errors name its models: "a translation model"
    verbs: ClassVar[tuple[str, ...]] = ()  # the attnkit commands that use its models, besides evaluate
    engines: ClassVar[tuple[str, ...]] = ("torch",)  # what runs its models (--engine): ctranslate2 for an export
    lengths: ClassVar[bool] = False  # whether evaluate scores by source length (--by-length, --join)
    inspects: ClassVar[bool] = False  # whether its loaded model has an inspector (plot attention, serve)

    def prepare(self, cfg, out: Path, resume: bool) -> Prepared | Fitted:
        """Read the data, build (or reload) the vocabularies and the model, for ``attnkit.train``."""
        raise NotImplementedError

    def binarize(self, cfg, directory: Path) -> dict:
        """``attnkit prepare``: the training data's token ids, memory-mappable, in ``directory``
        (``data/corpus.py``); returns what it wrote (the manifest)."""
        raise UserError(f"prepare: the {self.name} task reads its data into memory; attnkit prepare binarizes "
                        "translation corpora")

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """Score the trained model directory ``path`` (``attnkit evaluate``)."""
        raise UserError(f"{path}: holds {self.what}, which evaluate does not score")

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Any:
        """The trained model of ``path`` on ``device`` (auto: the GPU when there is one), as the object
        with this task's verbs (``attnkit.load``): a Translator, Tagger, Classifier, LanguageModel,
        Contextual, WordVectors or Captioner."""
        raise UserError(f"{path}: holds {self.what}, which has no model to load")

    def inspector(self, path: Path, device: str = "auto") -> Inspector:
        """The model of ``path`` on ``device``, ready to be looked into (``attnkit plot attention``,
        ``attnkit serve``)."""
        if not self.inspects:
            raise UserError(f"{path}: holds {self.what}, which has nothing to inspect")
        return self.load(path, device).inspector()


def src_file(request: EvaluateRequest) -> str:
    """The ``--src`` of a task that scores a test file."""
    if not request.src:
        raise UserError("evaluate: give the test file with --src")
    return request.src


def plain_lines(scores: dict) -> list[str]:
    """Scores as one line of ``name value`` pairs."""
    return ["  ".join(f"{k} {v}" for k, v in scores.items())]


@dataclass
class Fitted:
    """A model that is counted, not trained by gradient descent (the n-gram LM): ``fit`` does it all
    and returns the summary."""

    fit: Callable[[], dict]


def best_metric(training, default: str, allowed: tuple[str, ...], what: str) -> str:
    """The validation score that picks the best model: ``training.early_stopping``, ``auto`` being the
    task's ``default``; one the task does not compute is an error naming ``what`` the task trains."""
    metric = default if training.early_stopping == "auto" else training.early_stopping
    if metric not in allowed:
        raise UserError(f"training.early_stopping: {what} picks its best model by {' or '.join(allowed)}, "
                        f"not {metric}")
    return metric


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def final_cost(test_size: int, valid_size: int, per_item: float = 1.0) -> float:
    """The final validation and test, in validations (``Prepared.reserve_factor``): 1 + the test set's
    size against the validation set's, times how much more each test item costs."""
    return 1.0 + (test_size / max(1, valid_size) * per_item if test_size else 0.0)


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
    """Load static vectors (word2vec / GloVe text, or a static_vectors run directory) into a
    word-embedding table, logging how many of the vocabulary's words the file has; ``freeze`` keeps
    them fixed during training."""
    if path is None:
        return
    from attnkit.config import resolve_path
    from attnkit.data.embeddings import load_vectors, vectors_file

    if not resume:  # a resumed run gets its (possibly fine-tuned) vectors from the checkpoint
        matrix, _ = load_vectors(vectors_file(resolve_path(path)), words, table.embedding_dim)
        found = matrix.abs().sum(1) > 0
        with torch.no_grad():
            table.weight[found] = matrix[found].to(table.weight.dtype)
    if freeze:
        table.weight.requires_grad_(False)
