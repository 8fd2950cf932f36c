"""Look inside a trained model: its output for one input, and every attention it computed on the way.

``attnkit.load(DIR).inspect(text)`` (or ``attnkit.tasks.load_inspector(DIR)``, then
``inspector.inspect(text, options)``) runs the model once with ``need_weights=True`` and returns an
:class:`Inspection`: the task's result (translation n-best, tags, class probabilities, an LM
continuation) and the attention weights the model itself returned, each an :class:`AttentionMap`
of shape (layers, heads, rows, cols) with the tokens of both axes. The plots
(``attnkit.plotting``) and the web page (``attnkit.server``) both read these, so they show the same
numbers.

Rows are queries, columns are keys. Where a row produces a token (the decoder, a language model),
the row is labelled with the token it predicts: row ``y_i`` of the encoder-decoder attention is
where the decoder looked while producing ``y_i``, and the columns of decoder self-attention are the
decoder's inputs (``<s> y_1 ... y_T``), so the causal mask shows as a lower triangle.

Each task's inspector is a small subclass of :class:`Inspector` beside its loaded model's class (in
``tasks/<name>.py``; the translator's in ``translator.py``), made from the loaded model; every loaded
model is :class:`Inspectable` (``inspect``, ``attention``). This module holds what they share.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from torch import Tensor

from attnkit.errors import UserError

# -- what an inspection returns ------------------------------------------------------------------


class ScoredTranslation(BaseModel):
    text: str
    score: float = Field(description="what the search ranks by: log-probability, length-normalised by beam search")


class SearchCandidate(BaseModel):
    """One candidate a search step looked at (``attnkit/decoding/trace.py``)."""

    text: str = Field(description="the hypothesis it makes, detokenized (one finished by EOS ends in </s>)")
    piece: str = Field(description="the token it adds")
    log_prob: float = Field(description="the hypothesis's cumulative log-probability")
    fate: Literal["kept", "finished", "pruned"]
    parent: int = Field(description="slot of the hypothesis it extends among the previous step's kept ones")
    slot: int | None = Field(None, description="kept: its place among this step's kept hypotheses")
    score: float | None = Field(None, description="finished: the length-normalised score the search ranks by")


class TranslationResult(BaseModel):
    kind: Literal["translation"] = "translation"
    nbest: list[ScoredTranslation] = Field(description="best first; the attention shown is the first's")
    search: list[list[SearchCandidate]] = Field(
        [], description="the search step by step: each step's candidates (beam k: the best 2k extensions of its "
                        "k hypotheses; greedy: the 5 most probable tokens) and what became of each")


class TaggingResult(BaseModel):
    kind: Literal["tagging"] = "tagging"
    words: list[str]
    tags: list[str]


class LabelProbability(BaseModel):
    label: str
    probability: float


class ClassificationResult(BaseModel):
    kind: Literal["classification"] = "classification"
    label: str
    probabilities: list[LabelProbability] = Field(description="every label, most probable first")


class ContinuationResult(BaseModel):
    kind: Literal["language_model"] = "language_model"
    prompt: str
    continuation: str


class CaptionResult(BaseModel):
    kind: Literal["captioning"] = "captioning"
    caption: str
    score: float
    note: str | None = Field(None, description="how the image was converted to what the model reads")


Result = Annotated[TranslationResult | TaggingResult | ClassificationResult | ContinuationResult | CaptionResult,
                   Field(discriminator="kind")]


@dataclass
class AttentionMap:
    name: str  # "encoder", "self", "cross" or "pooling"
    title: str  # what it is, in words
    rows: list[str]  # query tokens
    cols: list[str]  # key tokens
    weights: Tensor  # (layers, heads, len(rows), len(cols)), each row sums to 1
    row_axis: str = "queries"  # what the rows are, in words
    col_axis: str = "keys"
    grid: tuple[int, int] | None = None  # (h, w) when the columns are the cells of an image, row-major

    def __post_init__(self):
        assert self.weights.dim() == 4 and self.weights.shape[2:] == (len(self.rows), len(self.cols)), \
            (self.name, tuple(self.weights.shape), len(self.rows), len(self.cols))

    @property
    def layers(self) -> int:
        return self.weights.size(0)

    @property
    def heads(self) -> int:
        return self.weights.size(1)


@dataclass
class Inspection:
    task: str
    tokens: list[str]  # the input as the model read it
    result: Any  # one of the Result models
    attention: list[AttentionMap] = field(default_factory=list)  # empty for a model without attention
    image: Any = None  # captioning: the (H, W, C) uint8 pixels the model read


@dataclass
class Options:
    """Per-request choices; ``None`` takes the model's config. Each inspector names those it reads."""

    beam: int | None = None  # translation, LM beam search
    nbest: int | None = None  # translation
    method: str | None = None  # LM: greedy, beam or sample
    max_tokens: int | None = None  # LM
    temperature: float | None = None  # LM sampling
    seed: int | None = None  # LM sampling


