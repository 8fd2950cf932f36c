"""Translation: parallel text, subword/word/char tokenizers, RNN or Transformer encoder-decoders,
BLEU and chrF from sacreBLEU."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attnkit.build import build_model
from attnkit.config import TranslationConfig, resolve_path
from attnkit.data.batching import make_batch, token_batches
from attnkit.data.corpus import CHUNK, SideWriter, open_corpus, side_files, source_stamp, write_manifest
from attnkit.data.text import Parallel, read_parallel
from attnkit.data.vocab import Tokenizer, load_tokenizer, save_tokenizer, tokenizer_files, train_tokenizer
from attnkit.diagnostics import exposure_bias
from attnkit.digests import digests
from attnkit.errors import UserError
from attnkit.evaluation import join_lines, score_by_length, score_corpus
from attnkit.limits import require_batch_memory
from attnkit.runtime import autocast, device_of, to_device
from attnkit.tasks.base import (
    EvaluateRequest,
    Evaluation,
    Prepared,
    Task,
    best_metric,
    final_cost,
    init_dir,
    init_weights,
    parameter_count,
    src_file,
)
from attnkit.training.strategies import make_strategy, token_nll
from attnkit.translator import Translator, load_model_dir

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    src: list[list[int]]
    tgt: list[list[int]]

    def lengths(self) -> list[tuple[int, int]]:
        return [(len(s), len(t)) for s, t in zip(self.src, self.tgt)]


def read_split(cfg: TranslationConfig, split: str) -> Parallel | None:
    pair = getattr(cfg.data, split)
    if pair is None:
        return None
    return read_parallel(resolve_path(pair.src), resolve_path(pair.tgt), skip_empty=(split == "train"))


def make_tokenizers(cfg: TranslationConfig, train: Parallel) -> tuple[Tokenizer, Tokenizer]:
    v = cfg.vocab

    def make(lines: list[str]) -> Tokenizer:
        return train_tokenizer(lines, v.level, v.size, v.subword_model, v.min_freq, v.character_coverage,
                               cfg.training.seed)

    if v.joint:
        tok = make(train.src + train.tgt)
        return tok, tok
    return make(train.src), make(train.tgt)


def encode(data: Parallel, src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int | None = None,
           what: str = "training") -> Encoded:
    """Token ids of every pair; pairs with a side of ``max_len`` tokens or more (EOS included) are
    skipped with a warning that counts them."""
    src, tgt = [src_tok.encode(s) for s in data.src], [tgt_tok.encode(t) for t in data.tgt]
    if max_len is not None:
        keep = [i for i in range(len(src)) if len(src[i]) < max_len and len(tgt[i]) < max_len]
        if len(keep) < len(src):
            log.warning("skipped %d %s pair(s) of %d tokens or more (data.max_len, or the model's "
                        "max_positions)", len(src) - len(keep), what, max_len)
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    return Encoded(src, tgt)


def validation_loss(model: torch.nn.Module, data: Encoded, batch_tokens: int) -> float:
    total, tokens, device = 0.0, 0, device_of(model)
    for idx in token_batches(data.lengths(), batch_tokens, seed=0, epoch=0):
        b = to_device(make_batch([data.src[i] for i in idx], [data.tgt[i] for i in idx], idx), device)
        total += float(token_nll(model(b.src, b.tgt_in).logits, b.tgt_out))
        tokens += b.num_tokens
    return total / tokens if tokens else float("nan")


def evaluate_split(translator: Translator, data: Parallel, beam: int) -> dict:
    hyps = [t[0].text for t in translator.translate(data.src, beam=beam)]
    return score_corpus(hyps, data.tgt)


def max_train_len(cfg: TranslationConfig) -> int:
    """Training pairs with a side this long (EOS included) are skipped."""
    return min(cfg.data.max_len, getattr(cfg.model, "max_positions", cfg.data.max_len))


def corpus_keys(cfg: TranslationConfig) -> dict:
    """What a binarized corpus of ``cfg`` is made from: the training files, the tokenizers' settings and
    the length limit (``corpus.json`` records them; training checks them against its config)."""
    return {"train": {side: source_stamp(resolve_path(getattr(cfg.data.train, side))) for side in ("src", "tgt")},
            "vocab": cfg.vocab.model_dump(mode="json"), "tokenizer_seed": cfg.training.seed,
            "max_len": max_train_len(cfg)}


def binarize(cfg: TranslationConfig, directory: Path) -> dict:
    """``attnkit prepare``: the tokenizers and the token ids of every training pair in ``directory``
    (``data/corpus.py``), encoded ``CHUNK`` pairs at a time; pairs over the length limit are skipped
    as training skips them. Returns the manifest."""
    start = time.monotonic()
    if cfg.data is None:
        raise UserError("prepare: the config has no data section")
    train = read_split(cfg, "train")
    log.info("training %s tokenizer(s) on %d sentence pairs", cfg.vocab.level, len(train))
    src_tok, tgt_tok = make_tokenizers(cfg, train)
    directory.mkdir(parents=True, exist_ok=True)
    save_tokenizer(src_tok, directory, "src")
    save_tokenizer(tgt_tok, directory, "tgt")
    max_len, pairs = max_train_len(cfg), 0
    src_out, tgt_out = SideWriter(directory / "train.src"), SideWriter(directory / "train.tgt")
    for first in range(0, len(train), CHUNK):
        part = encode(Parallel(train.src[first : first + CHUNK], train.tgt[first : first + CHUNK]), src_tok, tgt_tok)
        for s, t in zip(part.src, part.tgt):
            if len(s) < max_len and len(t) < max_len:
                src_out.add(s)
                tgt_out.add(t)
                pairs += 1
    tokens = src_out.close() + tgt_out.close()
    if pairs < len(train):
        log.warning("skipped %d training pair(s) of %d tokens or more (data.max_len, or the model's max_positions)",
                    len(train) - pairs, max_len)
    files = [*side_files("src"), *side_files("tgt"),
             *(f.name for side in ("src", "tgt") for f in tokenizer_files(directory, side, cfg.vocab.level))]
    doc = {**corpus_keys(cfg), "pairs": pairs, "skipped": len(train) - pairs, "tokens": tokens,
           "vocab_size": {"src": len(src_tok), "tgt": len(tgt_tok)}, "files": digests(directory, files),
           "seconds": round(time.monotonic() - start, 1)}
    write_manifest(directory, doc)
    return doc


def prepare(cfg: TranslationConfig, out: Path, resume: bool) -> Prepared:
    binarized = None
    if cfg.data.prepared is not None:
        if cfg.training.init_from is not None and not resume:
            raise UserError("data.prepared and training.init_from: a prepared corpus has its own tokenizers and "
                            "a model to fine-tune has its own; prepare the corpus with the model's tokenizers")
        binarized, doc = open_corpus(resolve_path(cfg.data.prepared), corpus_keys(cfg))
        log.info("reading the %d training pairs of %s (memory-mapped)", doc["pairs"], cfg.data.prepared)
        train_data = None
    else:
        train_data = read_split(cfg, "train")
    valid_data, test_data = read_split(cfg, "valid"), read_split(cfg, "test")
    init = init_dir(cfg, resume)
    if binarized is not None and not resume:  # the tokenizers that made the corpus's ids
        src_tok = load_tokenizer(resolve_path(cfg.data.prepared), "src", cfg.vocab.level)
        tgt_tok = load_tokenizer(resolve_path(cfg.data.prepared), "tgt", cfg.vocab.level)
        if [len(src_tok), len(tgt_tok)] != [doc["vocab_size"]["src"], doc["vocab_size"]["tgt"]]:
            raise UserError(f"data.prepared: {cfg.data.prepared}: its tokenizers do not have the vocabulary sizes "
                            "its corpus.json records; prepare it again")
        save_tokenizer(src_tok, out, "src")
        save_tokenizer(tgt_tok, out, "tgt")
    elif resume or init:  # a fine-tuned model keeps the tokenizers of the model it starts from
        src_tok = load_tokenizer(init or out, "src", cfg.vocab.level)
        tgt_tok = load_tokenizer(init or out, "tgt", cfg.vocab.level)
        if init:
            save_tokenizer(src_tok, out, "src")
            save_tokenizer(tgt_tok, out, "tgt")
    else:
        log.info("training %s tokenizer(s) on %d sentence pairs", cfg.vocab.level, len(train_data))
        src_tok, tgt_tok = make_tokenizers(cfg, train_data)
        save_tokenizer(src_tok, out, "src")
        save_tokenizer(tgt_tok, out, "tgt")
    max_len = max_train_len(cfg)
    train_ids = binarized if binarized is not None else encode(train_data, src_tok, tgt_tok, max_len)
    del train_data  # the text is encoded: only the ids stay
    if not len(train_ids.src):
        raise UserError(f"{cfg.data.train.src}: no training pair is shorter than {max_len} tokens (data.max_len)")
    valid_ids = encode(valid_data, src_tok, tgt_tok, max_len, what="validation (loss only)")

    require_batch_memory(cfg.training.batch_tokens, len(tgt_tok))
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    if init:
        init_weights(model, init)
    n_params = parameter_count(model)
    log.info("%s model with %s parameters; %d training pairs, vocab %d/%d", cfg.model.arch,
             f"{n_params:,}", len(train_ids.src), len(src_tok), len(tgt_tok))
    t = cfg.training

    def validate(m: torch.nn.Module) -> dict:  # m: the model validated (the weight average, if any)
        scores = evaluate_split(Translator(m, src_tok, tgt_tok, cfg), valid_data, t.valid_beam)
        return {"loss": round(validation_loss(m, valid_ids, t.batch_tokens), 4),
                "bleu": scores["bleu"], "chrf": scores["chrf"]}

    def test(m: torch.nn.Module) -> dict:
        return {**evaluate_split(Translator(m, src_tok, tgt_tok, cfg), test_data, t.valid_beam), "beam": t.valid_beam}

    lengths = train_ids.lengths()
    metric = best_metric(t, "bleu", ("bleu", "loss"), "translation")
    return Prepared(
        model=model,
        strategy=make_strategy(t),
        epoch_batches=lambda epoch, scale=1: token_batches(lengths, t.batch_tokens * scale, t.seed, epoch),
        make_batch=lambda idx: make_batch([train_ids.src[i] for i in idx], [train_ids.tgt[i] for i in idx], idx),
        validate=validate,
        test=test if test_data is not None else None,
        metric=metric,
        higher_is_better=metric == "bleu",
        reserve_factor=final_cost(len(test_data) if test_data else 0, len(valid_data)),
        meta={"params": n_params},
    )


def exposure(translator: Translator, data: Parallel) -> dict:
    """The exposure-bias diagnostic (attnkit.diagnostics) of a translator on parallel text; pairs over
    the model's length limit are left out, with a warning that counts them."""
    limit = translator.model.max_positions or 10**9
    ids = encode(data, translator.src_tok, translator.tgt_tok, limit, what="exposure-diagnostic")
    with autocast(translator.cfg.training.precision, device_of(translator.model)):
        return exposure_bias(translator.model, ids.src, ids.tgt)


