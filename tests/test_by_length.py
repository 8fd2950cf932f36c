"""Quality by source length (issue 27): buckets that partition the test set, joined long inputs scored
against joined references, and the evaluate / plot commands that report them."""

from __future__ import annotations

import json

import pytest
from helpers import toy_pairs, write_parallel

from attnkit.cli.main import main
from attnkit.evaluation import LENGTH_EDGES, join_lines, length_buckets, score_by_length, score_corpus


@pytest.mark.parametrize("edges", [LENGTH_EDGES, (3,), (2, 4, 5, 9)])
def test_buckets_partition_the_corpus(edges):
    lengths = [1, 2, 3, 4, 5, 9, 10, 14, 15, 33, 60, 61, 200, 7, 7, 2]
    buckets = length_buckets(lengths, edges)
    seen = sorted(i for _, _, index in buckets for i in index)
    assert seen == list(range(len(lengths)))  # every sentence once
    for low, high, index in buckets:
        assert index and all(lengths[i] >= low and (high is None or lengths[i] < high) for i in index)
    assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)


def test_bucket_counts_add_up_and_each_bucket_is_its_own_corpus():
    sources = ["a b", "a b c d e f g h i j k l", "x", "one two three four five six seven eight nine ten eleven"]
    refs = ["das ist gut", "ein Hund läuft über die Wiese", "ja", "zwei Kinder spielen"]
    hyps = ["das ist gut", "ein Hund läuft", "nein", "zwei Kinder spielen im Park"]
    rows = score_by_length(hyps, refs, sources, (10,))
    assert [(r["words"], r["sentences"]) for r in rows] == [("1-9", 2), ("10+", 2)]
    assert sum(r["sentences"] for r in rows) == len(sources)
    long = score_corpus([hyps[1], hyps[3]], [refs[1], refs[3]])
    assert (rows[1]["bleu"], rows[1]["chrf"]) == (long["bleu"], long["chrf"])


def test_join_keeps_every_line_once_in_order():
    lines = [f"s{i}" for i in range(7)]
    assert join_lines(lines, 1) == lines
    assert join_lines(lines, 3) == ["s0 s1 s2", "s3 s4 s5", "s6"]
    assert " ".join(join_lines(lines, 2)).split() == lines


@pytest.fixture(scope="module")
def test_files(tmp_path_factory):
    # joined two at a time: at most 11 tokens, within model_dir's max_positions of 12
    return write_parallel(tmp_path_factory.mktemp("bylen"), "test", toy_pairs(9, seed=7, max_len=5))


def evaluate_json(model_dir, src, ref, *extra) -> dict:
    return ["-q", "evaluate", str(model_dir), "--src", str(src), "--ref", str(ref), "--beam", "1", "--json", *extra]


def test_evaluate_joined_is_scored_on_joined_references(model_dir, test_files, tmp_path, capsys):
    src, ref = test_files
    out = tmp_path / "hyps.txt"
    assert main(evaluate_json(model_dir, src, ref, "--join", "2", "--by-length", "--length-edges", "4,8",
                              "--output", str(out))) == 0
    scores = json.loads(capsys.readouterr().out)
    hyps = out.read_text(encoding="utf-8").splitlines()
    refs = join_lines(ref.read_text(encoding="utf-8").splitlines(), 2)
    assert scores["joined"] == 2 and scores["sentences"] == len(hyps) == len(refs) == 5
    assert scores["bleu"] == score_corpus(hyps, refs)["bleu"]
    sources = join_lines(src.read_text(encoding="utf-8").splitlines(), 2)
    assert scores["by_length"] == score_by_length(hyps, refs, sources, (4, 8))
    assert sum(r["sentences"] for r in scores["by_length"]) == 5


def test_by_length_options_are_checked(model_dir, test_files, tiny_runs, capsys):
    src, ref = test_files
    with pytest.raises(SystemExit):
        main(evaluate_json(model_dir, src, ref, "--by-length", "--length-edges", "10,5"))
    assert "increasing whole numbers" in capsys.readouterr().err
    assert main(evaluate_json(model_dir, src, ref, "--length-edges", "5")) == 2
    assert "give --by-length too" in capsys.readouterr().err
    assert main(["-q", "evaluate", str(tiny_runs["tagger"]), "--src", str(src), "--by-length"]) == 2
    assert "score translations by source length" in capsys.readouterr().err


def test_plot_by_length_draws_a_line_per_model(model_dir, tiny_runs, test_files, tmp_path, capsys):
    src, ref = test_files
    out, numbers = tmp_path / "len.svg", tmp_path / "len.json"
    rnn = tiny_runs["rnn"]
    assert main(["-q", "plot", "by-length", str(model_dir), str(rnn), "--src", str(src), "--ref", str(ref),
                 "--join", "1", "3", "--length-edges", "4,8", "--min-inputs", "1", "--beam", "1",
                 "--out", str(out), "--json", str(numbers)]) == 0
    printed = capsys.readouterr().out
    assert "| model |" in printed and "3 test sentences joined" in printed
    curves = json.loads(numbers.read_text())
    assert set(curves) == {"1", "3", "labels"} and set(curves["1"]) == {str(model_dir), str(rnn)}
    assert curves["labels"] == {str(model_dir): "Transformer", str(rnn): "RNN, context additive"}  # from the configs
    assert [sum(r["sentences"] for r in curves[k][str(rnn)]) for k in ("1", "3")] == [9, 3]
    assert main(["-q", "plot", "by-length", str(rnn), str(rnn) + "/", "--src", str(src), "--ref", str(ref)]) == 2
    assert "given twice" in capsys.readouterr().err
    svg = out.read_text()
    assert svg.count("<path") > 0 and "3 test sentences joined" in svg and "test sentences" in svg


