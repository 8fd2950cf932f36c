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

import attnkit
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
    """``lines`` to stdout, or to the file ``path`` through a temporary file renamed over it (an
    interrupted command leaves the file as it was; a device such as /dev/stdout is written as is)."""
    from attnkit.checkpoint import atomic_write_text

    text = "".join(line + "\n" for line in lines)
    if path and (not Path(path).exists() or Path(path).is_file()):
        atomic_write_text(Path(path), text)
    elif path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def device_override(device: str | None) -> list[str]:
    """The ``--set`` that ``--device`` of a command that trains stands for (none without it)."""
    return [f"training.device={device}"] if device else []


def report(summary: dict, out: Path) -> None:
    from attnkit.train import summary_lines

    print("\n".join(summary_lines(summary, out)))


def cmd_train(args) -> int:
    from attnkit.train import run

    if not args.config and not args.resume:
        raise UserError("train: give a CONFIG file (or --resume with --out)")
    if args.out:
        out = Path(args.out)
    elif args.config:
        out = Path("runs") / Path(args.config).stem
    else:
        raise UserError("train --resume: give the run directory with --out")
    summary = run(args.config, out, args.overrides + device_override(args.device), args.resume,
                  args.max_steps, args.max_minutes, _progress(args))
    if "rank" in summary:  # another rank of a torchrun job: rank 0 reports
        return 0
    report(summary, out)
    return 130 if summary["stopped"] == "interrupted" else 0


def cmd_prepare(args) -> int:
    from attnkit.config import load_config
    from attnkit.data.corpus import MANIFEST
    from attnkit.tasks import TASKS

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    if (out / MANIFEST).exists():
        raise UserError(f"{out}: already holds a prepared corpus; remove it or choose another --out")
    doc = TASKS[cfg.task].binarize(cfg, out)
    print(f"{out}: {doc['pairs']:,} training pairs, {doc['tokens']:,} tokens ({doc['skipped']:,} skipped) in "
          f"{doc['seconds']} s; train with --set data.prepared={out}")
    return 0


def cmd_tag(args) -> int:
    from attnkit.data.conllu import format_conllu, parse_conllu, read_conllu, sentences_from_tokens
    tagger = attnkit.load(args.model_dir, args.device, task="tagging")
    if args.tokens:
        sentences = sentences_from_tokens(read_input(args.input))
    elif args.input:
        sentences = read_conllu(args.input)
    else:
        sentences = parse_conllu(read_input(None), "<stdin>")
    tags = tagger.tag(sentences)
    text = format_conllu(sentences, [{tagger.cfg.data.tag: t} for t in tags])
    write_output(args.output, text.rstrip("\n").split("\n") + [""])
    return 0


def cmd_classify(args) -> int:
    classifier = attnkit.load(args.model_dir, args.device, task="classification")
    results = classifier.classify(read_input(args.input))
    empty = results.count(None)
    if empty:
        log.warning("%d empty line(s): nothing to classify, an empty line out for each", empty)
    write_output(args.output, ["" if r is None else f"{r[0]}\t{r[1]:.4f}" for r in results])
    return 0


def cmd_generate(args) -> int:
    lm = attnkit.load(args.model_dir, args.device, task="language_model")
    g = lm.cfg.generation
    pick = lambda value, default: default if value is None else value  # noqa: E731
    max_tokens = pick(args.max_tokens, g.max_tokens)
    if args.min_tokens is not None and args.min_tokens > max_tokens:
        raise UserError(f"--min-tokens {args.min_tokens} is above the {max_tokens} new tokens allowed (--max-tokens)")
    # the config's minimum gives way to a smaller --max-tokens, as it does on the server
    min_tokens = min(pick(args.min_tokens, g.min_tokens), max_tokens)
    prompts = [args.prompt] if args.prompt is not None else read_input(args.input)
    out = [lm.generate(p, pick(args.method, g.method), pick(args.beam, g.beam), max_tokens,
                       pick(args.temperature, g.temperature), pick(args.top_k, g.top_k), pick(args.top_p, g.top_p),
                       None if args.seed is None else args.seed + i, min_tokens)
           for i, p in enumerate(prompts)]
    write_output(args.output, out)
    return 0


