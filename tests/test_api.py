"""The Python API: ``attnkit.load`` opens a model directory of every task, and each verb gives what the
command line gives for the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import attnkit
from attnkit.errors import UserError
from attnkit.inspection import AttentionMap


def test_translate_with_scores_nbest_and_the_attention(tiny_runs, capsys, tmp_path):
    from attnkit.cli.main import main

    m = attnkit.load(tiny_runs["transformer"], device="cpu")
    assert type(m).__name__ == "Translator"
    out = m.translate(["ab cd ef", "", "gh ij"], beam=3, nbest=2)
    assert [len(r) for r in out] == [2, 2, 2] and out[1][0].text == ""
    assert out[0][0].score >= out[0][1].score  # best first
    (tmp_path / "in.txt").write_text("ab cd ef\n\ngh ij\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", str(tiny_runs["transformer"]), "--input", str(tmp_path / "in.txt"), "--beam", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [r[0].text for r in out]  # the CLI is this call
    maps = m.attention("ab cd ef")
    assert {a.name for a in maps} == {"encoder", "self", "cross"}
    for a in maps:
        assert isinstance(a, AttentionMap) and a.weights.shape[2:] == (len(a.rows), len(a.cols))
        assert torch.allclose(a.weights.sum(-1), torch.ones(a.weights.shape[:3]), atol=1e-5)
    enc = next(a for a in maps if a.name == "encoder")
    assert enc.cols == ["ab", "cd", "ef", "</s>"]
    inspection = m.inspect("ab cd ef", beam=2, nbest=2)
    assert len(inspection.result.nbest) == 2
    translations, steps = m.trace("ab cd ef", beam=2)
    assert translations[0].text == m.translate(["ab cd ef"], beam=2)[0][0].text and steps


def test_tag_classify_generate(tiny_runs, tmp_path):
    tagger = attnkit.load(tiny_runs["tagger"], "cpu")
    tags = tagger.tag(["ab cd ef", ["gh", "ij"]])
    assert [len(t) for t in tags] == [3, 2] and set(sum(tags, [])) <= {"X", "Y"}
    assert tagger.attention("ab cd ef")[0].rows == ["ab", "cd", "ef"]

    classifier = attnkit.load(tiny_runs["classifier"], "cpu")
    results = classifier.classify(["ab cd", "", "ef gh"])
    assert results[1] is None and {r[0] for r in results if r} <= {"pos", "neg"}
    assert 0.0 < results[0][1] <= 1.0
    assert any(a.name == "pooling" for a in classifier.attention("ab cd"))

    lm = attnkit.load(tiny_runs["lm"], "cpu")
    text = lm.generate("ab cd", method="greedy", max_tokens=4)
    assert text == lm.generate("ab cd", method="greedy", max_tokens=4) and len(text.split()) <= 4
    assert lm.perplexity(["ab cd ef"]) > 1
    assert lm.attention("ab cd", method="greedy", max_tokens=3)[0].name == "self"


def test_embed_and_caption(tiny_runs, tmp_path):
    ctx = attnkit.load(tiny_runs["bilm"], "cpu")
    vectors = ctx.embed(["ab cd ef", ["gh"]])
    assert [tuple(v.shape[:1]) for v in vectors] == [(3,), (1,)]
    assert torch.allclose(ctx.embed([["ab", "cd", "ef"]])[0], vectors[0], atol=1e-5)  # alone or in a batch
    with pytest.raises(UserError, match="computes no attention"):
        ctx.attention("ab cd")

    captioner = attnkit.load(tiny_runs["captioner"], "cpu")
    image = tmp_path / "scene.png"
    Image.fromarray((np.random.default_rng(0).random((24, 24)) * 255).astype("uint8")).save(image)
    by_file = captioner.caption([image], beam=2)[0]
    by_array = captioner.caption([captioner.pixels(image)], beam=2)[0]
    assert by_file.text == by_array.text
    (cross,) = captioner.attention(image, beam=2)
    assert cross.grid is not None and cross.weights.shape[-1] == cross.grid[0] * cross.grid[1]


def test_word_vectors(tmp_path):
    pytest.importorskip("gensim")
    from helpers import write_yaml

    from attnkit.cli.main import main

    data = tmp_path / "text.txt"
    data.write_text("\n".join(["the cat sat", "the dog sat", "a cat ran"] * 30) + "\n", encoding="utf-8")
    raw = {"task": "static_vectors", "data": {"train": str(data), "valid": str(data)},
           "model": {"dim": 8, "min_count": 1, "epochs": 1}}
    assert main(["-q", "train", str(write_yaml(tmp_path / "v.yaml", raw)), "--out", str(tmp_path / "v")]) == 0
    vectors = attnkit.load(tmp_path / "v")
    assert vectors.vector("cat").shape == (8,) and vectors.vector("unicorn") is None
    assert [w for w, _ in vectors.nearest("cat", k=3)] and "cat" not in dict(vectors.nearest("cat"))


def test_load_says_what_it_cannot_open(tiny_runs, tmp_path):
    with pytest.raises(UserError, match="holds a tagging model, not a translation model"):
        attnkit.load(tiny_runs["tagger"], task="translation")
    with pytest.raises(UserError, match="--engine ctranslate2: .* holds a tagger"):
        attnkit.load(tiny_runs["tagger"], engine="ctranslate2")
    with pytest.raises(UserError, match="model directory not found"):
        attnkit.load(tmp_path / "nothing")


def test_fit_trains_into_a_run_directory_and_returns_the_model(tmp_path, capsys):
    """attnkit.fit: the run ``attnkit train`` makes (config.yaml, summary.json), --set as a dict, the
    model returned as attnkit.load returns it; reuse=True loads a finished run instead of training."""
    from helpers import write_yaml
    from tiny_runs import translation

    config = tmp_path / "tiny.yaml"
    write_yaml(config, translation(tmp_path / "data", "transformer"))
    out = tmp_path / "run"
    m = attnkit.fit(config, out, {"training.lr": 0.005, "model.dropout": 0.0}, max_steps=3)
    assert type(m).__name__ == "Translator" and m.cfg.training.lr == 0.005
    assert (out / "summary.json").is_file() and "stopped: max_steps after 3 steps" in capsys.readouterr().out
    assert len(m.translate(["ab cd"], beam=2, nbest=2)[0]) == 2
    made = (out / "summary.json").stat().st_mtime_ns
    again = attnkit.fit(config, out, max_steps=3, reuse=True)
    assert (out / "summary.json").stat().st_mtime_ns == made and again.cfg.training.lr == 0.005
    with pytest.raises(UserError, match="already holds a run"):
        attnkit.fit(config, out, max_steps=3)
    with pytest.raises(UserError, match="unknown key 'trainin'"):
        attnkit.fit(config, tmp_path / "other", {"trainin.lr": 1.0})
    assert not (tmp_path / "other").exists()
