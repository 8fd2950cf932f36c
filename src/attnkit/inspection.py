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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, Field
from torch import Tensor

from attnkit.config import load_config
from attnkit.data.batching import pad
from attnkit.errors import UserError
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


Result = Annotated[TranslationResult | TaggingResult | ClassificationResult | ContinuationResult,
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
        nbest = min(options.nbest or 1, beam)
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


def encoder_attention(model: torch.nn.Module, words: Tensor) -> Tensor | None:
    """A Transformer tagger's or classifier's encoder self-attention (layers, heads, T, T), from the
    encoder's own returned weights; None for recurrent models."""
    from attnkit.models.transformer import TransformerEncoder

    core = getattr(model, "model", model)  # WithContextualEmbeddings
    encoder = getattr(core, "encoder", None)
    if not isinstance(encoder, TransformerEncoder):
        return None
    return first_row(encoder(words, need_weights=True).attention.get("encoder"))


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
        alpha = encoder_attention(self.tagger.model, batch.words)
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
        alpha = encoder_attention(c.model, batch.words)
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
                                       pick(options.seed, 0))
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


# The task of a model directory -> its inspector. A captioning inspector (image in, caption and
# attention over the image grid out) joins here when that task exists.
INSPECTORS: dict[str, type[Inspector]] = {
    "translation": TranslationInspector,
    "tagging": TaggingInspector,
    "classification": ClassificationInspector,
    "language_model": LanguageModelInspector,
}


def load_inspector(path: str | Path) -> Inspector:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: model directory not found")
    if not (path / "config.yaml").is_file():
        raise UserError(f"{path}: model directory is incomplete, config.yaml is missing")
    task = load_config(path / "config.yaml").task
    if task not in INSPECTORS:
        raise UserError(f"{path}: holds a {task} model, which has nothing to inspect "
                        f"(inspectable: {', '.join(INSPECTORS)})")
    return INSPECTORS[task](path)