def cmd_embed(args) -> int:
    from attnkit.checkpoint import atomic_write
    from attnkit.data.conllu import read_conllu
    ctx = attnkit.load(args.model_dir, args.device, task="bilm")
    if args.input and Path(args.input).name.removesuffix(".gz").endswith(".conllu"):
        sentences = [s.forms for s in read_conllu(args.input)]
    else:
        sentences = [line.split() for line in read_input(args.input)]
    layer = args.layer
    to_file = args.output is not None and args.output.endswith(".safetensors")
    if layer == "all" and not to_file:
        raise UserError("--layer all writes every layer of every word: give --output FILE.safetensors")
    vectors = ctx.embed(sentences, layer, args.batch_size)
    if to_file:
        from safetensors.torch import save_file

        meta = {"format": "attnkit-contextual-embeddings", "layer": str(layer), "sentences": json.dumps(sentences)}
        tensors = {str(i): v for i, v in enumerate(vectors)}
        atomic_write(Path(args.output), lambda tmp: save_file(tensors, str(tmp), metadata=meta))
        return 0
    lines = []
    for words, v in zip(sentences, vectors):
        lines += [w + "\t" + " ".join(f"{x:.5g}" for x in row) for w, row in zip(words, v.tolist())] + [""]
    write_output(args.output, lines)
    return 0


def cmd_translate(args) -> int:

    translator = attnkit.load(args.model_dir, args.device, args.engine, task="translation")
    lines = read_input(args.input)
    if args.trace:
        return translate_traced(translator, lines, args)
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


def translate_traced(translator, lines: list[str], args) -> int:
    """``translate --trace``: each line alone, its search step by step on stderr (what each step kept,
    finished and pruned), the translations on stdout as without it."""
    from attnkit.decoding.trace import describe

    out = []
    for i, line in enumerate(lines, start=1):
        translations, steps = translator.trace(line, args.beam)
        beam = args.beam or translator.cfg.decoding.beam
        print(f"line {i} ({'greedy' if beam == 1 else f'beam {beam}'}): {line}", file=sys.stderr)
        print("\n".join(describe(steps)), file=sys.stderr)
        out += [translations[0].text] if args.nbest == 1 else [
            f"{i - 1} ||| {t.text} ||| {t.score:.4f}" for t in translations[: args.nbest]]
    write_output(args.output, out)
    return 0


def cmd_export(args) -> int:
    from attnkit.export import export_ctranslate2

    if args.to == "hf":
        from attnkit.hf.exporter import export_hf

        if args.quantization != "float32":
            raise UserError("--quantization is for --to ctranslate2; --to hf writes float32 weights")
        out = export_hf(args.model_dir, args.out)
        print(f"wrote {out} (transformers); load it with AutoModelForSeq2SeqLM.from_pretrained({str(out)!r})")
        return 0
    out = export_ctranslate2(args.model_dir, args.out, args.quantization)
    print(f"wrote {out} (CTranslate2, {args.quantization}); translate with: "
          f"attnkit translate {out} --engine ctranslate2")
    return 0


def cmd_import(args) -> int:
    from attnkit.hf.importer import import_hf

    out = import_hf(args.source, args.out)
    print(f"wrote {out} (imported from {args.source}); translate with: attnkit translate {out}")
    return 0


def by_length(args) -> tuple[int, ...] | None:
    """The bucket edges ``--by-length`` asks for (the default ones unless ``--length-edges``), or None."""
    from attnkit.evaluation import LENGTH_EDGES

    return (args.length_edges or LENGTH_EDGES) if getattr(args, "by_length", True) else None


def cmd_evaluate(args) -> int:
    from attnkit.model_dir import open_model_dir
    from attnkit.tasks import TASKS
    from attnkit.tasks.base import EvaluateRequest

    path, cfg = open_model_dir(args.model_dir, files=())
    task = TASKS[cfg.task]
    if args.engine not in task.engines:
        raise UserError(f"--engine {args.engine}: only translation models are exported; {path} holds {task.what}")
    if (args.by_length or args.join > 1) and not task.lengths:
        raise UserError(f"--by-length and --join score translations by source length; {path} holds {task.what}")
    if args.length_edges and not args.by_length:
        raise UserError("--length-edges: give --by-length too")
    request = EvaluateRequest(args.src, args.ref, args.beam, args.batch_size, args.exposure, _progress(args),
                              args.device, args.engine, by_length=by_length(args), join=args.join)
    done = task.evaluate(path, request)
    if args.output and done.outputs is not None:
        write_output(args.output, done.outputs)
    print(json.dumps(done.scores) if args.json else "\n".join(done.lines))
    return 0


def cmd_caption(args) -> int:
    from attnkit.data.images import load_image
    captioner = attnkit.load(args.model_dir, args.device, task="captioning")
    im = captioner.cfg.image
    pixels = []
    for path in args.images:
        p, note = load_image(path, im.height, im.width, im.channels)
        if note:
            log.warning("note: %s: %s (the model reads %dx%d %s)", path, note, im.width, im.height,
                        "grayscale" if im.channels == 1 else "RGB")
        pixels.append(p)
    captions = captioner.caption(pixels, beam=args.beam)
    write_output(None, [f"{path}\t{c.text}" for path, c in zip(args.images, captions)])
    if args.attention_dir:
        from attnkit.overlay import save_attention

        alpha, _ = captioner.cell_attention(pixels, [c.tokens for c in captions])  # (B, T, h, w)
        used: set[str] = set()
        for i, (path, c) in enumerate(zip(args.images, captions)):
            stem = Path(path).stem
            stem = stem if stem not in used else f"{stem}-{i + 1}"
            used.add(stem)
            words = captioner.tok.pieces(c.tokens)
            save_attention(Path(args.attention_dir), stem, pixels[i], words, alpha[i, : len(words)].numpy())
        log.info("attention maps saved under %s", args.attention_dir)
    return 0


