"""The sections every task shares: data files, vocabulary, training, decoding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from attnkit.config.base import MAX_BATCH_TOKENS, MAX_BEAM, MAX_TOKENS, MAX_VOCAB, Section
from attnkit.config.strategies import StrategyConfig, TeacherForcingConfig

__all__ = ["DecodingConfig", "FilePair", "GenerationConfig", "LabelledData", "ParallelData", "Section", "TaggedData",
           "TextData", "TrainingConfig", "VocabConfig"]


# -- data ------------------------------------------------------------------------------------------
class FilePair(Section):
    src: str
    tgt: str


class ParallelData(Section):
    """Translation: one sentence per line, source and target files aligned line by line."""

    train: FilePair
    valid: FilePair
    test: FilePair | None = None
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    max_len: int = Field(128, ge=2, le=MAX_TOKENS,
                         description="training pairs longer than this (in tokens) are skipped")
    prepared: str | None = Field(
        None, description="a corpus directory made by attnkit prepare from this config: training memory-maps "
                          "its token ids and takes its tokenizers instead of reading and encoding data.train")


class TaggedData(Section):
    """Tagging: CoNLL-U files (gold tokenization)."""

    train: str
    valid: str
    test: str | None = None
    tag: Literal["upos", "xpos"] = "upos"
    max_len: int = Field(256, ge=2, le=MAX_TOKENS,
                         description="training sentences longer than this (in words) are skipped")


class LabelledData(Section):
    """Classification: TSV files with a text column and a label column."""

    train: str
    valid: str
    test: str | None = None
    text_column: int = Field(0, ge=0)
    label_column: int = Field(1, ge=0)
    header: bool = True
    max_len: int = Field(256, ge=2, le=MAX_TOKENS, description="longer training texts (in tokens) are cut")


class TextData(Section):
    """Language modelling: plain text, one sentence (or line) per line; train may list several files."""

    train: str | list[str]
    valid: str
    test: str | None = None
    max_len: int = Field(256, ge=2, le=MAX_TOKENS, description="longer training lines (in tokens) are skipped")


# -- vocabulary -----------------------------------------------------------------------------------
class VocabConfig(Section):
    level: Literal["subword", "word", "char", "spm_vocab"] = Field(
        "subword", description="spm_vocab: the tokenizers of an imported model (attnkit import hf), SentencePiece "
                               "pieces numbered by a list of their own; they are not trained")
    joint: bool = True
    size: int = Field(8000, ge=16, le=MAX_VOCAB, description="subword vocabulary size; at word level the most frequent")
    subword_model: Literal["unigram", "bpe"] = "unigram"
    min_freq: int = Field(1, ge=1, description="word/char level: rarer tokens become <unk>")
    character_coverage: float = Field(1.0, gt=0.0, le=1.0)
    lowercase: bool = False


# -- training, decoding ---------------------------------------------------------------------------
class TrainingConfig(Section):
    seed: int = 1
    batch_tokens: int = Field(4096, ge=1, le=MAX_BATCH_TOKENS,
                              description="target tokens per batch (per micro-batch with accumulate)")
    accumulate: int = Field(1, ge=1, le=4096,
                            description="micro-batches summed into one update: an update sees batches "
                                        "accumulate times as large, in accumulate forward/backward passes")
    max_steps: int = Field(0, ge=0, description="0: no limit")
    max_epochs: int = Field(0, ge=0, description="0: no limit")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(5e-4, gt=0.0)
    adam_betas: list[float] = [0.9, 0.98]
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="sgd only: heavy-ball momentum; 0: plain SGD")
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["inverse_sqrt", "plateau", "constant", "linear"] = Field(
        "inverse_sqrt", description="linear: down to zero at the end of the budget (max_steps, --max-steps "
                                    "or --max-minutes)")
    warmup_steps: int | None = Field(
        None, ge=0, description="updates of linear warmup from 0 to lr; default: 4000 for inverse_sqrt (its formula "
                                "peaks there), 0 (none) for the other schedules")
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    plateau_patience: int = Field(2, ge=0)
    min_lr: float = Field(1e-6, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    clip_norm: float = Field(1.0, ge=0.0, description="0: no clipping")
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0, description="validate and keep a moving average of the weights, which covers about "
                                         "the last 1 / (1 - ema_decay) updates; 0: the weights themselves")
    valid_every: int = Field(1000, ge=1, description="steps between validations")
    valid_beam: int = Field(1, ge=1, le=MAX_BEAM, description="beam used to compute validation BLEU")
    early_stopping: Literal["auto", "bleu", "loss", "accuracy", "perplexity"] = Field(
        "auto", description="the validation score that picks the best model; auto: the task's main score")
    patience: int = Field(10, ge=0, description="validations without improvement before stopping; 0: never")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32; bf16 autocast (CPUs with native bf16, and GPUs); fp16 autocast with loss "
                            "scaling (GPUs). Where it cannot run fast, fp32, said in the log")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto (the GPU when there is one), cpu, cuda or cuda:N; --device on the "
                                    "command line")
    log_every: int = Field(20, ge=1, description="updates between the training lines of the log and metrics.jsonl")
    collective_timeout: float = Field(
        30.0, gt=0.0, description="torchrun: minutes a rank waits for the others in one collective of the "
                                  "training loop (rank 0's validations and checkpoints must fit in it); a rank that "
                                  "hangs ends the job after it")
    deterministic: bool = Field(
        False, description="PyTorch's deterministic algorithms, cuDNN's deterministic kernels and a fixed cuBLAS "
                           "workspace: on a GPU, a resumed run then repeats the uninterrupted one (slower; an "
                           "operation with no deterministic version warns)")
    init_from: str | None = Field(
        None, description="translation, language model: a trained model directory whose tokenizers and best "
                          "weights this run starts from (fine-tuning; its model section must match); the "
                          "optimiser and schedule start afresh")
    tensorboard: bool = Field(False, description="also write TensorBoard event files to <run dir>/tensorboard")
    strategy: StrategyConfig = Field(
        default_factory=lambda: TeacherForcingConfig(),
        description="how an autoregressive model is fed while it learns (config/strategies.py)")

    @field_validator("strategy", mode="before")
    @classmethod
    def _name_alone(cls, value):
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_warmup(self):
        if self.warmup_steps is None:
            self.warmup_steps = 4000 if self.schedule == "inverse_sqrt" else 0
        return self

    @model_validator(mode="after")
    def _optimizer_settings_match(self):
        # by value, not by "was it set": a run's saved config spells out every default
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum is an sgd setting; optimizer {self.optimizer} would ignore it")
        if self.optimizer == "sgd" and self.adam_betas != type(self).model_fields["adam_betas"].default:
            raise ValueError("adam_betas is an adam / adamw setting; optimizer sgd would ignore it")
        return self


class DecodingConfig(Section):
    beam: int = Field(5, ge=1, le=MAX_BEAM)
    nbest: int = Field(1, ge=1, le=MAX_BEAM)
    length_penalty: float = Field(1.0, ge=0.0, description="alpha of ((5+len)/6)^alpha; 0: raw log-probs")
    max_len_a: float = Field(1.5, ge=0.0, le=100.0)
    max_len_b: int = Field(10, ge=1, le=MAX_TOKENS)
    min_len: int = Field(1, ge=0, le=MAX_TOKENS)
    batch_size: int = Field(64, ge=1, le=1 << 16, description="sentences per batch when translating")


class GenerationConfig(Section):
    """Language-model continuation (``attnkit generate``)."""

    method: Literal["greedy", "beam", "sample"] = "sample"
    beam: int = Field(5, ge=1, le=MAX_BEAM)
    temperature: float = Field(1.0, gt=0.0)
    top_k: int = Field(0, ge=0, le=MAX_VOCAB, description="sample among the k most probable tokens; 0: all")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus: the smallest set with this mass; 1: all")
    min_tokens: int = Field(1, ge=0, le=MAX_TOKENS,
                            description="new tokens before the line may end (0: an empty continuation "
                                        "is allowed, which beam search, ranking by probability, often picks)")
    max_tokens: int = Field(50, ge=1, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _min_below_max(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) is above max_tokens ({self.max_tokens})")
        return self
