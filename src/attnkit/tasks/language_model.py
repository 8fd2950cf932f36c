"""Language modelling: plain text in, perplexity and continuations out.

The text is one stream: every line followed by ``</s>`` (so each line end is a predicted token, as
in the Penn Treebank benchmark). An LSTM LM trains on that stream read in order, cut into parallel
rows, each batch the next ``chunk`` tokens of every row, starting from the state the batch before
ended in (``model.carry_state``, truncated backpropagation through time); the Transformer LM (and
an LSTM with ``carry_state: false``) trains on shuffled chunks of ``chunk`` tokens. Every neural LM
is scored on the whole validation / test stream in order, the LSTM carrying its state from one
chunk to the next. The n-gram LM is counted, not trained, and scores sentence by sentence.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnkit.build import build_language_model
from attnkit.checkpoint import atomic_write_text
from attnkit.config import LanguageModelConfig, resolve_path
from attnkit.data.batching import token_batches
from attnkit.data.text import read_lines
from attnkit.data.vocab import Tokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from attnkit.decoding.search import beam_decode, greedy_decode, sample_decode
from attnkit.errors import UserError
from attnkit.inspection import (
    AttentionMap,
    ContinuationResult,
    Inspectable,
    Inspection,
    Inspector,
    Options,
    first_row,
)
from attnkit.limits import require_batch_memory, require_search_memory
from attnkit.model_dir import WEIGHTS, load_best_weights, open_model_dir, require_files
from attnkit.models.base import EncoderOutput
from attnkit.models.ngram import EOS_WORD, UNK_WORD, KneserNeyLM
from attnkit.runtime import device_of, pick_device
from attnkit.specials import EOS, SPECIALS, UNK
from attnkit.tasks.base import (
    EvaluateRequest,
    Evaluation,
    Fitted,
    Prepared,
    Task,
    best_metric,
    check_cutoffs,
    final_cost,
    init_dir,
    init_weights,
    parameter_count,
    plain_lines,
    src_file,
)
from attnkit.training.strategies import make_strategy, token_nll

log = logging.getLogger(__name__)

NGRAM_FILE = "model.kneser_ney.json"


@dataclass
class LMBatch:
    tgt_in: Tensor  # (B, T) tokens
    tgt_out: Tensor  # (B, T) the next token of each
    index: list[int]
    continues: bool = False  # the rows go on from the previous batch's (see CarriedState)

    @property
    def src(self) -> Tensor:
        """(B, 0): a language model reads no source (the decoder contract, models/base.py)."""
        return self.tgt_in.new_zeros(self.tgt_in.size(0), 0)

    @property
    def num_tokens(self) -> int:
        return self.tgt_out.numel()


def read_text(paths: str | list[str]) -> list[str]:
    lines: list[str] = []
    for p in [paths] if isinstance(paths, str) else paths:
        lines += [line for line in read_lines(resolve_path(p)) if line]
    return lines


def stream_rows(ids: Tensor, rows: int) -> tuple[Tensor, Tensor]:
    """The stream cut into ``rows`` parallel parts: inputs (rows, n) and the next token of each."""
    n = (ids.numel() - 1) // rows
    return ids[: n * rows].view(rows, n), ids[1 : n * rows + 1].view(rows, n)


def stream(tok: Tokenizer, lines: list[str]) -> Tensor:
    """(N,) token ids of all lines, each followed by EOS."""
    ids: list[int] = []
    for line in lines:
        ids += tok.encode(line) + [EOS]
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def stream_perplexity(model: torch.nn.Module, ids: Tensor, chunk: int, rows: int = 16) -> float:
    """exp(mean NLL) of every token of the stream after the first, read in order: the stream is cut
    into ``rows`` parallel parts scored chunk by chunk, an LSTM carrying its state across chunks.
    The last few tokens, fewer than ``rows``, that the parts leave over continue the last part."""
    model.eval()
    ids = ids.to(device_of(model))
    x, y = stream_rows(ids, rows)  # (rows, n) each
    total, count, state = 0.0, 0, None
    for start in range(0, x.size(1), chunk):
        inp, gold = x[:, start : start + chunk], y[:, start : start + chunk]
        out = model(inp, state)
        state = out.state if model.carries_state else None
        total += float(token_nll(out.logits, gold))
        count += gold.numel()
    left = ids.numel() - 1 - y.numel()
    if left:
        if state is not None:  # the last part's state: the context of the tokens after it
            state = model.reorder(state, torch.tensor([rows - 1], device=ids.device))
        out = model(ids[None, -left - 1 : -1], state)  # (1, left) -> (1, left, V)
        total += float(token_nll(out.logits, ids[None, -left:]))
        count += left
    return math.exp(total / count)


def prepare(cfg: LanguageModelConfig, out: Path, resume: bool) -> Prepared | Fitted:
    d, v, t = cfg.data, cfg.vocab, cfg.training
    train, valid = read_text(d.train), read_text(d.valid)
    test = read_text(d.test) if d.test else None
    if cfg.model.arch == "kneser_ney":
        return Fitted(lambda: fit_ngram(cfg, out, train, valid, test))
    init = init_dir(cfg, resume)
    if resume or init:  # a fine-tuned model keeps the tokenizer of the model it starts from
        tok = load_tokenizer(init or out, "words", v.level)
        if init:
            save_tokenizer(tok, out, "words")
    else:
        tok = train_tokenizer(train, v.level, v.size, v.subword_model, v.min_freq, v.character_coverage, t.seed)
        save_tokenizer(tok, out, "words")
    check_cutoffs(getattr(cfg.model, "adaptive_softmax", []), len(tok))
    require_batch_memory(t.batch_tokens, len(tok))
    torch.manual_seed(t.seed)
    model = build_language_model(cfg.model, len(tok))
    if init:
        init_weights(model, init)
    chunk = min(d.max_len, model.max_positions or d.max_len)
    train_ids, valid_ids = stream(tok, train), stream(tok, valid)
    test_ids = stream(tok, test) if test else None
    if train_ids.numel() - 1 < chunk:  # not one chunk to learn from
        raise UserError(f"{d.train}: fewer than {chunk + 1} tokens of training text")
    if getattr(cfg.model, "carry_state", False):  # an LSTM's truncated backpropagation through time
        if t.accumulate > 1:
            raise UserError("training.accumulate: an LSTM LM that carries its state reads the text as fixed "
                            "parallel rows; give it more rows (training.batch_tokens) or model.carry_state: false")
        epoch_batches, make_batch = in_order(train_ids, chunk, t.batch_tokens)
        strategy, order = make_strategy(t, "carried"), "read in order"
    else:
        epoch_batches, make_batch = shuffled_chunks(train_ids, chunk, t.batch_tokens, t.seed)
        strategy, order = make_strategy(t), "shuffled"
    n_params = parameter_count(model)
    log.info("%s with %s parameters; %d training tokens in chunks of %d, %s; vocab %d", cfg.model.arch,
             f"{n_params:,}", train_ids.numel(), chunk, order, len(tok))

    best_metric(t, "perplexity", ("perplexity", "loss"), "a language model")  # validation scores perplexity
    return Prepared(
        model=model, strategy=strategy, epoch_batches=epoch_batches, make_batch=make_batch,
        validate=lambda m: {"perplexity": round(stream_perplexity(m, valid_ids, chunk), 2)},
        test=(lambda m: {"perplexity": round(stream_perplexity(m, test_ids, chunk), 2)}) if test else None,
        metric="perplexity", higher_is_better=False,
        reserve_factor=final_cost(test_ids.numel() if test else 0, valid_ids.numel()),
        meta={"params": n_params, "chunk": chunk},
    )


def shuffled_chunks(ids: Tensor, chunk: int, batch_tokens: int, seed: int):
    """Batches of the stream's ``chunk``-token pieces, shuffled every epoch: (epoch -> lists of piece
    numbers, piece numbers -> LMBatch)."""
    n_chunks = (ids.numel() - 1) // chunk

    def make_batch(idx: list[int]) -> LMBatch:
        starts = torch.tensor(idx) * chunk
        span = starts.unsqueeze(1) + torch.arange(chunk + 1)  # (B, chunk + 1)
        tokens = ids[span]
        return LMBatch(tokens[:, :-1], tokens[:, 1:], idx)

    return (lambda epoch, scale=1: token_batches([(chunk, chunk)] * n_chunks, batch_tokens * scale, seed, epoch),
            make_batch)


def in_order(ids: Tensor, chunk: int, batch_tokens: int):
    """The stream in ``batch_tokens // chunk`` parallel rows, read ``chunk`` columns at a time, the
    same order every epoch: (epoch -> [[0], [1], ...], [k] -> LMBatch of columns k*chunk up to
    (k+1)*chunk, the last batch narrower when the rows do not divide)."""
    rows = max(1, min(batch_tokens // chunk, (ids.numel() - 1) // chunk))
    x, y = stream_rows(ids, rows)  # (rows, n) each
    n_batches = math.ceil(x.size(1) / chunk)

    def make_batch(idx: list[int]) -> LMBatch:
        (k,) = idx
        cols = slice(k * chunk, (k + 1) * chunk)
        return LMBatch(x[:, cols], y[:, cols], idx, continues=k > 0)

    def epoch_batches(epoch: int, scale: int = 1) -> list[list[int]]:
        if scale > 1:
            raise UserError("an LSTM LM that carries its state reads the text as fixed parallel rows: it trains in "
                            "one process without training.accumulate (or set model.carry_state: false)")
        return [[k] for k in range(n_batches)]

    return epoch_batches, make_batch


def fit_ngram(cfg: LanguageModelConfig, out: Path, train: list[str], valid: list[str],
              test: list[str] | None) -> dict:
    log.info("counting %d-grams of %d training lines", cfg.model.order, len(train))
    lm = KneserNeyLM.train([line.split() for line in train], cfg.model.order)
    atomic_write_text(out / NGRAM_FILE, lm.to_json())
    summary = {"task": cfg.task, "stopped": "counted", "params": sum(len(ws) for lv in lm.counts for ws in lv.values()),
               "valid": {"perplexity": round(lm.perplexity([s.split() for s in valid]), 2)}}
    if test:
        summary["test"] = {"perplexity": round(lm.perplexity([s.split() for s in test]), 2)}
    return summary


class LanguageModel(Inspectable):
    """A trained language model directory: perplexity of text and continuations of prompts (and
    ``inspect``, ``attnkit.inspection``)."""

    def __init__(self, cfg: LanguageModelConfig, model: torch.nn.Module | None, tok: Tokenizer | None,
                 ngram: KneserNeyLM | None):
        self.cfg, self.model, self.tok, self.ngram = cfg, model, tok, ngram

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> LanguageModel:
        """The language model of a model directory, a neural one on ``device`` (auto: the GPU when there
        is one); an n-gram model is counted on the CPU."""
        where = pick_device(device)
        path, cfg = open_model_dir(path, "language_model", "a language model", files=())
        if cfg.model.arch == "kneser_ney":
            require_files(path, NGRAM_FILE)
            return cls(cfg, None, None, KneserNeyLM.from_json((path / NGRAM_FILE).read_text(encoding="utf-8")))
        require_files(path, WEIGHTS)
        tok = load_tokenizer(path, "words", cfg.vocab.level)
        model = build_language_model(cfg.model, len(tok))
        load_best_weights(model, path)
        return cls(cfg, model.to(where).eval(), tok, None)

    def perplexity(self, lines: list[str]) -> float:
        lines = [line for line in lines if line.strip()]
        if self.ngram is not None:
            return self.ngram.perplexity([line.split() for line in lines])
        chunk = min(self.cfg.data.max_len, self.model.max_positions or self.cfg.data.max_len)
        return stream_perplexity(self.model, stream(self.tok, lines), chunk, rows=1)

    # -- continuation -------------------------------------------------------------------------
    def generate(self, prompt: str, method: str = "sample", beam: int = 5, max_tokens: int = 50,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 min_tokens: int = 1) -> str:
        """Continue ``prompt`` to the end of its line (at least ``min_tokens``, at most ``max_tokens``),
        through the same greedy, beam and sampling code as translation."""
        _, new = self.continue_ids(prompt, method, beam, max_tokens, temperature, top_k, top_p, seed, min_tokens)
        return self.decode(new)

    def decode(self, ids: list[int]) -> str:
        return NgramDecoder(self.ngram).decode(ids) if self.ngram is not None else self.tok.decode(ids)

    def continue_ids(self, prompt: str, method: str = "sample", beam: int = 5, max_tokens: int = 50,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     seed: int | None = None, min_tokens: int = 1) -> tuple[list[int], list[int]]:
        """What ``generate`` does, in token ids: the context the model read (the line start, EOS, and
        the prompt, cut to the model's window) and the new tokens (EOS excluded)."""
        if self.ngram is not None:
            decoder, device = NgramDecoder(self.ngram), torch.device("cpu")
            ids = decoder.encode(prompt.split())
        else:
            decoder, ids, device = self.model, self.tok.encode(prompt), device_of(self.model)
        context = [EOS] + ids  # a line starts after the previous line's end
        limit = self.model.max_positions if self.model is not None else None
        if limit is not None and len(context) + max_tokens > limit:
            keep = max(1, limit - max_tokens)
            log.warning("prompt of %d tokens is longer than the model's context of %d allows with %d new tokens: "
                        "continuing its last %d tokens", len(ids), limit, max_tokens, keep)
            context = context[-keep:]
        with torch.no_grad():
            state = decoder.init_state(EncoderOutput.empty(1, device))
            for token in context[:-1]:
                _, state = decoder.step(torch.tensor([token], device=device), state)
            start, max_len = torch.tensor([context[-1]], device=device), torch.tensor([max_tokens], device=device)
            if method == "greedy":
                hyp = greedy_decode(decoder, state, start, max_len, min_tokens)[0][0]
            elif method == "beam":
                require_search_memory(1, beam, len(self.ngram.vocab) if self.ngram is not None else len(self.tok))
                hyp = beam_decode(decoder, state, start, beam, max_len, min_len=min_tokens)[0][0]
            else:
                gen = torch.Generator(device).manual_seed(seed) if seed is not None else None
                hyp = sample_decode(decoder, state, start, max_len, temperature, top_k, top_p, min_tokens,
                                    generator=gen)[0][0]
        return context, hyp.tokens

    def inspector(self) -> LanguageModelInspector:
        return LanguageModelInspector(self)


class NgramDecoder:
    """The n-gram LM behind the decoder contract, so the same searches drive it: ids are the special
    tokens followed by the model's words."""

    def __init__(self, lm: KneserNeyLM):
        self.lm = lm
        self.words = [w for w in lm.vocab if w not in (EOS_WORD, UNK_WORD)]
        self.index = {w: i + len(SPECIALS) for i, w in enumerate(self.words)}
        self.index[UNK_WORD], self.index[EOS_WORD] = UNK, EOS
        # position of each model word's probability in the logits
        self.columns = torch.tensor([self.index[w] for w in lm.vocab])
        self.size = len(SPECIALS) + len(self.words)

    def encode(self, words: list[str]) -> list[int]:
        return [self.index.get(w, UNK) for w in words]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i - len(SPECIALS)] if i >= len(SPECIALS) else UNK_WORD for i in ids if i != EOS)

    def init_state(self, enc: EncoderOutput) -> list[list[str]]:
        return [[] for _ in range(enc.batch_size)]

    def step(self, tokens: Tensor, state: list[list[str]]) -> tuple[Tensor, list[list[str]]]:
        rows = []
        new_state = []
        for token, history in zip(tokens.tolist(), state):
            if token == EOS:  # a line ended: the n-gram context restarts
                history = []
            elif token >= len(SPECIALS) or token == UNK:
                history = history + [self.words[token - len(SPECIALS)] if token >= len(SPECIALS) else UNK_WORD]
            logits = torch.full((self.size,), float("-inf"))
            logits[self.columns] = torch.from_numpy(self.lm.distribution(history)).float().log()
            rows.append(logits)
            new_state.append(history)
        return torch.stack(rows), new_state

    def reorder(self, state: list[list[str]], index: Tensor) -> list[list[str]]:
        return [list(state[i]) for i in index.tolist()]


