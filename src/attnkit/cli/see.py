"""``attnkit plot ...`` and ``attnkit serve``: look inside a model, as pictures or in a browser.

The parsers are added by :func:`add_parsers`; matplotlib, FastAPI and uvicorn are imported only
when one of these commands runs, so the rest of the CLI starts as fast as before.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import attnkit
from attnkit.errors import UserError

log = logging.getLogger("attnkit")

ATTENTION_KINDS = ("encoder", "self", "cross", "pooling")


def add_parsers(sub) -> None:
    from attnkit.cli.options import (
        Count,
        Dimension,
        Port,
        add_device,
        add_lengths,
        checked,
        input_file,
        layer,
        like,
        output_file,
    )
    from attnkit.config import DecodingConfig

    count = checked(Count, "count")
    p = sub.add_parser("plot", help="draw attention, positional encodings, training curves, BLEU by length, a beam "
                                    "search or a word's vectors in context (PNG or SVG)",
                       description="Draw a picture into --out: PNG or SVG, by its extension.")
    psub = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    a = psub.add_parser("attention", help="attention heatmaps of a trained model for one text",
                        description="Run a trained model on --text and draw every attention it computes: the RNN's "
                                    "encoder-decoder attention; each Transformer layer and head of encoder "
                                    "self-attention, decoder self-attention and encoder-decoder attention; a "
                                    "classifier's attention pooling; a Transformer LM's self-attention. Rows are "
                                    "queries, columns keys, with the tokens on both axes.")
    a.add_argument("model_dir", metavar="DIR", help="a trained model directory")
    a.add_argument("--text", help="the sentence (translation, tagging, classification) or prompt (LM)")
    a.add_argument("--image", type=input_file, metavar="FILE",
                   help="captioning: the image to caption (any format Pillow reads)")
    a.add_argument("--out", default="attention.png", metavar="FILE", help="image file (default: attention.png)")
    a.add_argument("--kind", choices=ATTENTION_KINDS, action="append",
                   help="only this attention (repeatable; default: all the model has)")
    a.add_argument("--layer", type=count, metavar="N", help="only layer N (from 1)")
    a.add_argument("--head", type=count, metavar="N", help="only head N (from 1)")
    a.add_argument("--beam", type=like(DecodingConfig, "beam"), metavar="N",
                   help="translation: beam size of the output drawn (default: config)")
    add_device(a)
    a.set_defaults(func=cmd_plot_attention)

    q = psub.add_parser("positions", help="the sinusoidal positional-encoding matrix of a sentence",
                        description="Draw PE[pos, i] for the whitespace tokens of --text: the vector added to "
                                    "each token's embedding, by position (the lecture's 'I am a robot' picture).")
    q.add_argument("--text", required=True, help='the sentence, e.g. "I am a robot"')
    q.add_argument("--d-model", type=checked(Dimension, "size"), default=64, metavar="N",
                   help="embedding size (default: 64)")
    q.add_argument("--out", default="positions.png", metavar="FILE", help="image file (default: positions.png)")
    q.set_defaults(func=cmd_plot_positions)
    add_entropy_parser(psub)

    c = psub.add_parser("curves", help="training curves of a run: loss, BLEU or accuracy, learning rate",
                        description="Draw a run directory's metrics.jsonl: training and validation loss, each "
                                    "validation score, and the learning rate, against the step. Works while the "
                                    "run is still training.")
    c.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (the --out of train)")
    c.add_argument("--out", metavar="FILE", help="image file (default: RUN_DIR/curves.png)")
    c.set_defaults(func=cmd_plot_curves)

    b = psub.add_parser("by-length", help="BLEU by source length, a line per translation model",
                        description="Translate --src with each model and draw corpus BLEU per source-length bucket "
                                    "(Bahdanau et al. 2015, figure 2: without attention, quality falls on long "
                                    "sentences). With --join 1 2 3, also inputs made of 2 and 3 consecutive test "
                                    "sentences (references joined alike), a panel each. Prints the numbers as "
                                    "Markdown tables. --from-json redraws the numbers --json wrote, without the "
                                    "models.")
    b.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="trained translation model directories")
    b.add_argument("--src", type=input_file, metavar="FILE", help="source sentences (plain or .gz)")
    b.add_argument("--ref", type=input_file, metavar="FILE", help="their reference translations")
    b.add_argument("--label", action="append", metavar="NAME",
                   help="the model's name in the legend and the tables (repeatable: one per model, in order; "
                        "default: what its config says, e.g. 'RNN, context dot', with the run's name where two "
                        "models are alike)")
    b.add_argument("--from-json", type=input_file, metavar="FILE",
                   help="draw the numbers of FILE, written by --json, instead of translating (no RUN_DIR, "
                        "--src or --ref)")
    add_lengths(b, plot=True)
    b.add_argument("--beam", type=like(DecodingConfig, "beam"), metavar="N",
                   help="beam size (default: each model's config)")
    b.add_argument("--min-inputs", type=count, default=20, metavar="N",
                   help="draw only buckets of at least N inputs (default: 20; the tables have them all)")
    b.add_argument("--out", default="by-length.png", metavar="FILE", help="image file (default: by-length.png)")
    b.add_argument("--json", type=output_file, metavar="FILE", help="also write every number to FILE as JSON")
    add_device(b)
    b.set_defaults(func=cmd_plot_by_length)

    bm = psub.add_parser("beam", help="the search tree of one sentence: what beam search kept, finished and pruned",
                         description="Translate --text with beam search (or greedy, --beam 1) and draw every step: "
                                     "the candidates the search looked at (beam k: the best 2k extensions of its k "
                                     "hypotheses), each with its token and log-probability; kept, finished by EOS or "
                                     "at the length limit (with its length-normalised score) or pruned; the path of "
                                     "the hypothesis the search returned in red. 'attnkit translate --trace' prints "
                                     "the same steps.")
    bm.add_argument("model_dir", metavar="DIR", help="a trained translation model directory")
    bm.add_argument("--text", required=True, help="the sentence to translate")
    bm.add_argument("--beam", type=like(DecodingConfig, "beam"), metavar="N", help="beam size (default: config)")
    bm.add_argument("--out", default="beam.png", metavar="FILE", help="image file (default: beam.png)")
    add_device(bm)
    bm.set_defaults(func=cmd_plot_beam)

    x = psub.add_parser("contexts", help="one word in many sentences: its static vectors against its contextual ones",
                        description="Find --word in the sentences of --input (whitespace-tokenized; plain, .gz or "
                                    ".conllu) and draw the cosine similarities between its occurrences: of the "
                                    "static vectors of a static_vectors run (one per word, all 1) and of the "
                                    "contextual vectors of a bilm run (one per occurrence). Prints, for each "
                                    "occurrence, the most similar other one, and the nearest words of the static "
                                    "vector (the same in every sentence).")
    x.add_argument("--static", required=True, metavar="DIR", help="a static_vectors run directory (or its vectors.txt)")
    x.add_argument("--contextual", required=True, metavar="DIR", help="a bilm run directory")
    x.add_argument("--word", required=True, help="the word, as written (a static vector belongs to a form)")
    x.add_argument("--input", type=input_file, default="attnkit:contexts/senses.en.txt", metavar="FILE",
                   help="sentences to find it in (default: attnkit:contexts/senses.en.txt, a few sentences for "
                        "bank, play and saw in their senses)")
    x.add_argument("--layer", type=layer, default="average", metavar="WHICH",
                   help="the biLM's vectors: average (default), top, or N (0: the character-based word vector, "
                        "which sees no context)")
    x.add_argument("--limit", type=count, default=12, metavar="N", help="at most N occurrences (default: 12)")
    x.add_argument("--out", default="contexts.png", metavar="FILE", help="image file (default: contexts.png)")
    x.set_defaults(func=cmd_plot_contexts)

    s = sub.add_parser("serve", help="a web page to type text and click through a model's attention",
                       description="Start a web server with a page where you type a sentence, see the model's "
                                   "output (translation n-best with scores, tags, class probabilities, an LM "
                                   "continuation) and click through its attention heatmaps per layer and head. The "
                                   "JSON API behind it is documented at /docs.")
    s.add_argument("model_dir", metavar="DIR", help="a trained model directory")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=checked(Port, "port"), default=8000, help="port (default: 8000; 0: any free port)")
    add_device(s)
    s.set_defaults(func=cmd_serve)


def _written(path: Path) -> int:
    print(f"wrote {path}")
    return 0


def select(maps: list, kinds: list[str] | None, layer: int | None, head: int | None) -> list:
    """The attention maps asked for; a kind, layer or head the model lacks is a one-line error."""
    have = [m.name for m in maps]
    if kinds:
        missing = [k for k in kinds if k not in have]
        if missing:
            raise UserError(f"--kind {missing[0]}: this model has {', '.join(have) or 'no attention'}")
        maps = [m for m in maps if m.name in kinds]
    for m in maps:
        if layer is not None and not 1 <= layer <= m.layers:
            raise UserError(f"--layer {layer}: the {m.title} has layers 1 to {m.layers}")
        if head is not None and not 1 <= head <= m.heads:
            raise UserError(f"--head {head}: the {m.title} has heads 1 to {m.heads}")
    return maps


def cmd_plot_attention(args: argparse.Namespace) -> int:
    from attnkit.inspection import Options
    from attnkit.plotting import attention_figure, check_path, image_attention_figure, save
    from attnkit.tasks import load_inspector

    check_path(args.out)
    inspector = load_inspector(args.model_dir, args.device)
    if inspector.input == "image":
        if args.image is None:
            raise UserError(f"{args.model_dir}: a captioning model: give --image FILE")
        seen = inspector.inspect_image(read_file(args.image), Options(beam=args.beam))
        (m,) = select(seen.attention, args.kind, args.layer, args.head)
        if args.layer is not None:
            m = replace(m, weights=m.weights[args.layer - 1 : args.layer])
        if args.head is not None:
            m = replace(m, weights=m.weights[:, args.head - 1 : args.head])
        title = (f"{Path(args.model_dir).name}: where it looked in {Path(args.image).name} for each word of its "
                 f'caption\n"{seen.result.caption}"')
        return _written(save(image_attention_figure(seen.image, m, title), args.out))
    if args.text is None:
        raise UserError(f"{args.model_dir}: a {inspector.task} model: give --text")
    seen = inspector.inspect(args.text, Options(beam=args.beam))
    maps = select(seen.attention, args.kind, args.layer, args.head)
    title = f"{Path(args.model_dir).name} ({inspector.arch}): {args.text}"
    return _written(save(attention_figure(maps, title, args.layer, args.head), args.out))


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"{path}: {err.strerror}") from None


def cmd_plot_positions(args: argparse.Namespace) -> int:
    from attnkit.layers.positional import sinusoidal_table
    from attnkit.plotting import check_path, positions_figure, save

    check_path(args.out)
    tokens = args.text.split()
    if not tokens:
        raise UserError("--text: give at least one word")
    return _written(save(positions_figure(tokens, sinusoidal_table(len(tokens), args.d_model)), args.out))


def add_entropy_parser(psub) -> None:
    from attnkit.cli.options import Count, Dimension, checked

    e = psub.add_parser("entropy", help="why attention divides by sqrt(d_k): the softmax's entropy against d_k",
                        description="For random queries and keys of d_k numbers each, the mean entropy of "
                                    "softmax(q . k) with and without the division by sqrt(d_k): unscaled, the "
                                    "softmax saturates as d_k grows.")
    e.add_argument("--d-k", type=checked(Dimension, "size"), nargs="+", default=[1, 4, 16, 64, 256, 1024],
                   metavar="N", help="the sizes to draw (default: 1 4 16 64 256 1024)")
    e.add_argument("--keys", type=checked(Count, "count"), default=20, metavar="N",
                   help="keys the softmax spreads over (default: 20)")
    e.add_argument("--out", default="entropy.png", metavar="FILE", help="image file (default: entropy.png)")
    e.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    e.set_defaults(func=cmd_plot_entropy)


def cmd_plot_entropy(args: argparse.Namespace) -> int:
    from attnkit.diagnostics import softmax_entropy
    from attnkit.plotting import check_path, entropy_figure, save

    check_path(args.out)
    d_ks = sorted(set(args.d_k))
    scaled = [softmax_entropy(d, args.keys, scaled=True) for d in d_ks]
    unscaled = [softmax_entropy(d, args.keys, scaled=False) for d in d_ks]
    print(f"mean entropy of the softmax over {args.keys} keys (nats; uniform: {math.log(args.keys):.2f})")
    for d, s, u in zip(d_ks, scaled, unscaled):
        print(f"  d_k {d:5d}: scaled {s:.2f}, unscaled {u:.2f}")
    if args.json:
        from attnkit.checkpoint import atomic_write_text

        rows = [{"d_k": d, "scaled": round(s, 4), "unscaled": round(u, 4)} for d, s, u in zip(d_ks, scaled, unscaled)]
        atomic_write_text(Path(args.json), json.dumps({"keys": args.keys, "entropy": rows}, indent=1) + "\n")
    return _written(save(entropy_figure(d_ks, scaled, unscaled, args.keys), args.out))


def cmd_plot_curves(args: argparse.Namespace) -> int:
    from attnkit.plotting import check_path, curves_figure, save
    from attnkit.training.metrics import read_metrics

    records = read_metrics(args.run_dir)
    out = check_path(args.out or Path(args.run_dir) / "curves.png")
    return _written(save(curves_figure(records, Path(args.run_dir).resolve().name), out))


def by_length_tables(curves: dict[int, dict[str, list[dict]]]) -> str:
    """Markdown: per join level, a row per model and a column per length bucket (BLEU, then chrF)."""
    out = []
    for join, models in curves.items():
        buckets = {r["words"]: (r["low"], r["sentences"]) for rows in models.values() for r in rows}
        order = sorted(buckets, key=lambda w: buckets[w][0])
        out.append("test sentences" if join == 1 else f"{join} test sentences joined into one input")
        out.append("")
        out.append("| model | " + " | ".join(f"{w} words ({buckets[w][1]})" for w in order) + " |")
        out.append("|---|" + "---:|" * len(order))
        for model, rows in models.items():
            cell = {r["words"]: f"{r['bleu']:.2f} / {r['chrf']:.1f}" for r in rows}
            out.append(f"| {model} | " + " | ".join(cell.get(w, "") for w in order) + " |")
        out.append("")
    return "\n".join(out) + "BLEU / chrF per bucket of source length; in brackets, the inputs in each bucket."


def cmd_plot_by_length(args: argparse.Namespace) -> int:
    from attnkit.checkpoint import atomic_write_text
    from attnkit.plotting import by_length_figure, check_path, save

    check_path(args.out)
    if args.from_json:
        if args.run_dirs or args.src or args.ref:
            raise UserError("plot by-length --from-json draws the numbers of its file: give no RUN_DIR, --src or --ref")
        curves, labels = read_by_length(args.from_json)
    else:
        if not args.run_dirs or args.src is None or args.ref is None:
            raise UserError("plot by-length: give RUN_DIRs with --src and --ref, or --from-json FILE")
        curves, labels = translate_by_length(args)
    labels = given_labels(args.label, labels)
    named = {join: {labels[run]: rows for run, rows in models.items()} for join, models in curves.items()}
    print(by_length_tables(named))
    if args.json:
        numbers = {**{str(k): v for k, v in curves.items()}, "labels": labels}
        atomic_write_text(Path(args.json), json.dumps(numbers, indent=1) + "\n")
    return _written(save(by_length_figure(named, args.min_inputs, "BLEU by source length"), args.out))


def translate_by_length(args: argparse.Namespace) -> tuple[dict[int, dict[str, list[dict]]], dict[str, str]]:
    """BLEU by source length of each model of ``args.run_dirs`` at each ``--join`` level (keyed by run
    directory), and each model's name from its config (:func:`model_labels`)."""
    from attnkit.cli.commands import by_length
    from attnkit.model_dir import open_model_dir
    from attnkit.tasks import TASKS
    from attnkit.tasks.base import EvaluateRequest

    names = [run.rstrip("/") for run in args.run_dirs]  # how the JSON names each model
    if len(set(names)) < len(names):
        raise UserError("plot by-length: a model directory is given twice")
    tasks, configs = {}, {}
    for name in names:
        path, cfg = open_model_dir(name, files=())
        if not TASKS[cfg.task].lengths:
            raise UserError(f"{name}: holds {TASKS[cfg.task].what}; plot by-length draws translation models")
        tasks[name], configs[name] = (path, TASKS[cfg.task]), cfg
    curves: dict[int, dict[str, list[dict]]] = {}
    for join in args.join:
        curves[join] = {}
        for name, (path, task) in tasks.items():
            log.info("%s: translating %s%s", name, args.src, f", {join} sentences an input" if join > 1 else "")
            request = EvaluateRequest(args.src, args.ref, args.beam, device=args.device,
                                      by_length=by_length(args), join=join)
            curves[join][name] = task.evaluate(path, request).scores["by_length"]
    return curves, model_labels(configs)


