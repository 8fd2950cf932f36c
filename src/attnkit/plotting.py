"""Pictures: attention heatmaps, the positional-encoding matrix, training curves, BLEU by length,
static against contextual word vectors.

The only module of attnkit that imports matplotlib (a test checks it). It draws what it is given
and computes nothing about models: attention comes from :mod:`attnkit.inspection`, positional
encodings from :mod:`attnkit.layers.positional`, curves from a run's ``metrics.jsonl``. Figures are
built with ``matplotlib.figure.Figure`` directly (no pyplot, no global state), so drawing is safe
in any thread and the returned figure can be checked by a test.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from torch import Tensor

from attnkit.checkpoint import atomic_write
from attnkit.decoding.trace import ranked_finished
from attnkit.errors import UserError
from attnkit.inspection import AttentionMap

FORMATS = (".png", ".svg")
INCH_PER_TOKEN = 0.26
LABEL_SIZE = 8


def check_path(path: str | Path) -> Path:
    """An image file name we can write: .png or .svg, in a directory that exists."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: give a .png or .svg file name")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: directory not found")
    return path


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG or SVG, by the extension of ``path``. SVG text stays text (not paths),
    so the tokens can be searched and read back."""
    path = check_path(path)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # renamed into place: never half an image
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower()))
    return path


def _label_tokens(ax, rows: list[str], cols: list[str]) -> None:
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=LABEL_SIZE)
    ax.set_yticks(range(len(rows)), rows, fontsize=LABEL_SIZE)
    ax.tick_params(length=0)


def attention_figure(maps: list[AttentionMap], title: str | None = None, layer: int | None = None,
                     head: int | None = None) -> Figure:
    """One heatmap per (attention, layer, head): a row of heads for each layer of each attention,
    or only ``layer`` and ``head`` (counted from 1) where given. Rows of a heatmap are the queries,
    columns the keys, tokens on both axes, colours 0 to 1."""
    if not maps:
        raise UserError("this model computes no attention to plot")
    layers = lambda m: [layer - 1] if layer is not None else range(m.layers)  # noqa: E731
    heads = lambda m: [head - 1] if head is not None else range(m.heads)  # noqa: E731
    grid = [(m, i) for m in maps for i in layers(m)]  # one figure row each
    ncols = max(len(heads(m)) for m in maps)
    width = max(len(m.cols) for m in maps) * INCH_PER_TOKEN + 1.6  # + room for the token labels
    heights = [len(m.rows) * INCH_PER_TOKEN + 1.9 for m, _ in grid]
    title_width = 0.085 * len(title or "")  # inches a 10-point title takes: the figure is at least that wide
    fig = Figure(figsize=(max(ncols * width + 1.0, title_width), sum(heights) + (0.4 if title else 0.0)),
                 layout="constrained")
    axes = fig.subplots(len(grid), ncols, squeeze=False, gridspec_kw={"height_ratios": heights})
    image = None
    for r, (m, i) in enumerate(grid):
        chosen = list(heads(m))
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(chosen):
                ax.set_axis_off()
                continue
            h = chosen[c]
            image = ax.imshow(m.weights[i, h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0,
                              aspect="equal", interpolation="nearest")
            _label_tokens(ax, m.rows, m.cols)
            where = f"layer {i + 1}, head {h + 1}" if m.layers * m.heads > 1 else ""
            ax.set_title(f"{m.title}\n{where}".strip(), fontsize=9)
            ax.set_xlabel(m.col_axis, fontsize=LABEL_SIZE)
            ax.set_ylabel(m.row_axis, fontsize=LABEL_SIZE)
    fig.colorbar(image, ax=axes, shrink=min(1.0, 3.0 / len(grid)), label="attention weight")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def image_attention_figure(pixels, m: AttentionMap, title: str | None = None) -> Figure:
    """Where each caption word looked: the image the model read, once per word, under that word's
    attention over the grid cells (averaged over layers and heads), as in Xu et al. (2015)."""
    h, w = m.grid
    alpha = m.weights.float().mean(dim=(0, 1)).view(len(m.rows), h, w)  # (T, h, w)
    ncols = min(6, len(m.rows))
    nrows = -(-len(m.rows) // ncols)
    fig = Figure(figsize=(ncols * 1.9, nrows * 2.1 + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    height, width = pixels.shape[:2]
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= len(m.rows):
            continue
        ax.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", extent=(0, width, height, 0))
        ax.imshow(alpha[k].numpy(), cmap="magma", alpha=0.6, extent=(0, width, height, 0), interpolation="bilinear")
        ax.set_title(m.rows[k], fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def positions_figure(tokens: list[str], table: Tensor) -> Figure:
    """The positional encodings of a sentence: row ``pos`` is the vector added to token ``pos``'s
    embedding. table (len(tokens), d_model)."""
    assert table.size(0) == len(tokens), (tuple(table.shape), len(tokens))
    d_model = table.size(1)
    fig = Figure(figsize=(min(14.0, 2.0 + d_model * 0.09), 1.4 + len(tokens) * 0.32), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(table.numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(tokens)), [f"{tok} ({pos})" for pos, tok in enumerate(tokens)], fontsize=9)
    ax.set_xlabel(f"dimension i of d_model = {d_model}: sin at even i, cos at odd i")
    ax.set_ylabel("token (position)")
    ax.set_title("sinusoidal positional encoding  PE[pos, 2i] = sin(pos / 10000^(2i/d)),  "
                 "PE[pos, 2i+1] = cos(pos / 10000^(2i/d))", fontsize=9)
    fig.colorbar(image, ax=ax, label="value")
    return fig


def entropy_figure(d_ks: list[int], scaled: list[float], unscaled: list[float], keys: int) -> Figure:
    """The softmax's mean entropy against d_k, with and without the 1/sqrt(d_k) scale, and the
    uniform distribution's log(keys) above both."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(d_ks, scaled, marker="o", label="softmax(q . k / sqrt(d_k))")
    ax.plot(d_ks, unscaled, marker="o", label="softmax(q . k)")
    ax.axhline(math.log(keys), color="grey", linestyle="--", linewidth=1, label=f"uniform over {keys} keys")
    ax.set_xscale("log", base=2)
    ax.set_xticks(d_ks, [str(d) for d in d_ks])
    ax.set(xlabel="d_k (query and key size)", ylabel="entropy of the weights (nats)", ylim=(0, None),
           title="why divide by sqrt(d_k): random q, k ~ N(0, 1)")
    ax.legend(fontsize=8)
    return fig