class TranslationTask(Task):
    name, config, what = "translation", TranslationConfig, "a translation model"
    verbs = ("translate", "bench translate")
    engines = ("torch", "ctranslate2")  # an export (attnkit export --to ctranslate2) runs in CTranslate2
    lengths, inspects = True, True

    prepare = staticmethod(prepare)  # the module's: data, vocabularies, model, for attnkit.train
    binarize = staticmethod(binarize)  # attnkit prepare

    def evaluate(self, path: Path, request: EvaluateRequest) -> Evaluation:
        """sacreBLEU (cased) and chrF of the detokenized translations of ``src`` against ``ref``; with
        ``join`` k, of every k consecutive sentences joined into one input (and their references into
        one reference); with ``by_length``, the same per source-length bucket; with ``exposure``, the
        exposure-bias diagnostic."""
        src = src_file(request)
        if not request.ref:
            raise UserError("evaluate: a translation model needs --ref (the reference translations)")
        if request.exposure and request.engine != "torch":
            raise UserError("evaluate --exposure reads the model's own probabilities: it needs --engine torch")
        translator = load_model_dir(path, request.device, request.engine)
        data = read_parallel(src, request.ref, skip_empty=False)
        if request.join > 1:
            data = Parallel(join_lines(data.src, request.join), join_lines(data.tgt, request.join))
        bar = tqdm(total=len(data), disable=not request.progress, unit="sent", desc="translate")
        start = time.monotonic()
        hyps = [r[0].text for r in translator.translate(data.src, beam=request.beam, batch_size=request.batch_size,
                                                        progress=bar)]
        seconds = time.monotonic() - start
        bar.close()
        scores = score_corpus(hyps, data.tgt)
        scores.update(engine=request.engine, beam=request.beam or translator.cfg.decoding.beam, sentences=len(hyps),
                      seconds=round(seconds, 2), sentences_per_s=round(len(hyps) / seconds, 2), joined=request.join)
        joined = f" (each {request.join} test sentences joined)" if request.join > 1 else ""
        lines = [f"BLEU {scores['bleu']}  [{scores['bleu_signature']}]",
                 f"chrF {scores['chrf']}  [{scores['chrf_signature']}]",
                 f"{scores['sentences']} inputs{joined}, beam {scores['beam']}, {scores['sentences_per_s']} inputs/s"]
        if request.by_length:
            rows = scores["by_length"] = score_by_length(hyps, data.tgt, data.src, request.by_length)
            lines.append("source words  inputs   BLEU   chrF")
            lines += [f"{r['words']:>12}  {r['sentences']:6d}  {r['bleu']:5.2f}  {r['chrf']:5.2f}" for r in rows]
        if request.exposure:
            x = scores["exposure"] = exposure(translator, data)
            tf, sf = x["teacher_forced"], x["self_fed"]
            lines.append(f"exposure bias: reference-token NLL {tf['mean_nll']} teacher forced, {sf['mean_nll']} "
                         f"self fed (gap {x['nll_gap']}); accuracy {tf['mean_accuracy']}% / "
                         f"{sf['mean_accuracy']}% (gap {x['accuracy_gap']})")
        return Evaluation(scores, lines, hyps)

    def load(self, path: Path, device: str = "auto", engine: str = "torch") -> Translator:
        return load_model_dir(path, device, engine)


TASK = TranslationTask()
