"""A trained model directory, loaded and ready to translate.

A model directory holds ``config.yaml``, the tokenizers (``src.*``, ``tgt.*``) and
``model.safetensors``; :func:`load_model_dir` checks each and says what is missing or wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from attnkit.build import build_model
from attnkit.config import TranslationConfig
from attnkit.data.batching import inference_batches, pad
from attnkit.data.vocab import Tokenizer, load_tokenizer
from attnkit.decoding.search import (
    Hypothesis,
    beam_search,
    best_finished,
    greedy,
    length_penalty,
    max_lengths,
    state_bytes,
)
from attnkit.decoding.trace import SearchTrace, readable
from attnkit.errors import UserError
from attnkit.inspection import (
    TITLES,
    AttentionMap,
    Inspectable,
    Inspection,
    Inspector,
    Options,
    ScoredTranslation,
    SearchCandidate,
    TranslationResult,
    first_row,
)
from attnkit.limits import require_search_memory
from attnkit.model_dir import load_best_weights, open_model_dir
from attnkit.models import Seq2Seq
from attnkit.runtime import autocast, device_of, pick_device, to_device
from attnkit.specials import BOS, EOS, PAD

log = logging.getLogger(__name__)


@dataclass
class Translation:
    text: str
    score: float
    tokens: list[int]


class Translator(Inspectable):
    """A trained translation model: ``translate`` lines (greedy or beam search, n-best with scores),
    ``trace`` one search step by step, ``inspect`` / ``attention`` (``attnkit.inspection``)."""

    def __init__(self, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer, cfg: TranslationConfig):
        self.model, self.src_tok, self.tgt_tok, self.cfg = model.eval(), src_tok, tgt_tok, cfg
        self.max_positions = model.max_positions

    def encode_source(self, line: str, line_no: int | None = None) -> list[int]:
        """Token ids (EOS-terminated), cut to the model's limit with a warning."""
        ids = self.src_tok.encode(line) + [EOS]
        limit = self.max_positions
        if limit is not None and len(ids) > limit:
            where = f"line {line_no}: " if line_no is not None else ""
            log.warning("%ssource has %d tokens, more than the model's limit of %d: translating the first %d",
                        where, len(ids), limit, limit - 1)
            ids = ids[: limit - 1] + [EOS]
        return ids

    @torch.no_grad()
    def hypothesis_bytes(self, src_len: int) -> int:
        """Bytes of the decoder state of one hypothesis for a source of ``src_len`` tokens at its length
        limit (:func:`decoding.search.state_bytes`)."""
        if not src_len:
            return 0
        d, device = self.cfg.decoding, device_of(self.model)
        src = torch.full((1, src_len), len(self.src_tok) - 1, dtype=torch.long, device=device)
        limit = int(max_lengths(src, d.max_len_a, d.max_len_b, self.max_positions)[0])
        with autocast(self.cfg.training.precision, device):
            return state_bytes(self.model, src, limit)

    @torch.no_grad()
    def search(self, sources: list[list[int]], beam: int, nbest: int,
               trace: SearchTrace | None = None) -> list[list[Hypothesis]]:
        """The ``nbest`` best hypotheses of each EOS-terminated source, by greedy (beam 1) or beam search;
        ``trace`` records each step (``decoding/trace.py``)."""
        d, device = self.cfg.decoding, device_of(self.model)
        src = to_device(pad(sources), device)
        limit = max_lengths(src, d.max_len_a, d.max_len_b, self.max_positions)
        with autocast(self.cfg.training.precision, device):
            if beam == 1:
                return greedy(self.model, src, limit, d.min_len, trace)
            return beam_search(self.model, src, beam, limit, d.length_penalty, nbest, d.min_len, trace)

    def trace(self, line: str, beam: int | None = None) -> tuple[list[Translation], list[list[dict]]]:
        """One line's search step by step: its translations (as many as the beam) and, per step, every
        candidate the search looked at, with its fate and text (``decoding.trace.readable``)."""
        beam = beam or self.cfg.decoding.beam
        if not line.strip():
            return [Translation("", 0.0, [])], []
        trace = SearchTrace()
        hyps = self.search([self.encode_source(line)], beam, beam, trace)[0]
        return ([Translation(self.tgt_tok.decode(h.tokens), h.score, h.tokens) for h in hyps],
                readable(trace, 0, self.tgt_tok.decode, lambda token: self.tgt_tok.pieces([token])[0]))

    def translate(self, lines: list[str], beam: int | None = None, nbest: int = 1, batch_size: int | None = None,
                  progress: Iterable | None = None) -> list[list[Translation]]:
        """Translate every line (an empty line gives an empty translation); best first, ``nbest`` each."""
        d = self.cfg.decoding
        beam, batch_size = beam or d.beam, batch_size or d.batch_size
        if nbest > beam:
            raise UserError(f"nbest {nbest} cannot exceed the beam size {beam}")
        encoded = [self.encode_source(line, i + 1) if line.strip() else None for i, line in enumerate(lines)]
        todo = [i for i, ids in enumerate(encoded) if ids is not None]
        longest = max((len(encoded[i]) for i in todo), default=0)
        require_search_memory(min(batch_size, len(todo)), beam, len(self.tgt_tok), self.hypothesis_bytes(longest))
        results: list[list[Translation]] = [[Translation("", 0.0, [])] * nbest for _ in lines]
        for batch in inference_batches([len(encoded[i]) for i in todo], batch_size):
            rows = [todo[j] for j in batch]
            for i, sent in zip(rows, self.search([encoded[i] for i in rows], beam, nbest)):
                out = [Translation(self.tgt_tok.decode(h.tokens), h.score, h.tokens) for h in sent]
                results[i] = (out + [Translation("", float("-inf"), [])] * nbest)[:nbest]
            if progress is not None:
                progress.update(len(rows))
        return results

    def inspector(self) -> TranslationInspector:
        return TranslationInspector(self)