class LanguageModelInspector(Inspector):
    task, options = "language_model", frozenset({"beam", "method", "max_tokens", "temperature", "seed"})

    def __init__(self, lm: LanguageModel):
        self.lm, self.cfg = lm, lm.cfg

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
        out = lm.model(torch.tensor([ids], device=device_of(lm.model)), need_weights=True)
        if out.attention:  # Transformer: per layer (1, h, T, T)
            weights = torch.stack(out.attention, dim=1)  # (1, layers, h, T, T)
            maps.append(AttentionMap("self", "self-attention (masked)", pieces(ids[1:] + [EOS]), pieces(ids),
                                     first_row(weights), "predicted token", "input token"))
        prompt = context[1:] if context[0] == EOS else context  # the line start is not the user's
        return Inspection(self.task, pieces(prompt), result, maps)


class LanguageModelTask(Task):
    name, config, what = "language_model", LanguageModelConfig, "a language model"
    verbs, inspects = ("generate",), True

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """Perplexity of the text ``src`` (its lines read as one stream)."""
        lines = read_lines(src_file(request))
        scores = {"perplexity": round(LanguageModel.load(path, request.device).perplexity(lines), 2),
                  "lines": len(lines)}
        return Evaluation(scores, plain_lines(scores))

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> LanguageModel:
        return LanguageModel.load(path, device)


TASK = LanguageModelTask()
