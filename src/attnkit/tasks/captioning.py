"""Image captioning (one to many): an image in, a sentence out, with attention over image regions.

Data comes from composed digit scenes (``data/digit_scenes.py``, the embedded default) or from an
image folder with a Flickr8k or COCO captions file (``data/captions.py``). Scores: BLEU-4
(sacreBLEU, every reference of an image), exact match (the caption equals one of the references),
and, for digit scenes, attention localisation: the attention mass inside the bounding box of the
digit being named, at the step that names it, averaged over all digits. Localisation is measured
teacher-forced on the reference caption, so every digit counts whatever the model would write.

The run directory holds ``config.yaml``, the word list ``words.vocab.txt`` and the weights.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sacrebleu.metrics import BLEU
from torch import Tensor

from attnkit.build import build_captioner
from attnkit.config import CaptioningConfig, resolve_path
from attnkit.data.batching import Batch, pad
from attnkit.data.captions import read_caption_set
from attnkit.data.digit_scenes import Digit, digit_splits
from attnkit.data.images import ImageFolder, fit_image, load_image, to_tensor
from attnkit.data.vocab import Tokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from attnkit.decoding.search import beam_search, greedy
from attnkit.errors import UserError
from attnkit.inspection import (
    AttentionMap,
    CaptionResult,
    Inspectable,
    Inspection,
    Inspector,
    Options,
    first_row,
    read_image,
)
from attnkit.limits import require_search_memory
from attnkit.model_dir import load_best_weights, open_model_dir
from attnkit.models import Seq2Seq
from attnkit.runtime import autocast, device_of, pick_device, to_device
from attnkit.specials import BOS, EOS
from attnkit.tasks.base import EvaluateRequest, Evaluation, Prepared, Task, best_metric, final_cost, parameter_count
from attnkit.training.captioning_loss import cross_attention
from attnkit.training.strategies import make_strategy, token_nll

log = logging.getLogger(__name__)


@dataclass
class CaptionSet:
    """The images of one split (each (H, W, C) uint8 at the model's size, read when asked for) and
    their reference captions; ``digits`` (scenes only) the digits each caption names."""

    images: Sequence[np.ndarray] | np.ndarray  # an image folder, or scenes rendered once (N, H, W, C)
    references: list[list[str]]
    digits: list[list[Digit]] | None = None

    def __len__(self) -> int:
        return len(self.references)


def read_splits(cfg: CaptioningConfig, names: tuple[str, ...] = ("train", "valid", "test")
                ) -> dict[str, CaptionSet | None]:
    """The splits ``names`` of the config's data (None for a split it does not have)."""
    d, im = cfg.data, cfg.image
    if d.source == "digits":
        counts = {"train": d.train_scenes, "valid": d.valid_scenes, "test": d.test_scenes}
        splits = digit_splits(resolve_path(d.digits), d.seed, counts, im.height, im.width, d.min_digits,
                              d.max_digits, tuple(d.digit_split))
        out: dict[str, CaptionSet | None] = {}
        for name in names:
            scenes = splits[name]
            rendered = [scenes[i] for i in range(len(scenes))]
            pixels = np.stack([s.image for s in rendered])[..., None]  # (N, H, W, 1)
            if im.channels == 3:
                pixels = pixels.repeat(3, axis=-1)
            out[name] = CaptionSet(pixels, [[s.caption] for s in rendered],
                                   [s.digits for s in rendered])
        return out

    def files(split) -> CaptionSet | None:
        if split is None:
            return None
        images = resolve_path(split.images)
        items = read_caption_set(resolve_path(split.captions), images,
                                 resolve_path(split.split) if split.split else None, d.layout)
        folder = ImageFolder(images, [item.image for item in items], im.height, im.width, im.channels)
        return CaptionSet(folder, [item.captions for item in items])

    return {name: files(getattr(d, name)) for name in names}


@dataclass
class Caption:
    text: str
    tokens: list[int]
    score: float


class Captioner(Inspectable):
    """A captioning model with its vocabulary: captions, attention maps and scores. Images are (H, W, C)
    uint8 arrays at the model's size, or image files (converted as ``attnkit caption`` converts them)."""

    def __init__(self, model: Seq2Seq, tok: Tokenizer, cfg: CaptioningConfig):
        self.model, self.tok, self.cfg = model.eval(), tok, cfg

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Captioner:
        """The captioner of a model directory, on ``device`` (auto: the GPU when there is one)."""
        where = pick_device(device)
        path, cfg = open_model_dir(path, "captioning", "a captioner")
        tok = load_tokenizer(path, "words", cfg.vocab.level)
        model = build_captioner(cfg.model, image_shape(cfg), len(tok), pretrained=False)
        load_best_weights(model, path)
        return cls(model.to(where), tok, cfg)

    def normalise(self, text: str) -> str:
        return " ".join((text.lower() if self.cfg.vocab.lowercase else text).split())

    def pixels(self, image: np.ndarray | str | Path) -> np.ndarray:
        """An image file as the (H, W, C) uint8 array the model reads; an array as it is."""
        if isinstance(image, (str, Path)):
            im = self.cfg.image
            return load_image(image, im.height, im.width, im.channels)[0]
        return image

    @torch.no_grad()
    def caption(self, images: Sequence[np.ndarray | str | Path], beam: int | None = None) -> list[Caption]:
        """The best caption of every image."""
        images = [self.pixels(image) for image in images]
        d = self.cfg.decoding
        beam = beam or d.beam
        limit = d.max_len if self.model.max_positions is None else min(d.max_len, self.model.max_positions - 1)
        out, device = [], device_of(self.model)
        require_search_memory(min(d.batch_size, len(images)), beam, len(self.tok))
        for start in range(0, len(images), d.batch_size):
            src = to_tensor([images[i] for i in range(start, min(start + d.batch_size, len(images)))])
            src = to_device(src, device)  # (B, C, H, W)
            max_len = torch.full((src.size(0),), limit, dtype=torch.long, device=device)
            with autocast(self.cfg.training.precision, device):
                if beam == 1:
                    hyps = greedy(self.model, src, max_len, d.min_len)
                else:
                    hyps = beam_search(self.model, src, beam, max_len, d.length_penalty, 1, d.min_len)
            out += [Caption(self.tok.decode(h[0].tokens), h[0].tokens, h[0].score) for h in hyps]
        return out

    def inspector(self) -> CaptioningInspector:
        return CaptioningInspector(self)

    def inspect(self, image: str | Path | bytes, **options) -> Inspection:
        """The caption of one image file (its path or bytes) and the attention over its cells."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return self.inspector().inspect_image(data, Options(**options))

    @torch.no_grad()
    def cell_attention(self, images: Sequence[np.ndarray], tokens: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass over ``tokens`` (without BOS/EOS): the attention of each output step
        (B, T, h, w), step t being the one that writes token t (T = longest + 1, the last writes EOS),
        and the summed negative log-likelihood per image (B,), both on the CPU. The same numbers the
        search saw."""
        device = device_of(self.model)
        src, tgt_in, tgt_out = to_device((to_tensor(list(images)), pad([[BOS] + t for t in tokens]),
                                          pad([t + [EOS] for t in tokens])), device)
        with autocast(self.cfg.training.precision, device):
            out = self.model(src, tgt_in, need_weights=True)
        alpha = cross_attention(out.attention["cross"])  # (B, T, L)
        h, w = self.model.encoder.grid_size
        nll = torch.stack([token_nll(out.logits[i : i + 1], tgt_out[i : i + 1]) for i in range(len(tokens))])
        return alpha.view(alpha.size(0), alpha.size(1), h, w).cpu(), nll.cpu()  # (B, T, h, w), (B,)

    def evaluate(self, data: CaptionSet, beam: int | None = None, captions: list[Caption] | None = None) -> dict:
        """BLEU-4, exact match (%), the loss per token of each image's first reference (teacher forced)
        and, for digit scenes, localisation."""
        hyps = [c.text for c in (captions or self.caption(data.images, beam))]
        refs = [[self.normalise(r) for r in rs] for rs in data.references]
        scores = caption_scores(hyps, refs)
        loss, tokens, masses = 0.0, 0, []
        batch = self.cfg.decoding.batch_size
        for start in range(0, len(data), batch):
            rows = range(start, min(start + batch, len(data)))
            ids = [self.tok.encode(refs[i][0]) for i in rows]
            alpha, nll = self.cell_attention([data.images[i] for i in rows], ids)
            loss += float(nll.sum())
            tokens += sum(len(t) + 1 for t in ids)
            if data.digits is not None and self.tok.kind == "word":
                height, width = data.images[0].shape[:2]
                masses += [box_mass(alpha[j, digit.word].numpy(), digit.box, height, width)
                           for j, i in enumerate(rows) for digit in data.digits[i]]
        scores["loss"] = round(loss / max(tokens, 1), 4)
        if masses:
            scores["localisation"] = round(float(np.mean(masses)), 4)
        return scores


def caption_scores(hyps: list[str], refs: list[list[str]]) -> dict:
    """Corpus BLEU-4 of ``hyps`` against every reference of each image, and the exact-match rate."""
    most = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(most)]
    bleu = BLEU(max_ngram_order=4)
    result = bleu.corpus_score(hyps, streams)
    exact = sum(h in r for h, r in zip(hyps, refs)) / len(hyps)
    return {"bleu": round(result.score, 2), "exact_match": round(100.0 * exact, 2), "images": len(hyps),
            "bleu_signature": str(bleu.get_signature())}


