"""What each ``attnkit`` subcommand does (argument parsing is in ``main.py``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from attnkit.data.text import read_lines
from attnkit.errors import UserError

log = logging.getLogger("attnkit")


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def read_input(path: str | None) -> list[str]:
    if path:
        return read_lines(path, allow_empty_file=True)
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(f"<stdin>: line {line}: invalid UTF-8 (byte {data[err.start]:#04x})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def write_output(path: str | None, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def run_training(config, out: Path, overrides, resume, max_steps, max_minutes, progress) -> dict:
    from attnkit.train import prepare_out_dir, train

    prepare_out_dir(out, resume)
    handler = _file_log(out)
    try:
        summary = train(config, out, overrides, resume, max_steps, max_minutes, progress)
    finally:
        logging.getLogger().removeHandler(handler)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def report(summary: dict, out: Path) -> None:
    v = summary.get("valid", {})
    print(f"run: {out}  stopped: {summary['stopped']} after {summary['steps']} steps "
          f"({summary['train_seconds']:.0f} s training, {summary['train_tokens_per_s']:.0f} target tokens/s)")
    if v:
        print(f"valid (best, step {summary['best_step']}): BLEU {v.get('bleu')}  chrF {v.get('chrf')}  "
              f"loss {v.get('loss')}")
    if "test" in summary:
        t = summary["test"]
        print(f"test (beam {t['beam']}): BLEU {t['bleu']}  chrF {t['chrf']}  [{t['bleu_signature']}]")


def cmd_train(args) -> int:
    if not args.config and not args.resume:
        raise UserError("train: give a CONFIG file (or --resume with --out)")
    if args.out:
        out = Path(args.out)
    elif args.config:
        out = Path("runs") / Path(args.config).stem
    else:
        raise UserError("train --resume: give the run directory with --out")
    summary = run_training(args.config, out, args.overrides, args.resume, args.max_steps, args.max_minutes,
                           _progress(args))
    report(summary, out)
    return 130 if summary["stopped"] == "interrupted" else 0


def cmd_translate(args) -> int:
    from attnkit.translator import load_model_dir

    translator = load_model_dir(args.model_dir)
    lines = read_input(args.input)
    bar = tqdm(total=len(lines), disable=not (_progress(args) and args.output), unit="sent", desc="translate")
    results = translator.translate(lines, beam=args.beam, nbest=args.nbest, batch_size=args.batch_size,
                                   progress=bar)
    bar.close()
    if args.nbest == 1:
        out = [r[0].text for r in results]
    else:
        out = [f"{i} ||| {t.text} ||| {t.score:.4f}" for i, r in enumerate(results) for t in r]
    write_output(args.output, out)
    return 0


def cmd_evaluate(args) -> int:
    from attnkit.data.text import read_parallel
    from attnkit.evaluation import score_corpus
    from attnkit.translator import load_model_dir

    translator = load_model_dir(args.model_dir)
    data = read_parallel(args.src, args.ref, skip_empty=False)
    bar = tqdm(total=len(data), disable=not _progress(args), unit="sent", desc="translate")
    start = time.monotonic()
    hyps = [r[0].text for r in translator.translate(data.src, beam=args.beam, batch_size=args.batch_size,
                                                    progress=bar)]
    seconds = time.monotonic() - start
    bar.close()
    if args.output:
        write_output(args.output, hyps)
    scores = score_corpus(hyps, data.tgt)
    scores.update(beam=args.beam or translator.cfg.decoding.beam, sentences=len(hyps),
                  seconds=round(seconds, 2), sentences_per_s=round(len(hyps) / seconds, 2))
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"BLEU {scores['bleu']}  [{scores['bleu_signature']}]")
        print(f"chrF {scores['chrf']}  [{scores['chrf_signature']}]")
        print(f"{scores['sentences']} sentences, beam {scores['beam']}, {scores['sentences_per_s']} sentences/s")
    return 0


DEMO_SENTENCES = [
    "A man in an orange hat starring at something.",
    "A group of people are standing in front of an igloo.",
    "Two dogs are playing in the snow.",
    "A little girl is reading a book on a bench in the park.",
]


def cmd_demo(args) -> int:
    from importlib import resources

    from attnkit.translator import load_model_dir

    config = Path(str(resources.files("attnkit") / "resources" / "demo.yaml"))
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    print(f"attnkit demo: training a small Transformer on Multi30k en-de for {args.minutes:g} minutes -> {out}")
    summary = run_training(config, out, [], False, 0, args.minutes, not args.quiet)
    report(summary, out)
    translator = load_model_dir(out)
    print("\nexamples (beam 5):")
    for src, hyp in zip(DEMO_SENTENCES, translator.translate(DEMO_SENTENCES, beam=5)):
        print(f"  en: {src}\n  de: {hyp[0].text}\n")
    print(f"Translate your own: echo 'A dog runs on the beach.' | attnkit translate {out}")
    return 0


def cmd_bench_train(args) -> int:
    from attnkit.config import load_config
    from attnkit.data.batching import make_batch, token_batches
    from attnkit.models import build_model
    from attnkit.train import encode, make_tokenizers, read_split
    from attnkit.training.strategies import make_strategy
    from attnkit.training.trainer import Trainer

    cfg = load_config(args.config, args.overrides)
    train_data = read_split(cfg, "train")
    src_tok, tgt_tok = make_tokenizers(cfg, train_data)
    ids = encode(train_data, src_tok, tgt_tok, cfg.data.max_len)
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    t = cfg.training
    trainer = Trainer(model, make_strategy(t.strategy, t.label_smoothing), t, Path("."), lambda e: [],
                      lambda idx: make_batch([ids.src[i] for i in idx], [ids.tgt[i] for i in idx], idx),
                      lambda m: {}, {}, progress=False)
    batches = token_batches(ids.lengths(), t.batch_tokens, t.seed, 0)
    need = args.warmup + args.steps
    batches = (batches * (need // len(batches) + 1))[:need]
    for idx in batches[: args.warmup]:
        trainer.train_step(trainer.make_batch(idx))
    tokens, start = 0, time.perf_counter()
    for idx in batches[args.warmup :]:
        tokens += trainer.train_step(trainer.make_batch(idx))[1]
    seconds = time.perf_counter() - start
    print(json.dumps({"config": str(args.config), "arch": cfg.model.arch, "precision": t.precision,
                      "params": sum(p.numel() for p in model.parameters()), "steps": args.steps,
                      "target_tokens": tokens, "seconds": round(seconds, 2),
                      "train_tokens_per_s": round(tokens / seconds, 1), "threads": torch.get_num_threads()}))
    return 0


def cmd_bench_translate(args) -> int:
    from attnkit.translator import load_model_dir

    translator = load_model_dir(args.model_dir)
    lines = read_lines(args.src)
    if args.limit:
        lines = lines[: args.limit]
    translator.translate(lines[:8], beam=args.beam, batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    translator.translate(lines, beam=args.beam, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    print(json.dumps({"model_dir": str(args.model_dir), "beam": args.beam, "sentences": len(lines),
                      "seconds": round(seconds, 2), "sentences_per_s": round(len(lines) / seconds, 2),
                      "threads": torch.get_num_threads()}))
    return 0