def by_length_numbers(runs: list[str]) -> dict:
    """What ``plot by-length --json`` writes, before it named the models: by join level, then run."""
    rows = lambda bleu: [{"words": "1-9", "low": 0, "high": 10, "sentences": 30, "bleu": bleu, "chrf": 40.0},  # noqa: E731
                         {"words": "10-14", "low": 10, "high": 15, "sentences": 25, "bleu": bleu / 2, "chrf": 30.0}]
    return {"1": {run: rows(10.0 + i) for i, run in enumerate(runs)},
            "2": {run: rows(5.0 + i) for i, run in enumerate(runs)}}


def test_plot_by_length_redraws_from_its_json_with_the_models_named(tmp_path, capsys):
    from attnkit.plotting import by_length_figure

    old = tmp_path / "old.json"
    runs = ["runs/a-none", "runs/a-dot", "runs/b"]
    old.write_text(json.dumps(by_length_numbers(runs)), encoding="utf-8")
    out, again = tmp_path / "len.svg", tmp_path / "again.json"
    labels = ["RNN, context none", "RNN, context dot", "Transformer"]
    assert main(["-q", "plot", "by-length", "--from-json", str(old), "--out", str(out), "--json", str(again),
                 *[f"--label={name}" for name in labels]]) == 0
    printed = capsys.readouterr().out
    assert "| RNN, context dot | 11.00 / 40.0 | 5.50 / 30.0 |" in printed and "runs/a-dot" not in printed
    svg = out.read_text()
    assert all(name in svg for name in labels) and "runs/" not in svg
    numbers = json.loads(again.read_text())
    assert numbers["labels"] == dict(zip(runs, labels)) and numbers["1"] == by_length_numbers(runs)["1"]
    assert main(["-q", "plot", "by-length", "--from-json", str(again), "--out", str(tmp_path / "b.png")]) == 0
    assert "| Transformer | 12.00 / 40.0 | 6.00 / 30.0 |" in capsys.readouterr().out  # the names it recorded
    fig = by_length_figure({1: {"RNN, context none": by_length_numbers(["x"])["1"]["x"]}}, 1)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["RNN, context none"]


def test_the_by_length_legend_covers_no_line_and_keeps_a_colour_per_model():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from attnkit.plotting import by_length_figure

    runs = ["RNN, context none", "RNN, context mean", "RNN, context dot", "Transformer, 60 minutes"]
    numbers = by_length_numbers(runs)
    numbers["2"].pop("RNN, context mean")  # a model missing from a panel keeps its colour in the others
    fig = by_length_figure({int(k): v for k, v in numbers.items()}, 1)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2 and not any(box.overlaps(ax.get_window_extent(renderer)) for ax in panels)
    assert [t.get_text() for t in legend.get_texts()] == runs
    colours = [{line.get_label(): line.get_color() for line in ax.lines} for ax in panels]
    assert all(colours[1][name] == colours[0][name] for name in colours[1])


def test_by_length_names_models_by_their_config_uniquely(model_dir, tiny_runs, tmp_path, capsys):
    from attnkit.cli.see import model_labels
    from attnkit.config import load_config

    transformer, rnn = load_config(model_dir / "config.yaml"), load_config(tiny_runs["rnn"] / "config.yaml")
    assert model_labels({"runs/t": transformer, "runs/r": rnn}) == {"runs/t": "Transformer",
                                                                     "runs/r": "RNN, context additive"}
    assert model_labels({"runs/t-1000": transformer, "x/t-60min": transformer, "runs/r": rnn}) == {
        "runs/t-1000": "Transformer (t-1000)", "x/t-60min": "Transformer (t-60min)", "runs/r": "RNN, context additive"}
    numbers = tmp_path / "n.json"
    numbers.write_text(json.dumps(by_length_numbers(["runs/a", "runs/b"])), encoding="utf-8")
    base = ["-q", "plot", "by-length", "--from-json", str(numbers), "--out", str(tmp_path / "x.png")]
    for extra, message in [(["--label", "one"], "--label: 1 given for 2 models"),
                           (["--label", "same", "--label", "same"], "two models are named 'same'"),
                           (["runs/a"], "give no RUN_DIR, --src or --ref")]:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert main(["-q", "plot", "by-length", str(model_dir), "--out", str(tmp_path / "x.png")]) == 2
    assert "give RUN_DIRs with --src and --ref, or --from-json FILE" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"1": [1, 2]}', encoding="utf-8")
    assert main(["-q", "plot", "by-length", "--from-json", str(tmp_path / "bad.json"), "--out", "x.png"]) == 2
    assert "not the numbers of plot by-length --json" in capsys.readouterr().err