def box_mass(alpha: np.ndarray, box: tuple[int, int, int, int], height: int, width: int) -> float:
    """Attention mass inside a pixel box: alpha (h, w) over grid cells that tile the height x width
    image, each cell's weight spread evenly over its pixels. box (x0, y0, x1, y1), x1 and y1 exclusive."""
    h, w = alpha.shape
    x0, y0, x1, y1 = box

    def overlap(edges: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Fraction of each cell [edges[k], edges[k+1]) inside [lo, hi)."""
        inside = np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)
        return inside.clip(min=0) / (edges[1:] - edges[:-1])

    rows = overlap(np.linspace(0, height, h + 1), y0, y1)  # (h,)
    cols = overlap(np.linspace(0, width, w + 1), x0, x1)  # (w,)
    return float((alpha * rows[:, None] * cols[None, :]).sum())


def image_shape(cfg: CaptioningConfig) -> tuple[int, int, int]:
    return cfg.image.channels, cfg.image.height, cfg.image.width


def prepare(cfg: CaptioningConfig, out: Path, resume: bool) -> Prepared:
    splits = read_splits(cfg)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    v, t = cfg.vocab, cfg.training
    lower = (lambda s: s.lower()) if v.lowercase else (lambda s: s)
    if resume:
        tok = load_tokenizer(out, "words", v.level)
    else:
        texts = [lower(c) for refs in train.references for c in refs]
        tok = train_tokenizer(texts, v.level, v.size, v.subword_model, v.min_freq, v.character_coverage, t.seed)
        save_tokenizer(tok, out, "words")
    max_len = cfg.data.max_len
    if cfg.model.arch == "caption_transformer":
        max_len = min(max_len, cfg.model.max_positions)
    examples = [(i, ids) for i, refs in enumerate(train.references)
                for ids in (tok.encode(lower(c)) for c in refs) if len(ids) < max_len]
    skipped = sum(len(r) for r in train.references) - len(examples)
    if skipped:
        log.warning("skipped %d training caption(s) of %d words or more (data.max_len)", skipped, max_len)
    if not examples:
        raise UserError(f"data: no training caption is shorter than {max_len} words (data.max_len)")

    torch.manual_seed(t.seed)
    model = build_captioner(cfg.model, image_shape(cfg), len(tok), pretrained=not resume)
    n_params = parameter_count(model)
    h, w = model.encoder.grid_size
    log.info("%s captioner with %s parameters; %d training images, %d captions, vocab %d, %dx%d grid of cells",
             cfg.model.arch, f"{n_params:,}", len(train), len(examples), len(tok), h, w)

    def make_batch(idx: list[int]) -> Batch:
        pixels = [train.images[examples[i][0]] for i in idx]
        caps = [examples[i][1] for i in idx]
        return Batch(src=to_tensor(pixels), tgt_in=pad([[BOS] + c for c in caps]),
                     tgt_out=pad([c + [EOS] for c in caps]), index=idx)  # src: the images (B, C, H, W)

    def epoch_batches(epoch: int, scale: int = 1) -> list[list[int]]:
        order = list(range(len(examples)))
        random.Random(t.seed * 100_003 + epoch).shuffle(order)
        size = t.batch_size * scale
        return [order[k : k + size] for k in range(0, len(order), size)]

    metric = best_metric(t, "bleu", ("bleu", "loss"), "a captioner")
    if getattr(t.strategy, "name", t.strategy) != "teacher_forcing":  # a name, or a strategy section
        raise UserError("training.strategy: the captioner trains with teacher_forcing (and the doubly stochastic "
                        "attention regulariser) only")
    return Prepared(
        model=model,
        strategy=make_strategy(t, "captioning"),
        epoch_batches=epoch_batches,
        make_batch=make_batch,
        validate=lambda m: {k: v for k, v in Captioner(m, tok, cfg).evaluate(valid, t.valid_beam).items()
                            if k not in ("bleu_signature", "images")},  # m: the model validated (the average, if any)
        test=(lambda m: {**Captioner(m, tok, cfg).evaluate(test, cfg.decoding.beam), "beam": cfg.decoding.beam})
        if test else None,
        metric=metric,
        higher_is_better=metric == "bleu",
        reserve_factor=final_cost(len(test) if test else 0, len(valid), per_item=cfg.decoding.beam),
        meta={"params": n_params},
    )


class CaptioningInspector(Inspector):
    task, options, input = "captioning", frozenset({"beam"}), "image"

    def __init__(self, captioner: Captioner):
        self.captioner, self.cfg = captioner, captioner.cfg

    def count_tokens(self, text: str) -> int:
        return 0

    def inspect_image(self, data: bytes, options: Options | None = None) -> Inspection:
        options = options or Options()
        self.check("image", options)
        c, im = self.captioner, self.cfg.image
        pixels, note = fit_image(read_image(data), im.height, im.width, im.channels)  # (H, W, C) uint8
        with torch.no_grad():
            best = c.caption([pixels], options.beam)[0]
            src, tgt_in = to_device((to_tensor([pixels]), pad([[BOS] + best.tokens])), device_of(c.model))
            out = c.model(src, tgt_in, need_weights=True)
        h, w = c.model.encoder.grid_size
        cells = [f"({r},{k})" for r in range(h) for k in range(w)]  # row-major, as the encoder lays them out
        maps = [AttentionMap("cross", "attention over the image", c.tok.pieces(best.tokens + [EOS]), cells,
                             first_row(out.attention["cross"]), "caption word", "image cell (row, column)",
                             (h, w))] if out.attention.get("cross") is not None else []
        result = CaptionResult(caption=best.text, score=round(best.score, 4), note=note)
        return Inspection(self.task, cells, result, maps, pixels)


class CaptioningTask(Task):
    name, config, what = "captioning", CaptioningConfig, "a captioner"
    verbs, inspects = ("caption",), True

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """BLEU-4, exact match and (digit scenes) attention localisation on the test split of the
        model's config."""
        captioner = Captioner.load(path, request.device)
        if request.src:
            raise UserError("evaluate: a captioner is scored on the test split of its config; --src is not used")
        test = read_splits(captioner.cfg, ("test",))["test"]
        if test is None:
            raise UserError(f"{path}: the config names no test split (data.test)")
        beam = request.beam or captioner.cfg.decoding.beam
        start = time.monotonic()
        captions = captioner.caption(test.images, beam)
        seconds = time.monotonic() - start
        scores = captioner.evaluate(test, beam, captions)
        scores.update(beam=beam, seconds=round(seconds, 2), images_per_s=round(len(captions) / seconds, 2))
        lines = [f"BLEU-4 {scores['bleu']}  [{scores['bleu_signature']}]",
                 f"exact match {scores['exact_match']}%" + (f"  localisation {scores['localisation']}"
                                                            if "localisation" in scores else ""),
                 f"{scores['images']} images, beam {beam}, {scores['images_per_s']} images/s"]
        return Evaluation(scores, lines, [c.text for c in captions])

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Captioner:
        return Captioner.load(path, device)


TASK = CaptioningTask()
