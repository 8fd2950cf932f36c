"""``attnkit export --to ctranslate2``: the exported model computes what attnkit's does (the same
log-probabilities of every reference token), translates to the same tokens greedily and with beam
search, and ``attnkit translate --engine ctranslate2`` reads it; what cannot be exported is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import run_config, toy_pairs, write_parallel, write_yaml

from attnkit.cli.main import main
from attnkit.specials import BOS, EOS
from attnkit.translator import load_model_dir

pytest.importorskip("ctranslate2")


def train(root: Path, steps: int, pairs: int = 200, **model) -> Path:
    data = root / "data"
    write_parallel(data, "train", toy_pairs(pairs, seed=1))
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    write_parallel(data, "test", toy_pairs(30, seed=3))
    cfg = write_yaml(root / "cfg.yaml", run_config(data, "transformer", model=model))
    assert main(["-q", "train", str(cfg), "--out", str(root / "run"), "--max-steps", str(steps)]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A tiny Transformer trained for 400 steps on reversal, its export, and 130 inputs."""
    root = tmp_path_factory.mktemp("export")
    run = train(root, 400)
    assert main(["-q", "export", str(run), "--to", "ctranslate2", "--out", str(root / "ct2")]) == 0
    data = root / "data"
    lines = (data / "test.src").read_text().splitlines() + (data / "train.src").read_text().splitlines()[:100]
    return run, root / "ct2", lines


@pytest.mark.parametrize("model", [{}, {"norm": "post", "positional": "learned", "share_src_tgt_embeddings": False,
                                        "tie_embeddings": False, "encoder_layers": 2}])
def test_the_exported_model_gives_every_reference_token_the_same_log_probability(tmp_path, model):
    run = train(tmp_path, 5, pairs=40, **model)
    assert main(["-q", "export", str(run), "--to", "ctranslate2", "--out", str(tmp_path / "ct2")]) == 0
    ours, ct2 = load_model_dir(run, "cpu"), load_model_dir(tmp_path / "ct2", "cpu", "ctranslate2")
    for src, tgt in toy_pairs(6, seed=5):
        src_ids, tgt_ids = ours.encode_source(src), ours.tgt_tok.encode(tgt)
        with torch.no_grad():
            logits = ours.model(torch.tensor([src_ids]), torch.tensor([[BOS] + tgt_ids])).logits
        lp = torch.log_softmax(logits.float(), -1)[0]
        expected = [lp[i, t].item() for i, t in enumerate(tgt_ids + [EOS])]
        scored = ct2.engine.score_batch([ours.src_tok.pieces(src_ids[:-1])], [ours.tgt_tok.pieces(tgt_ids)])[0]
        assert scored.log_probs == pytest.approx(expected, abs=1e-4)


def test_ctranslate2_translates_to_the_same_tokens_as_attnkit(trained):
    run, exported, lines = trained
    ours, ct2 = load_model_dir(run, "cpu"), load_model_dir(exported, "cpu", "ctranslate2")
    greedy_ours, greedy_ct2 = ours.translate(lines, beam=1), ct2.translate(lines, beam=1)
    assert [r[0].tokens for r in greedy_ct2] == [r[0].tokens for r in greedy_ours]
    ours.cfg.decoding.min_len = ct2.cfg.decoding.min_len = 0  # CTranslate2 renormalises after forbidding EOS
    limits = [len(ours.encode_source(line)) + 3 for line in lines]  # max_len_a 1, max_len_b 3
    compared = 0
    for r, s, limit in zip(ours.translate(lines, beam=1), ct2.translate(lines, beam=1), limits):
        assert s[0].tokens == r[0].tokens
        if len(r[0].tokens) < limit:  # (at the limit attnkit forces EOS; CTranslate2's output is cut)
            assert s[0].score == pytest.approx(r[0].score, abs=1e-4)
            compared += 1
    assert compared > len(lines) // 2
    beam_ours, beam_ct2 = ours.translate(lines, beam=5, nbest=2), ct2.translate(lines, beam=5, nbest=2)
    same = sum(a[0].tokens == b[0].tokens for a, b in zip(beam_ours, beam_ct2))
    assert same >= 0.95 * len(lines)
    assert all(len(r) == 2 for r in beam_ct2)


