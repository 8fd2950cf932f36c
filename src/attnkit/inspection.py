"""Look inside a trained model: its output for one input, and every attention it computed on the way.

``load_inspector(DIR)`` reads a model directory and returns the inspector of its task;
``inspector.inspect(text, options)`` runs the model once with ``need_weights=True`` and returns an
:class:`Inspection`: the task's result (translation n-best, tags, class probabilities, an LM
continuation) and the attention weights the model itself returned, each an :class:`AttentionMap`
of shape (layers, heads, rows, cols) with the tokens of both axes. The plots
(``attnkit.plotting``) and the web page (``attnkit.server``) both read these, so they show the same
numbers.

Rows are queries, columns are keys. Where a row produces a token (the decoder, a language model),
the row is labelled with the token it predicts: row ``y_i`` of the encoder-decoder attention is
where the decoder looked while producing ``y_i``, and the columns of decoder self-attention are the
decoder's inputs (``<s> y_1 ... y_T``), so the causal mask shows as a lower triangle.

A task's inspector is one small class in ``INSPECTORS``; a new task adds one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from torch import Tensor

from attnkit.data.batching import pad
from attnkit.errors import UserError
from attnkit.model_dir import open_model_dir
from attnkit.specials import BOS, EOS

# -- what an inspection returns ------------------------------------------------------------------


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="what the search ranks by: log-probability, length-normalised by beam search")


class TranslationResult(BaseModel):
    kind: Literal["translation"] = "translation"
    nbest: list[Hypothesis] = Field(description="best first; the attention shown is the first's")


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


# -- one inspector per task ----------------------------------------------------------------------


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
        options = options or Options()
        self.check(text, options)
        with torch.no_grad():
            return self.run(text, options)

    def run(self, text: str, options: Options) -> Inspection:
        raise NotImplementedError


class TranslationInspector(Inspector):
    task, options = "translation", frozenset({"beam", "nbest"})

    def __init__(self, path: Path):
        from attnkit.translator import load_model_dir

        self.translator = load_model_dir(path)
        self.cfg = self.translator.cfg

    def count_tokens(self, text: str) -> int:
        return len(self.translator.src_tok.encode(text)) + 1  # + EOS

    def run(self, text: str, options: Options) -> Inspection:
        t = self.translator
        beam = options.beam or self.cfg.decoding.beam
        nbest = options.nbest or 1  # more than the beam: the translator's one-line error, as on the CLI
        hyps = t.translate([text], beam=beam, nbest=nbest)[0]
        src_ids = t.encode_source(text)
        best = hyps[0].tokens
        src = pad([src_ids])  # (1, S)
        tgt_in = pad([[BOS] + best])  # (1, T): <s> y_1 .. y_n
        out = t.model(src, tgt_in, need_weights=True)  # the teacher-forced pass over the best hypothesis
        source = t.src_tok.pieces(src_ids)
        produced = t.tgt_tok.pieces(best + [EOS])  # what each decoder position predicts
        inputs = t.tgt_tok.pieces([BOS] + best)
        axes = {"encoder": (source, source, "source", "source"),
                "self": (produced, inputs, "target (predicted)", "target (decoder input)"),
                "cross": (produced, source, "target", "source")}
        maps = []
        for name in ("encoder", "self", "cross"):
            if out.attention.get(name) is not None:
                rows, cols, row_axis, col_axis = axes[name]
                maps.append(AttentionMap(name, TITLES[name], rows, cols, first_row(out.attention[name]),
                                         row_axis, col_axis))
        result = TranslationResult(nbest=[Hypothesis(text=h.text, score=round(h.score, 4)) for h in hyps])
        return Inspection(self.task, source, result, maps)


def encoder_attention(model: torch.nn.Module, inputs: dict[str, Tensor]) -> Tensor | None:
    """A Transformer tagger's or classifier's encoder self-attention (layers, heads, T, T) over the
    same inputs its prediction reads (words, characters, contextual vectors), as ``encode`` returns
    it; None for recurrent models."""
    from attnkit.models.transformer import TransformerEncoder

    core = getattr(model, "model", model)  # WithContextualEmbeddings
    if not isinstance(getattr(core, "encoder", None), TransformerEncoder):
        return None
    return first_row(model.encode(**inputs, need_weights=True).attention.get("encoder"))


class TaggingInspector(Inspector):
    task = "tagging"

    def __init__(self, path: Path):
        from attnkit.tasks.tagging import Tagger

        self.tagger = Tagger.load(path)
        self.cfg = self.tagger.cfg

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def run(self, text: str, options: Options) -> Inspection:
        from attnkit.data.conllu import Sentence
        from attnkit.tasks.tagging import model_limit

        words = text.split()
        limit = model_limit(self.tagger.model)
        if limit is not None and len(words) > limit:
            raise UserError(f"the text has {len(words)} words; this tagger reads at most {limit} at once")
        tags = self.tagger.tag([Sentence(words, {})])[0]
        batch = self.tagger.vocabs.batch([Sentence(words, {})], None, [0])
        alpha = encoder_attention(self.tagger.model, batch.inputs())
        maps = ([AttentionMap("encoder", TITLES["encoder"], words, words, alpha, "words", "words")]
                if alpha is not None else [])
        return Inspection(self.task, words, TaggingResult(words=words, tags=tags), maps)


class ClassificationInspector(Inspector):
    task = "classification"

    def __init__(self, path: Path):
        from attnkit.tasks.classification import Classifier

        self.classifier = Classifier.load(path)
        self.cfg = self.classifier.cfg

    def count_tokens(self, text: str) -> int:
        return len(self.classifier.enc.ids(text))

    def run(self, text: str, options: Options) -> Inspection:
        c = self.classifier
        batch = c.enc.batch([text], None, [0])
        out = c.model(**batch.inputs())  # ClassifierOutput: logits (1, C), pooling weights (1, T) or None
        probs = torch.softmax(out.logits[0].float(), -1).tolist()
        ranked = sorted(zip(c.enc.labels, probs), key=lambda lp: -lp[1])
        tokens = c.enc.tok.pieces(batch.words[0].tolist())
        maps = []
        alpha = encoder_attention(c.model, batch.inputs())
        if alpha is not None:
            maps.append(AttentionMap("encoder", TITLES["encoder"], tokens, tokens, alpha, "tokens", "tokens"))
        if out.attention is not None:  # one learned query over the words
            pooled = out.attention[0].float().view(1, 1, 1, -1)  # (1, 1, 1, T)
            maps.append(AttentionMap("pooling", TITLES["pooling"], ["<query>"], tokens, pooled,
                                     "learned query", "tokens"))
        result = ClassificationResult(label=ranked[0][0], probabilities=[
            LabelProbability(label=lab, probability=round(p, 4)) for lab, p in ranked])
        return Inspection(self.task, tokens, result, maps)


class LanguageModelInspector(Inspector):
    task, options = "language_model", frozenset({"beam", "method", "max_tokens", "temperature", "seed"})

    def __init__(self, path: Path):
        from attnkit.tasks.language_model import LanguageModel

        self.lm = LanguageModel.load(path)
        self.cfg = self.lm.cfg

    def count_tokens(self, text: str) -> int:
        return len(text.split()) if self.lm.ngram is not None else len(self.lm.tok.encode(text)) + 1

    def run(self, text: str, options: Options) -> Inspection:
        g, lm = self.cfg.generation, self.lm
        pick = lambda value, default: default if value is None else value  # noqa: E731
        context, new = lm.continue_ids(text, pick(options.method, g.method), pick(options.beam, g.beam),
                                       pick(options.max_tokens, g.max_tokens),
                                       pick(options.temperature, g.temperature), g.top_k, g.top_p,
                                       pick(options.seed, 0), min(g.min_tokens, pick(options.max_tokens, g.max_tokens)))
        result = ContinuationResult(prompt=text, continuation=lm.decode(new))
        if lm.ngram is not None:
            return Inspection(self.task, text.split(), result)
        pieces = lm.tok.pieces
        ids = context + new  # what the model reads: the line start, the prompt, the continuation
        maps = []
        out = lm.model(torch.tensor([ids]), need_weights=True)
        if out.attention:  # Transformer: per layer (1, h, T, T)
            weights = torch.stack(out.attention, dim=1)  # (1, layers, h, T, T)
            maps.append(AttentionMap("self", "self-attention (masked)", pieces(ids[1:] + [EOS]), pieces(ids),
                                     first_row(weights), "predicted token", "input token"))
        prompt = context[1:] if context[0] == EOS else context  # the line start is not the user's
        return Inspection(self.task, pieces(prompt), result, maps)


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


class CaptioningInspector(Inspector):
    task, options, input = "captioning", frozenset({"beam"}), "image"

    def __init__(self, path: Path):
        from attnkit.tasks.captioning import Captioner

        self.captioner = Captioner.load(path)
        self.cfg = self.captioner.cfg

    def count_tokens(self, text: str) -> int:
        return 0

    def inspect(self, text: str, options: Options | None = None) -> Inspection:
        raise UserError("this model captions images: send an image, not text")

    def inspect_image(self, data: bytes, options: Options | None = None) -> Inspection:
        from attnkit.data.images import fit_image, to_tensor

        options = options or Options()
        self.check("image", options)
        c, im = self.captioner, self.cfg.image
        pixels, note = fit_image(read_image(data), im.height, im.width, im.channels)  # (H, W, C) uint8
        with torch.no_grad():
            best = c.caption([pixels], options.beam)[0]
            out = c.model(to_tensor([pixels]), pad([[BOS] + best.tokens]), need_weights=True)
        h, w = c.model.encoder.grid_size
        cells = [f"({r},{k})" for r in range(h) for k in range(w)]  # row-major, as the encoder lays them out
        maps = [AttentionMap("cross", "attention over the image", c.tok.pieces(best.tokens + [EOS]), cells,
                             first_row(out.attention["cross"]), "caption word", "image cell (row, column)",
                             (h, w))] if out.attention.get("cross") is not None else []
        result = CaptionResult(caption=best.text, score=round(best.score, 4), note=note)
        return Inspection(self.task, cells, result, maps, pixels)


# The task of a model directory -> its inspector.
INSPECTORS: dict[str, type[Inspector]] = {
    "translation": TranslationInspector,
    "tagging": TaggingInspector,
    "classification": ClassificationInspector,
    "language_model": LanguageModelInspector,
    "captioning": CaptioningInspector,
}


def load_inspector(path: str | Path) -> Inspector:
    path, cfg = open_model_dir(path, files=())
    task = cfg.task
    if task not in INSPECTORS:
        raise UserError(f"{path}: holds a {task} model, which has nothing to inspect "
                        f"(inspectable: {', '.join(INSPECTORS)})")
    return INSPECTORS[task](path)
