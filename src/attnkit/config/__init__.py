"""Typed, validated configuration.

A config is a YAML file naming a ``task`` (translation when absent) and one section per component::

    task:      translation | tagging | classification | language_model | bilm | captioning
    data:      which files to train, validate and test on
    vocab:     how text becomes token ids (subword, word or character level)
    model:     the architecture (``arch: ...``) and its sizes
    training:  optimiser, schedule, batching, validation, stopping
    decoding / generation / embeddings: what the task adds

Every section is a pydantic model with ``extra="forbid"`` (``config/sections.py``,
``config/models.py``, ``config/tasks.py``): a misspelt key, a wrong type or a value out of range
is a :class:`~attnkit.errors.UserError` whose one line names the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from attnkit.config.captioning import DATA_SOURCES
from attnkit.config.models import (
    BagOfEmbeddingsConfig,
    BiLMConfig,
    CaptionTransformerConfig,
    KneserNeyConfig,
    LSTMLMConfig,
    RNNClassifierConfig,
    RNNConfig,
    RNNTaggerConfig,
    ShowAttendTellConfig,
    TransformerClassifierConfig,
    TransformerConfig,
    TransformerLMConfig,
    TransformerTaggerConfig,
)
from attnkit.config.sections import (
    DecodingConfig,
    GenerationConfig,
    LabelledData,
    ParallelData,
    TaggedData,
    TextData,
    TrainingConfig,
    VocabConfig,
)
from attnkit.config.strategies import STRATEGY_NAMES
from attnkit.config.tasks import (
    ARCHS,
    TASK_CONFIGS,
    AnyConfig,
    BiLMTaskConfig,
    CaptioningConfig,
    ClassificationConfig,
    EmbeddingsConfig,
    LanguageModelConfig,
    StaticVectorsConfig,
    TaggingConfig,
    TranslationConfig,
)
from attnkit.errors import UserError, quoted

__all__ = [
    "AnyConfig", "BagOfEmbeddingsConfig", "BiLMConfig", "BiLMTaskConfig", "CaptionTransformerConfig",
    "CaptioningConfig", "ClassificationConfig", "Config",
    "DecodingConfig", "EmbeddingsConfig", "GenerationConfig", "KneserNeyConfig", "LSTMLMConfig",
    "LabelledData", "LanguageModelConfig", "ParallelData", "RNNClassifierConfig", "RNNConfig",
    "RNNTaggerConfig", "ShowAttendTellConfig", "StaticVectorsConfig", "TaggedData", "TaggingConfig", "TextData",
    "TrainingConfig", "TransformerClassifierConfig",
    "TransformerConfig", "TransformerLMConfig", "TransformerTaggerConfig", "TranslationConfig", "VocabConfig",
    "apply_overrides", "dump_config", "key_type", "load_config", "parse_config", "read_yaml", "resolve_path",
]

Config = AnyConfig
_ADAPTER = TypeAdapter(AnyConfig)

EMBEDDED_PREFIX = "attnkit:"


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    # drop the discriminator tags pydantic inserts ("translation.model.rnn.cell" -> "model.cell")
    if loc and loc[0] in TASK_CONFIGS:
        loc.pop(0)
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in ARCHS:
        loc.pop(1)
    if len(loc) >= 3 and loc[:2] == ["training", "strategy"] and loc[2] in STRATEGY_NAMES:
        loc.pop(2)
    if len(loc) >= 2 and loc[0] == "data" and loc[1] in DATA_SOURCES:
        loc.pop(1)
    key = ".".join(loc) or "(top level)"
    kind, text = first["type"], first["msg"].removeprefix("Value error, ")  # our validators' own words
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tag = first["ctx"].get("discriminator", "").strip("'")
        expected = first["ctx"].get("expected_tags", "").replace("'", "")
        where = f"{key}.{tag}" if key != "(top level)" else tag
        got = f" (got {quoted(first['ctx'].get('tag'))})" if kind == "union_tag_invalid" else ""
        msg = (f"missing key '{where}'" if kind == "union_tag_not_found"
               else f"key '{where}': expected one of {expected}{got}")
    elif kind == "extra_forbidden":
        msg = f"unknown key '{key}'"
    elif kind == "missing":
        msg = f"missing key '{key}'"
    elif isinstance(first.get("input"), dict):  # a whole section: too long to repeat on one line
        msg = f"key '{key}': {text}"
    else:
        msg = f"key '{key}': {text} (got {quoted(first.get('input'))})"
    more = len(err.errors()) - 1
    return f"{source}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def parse_config(raw: Any, source: str = "config") -> AnyConfig:
    """Validate a nested dict into its task's config; errors name ``source`` and the key."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    raw = {"task": "translation", **raw}
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        raise UserError(_format_error(source, err)) from None


def apply_overrides(raw: dict, overrides: list[str], source: str = "--set") -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config dict."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"{source} {quoted(item)}: expected section.key=value")
        dotted, _, text = item.partition("=")
        keys = dotted.strip().split(".")
        try:
            value = yaml.load(text, Loader=PlainLoader)
        except yaml.YAMLError:
            value = text
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"{source} {quoted(item)}: '{quoted(key)}' is not a section")
        node[keys[-1]] = value
    return raw


MAX_CONFIG_BYTES = 1 << 20


class PlainLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases: ``*name`` repeats a node, so a 2 KB file of aliases nested
    nine deep (a "billion laughs") expands into billions of values, built before anything could check
    them. A config spells each value out; an alias is refused where the parser meets it."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "an alias (*name): attnkit reads no YAML aliases or "
                                              "merge keys, write the value out", mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str):
    """The value of a YAML document, aliases refused (:class:`PlainLoader`)."""
    return yaml.load(text, Loader=PlainLoader)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes, not a config (at most {MAX_CONFIG_BYTES:,})")
    try:
        raw = load_yaml_text(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = str(getattr(err, "problem", None) or err).strip().splitlines()[0]
        raise UserError(f"{path}:{where} invalid YAML: {problem[:200]}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid UTF-8") from None
    except RecursionError:
        raise UserError(f"{path}: invalid YAML: nested too deeply to be a config") from None
    return raw if raw is not None else {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> AnyConfig:
    raw = apply_overrides(read_yaml(path), overrides or [])
    return parse_config(raw, source=str(path))


def dump_config(cfg: AnyConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def key_type(section: type[BaseModel], key: str) -> Any:
    """The type of a config key with its constraints (``ge=1`` ...): what the CLI's options and the
    server's requests check a value against, so that each refuses what the config refuses."""
    info = section.model_fields[key]
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def resolve_path(path: str, base: Path | None = None) -> Path:
    """Resolve a data path: ``attnkit:NAME`` is a file shipped in the package; a relative path is
    taken relative to ``base`` when given, else to the current directory."""
    if path.startswith(EMBEDDED_PREFIX):
        return Path(str(resources.files("attnkit") / "resources" / path[len(EMBEDDED_PREFIX):]))
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