def test_translate_with_the_ctranslate2_engine_and_an_int8_export(trained, tmp_path, capsys):
    run, _, lines = trained
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines[:20] + ["", lines[20]]) + "\n")
    assert main(["-q", "export", str(run), "--to", "ctranslate2", "--quantization", "int8",
                 "--out", str(tmp_path / "int8")]) == 0
    capsys.readouterr()
    assert main(["-q", "translate", str(tmp_path / "int8"), "--engine", "ctranslate2", "--input", str(src),
                 "--beam", "1"]) == 0
    int8 = capsys.readouterr().out.split("\n")[:-1]
    assert main(["-q", "translate", str(run), "--input", str(src), "--beam", "1"]) == 0
    fp32 = capsys.readouterr().out.split("\n")[:-1]
    assert len(int8) == len(fp32) == 22 and int8[20] == ""
    assert sum(a == b for a, b in zip(int8, fp32)) >= 18  # int8 weights: a few outputs may change


def test_what_cannot_be_exported_is_one_line(trained, tiny_runs, tmp_path, capsys):
    run, exported, _ = trained
    assert main(["export", str(tiny_runs["rnn"]), "--to", "ctranslate2", "--out", str(tmp_path / "x")]) == 2
    assert "CTranslate2 has no RNN decoder" in capsys.readouterr().err
    assert main(["export", str(run), "--to", "ctranslate2", "--out", str(exported)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["translate", str(run), "--engine", "ctranslate2"]) == 2
    err = capsys.readouterr().err
    assert "not a CTranslate2 model" in err and err.count("\n") == 1
    assert main(["export", str(tiny_runs["tagger"]), "--to", "ctranslate2", "--out", str(tmp_path / "y")]) == 2
    assert "not a translation model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []  # no scratch left


def test_evaluate_scores_an_export_with_the_ctranslate2_engine(trained, capsys):
    """``attnkit evaluate OUT --engine ctranslate2``: the same greedy translations, so the same BLEU, as the
    PyTorch model's; the engine is recorded; what only PyTorch can do is one line."""
    import json

    run, ct2, _ = trained
    data = run.parent / "data"
    scored = {}
    for engine, where in (("torch", run), ("ctranslate2", ct2)):
        assert main(["-q", "evaluate", str(where), "--src", str(data / "test.src"), "--ref", str(data / "test.tgt"),
                     "--beam", "1", "--json", "--engine", engine]) == 0
        scored[engine] = json.loads(capsys.readouterr().out)
    assert scored["ctranslate2"]["engine"] == "ctranslate2" and scored["torch"]["engine"] == "torch"
    assert scored["ctranslate2"]["bleu"] == scored["torch"]["bleu"] and scored["torch"]["sentences"] == 30
    assert main(["-q", "evaluate", str(ct2), "--src", str(data / "test.src"), "--ref", str(data / "test.tgt"),
                 "--engine", "ctranslate2", "--exposure"]) == 2
    assert "needs --engine torch" in capsys.readouterr().err


def test_only_a_translation_model_is_evaluated_by_ctranslate2(tiny_runs, capsys):
    tagger = tiny_runs["tagger"]
    assert main(["-q", "evaluate", str(tagger), "--src", str(tagger / "config.yaml"), "--engine", "ctranslate2"]) == 2
    assert "only translation models are exported" in capsys.readouterr().err


def test_bench_translate_names_the_device_ctranslate2_runs_on(trained, capsys):
    import json

    _, ct2, _ = trained
    data = ct2.parent / "data"
    assert main(["-q", "bench", "translate", str(ct2), "--src", str(data / "test.src"), "--engine", "ctranslate2"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["engine"], row["device"], row["sentences"]) == ("ctranslate2", "cpu", 30)