class TranslationInspector(Inspector):
    """A translator's best translations of one text and every attention of the teacher-forced pass over
    the best one (``attnkit plot attention``, ``attnkit serve``)."""
    task, options = "translation", frozenset({"beam", "nbest"})

    def __init__(self, translator: Translator):
        self.translator, self.cfg = translator, translator.cfg

    def count_tokens(self, text: str) -> int:
        return len(self.translator.src_tok.encode(text)) + 1  # + EOS

    def run(self, text: str, options: Options) -> Inspection:
        t = self.translator
        beam = options.beam or self.cfg.decoding.beam
        nbest = options.nbest or 1
        if nbest > beam:  # the translator's one-line error, as on the CLI
            raise UserError(f"nbest {nbest} cannot exceed the beam size {beam}")
        hyps, steps = t.trace(text, beam)
        hyps = hyps[:nbest]
        src_ids = t.encode_source(text)
        best = hyps[0].tokens
        device = device_of(t.model)
        src = pad([src_ids]).to(device)  # (1, S)
        tgt_in = pad([[BOS] + best]).to(device)  # (1, T): <s> y_1 .. y_n
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
        result = TranslationResult(nbest=[ScoredTranslation(text=h.text, score=round(h.score, 4)) for h in hyps],
                                   search=[[SearchCandidate(**c) for c in step] for step in steps])
        return Inspection(self.task, source, result, maps)


