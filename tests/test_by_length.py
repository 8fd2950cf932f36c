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
    assert set(curves) == {"1", "3"} and set(curves["1"]) == {str(model_dir), str(rnn)}
    assert [sum(r["sentences"] for r in curves[k][str(rnn)]) for k in ("1", "3")] == [9, 3]
    assert main(["-q", "plot", "by-length", str(rnn), str(rnn) + "/", "--src", str(src), "--ref", str(ref)]) == 2
    assert "given twice" in capsys.readouterr().err
    svg = out.read_text()
    assert svg.count("<path") > 0 and "3 test sentences joined" in svg and "test sentences" in svg
