"""Typed, validated configuration.

A config is a YAML file with one section per component::

    data:      which files to train, validate and test on
    vocab:     how text becomes token ids (subword, word or character level)
    model:     the architecture (``arch: rnn`` or ``arch: transformer``) and its sizes
    training:  optimiser, schedule, batching, validation, stopping
    decoding:  beam size, length penalty, maximum output length

Every section is a pydantic model with ``extra="forbid"``: a misspelt key, a wrong type or a
value out of range is a :class:`~attnkit.errors.UserError` whose one line names the key.
The name-to-class mapping of architectures is the ``ModelConfig`` union below, written out in
one place.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from attnkit.errors import UserError

EMBEDDED_PREFIX = "attnkit:"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)


class FilePair(Section):
    src: str
    tgt: str


class DataConfig(Section):
    train: FilePair
    valid: FilePair
    test: FilePair | None = None
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    max_len: int = Field(128, ge=2, description="training pairs longer than this (in tokens) are skipped")


class VocabConfig(Section):
    level: Literal["subword", "word", "char"] = "subword"
    joint: bool = True
    size: int = Field(8000, ge=16, description="subword vocabulary size")
    subword_model: Literal["unigram", "bpe"] = "unigram"
    min_freq: int = Field(1, ge=1, description="word/char level: rarer tokens become <unk>")
    character_coverage: float = Field(1.0, gt=0.0, le=1.0)


class RNNConfig(Section):
    arch: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    embed_dim: int = Field(256, ge=1)
    encoder_hidden: int = Field(256, ge=1, description="per direction")
    decoder_hidden: int = Field(512, ge=1)
    bidirectional: bool = True
    encoder_layers: int = Field(2, ge=1)
    decoder_layers: int = Field(2, ge=1)
    context: Literal["none", "mean", "dot", "general", "additive"] = "additive"
    attention_dim: int = Field(256, ge=1, description="hidden size of the additive score")
    input_feeding: bool = True
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    tie_embeddings: bool = False

    @field_validator("context")
    @classmethod
    def _dot_sizes(cls, context: str, info: ValidationInfo) -> str:
        d = info.data
        if context == "dot" and {"encoder_hidden", "decoder_hidden", "bidirectional"} <= d.keys():
            enc = d["encoder_hidden"] * (2 if d["bidirectional"] else 1)
            if enc != d["decoder_hidden"]:
                raise ValueError(f"dot attention needs decoder_hidden ({d['decoder_hidden']}) equal to the "
                                 f"encoder's output size ({enc}); use context general or change the sizes")
        return context


class TransformerConfig(Section):
    arch: Literal["transformer"] = "transformer"
    d_model: int = Field(256, ge=1)
    num_heads: int = Field(4, ge=1)
    ff_dim: int = Field(1024, ge=1)
    encoder_layers: int = Field(3, ge=1)
    decoder_layers: int = Field(3, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    norm: Literal["pre", "post"] = "pre"
    tie_embeddings: bool = True
    share_src_tgt_embeddings: bool = False
    max_positions: int = Field(512, ge=2)

    @field_validator("num_heads")
    @classmethod
    def _heads_divide(cls, num_heads: int, info: ValidationInfo) -> int:
        if "d_model" in info.data and info.data["d_model"] % num_heads:
            raise ValueError(f"d_model ({info.data['d_model']}) is not divisible by num_heads ({num_heads})")
        return num_heads


ModelConfig = Annotated[RNNConfig | TransformerConfig, Field(discriminator="arch")]


class TrainingConfig(Section):
    seed: int = 1
    batch_tokens: int = Field(4096, ge=1, description="target tokens per batch")
    max_steps: int = Field(0, ge=0, description="0: no limit")
    max_epochs: int = Field(0, ge=0, description="0: no limit")
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(5e-4, gt=0.0)
    adam_betas: list[float] = [0.9, 0.98]
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["inverse_sqrt", "plateau", "constant"] = "inverse_sqrt"
    warmup_steps: int = Field(4000, ge=0)
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    plateau_patience: int = Field(2, ge=0)
    min_lr: float = Field(1e-6, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    clip_norm: float = Field(1.0, ge=0.0, description="0: no clipping")
    valid_every: int = Field(1000, ge=1, description="steps between validations")
    valid_beam: int = Field(1, ge=1, description="beam used to compute validation BLEU")
    early_stopping: Literal["bleu", "loss"] = "bleu"
    patience: int = Field(10, ge=0, description="validations without improvement before stopping; 0: never")
    precision: Literal["fp32", "bf16"] = "fp32"
    log_every: int = Field(100, ge=1)
    strategy: Literal["teacher_forcing"] = "teacher_forcing"


class DecodingConfig(Section):
    beam: int = Field(5, ge=1)
    nbest: int = Field(1, ge=1)
    length_penalty: float = Field(1.0, ge=0.0, description="alpha of ((5+len)/6)^alpha; 0: raw log-probs")
    max_len_a: float = Field(1.5, ge=0.0)
    max_len_b: int = Field(10, ge=1)
    min_len: int = Field(1, ge=0)
    batch_size: int = Field(64, ge=1, description="sentences per batch when translating")


class Config(Section):
    data: DataConfig
    vocab: VocabConfig = VocabConfig()
    model: ModelConfig = Field(default_factory=TransformerConfig)
    training: TrainingConfig = TrainingConfig()
    decoding: DecodingConfig = DecodingConfig()

    @field_validator("model")
    @classmethod
    def _shared_needs_joint(cls, model, info: ValidationInfo):
        vocab = info.data.get("vocab")
        if getattr(model, "share_src_tgt_embeddings", False) and vocab is not None and not vocab.joint:
            raise ValueError("share_src_tgt_embeddings needs a joint vocabulary (vocab.joint: true)")
        return model


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    # drop the discriminator tag pydantic inserts for the model union ("model.rnn.cell" -> "model.cell")
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in ("rnn", "transformer"):
        loc.pop(1)
    key = ".".join(loc) or "(top level)"
    kind = first["type"]
    if kind == "union_tag_not_found":
        msg = f"missing key '{key}.arch' (rnn or transformer)"
    elif kind == "union_tag_invalid":
        msg = f"key '{key}.arch': expected rnn or transformer (got {first['ctx'].get('tag')!r})"
    elif kind == "extra_forbidden":
        msg = f"unknown key '{key}'"
    elif kind == "missing":
        msg = f"missing key '{key}'"
    elif isinstance(first.get("input"), dict):  # a whole section: too long to repeat on one line
        msg = f"key '{key}': {first['msg']}"
    else:
        msg = f"key '{key}': {first['msg']} (got {first.get('input')!r})"
    more = len(err.errors()) - 1
    return f"{source}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def parse_config(raw: Any, source: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config`; errors name ``source`` and the key."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_error(source, err)) from None


def apply_overrides(raw: dict, overrides: list[str], source: str = "--set") -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config dict."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"{source} {item!r}: expected section.key=value")
        dotted, _, text = item.partition("=")
        keys = dotted.strip().split(".")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"{source} {item!r}: '{key}' is not a section")
        node[keys[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} invalid YAML: {getattr(err, 'problem', err)}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8") from None
    return raw if raw is not None else {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    raw = apply_overrides(read_yaml(path), overrides or [])
    return parse_config(raw, source=str(path))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def resolve_path(path: str, base: Path | None = None) -> Path:
    """Resolve a data path: ``attnkit:NAME`` is a file shipped in the package; a relative path is
    taken relative to ``base`` when given, else to the current directory."""
    if path.startswith(EMBEDDED_PREFIX):
        return Path(str(resources.files("attnkit") / "resources" / path[len(EMBEDDED_PREFIX):]))
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