DEMO_SENTENCES = [
    "A man in an orange hat starring at something.",
    "A group of people are standing in front of an igloo.",
    "Two dogs are playing in the snow.",
    "A little girl is reading a book on a bench in the park.",
]


DEMO_EXAMPLES_SECONDS = 5  # beam 5 over the four examples, even from a barely trained model


def cmd_demo(args) -> int:
    from importlib import resources

    from attnkit.train import run


    config = Path(str(resources.files("attnkit") / "resources" / "demo.yaml"))
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    start = time.monotonic()
    print(f"attnkit demo: a small Transformer on Multi30k en-de, trained and scored within {args.minutes:g} "
          f"minutes -> {out}")
    # the run (training, validation, test) ends by the deadline less the few seconds the examples take
    run_minutes = max(args.minutes - DEMO_EXAMPLES_SECONDS / 60, args.minutes / 2)
    summary = run(config, out, device_override(args.device), False, 0, run_minutes, _progress(args))
    report(summary, out)
    translator = attnkit.load(out, args.device or "auto")
    print("\nexamples (beam 5):")
    for src, hyp in zip(DEMO_SENTENCES, translator.translate(DEMO_SENTENCES, beam=5)):
        print(f"  en: {src}\n  de: {hyp[0].text}\n")
    print(f"Translate your own: echo 'A dog runs on the beach.' | attnkit translate {out}")
    print(f"({time.monotonic() - start:.0f} s in all)")
    return 0


def _wait(device: torch.device) -> None:
    """Wait until a GPU has done the work queued on it, so a timer reads the clock after it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cmd_bench_train(args) -> int:
    """Training tokens/s of any config: its task prepares the run as ``train`` does, in a scratch folder,
    on the device and at the precision training would use (``runtime.settle``)."""
    import tempfile

    from attnkit.config import load_config
    from attnkit.runtime import settle
    from attnkit.tasks import TASKS
    from attnkit.tasks.base import Fitted
    from attnkit.training.trainer import Trainer

    cfg = load_config(args.config, args.overrides + device_override(args.device))
    t = cfg.training
    setup = settle(t.device, t.precision)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = TASKS[cfg.task].prepare(cfg, Path(scratch), False)
        if isinstance(prepared, Fitted):
            raise UserError(f"{args.config}: a {cfg.model.arch} model is counted, not trained: no steps to time")
        model = prepared.model.to(setup.device)
        trainer = Trainer(model, prepared.strategy, t, Path(scratch), prepared.epoch_batches,
                          prepared.make_batch, prepared.validate, prepared.meta, progress=False, setup=setup)

        updates = trainer.updates(0)
        need = args.warmup + args.steps
        updates = (updates * (need // len(updates) + 1))[:need]
        for micro in updates[: args.warmup]:
            trainer.train_on(micro)
        _wait(setup.device)
        tokens, start = 0, time.perf_counter()
        for micro in updates[args.warmup :]:
            tokens += trainer.train_on(micro)[1]
        _wait(setup.device)
        seconds = time.perf_counter() - start
        trainer.metrics.close()
    print(json.dumps({"config": str(args.config), "task": cfg.task, "arch": cfg.model.arch,
                      "device": str(setup.device), "precision": setup.precision,
                      "params": sum(p.numel() for p in model.parameters()), "steps": args.steps,
                      "target_tokens": tokens, "seconds": round(seconds, 2),
                      "train_tokens_per_s": round(tokens / seconds, 1), "threads": torch.get_num_threads()}))
    return 0


def cmd_bench_translate(args) -> int:
    from attnkit.runtime import device_of

    translator = attnkit.load(args.model_dir, args.device, args.engine, task="translation")
    lines = read_lines(args.src)
    if args.limit:
        lines = lines[: args.limit]
    translator.translate(lines[:8], beam=args.beam, batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    translator.translate(lines, beam=args.beam, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    device = str(device_of(translator.model)) if args.engine == "torch" else translator.engine.device
    print(json.dumps({"model_dir": str(args.model_dir), "engine": args.engine, "device": device,
                      "beam": args.beam, "sentences": len(lines),
                      "seconds": round(seconds, 2), "sentences_per_s": round(len(lines) / seconds, 2),
                      "threads": torch.get_num_threads()}))
    return 0
