"""What the command line accepts, checked before any work starts, in one place.

Every numeric option is checked against the constraints of the config key it stands for (or of a
named type here), so ``--beam 0`` fails with the same rule as ``decoding.beam: 0`` and the server's
``"beam": 0``; an input file is resolved (``attnkit:NAME`` is a file shipped in the package) and
must exist; an output file's folder must exist. A violation is argparse's one-line error (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from attnkit.config import TrainingConfig, key_type, resolve_path
from attnkit.errors import UserError

Count = Annotated[int, Field(ge=1)]  # steps, sentences, layers, heads: at least one
NonNegative = Annotated[int, Field(ge=0)]
Minutes = Annotated[float, Field(gt=0.0, le=1e5, allow_inf_nan=False)]  # up to about ten weeks
NonNegativeMinutes = Annotated[float, Field(ge=0.0, le=1e5, allow_inf_nan=False)]  # 0: no limit
Dimension = Annotated[int, Field(ge=2)]  # a vector size (sines and cosines come in pairs)
Port = Annotated[int, Field(ge=0, le=65535)]


def checked(annotation: Any, name: str) -> Callable[[str], Any]:
    """An argparse ``type`` that parses and validates a value of ``annotation`` (a pydantic type)."""
    adapter = TypeAdapter(annotation)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_strings(text)
        except ValidationError as err:
            raise argparse.ArgumentTypeError(f"{err.errors()[0]['msg'].lower()} (got {text!r})") from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def like(section: type[BaseModel], key: str) -> Callable[[str], Any]:
    """An argparse ``type`` checking a value as the config key ``section.key`` is checked."""
    return checked(key_type(section, key), key)


def count() -> Callable[[str], int]:
    return checked(Count, "count")


def add_device(parser: argparse.ArgumentParser, trains: bool = False) -> None:
    """``--device``, checked as ``training.device`` is. A command that runs a trained model takes auto by
    default (the GPU when there is one, whatever device trained it); one that trains sets
    ``training.device``, and without it keeps the config's."""
    where = ("where to train: the config's training.device unless given" if trains
             else "where the model runs (default: auto)")
    parser.add_argument("--device", type=like(TrainingConfig, "device"), default=None if trains else "auto",
                        metavar="DEVICE", help=f"{where}; auto (the GPU when there is one), cpu, cuda or cuda:N")


def add_engine(parser: argparse.ArgumentParser) -> None:
    """``--engine``: attnkit's own search, or CTranslate2 on a directory ``attnkit export`` wrote."""
    parser.add_argument("--engine", choices=("torch", "ctranslate2"), default="torch",
                        help="torch: attnkit's own search (default); ctranslate2: CTranslate2 on a directory that "
                             "'attnkit export --to ctranslate2' wrote")


def layer(text: str) -> str | int:
    """A biLM layer as ``attnkit embed --layer`` takes it: average, top, all, or a layer number."""
    if text.isdigit():
        return int(text)
    if text not in ("average", "top", "all"):
        raise argparse.ArgumentTypeError(f"{text!r}: give average, top, all or a layer number (0: the characters)")
    return text


def edges(text: str) -> tuple[int, ...]:
    """'10,20,30' -> (10, 20, 30): the source lengths in words where the buckets of --by-length start."""
    try:
        bounds = tuple(int(x) for x in text.split(","))
    except ValueError:
        bounds = ()
    if not bounds or bounds[0] < 1 or any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise argparse.ArgumentTypeError(f"{text!r}: give increasing whole numbers of words separated by commas, "
                                         "e.g. 10,20,30")
    return bounds


def add_lengths(parser: argparse.ArgumentParser, plot: bool = False) -> None:
    """Scoring by source length: ``--by-length`` (which ``plot by-length`` always does), ``--length-edges``
    and ``--join`` (several join levels for a plot, a panel each)."""
    if not plot:
        parser.add_argument("--by-length", action="store_true",
                            help="translation: also BLEU and chrF per source-length bucket (in words; --json has "
                                 "them under by_length)")
    parser.add_argument("--length-edges", type=edges, default=None, metavar="N,N,...",
                        help="where the length buckets start (default: 10,15,20,25,30,40,50,60: 1-9 words, "
                             "10-14, ..., 60 or more)")
    parser.add_argument("--join", type=count(), default=[1] if plot else 1, nargs="+" if plot else None,
                        metavar="K", help="translation: join every K consecutive test sentences into one input, and "
                                          "their references into one reference, for long inputs made of real ones; "
                                          "the last input holds what is left (default: 1)"
                                          f"{'; several K: a panel each' if plot else ''}")


def input_file(text: str) -> str:
    """An existing file: a path, or ``attnkit:NAME`` for a file shipped in the package."""
    path = resolve_path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: file not found")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: a folder, not a file")
    return str(path)


def output_file(text: str) -> str:
    """A file to write, in a folder that exists (checked now, not after the work is done)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: folder {path.parent} not found")
    return str(path)


# what a command reads (files, model directories) and what it writes (files), by argparse's names
INPUT_FILES = ("input", "src", "ref", "images", "config")
INPUT_DIRS = ("model_dir", "run_dir", "run_dirs")
OUTPUT_FILES = ("output", "out")
REPLACEABLE = frozenset({".png", ".svg"})  # a plot attnkit drew before may be drawn again, in a model directory too


def refuse_overwrites(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that resolves (symlinks followed) to one of the command's
    input files, or to a file of a model directory it reads (its weights, config, tokenizers): an
    ``--output`` pointed at the ``--input`` would replace the text with its translations. A plot may
    replace a plot, and an output may be a new file in a model directory (``RUN_DIR/curves.png``)."""
    def named(keys: tuple[str, ...]) -> list[Path]:
        found = []
        for key in keys:
            value = getattr(args, key, None)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item and item != "-":
                    found.append(Path(item).expanduser().resolve())
        return found

    inputs, dirs = named(INPUT_FILES), named(INPUT_DIRS)
    for out in named(OUTPUT_FILES):
        if out in inputs:
            raise UserError(f"{out}: is also an input of this command; write the output to another file")
        inside = next((d for d in dirs if out.is_relative_to(d) and out != d), None)
        if inside is not None and out.is_file() and out.suffix.lower() not in REPLACEABLE:
            raise UserError(f"{out}: a file of the model directory {inside}; write the output elsewhere")
