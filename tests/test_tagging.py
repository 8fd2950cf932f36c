"""Tagging end to end: CoNLL-U reading and writing, a tiny tagger learning a seeded task, `attnkit tag`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers import write_yaml

from attnkit.cli.main import main
from attnkit.data.conllu import format_conllu, read_conllu
from attnkit.errors import UserError
from attnkit.tasks.tagging import Tagger
from attnkit.train import train

LEXICON = {"the": "DET", "a": "DET", "dog": "NOUN", "cat": "NOUN", "park": "NOUN", "runs": "VERB",
           "sees": "VERB", "big": "ADJ", "red": "ADJ", "in": "ADP", "quickly": "ADV"}
# ambiguous: "walks" is a NOUN after a determiner or adjective and a VERB after a noun
PATTERNS = [["DET", "NOUN", "VERB"], ["DET", "ADJ", "NOUN", "VERB", "ADV"],
            ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN"]]


def sentence(r: random.Random) -> list[tuple[str, str]]:
    out = []
    for tag in r.choice(PATTERNS):
        word = r.choice([w for w, t in LEXICON.items() if t == tag] + (["walks"] if tag in ("NOUN", "VERB") else []))
        out.append((word, tag))
    return out


def write_conllu(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    blocks = []
    for k, sent in enumerate(sentences):
        rows = [f"# sent_id = s{k}"] + [f"{i}\t{w}\t{w}\t{t}\t{t.lower()}\t_\t0\tdep\t_\t_"
                                       for i, (w, t) in enumerate(sent, start=1)]
        blocks.append("\n".join(rows) + "\n")
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tag_corpus(tmp_path):
    r = random.Random(0)
    return {split: write_conllu(tmp_path / f"{split}.conllu", [sentence(r) for _ in range(n)])
            for split, n in (("train", 300), ("valid", 40), ("test", 40))}


BILSTM = {"arch": "rnn_tagger", "embed_dim": 16, "hidden": 16, "num_layers": 1, "char_dim": 8, "char_hidden": 8,
          "dropout": 0.0}
TRANSFORMER = {"arch": "transformer_tagger", "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 2,
               "dropout": 0.0, "attention_dropout": 0.0}


def tag_config(tmp_path, corpus, model: dict = BILSTM) -> Path:
    raw = {"task": "tagging",
           "data": {"train": str(corpus["train"]), "valid": str(corpus["valid"]), "test": str(corpus["test"])},
           "vocab": {"level": "word", "min_freq": 1},
           "model": model,
           "training": {"batch_tokens": 200, "lr": 0.01, "schedule": "constant", "warmup_steps": 0,
                        "label_smoothing": 0.0, "valid_every": 50, "patience": 0, "log_every": 10}}
    return write_yaml(tmp_path / "tagger.yaml", raw)


def test_conllu_round_trip_keeps_every_line(tmp_path, tag_corpus):
    sents = read_conllu(tag_corpus["valid"])
    text = format_conllu(sents, [{"upos": s.tags["upos"]} for s in sents])
    assert text == tag_corpus["valid"].read_text(encoding="utf-8")


def test_conllu_skips_multiword_and_empty_nodes(tmp_path):
    p = tmp_path / "m.conllu"
    p.write_text("1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n"
                 "2\tn't\tnot\tPART\tRB\t_\t1\tadvmod\t_\t_\n2.1\tx\t_\t_\t_\t_\t_\t_\t_\t_\n\n", encoding="utf-8")
    (s,) = read_conllu(p)
    assert s.forms == ["do", "n't"] and s.tags["upos"] == ["AUX", "PART"] and s.tags["xpos"] == ["VBP", "RB"]


@pytest.mark.parametrize("text, message", [
    ("1\tdog\n\n", "line 1: expected 10 tab-separated columns, found 2"),
    ("1\ta\t_\t_\t_\t_\t_\t_\t_\t_\n3\tb\t_\t_\t_\t_\t_\t_\t_\t_\n", "line 2: token id 3 out of order"),
    ("x\ta\t_\t_\t_\t_\t_\t_\t_\t_\n", "line 1: bad token id 'x'"),
])
def test_malformed_conllu_names_file_and_line(tmp_path, text, message):
    p = tmp_path / "bad.conllu"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=f"{p}: {message}"):
        read_conllu(p)


@pytest.mark.parametrize("model", [BILSTM, TRANSFORMER], ids=["bilstm", "transformer"])
def test_tiny_tagger_learns_context_dependent_tags(tmp_path, tag_corpus, model):
    cfg = tag_config(tmp_path, tag_corpus, model)
    summary = train(cfg, tmp_path / "run", max_steps=300, progress=False)
    assert summary["test"]["accuracy"] >= 99.0, summary
    tagger = Tagger.load(tmp_path / "run")
    sents = read_conllu(tag_corpus["test"])
    tags = tagger.tag(sents)
    assert [len(t) for t in tags] == [len(s.forms) for s in sents]  # exactly one tag per word


def test_tag_command_writes_conllu_with_predicted_tags(tmp_path, tag_corpus, capsys):
    cfg = tag_config(tmp_path, tag_corpus)
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "200"]) == 0
    capsys.readouterr()
    assert main(["-q", "tag", str(tmp_path / "run"), "--input", str(tag_corpus["test"])]) == 0
    out = capsys.readouterr().out
    gold = tag_corpus["test"].read_text(encoding="utf-8")
    assert out.count("\n") == gold.count("\n")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("the dog walks\n\na big cat sees\n", encoding="utf-8")
    assert main(["-q", "tag", str(tmp_path / "run"), "--tokens", "--input", str(tokens)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines() if line]
    assert [(r[1], r[3]) for r in rows] == [("the", "DET"), ("dog", "NOUN"), ("walks", "VERB"), ("a", "DET"),
                                            ("big", "ADJ"), ("cat", "NOUN"), ("sees", "VERB")]


def test_sentences_longer_than_the_transformer_are_tagged_in_pieces(tmp_path, tag_corpus, caplog):
    small = {**TRANSFORMER, "max_positions": 4}  # shorter than most sentences
    summary = train(tag_config(tmp_path, tag_corpus, small), tmp_path / "run", max_steps=20, progress=False)
    assert "skipped" in caplog.text and "training sentence(s) of more than 4 words" in caplog.text
    assert "accuracy" in summary["test"]
    tagger = Tagger.load(tmp_path / "run")
    sents = read_conllu(tag_corpus["test"])
    assert max(len(s.forms) for s in sents) > 4
    tags = tagger.tag(sents)
    assert [len(t) for t in tags] == [len(s.forms) for s in sents]
    assert "in pieces" in caplog.text