SCORE_NAMES = {"bleu": "BLEU", "chrf": "chrF", "accuracy": "accuracy (%)", "perplexity": "perplexity"}


def curves_figure(records: list[dict], title: str | None = None) -> Figure:
    """Training curves from ``metrics.jsonl`` records: the loss (training and validation), each
    validation score, and the learning rate, against the step."""
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if any(k.startswith("valid_") for k in r)]
    scores = sorted({k[len("valid_"):] for r in valid for k in r if k.startswith("valid_")}
                    - {"loss", "seconds"}, key=lambda k: (k not in SCORE_NAMES, k))
    panels = ["loss"] * bool(train or any("valid_loss" in r for r in valid)) + scores + ["lr"] * bool(train)
    if not panels:
        raise UserError("the metrics log has no training or validation records yet")
    fig = Figure(figsize=(7.0, 1.0 + 2.2 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]

    def line(ax, rows: list[dict], key: str, label: str, **style) -> None:
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
        if points:
            ax.plot(*zip(*points), label=label, **style)

    for ax, panel in zip(axes, panels):
        if panel == "loss":
            line(ax, train, "loss", "training (per token, smoothed over log_every steps)")
            line(ax, valid, "valid_loss", "validation", marker="o", markersize=3)
            ax.set_ylabel("loss")
            ax.legend(fontsize=8)
        elif panel == "lr":
            line(ax, train, "lr", "learning rate")
            ax.set_ylabel("learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        else:
            line(ax, valid, "valid_" + panel, "validation", marker="o", markersize=3, color="tab:green")
            best = [r for r in valid if r.get("best") and isinstance(r.get("valid_" + panel), int | float)]
            if best:
                ax.plot(best[-1]["step"], best[-1]["valid_" + panel], "*", markersize=12, color="tab:red",
                        label="best model")
                ax.legend(fontsize=8)
            ax.set_ylabel(SCORE_NAMES.get(panel, panel))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def by_length_figure(curves: dict[int, dict[str, list[dict]]], min_inputs: int, title: str | None = None) -> Figure:
    """BLEU by source length (Bahdanau et al. 2015, figure 2): a panel per join level (1: the test
    sentences themselves; k: k of them joined into one input), a line per model, named in one legend
    to the right of the panels (so it covers no line) and of one colour in every panel. curves[k][model]
    are ``evaluation.score_by_length`` rows; buckets of fewer than ``min_inputs`` inputs are left out
    (their BLEU is noise)."""
    models = list(dict.fromkeys(model for rows in curves.values() for model in rows))
    colour = {model: f"C{i % 10}" for i, model in enumerate(models)}
    legend_width = 0.8 + 0.065 * max(len(model) for model in models)  # inches the legend's longest entry takes
    fig = Figure(figsize=(4.6 * len(curves) + 0.6 + legend_width, 4.2), layout="constrained")
    axes = fig.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    lines = {}
    for ax, (join, rows_of) in zip(axes, curves.items()):
        labels = sorted({(r["low"], r["words"]) for rows in rows_of.values() for r in rows
                         if r["sentences"] >= min_inputs})
        where = {words: i for i, (_, words) in enumerate(labels)}
        for model, rows in rows_of.items():
            points = [(where[r["words"]], r["bleu"]) for r in rows if r["words"] in where]
            if points:
                (lines[model],) = ax.plot(*zip(*points), marker="o", markersize=4, color=colour[model], label=model)
        counts = {r["words"]: r["sentences"] for rows in rows_of.values() for r in rows}
        ax.set_xticks(range(len(labels)), [f"{w}\n({counts[w]})" for _, w in labels], fontsize=8)
        ax.set_xlabel("source length in words (inputs)")
        ax.set_title("test sentences" if join == 1 else f"{join} test sentences joined", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("BLEU")
    drawn = [model for model in models if model in lines]
    fig.legend([lines[model] for model in drawn], drawn, loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


LAYER_NAMES = {"average": "layers averaged", "top": "top layer"}


def layer_name(layer: str | int) -> str:
    """A biLM layer as ``--layer`` takes it (average, top or a number), in words."""
    return LAYER_NAMES.get(layer, f"layer {layer}")


def contexts_figure(snippets: list[str], static: Tensor, contextual: Tensor, word: str,
                    static_name: str = "static vectors", layer: str | int = "average") -> Figure:
    """Two (n, n) cosine-similarity matrices between the occurrences of one word: of its static vectors
    (one per word, so every cell is 1; ``static_name`` says which model made them) and of its contextual
    vectors (one per occurrence, from the biLM's ``layer``). One colour scale for both, from the lowest
    similarity drawn (rounded down to 0.05) to 1."""
    n = len(snippets)
    low = math.floor(min(float(static.min()), float(contextual.min())) * 20) / 20
    fig = Figure(figsize=(6.5 + 0.55 * n, 2.2 + 0.3 * n), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    titles = (f"static ({static_name}):\none vector per word",
              f"contextual (biLM, {layer_name(layer)}):\none vector per occurrence")
    for ax, sims, name in zip(axes, (static, contextual), titles):
        image = ax.imshow(sims.numpy(), cmap="viridis", vmin=low, vmax=1.0, interpolation="nearest")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{float(sims[i, j]):.2f}", ha="center", va="center", fontsize=6,
                        color="black" if sims[i, j] > (low + 1) / 2 else "white")
        ax.set_xticks(range(n), [str(i + 1) for i in range(n)], fontsize=LABEL_SIZE)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("occurrence")
    axes[0].set_yticks(range(n), [f"{s}  {i + 1}" for i, s in enumerate(snippets)], fontsize=LABEL_SIZE)
    fig.colorbar(image, ax=axes, label="cosine similarity", shrink=0.8)
    seen = layer_name(layer) + (" (the character-based word vector: it sees no context)" if layer == 0 else "")
    fig.suptitle(f'"{word}" in {n} sentences: cosine similarity between its occurrences\n'
                 f"the biLM's vectors: {seen}", fontsize=10)
    return fig


FATE_COLOURS = {"kept": "tab:blue", "finished": "tab:green", "pruned": "0.7"}


def node_label(c: dict) -> str:
    """What a node of the search tree reads: the token it adds and log P; a finished one also its score."""
    piece = c["piece"].replace("\u2581", "") or c["piece"]
    if c["fate"] == "finished":
        return f"{piece} log P {c['log_prob']:.2f}\nscore {c['score']:.2f}"
    return f"{piece} {c['log_prob']:.2f}"


def beam_figure(steps: list[list[dict]], beam: int, title: str | None = None, alpha: float | None = None) -> Figure:
    """The search tree of one sentence from ``decoding.trace.readable`` steps of a search with ``beam``
    hypotheses: a column per step, a node per candidate (its token and cumulative log-probability), an
    edge from the hypothesis it extends; kept blue, finished green, pruned grey, and in red the path
    of the hypothesis the search returned (the best by score of the ``beam`` most probable finished).
    A finished node reads its log P and its score (``decoding.trace.normalised`` makes a greedy
    trace's score the one beam search ranks by; ``alpha``, where given, is named in the axis label)."""
    if not steps:
        raise UserError("nothing to draw: the input is empty")
    rows = max(len(step) for step in steps)
    fig = Figure(figsize=(2.0 + 1.45 * len(steps), 1.2 + 0.42 * rows), layout="constrained")
    ax = fig.subplots()
    where: dict[tuple[int, int], tuple[float, float]] = {}  # (step, kept slot) -> node position
    nodes = []
    for t, step in enumerate(steps):
        for y, c in enumerate(sorted(step, key=lambda c: -c["log_prob"])):
            nodes.append((t, -y, c))
            if c["fate"] == "kept":
                where[t, c["slot"]] = (t, -y)
    finished = [(t, y, c) for t, y, c in nodes if c["fate"] == "finished"]  # in the order they finished
    returned = ranked_finished(finished, beam, lambda n: n[2]["log_prob"], lambda n: n[2]["score"])
    best = returned[0] if returned else None
    path = set()
    if best is not None:  # walk back from the best finished hypothesis to the start
        t, parent = best[0], best[2]["parent"]
        path.add((best[0], best[1]))
        while t > 0:
            t -= 1
            path.add(where[t, parent])
            parent = next(c["parent"] for s, y, c in nodes if s == t and c["fate"] == "kept" and c["slot"] == parent)
    ax.plot(-1, 0, "o", color="black", markersize=5)
    ax.text(-1, 0.25, "<s>", ha="center", fontsize=7)
    for t, y, c in nodes:
        x0, y0 = where.get((t - 1, c["parent"]), (-1, 0)) if t > 0 else (-1, 0)
        on_path = (t, y) in path and (t == 0 or (x0, y0) in path)
        ax.plot([x0, t], [y0, y], color="tab:red" if on_path else FATE_COLOURS[c["fate"]],
                linewidth=2.0 if on_path else 0.8, linestyle=":" if c["fate"] == "pruned" else "-", zorder=1)
        ax.plot(t, y, "o", color=FATE_COLOURS[c["fate"]], markersize=6 if c["fate"] != "pruned" else 4, zorder=2)
        ax.text(t + 0.08, y + 0.12, node_label(c), fontsize=6.5, color="black" if c["fate"] != "pruned" else "0.45",
                fontweight="bold" if (t, y) in path else "normal")
    ax.set_xticks(range(-1, len(steps)), ["start"] + [str(t + 1) for t in range(len(steps))], fontsize=8)
    ax.set_yticks([])
    score = "log P / ((5 + |Y|) / 6)^alpha" + (f", alpha = {alpha:g}" if alpha is not None else "")
    ax.set_xlabel(f"step (output position); nodes: the token added and log P, the hypothesis's log-probability;\n"
                  f"finished ones also their score = {score} (|Y|: its tokens and </s>)")
    ax.set_xlim(-1.3, len(steps) - 0.2)
    for fate, colour in FATE_COLOURS.items():
        ax.plot([], [], "o", color=colour, label=fate)
    ax.plot([], [], color="tab:red", linewidth=2, label="best finished hypothesis")
    ax.legend(fontsize=7, loc="lower left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