class CTranslate2Translator(Translator):
    """The same translation by CTranslate2, from a directory ``attnkit export --to ctranslate2`` wrote:
    the same tokenizers, batches and beam, and attnkit's search rules (``decoding/search.py``), which
    are CTranslate2's where the two could differ:

    - the distribution is over the tokens a search may produce: ``<s>`` and ``<pad>`` suppressed,
      EOS before ``min_len`` too, then normalised (CTranslate2 masks logits before its softmax);
    - each sentence's own length limit, which ends a hypothesis with or without EOS (CTranslate2
      takes one limit per call: a batch goes in one call at its longest, and a sentence whose search
      came near its own limit again, with the others of its limit);
    - beam search stops a sentence at ``beam`` finished hypotheses, keeps the ``beam`` most probable
      and ranks them by GNMT's length penalty. CTranslate2 normalises by length^alpha instead, and
      with no length penalty it may stop early; it is called with a length penalty of ``1e-6`` (which
      changes neither the order nor, once undone here, the log-probabilities), and attnkit ranks.

    One difference is left: with ``min_len: 0``, CTranslate2's length normalisation puts an empty
    hypothesis last (it divides by 0 tokens), so a last step that finishes more than ``beam``
    hypotheses drops it first where attnkit would keep it if it is among the most probable."""

    SCORE_EPSILON = 1e-6  # a length penalty that turns off CTranslate2's early stop and nothing else

    def __init__(self, engine, src_tok: Tokenizer, tgt_tok: Tokenizer, cfg: TranslationConfig):
        self.engine, self.src_tok, self.tgt_tok, self.cfg = engine, src_tok, tgt_tok, cfg
        self.max_positions = cfg.model.max_positions
        self.tgt_ids = {piece: i for i, piece in enumerate(tgt_tok.pieces(range(len(tgt_tok))))}
        self.never = [[piece] for piece in tgt_tok.pieces([PAD, BOS])]  # what attnkit's search never produces

    def inspector(self):
        raise UserError("CTranslate2 returns no attention weights: load the model directory with engine torch")

    def hypothesis_bytes(self, src_len: int) -> int:
        return 0  # CTranslate2 keeps its own states (not counted: only the score tables are)

    def search(self, sources: list[list[int]], beam: int, nbest: int,
               trace: SearchTrace | None = None) -> list[list[Hypothesis]]:
        """The batch in one call at its longest limit; a sentence whose search came near its own limit
        is searched again at that limit (one call per limit: CTranslate2 takes one). A sentence whose
        hypotheses all ended before its last step searched exactly as it would have at its own limit."""
        if trace is not None:
            raise UserError("a search trace follows attnkit's own search: use --engine torch")
        d = self.cfg.decoding
        pieces = [self.src_tok.pieces(ids[:-1]) for ids in sources]  # CTranslate2 appends </s> itself
        limits = max_lengths(pad(sources), d.max_len_a, d.max_len_b, self.max_positions).tolist()
        found = self._search(pieces, beam, max(limits))
        # greedy's last step may end a hypothesis with EOS as the longer run would; beam's last step
        # finishes every candidate, so a beam must have ended before it
        room = 0 if beam == 1 else 1
        near = [i for i, hyps in enumerate(found) if max(len(h.tokens) for h in hyps) > limits[i] - 1 - room]
        for limit in sorted({limits[i] for i in near}):
            rows = [i for i in near if limits[i] == limit]
            for i, hyps in zip(rows, self._search([pieces[i] for i in rows], beam, limit)):
                found[i] = hyps
        return [best_finished(hyps, beam)[:nbest] for hyps in found]

    def _search(self, pieces: list[list[str]], beam: int, limit: int) -> list[list[Hypothesis]]:
        """CTranslate2's finished hypotheses of each source with attnkit's rules, at most ``limit`` tokens."""
        d = self.cfg.decoding
        epsilon = self.SCORE_EPSILON if beam > 1 else 0.0
        results = self.engine.translate_batch(
            pieces, beam_size=beam, num_hypotheses=beam, length_penalty=epsilon, max_decoding_length=limit,
            min_decoding_length=min(d.min_len, limit), suppress_sequences=self.never, max_input_length=0,
            return_scores=True)
        out = []
        for source, r in zip(pieces, results):
            hyps = []
            for pieces_out, score in zip(r.hypotheses, r.scores):
                tokens = [self.tgt_ids[p] for p in pieces_out]
                # CTranslate2's score is log P / |Y|^epsilon: -inf for an empty hypothesis (|Y| = 0)
                empty = epsilon and not tokens
                log_prob = self._empty_log_prob(source) if empty else score * len(tokens) ** epsilon
                norm = length_penalty(len(tokens) + 1, d.length_penalty) if beam > 1 else 1.0  # greedy: raw
                hyps.append(Hypothesis(tokens, log_prob / norm, log_prob))
            out.append(hyps)
        return out

    def _empty_log_prob(self, source: list[str]) -> float:
        """log P(EOS first), over the tokens a search may produce (what CTranslate2's score of an
        empty hypothesis would be without its length normalisation)."""
        eos, *never = self.engine.score_batch([source] * (1 + len(self.never)), [[]] + self.never, max_input_length=0)
        excluded = sum(math.exp(r.log_probs[0]) for r in never)
        return eos.log_probs[0] - math.log1p(-excluded)


def load_model_dir(path: str | Path, device: str = "auto", engine: str = "torch") -> Translator:
    """The translator of a model directory, on ``device`` (auto: the GPU when there is one); with
    ``engine="ctranslate2"``, of a directory that ``attnkit export --to ctranslate2`` wrote."""
    if engine == "ctranslate2":
        return _load_ctranslate2(path, device)
    where = pick_device(device)
    path, cfg = open_model_dir(path, "translation", "a translation model")
    src_tok = load_tokenizer(path, "src", cfg.vocab.level)
    tgt_tok = load_tokenizer(path, "tgt", cfg.vocab.level)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    load_best_weights(model, path)
    return Translator(model.to(where), src_tok, tgt_tok, cfg)


def _load_ctranslate2(path: str | Path, device: str) -> CTranslate2Translator:
    from attnkit.export import CT2_MODEL, check_export, load_ctranslate2

    where = pick_device(device)
    path = Path(path)
    if path.is_dir() and not (path / CT2_MODEL).is_file():
        raise UserError(f"{path}: not a CTranslate2 model ({CT2_MODEL} is missing); make one with "
                        f"attnkit export {path} --to ctranslate2 --out OUT, and translate OUT")
    path, cfg = open_model_dir(path, "translation", "a translation model", files=(CT2_MODEL,))
    check_export(path)
    src_tok = load_tokenizer(path, "src", cfg.vocab.level)
    tgt_tok = load_tokenizer(path, "tgt", cfg.vocab.level)
    return CTranslate2Translator(load_ctranslate2(path, where), src_tok, tgt_tok, cfg)