TITLES = {
    "encoder": "encoder self-attention",
    "self": "decoder self-attention (masked)",
    "cross": "encoder-decoder attention",
    "pooling": "attention pooling",
}


def first_row(weights: Tensor | None) -> Tensor | None:
    """(1, layers, heads, T, S) -> (layers, heads, T, S) in float32 on the CPU, or None."""
    return None if weights is None else weights[0].detach().float().cpu()


# -- what every task's inspector shares --------------------------------------------------------


class Inspector:
    task: str
    options: frozenset[str] = frozenset()  # the Options fields this task reads
    input: str = "text"  # or "image": ``inspect_image`` instead of ``inspect``

    @property
    def arch(self) -> str:
        return self.cfg.model.arch

    def count_tokens(self, text: str) -> int:
        """How many tokens the model would read (cheap: tokenizes only)."""
        raise NotImplementedError

    def check(self, text: str, options: Options) -> None:
        unused = [k for k, v in vars(options).items() if v is not None and k not in self.options]
        if unused:
            raise UserError(f"{unused[0]}: a {self.task} model takes no such option")
        if not text.strip():
            raise UserError("the input is empty")

    def inspect(self, text: str, options: Options | None = None) -> Inspection:
        if self.input != "text":
            raise UserError("this model captions images: send an image, not text")
        options = options or Options()
        self.check(text, options)
        with torch.no_grad():
            return self.run(text, options)

    def inspect_image(self, data: bytes, options: Options | None = None) -> Inspection:
        """A model that reads images (``input == "image"``): its output for the image file's bytes."""
        raise UserError("this model reads text: send text, not an image")

    def run(self, text: str, options: Options) -> Inspection:
        raise NotImplementedError


class Inspectable:
    """What every model ``attnkit.load`` returns can do besides its task's verb: ``inspect`` (its output for
    one input and every attention it computed on the way) and ``attention`` (those maps alone, each with
    its weights (layers, heads, rows, cols) and the tokens of both axes). Options are the ``Options``
    fields the task reads (translation: ``beam``, ``nbest``)."""

    def inspector(self) -> Inspector:
        raise UserError(f"a {type(self).__name__} computes no attention to look at")

    def inspect(self, text: str, **options) -> Inspection:
        return self.inspector().inspect(text, Options(**options))

    def attention(self, text: str, **options) -> list[AttentionMap]:
        return self.inspect(text, **options).attention


def encoder_attention(model: torch.nn.Module, inputs: dict[str, Tensor]) -> Tensor | None:
    """A tagger's or classifier's encoder self-attention (layers, heads, T, T) over the same inputs its
    prediction reads (words, characters, contextual vectors), as the model returns it; None for a
    model without one."""
    return first_row(model.self_attention(**inputs))


MAX_PIXELS = 25_000_000  # a decoded upload larger than this is refused before it is decoded


def read_image(data: bytes) -> Image.Image:
    """The image in an uploaded file's bytes; not an image, or too large once decoded: a UserError."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"image: {img.width}x{img.height} pixels, over the limit of {MAX_PIXELS:,}")
            img.load()
            return img.copy()
    except UnidentifiedImageError:
        raise UserError("image: not an image file Pillow can read (PNG, JPEG, GIF, BMP, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UserError(f"image: unreadable ({err})") from None
