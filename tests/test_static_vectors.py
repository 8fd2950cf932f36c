"""Static word vectors (task: static_vectors, gensim) and the comparison with contextual ones (issue 27):
the vectors file loads through embeddings.pretrained, a fit is repeatable, and one word has one static
vector in every sentence where a biLM gives it several."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_yaml
from tiny_runs import lines, tagging

from attnkit.cli.main import main
from attnkit.config import load_config
from attnkit.contexts import cosines, occurrences
from attnkit.errors import UserError
from attnkit.tasks.static_vectors import nearest_words, read_vectors

pytest.importorskip("gensim")


def fit(tmp_path, name: str, **model) -> tuple:
    data = tmp_path / "text.txt"
    if not data.exists():
        data.write_text("\n".join(lines(200, seed=5)) + "\n", encoding="utf-8")
    raw = {"task": "static_vectors", "data": {"train": str(data), "valid": str(data)},
           "model": {"dim": 16, "min_count": 1, "epochs": 2, **model}}
    out = tmp_path / name
    assert main(["-q", "train", str(write_yaml(tmp_path / f"{name}.yaml", raw)), "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("model", [{"arch": "word2vec", "algorithm": "skipgram"},
                                   {"arch": "word2vec", "algorithm": "cbow"},
                                   {"arch": "fasttext", "min_n": 1, "max_n": 2}])
def test_a_fit_writes_the_word2vec_text_format_and_repeats(tmp_path, model):
    one, summary = fit(tmp_path, "one", **model)
    two, _ = fit(tmp_path, "two", **model)
    text = (one / "vectors.txt").read_text(encoding="utf-8")
    assert text == (two / "vectors.txt").read_text(encoding="utf-8")  # one worker and a seed: the same vectors
    words, matrix = read_vectors(one)
    assert text.splitlines()[0] == f"{len(words)} 16" and matrix.shape == (len(words), 16)
    assert sorted(words) == sorted({"ab", "cd", "ef", "gh", "ij", "kl"}) and matrix.abs().sum(1).all()
    assert summary["stopped"] == "fitted" and summary["valid"]["coverage"] == 100.0
    assert summary["params"] == 6 * 16 and not (one / ".starting").exists()
    assert load_config(one / "config.yaml").model.arch == model["arch"]


def test_static_vectors_load_through_embeddings_pretrained(tmp_path):
    run, _ = fit(tmp_path, "w2v")
    raw = tagging(tmp_path / "tagging")
    raw["model"]["d_model"] = 16
    raw["embeddings"] = {"pretrained": str(run), "freeze_pretrained": True}  # the run directory itself
    assert main(["-q", "train", str(write_yaml(tmp_path / "tagger.yaml", raw)), "--out", str(tmp_path / "tagger"),
                 "--max-steps", "3"]) == 0
    from attnkit.tasks.tagging import Tagger

    tagger = Tagger.load(tmp_path / "tagger")
    table = tagger.model.encoder.embed.token.weight
    words, matrix = read_vectors(run)
    stoi = tagger.vocabs.words.stoi
    for word, row in zip(words, matrix):
        assert torch.allclose(table[stoi[word]], row), word  # loaded, and frozen through training


def test_one_static_vector_many_contextual_ones(tmp_path, tiny_runs):
    static, _ = fit(tmp_path, "w2v")
    sentences = [["ab", "cd", "ef"], ["kl", "kl", "ab"], ["gh", "ab", "ij", "cd", "cd"], ["ab"]]
    vectors = read_vectors(static)
    occ = occurrences("ab", sentences, vectors, tiny_runs["bilm"], limit=10)
    assert occ.positions == [0, 2, 1, 0] and occ.snippet(2) == "gh [ab] ij cd cd"
    assert all(torch.equal(row, occ.static[0]) for row in occ.static)  # the same vector in every sentence
    assert torch.allclose(cosines(occ.static), torch.ones(4, 4), atol=1e-5)
    assert not torch.allclose(occ.contextual[0], occ.contextual[1])  # the biLM's depends on the sentence
    assert (cosines(occ.contextual) < 0.9999).sum() >= 6
    # the character layer (0) sees no context: it is as static as word2vec
    chars = occurrences("ab", sentences, vectors, tiny_runs["bilm"], layer=0)
    assert all(torch.allclose(row, chars.contextual[0], atol=1e-5) for row in chars.contextual)
    with pytest.raises(UserError, match="--word zz: not in any"):
        occurrences("zz", sentences, vectors, tiny_runs["bilm"])
    near = nearest_words(*vectors, "ab", k=3)
    assert len(near) == 3 and "ab" not in [w for w, _ in near]


def test_plot_contexts(tmp_path, tiny_runs, capsys):
    static, _ = fit(tmp_path, "w2v")
    text = tmp_path / "s.txt"
    text.write_text("ab cd ef\nkl kl ab\ngh ab ij\n", encoding="utf-8")
    out = tmp_path / "ctx.svg"
    assert main(["-q", "plot", "contexts", "--static", str(static), "--contextual", str(tiny_runs["bilm"]),
                 "--word", "ab", "--input", str(text), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "'ab': 3 occurrences" in printed and "nearest words:" in printed
    svg = out.read_text()
    assert "kl kl [ab]" in svg and "1.00" in svg


@pytest.mark.parametrize(("model", "name"), [({"arch": "word2vec"}, "word2vec skip-gram"),
                                             ({"arch": "word2vec", "algorithm": "cbow"}, "word2vec CBOW"),
                                             ({"arch": "fasttext", "min_n": 1, "max_n": 2}, "fastText skip-gram")])
def test_plot_contexts_names_the_static_model_it_was_given(tmp_path, tiny_runs, model, name):
    from attnkit.tasks.static_vectors import vectors_name as static_name

    static, _ = fit(tmp_path, "vectors", **model)
    assert static_name(str(static)) == static_name(str(static / "vectors.txt")) == name
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "mine.txt").write_bytes((static / "vectors.txt").read_bytes())
    assert static_name(str(tmp_path / "alone" / "mine.txt")) == "vectors of mine.txt"  # no run's config beside it
    text = tmp_path / "s.txt"
    text.write_text("ab cd ef\nkl kl ab\n", encoding="utf-8")
    out = tmp_path / "ctx.svg"
    assert main(["-q", "plot", "contexts", "--static", str(static), "--contextual", str(tiny_runs["bilm"]),
                 "--word", "ab", "--input", str(text), "--out", str(out)]) == 0
    svg = out.read_text()
    assert f"static ({name}):" in svg
    assert "fastText" not in svg.replace(name, "") and "word2vec" not in svg.replace(name, "")  # no other model


@pytest.mark.parametrize(("layer", "said"), [("0", "layer 0 (the character-based word vector"), ("2", "layer 2"),
                                             ("top", "top layer"), (None, "layers averaged")])
def test_plot_contexts_names_the_bilm_layer_in_its_title(tmp_path, tiny_runs, capsys, layer, said):
    from attnkit.plotting import contexts_figure

    static, _ = fit(tmp_path, "w2v")
    text = tmp_path / "s.txt"
    text.write_text("ab cd ef\nkl kl ab\n", encoding="utf-8")
    out = tmp_path / "ctx.svg"
    assert main(["-q", "plot", "contexts", "--static", str(static), "--contextual", str(tiny_runs["bilm"]),
                 "--word", "ab", "--input", str(text), "--out", str(out), *(["--layer", layer] if layer else [])]) == 0
    assert f"the biLM's vectors: {said}" in out.read_text()
    fig = contexts_figure(["a", "b"], torch.ones(2, 2), torch.eye(2), "ab", "word2vec CBOW", 0)
    assert "layer 0" in fig.get_suptitle() and "static (word2vec CBOW):" in fig.axes[0].get_title()
    assert "biLM, layer 0" in fig.axes[1].get_title()


def test_too_rare_words_and_spaces_in_words(tmp_path, capsys, caplog):
    from attnkit.tasks.static_vectors import write_vectors

    with pytest.raises(AssertionError):
        fit(tmp_path, "rare", min_count=10_000)
    assert "no word occurs model.min_count (10000) times" in capsys.readouterr().err
    assert write_vectors(tmp_path / "v.txt", ["ab", "a b", "cd"], torch.eye(3)) == 2
    assert (tmp_path / "v.txt").read_text().splitlines() == ["2 3", "ab 1 0 0", "cd 0 0 1"]
    assert "left out 1 word(s) with a space" in caplog.text


def test_fasttext_ngram_range_is_checked(tmp_path):
    raw = {"task": "static_vectors", "data": {"train": "x", "valid": "x"},
           "model": {"arch": "fasttext", "min_n": 4, "max_n": 2}}
    assert main(["-q", "train", str(write_yaml(tmp_path / "bad.yaml", raw)), "--out", str(tmp_path / "r")]) == 2


def test_a_layer_that_is_not_one_is_a_one_line_error(tiny_runs, capsys):
    for argv in (["embed", str(tiny_runs["bilm"]), "--layer", "middle"],
                 ["plot", "contexts", "--static", "x", "--contextual", "y", "--word", "ab", "--layer", "2nd"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2 and "give average, top, all or a layer number" in capsys.readouterr().err
