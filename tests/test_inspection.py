"""attnkit.inspection: the output and the attention a model returns, the same numbers as its own
forward pass, with the tokens of both axes, for every task."""

from __future__ import annotations

import socket

import pytest
import torch
from helpers import write_yaml
from tiny_runs import CONFIGS

from attnkit.cli.main import main
from attnkit.data.batching import pad
from attnkit.errors import UserError
from attnkit.inspection import Options
from attnkit.specials import BOS
from attnkit.tasks import load_inspector


def test_translation_weights_are_the_models_own_for_the_best_hypothesis(tiny_runs):
    inspector = load_inspector(tiny_runs["transformer"])
    seen = inspector.inspect("ab cd ef", Options(beam=2, nbest=2))
    t = inspector.translator
    best = t.translate(["ab cd ef"], beam=2)[0][0]
    assert seen.result.nbest[0].text == best.text and len(seen.result.nbest) == 2
    with torch.no_grad():
        out = t.model(pad([t.encode_source("ab cd ef")]), pad([[BOS] + best.tokens]), need_weights=True)
    maps = {m.name: m for m in seen.attention}
    for name in ("encoder", "self", "cross"):
        assert torch.equal(maps[name].weights, out.attention[name][0])
    assert maps["self"].cols == ["<s>"] + best.text.split()
    causal = maps["self"].weights[..., 0, 1:]  # the first position sees <s> only
    assert causal.abs().max() == 0


def test_rnn_attention_is_one_layer_one_head_and_rows_sum_to_one(tiny_runs):
    seen = load_inspector(tiny_runs["rnn"]).inspect("ab cd")
    (cross,) = seen.attention
    assert cross.weights.shape[:2] == (1, 1) and cross.cols == ["ab", "cd", "</s>"]
    assert torch.allclose(cross.weights.sum(-1), torch.ones(cross.weights.shape[:3]))


def test_a_model_without_attention_has_no_maps(tmp_path):
    raw = CONFIGS["rnn"](tmp_path / "data")
    raw["model"]["context"] = "none"
    cfg = write_yaml(tmp_path / "cfg.yaml", raw)
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    seen = load_inspector(tmp_path / "run").inspect("ab cd")
    assert seen.attention == [] and seen.result.nbest


def test_language_model_rows_are_the_predicted_tokens_and_columns_the_inputs(tiny_runs):
    seen = load_inspector(tiny_runs["lm"]).inspect("ab cd", Options(method="greedy", max_tokens=3))
    (m,) = seen.attention
    continuation = seen.result.continuation.split()
    assert seen.tokens == ["ab", "cd"]
    assert m.cols == ["</s>", "ab", "cd", *continuation] and m.rows == m.cols[1:] + ["</s>"]
    assert torch.triu(m.weights, diagonal=1).abs().max() == 0  # masked: nothing from the future


def test_a_classifier_pools_with_one_query_over_the_tokens(tiny_runs):
    seen = load_inspector(tiny_runs["classifier"]).inspect("ab cd ef")
    (pool,) = seen.attention
    assert pool.rows == ["<query>"] and pool.cols == ["ab", "cd", "ef"]
    probs = [p.probability for p in seen.result.probabilities]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-3)


def test_wrong_inputs_are_one_line_errors(tiny_runs, tmp_path):
    tagger = load_inspector(tiny_runs["tagger"])
    with pytest.raises(UserError, match="beam: a tagging model takes no such option"):
        tagger.inspect("ab", Options(beam=2))
    with pytest.raises(UserError, match="the input is empty"):
        tagger.inspect("  ")
    with pytest.raises(UserError, match="this tagger reads at most 32"):
        tagger.inspect("ab " * 33)
    with pytest.raises(UserError, match="model directory not found"):
        load_inspector(tmp_path / "nothing")
    with pytest.raises(UserError, match="captions images"):
        load_inspector(tiny_runs["captioner"]).inspect("ab")


def test_serve_on_a_busy_port_is_a_one_line_error(tiny_runs, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(tiny_runs["rnn"]), "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