def model_name(model) -> str:
    """What a translation model is, from its config's model section: "RNN, context dot", "Transformer"."""
    if model.arch == "rnn":
        return f"RNN, context {model.context}"
    return {"transformer": "Transformer"}.get(model.arch, model.arch)


def model_labels(configs: dict) -> dict[str, str]:
    """Each run's :func:`model_name`; where two runs are alike, with the run's name after it."""
    names = {run: model_name(cfg.model) for run, cfg in configs.items()}
    alike = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {run: f"{name} ({Path(run).name})" if name in alike else name for run, name in names.items()}


def given_labels(given: list[str] | None, labels: dict[str, str]) -> dict[str, str]:
    """``labels`` (run -> name), or the ``--label`` names in their place, one per model in order; every
    name its own."""
    if given is not None:
        if len(given) != len(labels):
            raise UserError(f"--label: {len(given)} given for {len(labels)} models; give one per model, in order")
        labels = dict(zip(labels, given))
    twice = [name for name in labels.values() if list(labels.values()).count(name) > 1]
    if twice:
        raise UserError(f"plot by-length: two models are named {twice[0]!r}; give each its own --label")
    return labels


def read_by_length(path: str) -> tuple[dict[int, dict[str, list[dict]]], dict[str, str]]:
    """The curves of a ``plot by-length --json`` file (by join level, then run) and the names it gives
    the models (one written before it gave them: the runs' names)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        curves = {int(k): v for k, v in doc.items() if k != "labels"}
        runs = list(next(iter(curves.values())))
        if not all(isinstance(models, dict) and list(models) == runs for models in curves.values()):
            raise ValueError
        labels = doc.get("labels") or {run: run for run in runs}
        if sorted(labels) != sorted(runs):
            raise ValueError
    except (ValueError, AttributeError, StopIteration, TypeError):
        raise UserError(f"{path}: not the numbers of plot by-length --json") from None
    return curves, {run: labels[run] for run in runs}


def cmd_plot_beam(args: argparse.Namespace) -> int:
    from attnkit.decoding.trace import normalised
    from attnkit.plotting import beam_figure, check_path, save

    check_path(args.out)
    translator = attnkit.load(args.model_dir, args.device, task="translation")
    beam = args.beam or translator.cfg.decoding.beam
    translations, steps = translator.trace(args.text, beam)
    alpha = translator.cfg.decoding.length_penalty
    title = f"{'greedy' if beam == 1 else f'beam {beam}'}: {args.text}  ->  {translations[0].text}"
    return _written(save(beam_figure(normalised(steps, alpha), beam, title, alpha), args.out))


def cmd_plot_contexts(args: argparse.Namespace) -> int:
    from attnkit.contexts import cosines, occurrences
    from attnkit.plotting import check_path, contexts_figure, save
    from attnkit.tasks.bilm import read_unlabelled
    from attnkit.tasks.static_vectors import nearest_words, read_vectors, vectors_name

    check_path(args.out)
    if args.layer == "all":
        raise UserError("--layer all: plot contexts compares one vector per occurrence; give average, top or N")
    vectors = read_vectors(args.static)
    occ = occurrences(args.word, read_unlabelled(args.input), vectors, args.contextual, args.layer, args.limit)
    static, contextual = cosines(occ.static), cosines(occ.contextual)
    snippets = [occ.snippet(i) for i in range(len(occ.positions))]
    print(f"{args.word!r}: {len(snippets)} occurrences; the most similar other occurrence (contextual cosine):")
    for i, text in enumerate(snippets):
        others = contextual[i].clone()
        others[i] = float("-inf")
        j = int(others.argmax()) if len(snippets) > 1 else i
        print(f"  {i + 1:2d}. {text}\n      -> {j + 1}. {snippets[j]}  ({float(contextual[i, j]):.2f})")
    near = nearest_words(*vectors, args.word)
    print(f"static vector of {args.word!r}, the same in every sentence; nearest words: "
          + ", ".join(f"{w} ({s:.2f})" for w, s in near))
    figure = contexts_figure(snippets, static, contextual, args.word, vectors_name(args.static), args.layer)
    return _written(save(figure, args.out))


def cmd_serve(args: argparse.Namespace) -> int:
    from attnkit.server import serve

    serve(args.model_dir, args.host, args.port, args.device)
    return 0
