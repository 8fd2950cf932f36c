"""Classification end to end: TSV reading, tiny classifiers learning a seeded task, `attnkit classify`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers import write_yaml

from attnkit.cli.main import main
from attnkit.errors import UserError
from attnkit.tasks.classification import Classifier, read_tsv
from attnkit.train import train

GOOD, BAD, FILLER = ["great", "fun", "moving"], ["dull", "awful", "boring"], ["the", "film", "was", "plot", "a"]


def text(r: random.Random) -> tuple[str, str]:
    """Label by which kind of word comes first; the rest is noise: order matters."""
    label = r.choice(["1", "0"])
    first = r.choice(GOOD if label == "1" else BAD)
    words = [r.choice(FILLER) for _ in range(r.randint(0, 3))] + [first]
    words += [r.choice(FILLER + GOOD + BAD) for _ in range(r.randint(0, 3))]
    return " ".join(words), label


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


@pytest.fixture
def cls_corpus(tmp_path):
    r = random.Random(1)
    return {split: write_tsv(tmp_path / f"{split}.tsv", [text(r) for _ in range(n)])
            for split, n in (("train", 600), ("valid", 60), ("test", 60))}


def cls_config(tmp_path, corpus, model: dict) -> Path:
    raw = {"task": "classification",
           "data": {"train": str(corpus["train"]), "valid": str(corpus["valid"]), "test": str(corpus["test"])},
           "vocab": {"level": "word"},
           "model": model,
           "training": {"batch_tokens": 300, "lr": 0.01, "schedule": "constant", "warmup_steps": 0,
                        "label_smoothing": 0.0, "valid_every": 50, "patience": 0, "log_every": 10}}
    return write_yaml(tmp_path / "cls.yaml", raw)


def test_read_tsv_and_its_errors(tmp_path, cls_corpus):
    ex = read_tsv(cls_corpus["valid"], 0, 1, header=True)
    assert len(ex.texts) == len(ex.labels) == 60
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nno label here\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"{bad}: line 3: expected at least 2 tab-separated columns, found 1"):
        read_tsv(bad, 0, 1, header=True)


@pytest.mark.parametrize("model", [
    {"arch": "rnn_classifier", "embed_dim": 16, "hidden": 16, "pooling": "attention", "attention_dim": 8,
     "dropout": 0.0},
    {"arch": "rnn_classifier", "embed_dim": 16, "hidden": 16, "pooling": "last", "dropout": 0.0},
    {"arch": "transformer_classifier", "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 2,
     "dropout": 0.0, "attention_dropout": 0.0, "pooling": "attention", "attention_dim": 16},
], ids=["bilstm-attention", "bilstm-last", "transformer"])
def test_tiny_classifier_learns_an_order_dependent_task(tmp_path, cls_corpus, model):
    summary = train(cls_config(tmp_path, cls_corpus, model), tmp_path / "run", max_steps=250, progress=False)
    assert summary["test"]["accuracy"] >= 95.0, summary


def test_bag_of_embeddings_cannot_see_order_but_trains(tmp_path, cls_corpus):
    model = {"arch": "bag_of_embeddings", "embed_dim": 16, "hidden": 16, "dropout": 0.0}
    summary = train(cls_config(tmp_path, cls_corpus, model), tmp_path / "run", max_steps=150, progress=False)
    assert 55.0 <= summary["valid"]["accuracy"] < 100.0  # better than chance, blind to which word came first


def test_classify_command_and_unknown_labels(tmp_path, cls_corpus, capsys, caplog):
    test = cls_corpus["test"]
    test.write_text(test.read_text(encoding="utf-8") + "great fun\tneutral\n", encoding="utf-8")
    model = {"arch": "rnn_classifier", "embed_dim": 16, "hidden": 16, "pooling": "mean", "dropout": 0.0}
    cfg = cls_config(tmp_path, cls_corpus, model)
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "150"]) == 0
    assert "1 label(s) never seen in training (always counted wrong): neutral" in caplog.text
    capsys.readouterr()
    inputs = tmp_path / "in.txt"
    inputs.write_text("great film\n\nawful plot was\n", encoding="utf-8")
    assert main(["-q", "classify", str(tmp_path / "run"), "--input", str(inputs)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and rows[0][0] == "1" and rows[2][0] == "0"
    assert rows[1] == [""]  # an empty line has nothing to classify: an empty line out, not a label
    assert all(0.5 <= float(p) <= 1.0 for _, p in (rows[0], rows[2]))
    assert Classifier.load(tmp_path / "run").cfg.task == "classification"


def test_pretrained_vectors_are_loaded_counted_and_frozen(tmp_path, cls_corpus, caplog):
    import logging

    import torch

    caplog.set_level(logging.INFO)
    from attnkit.data.embeddings import load_vectors

    vec = tmp_path / "vectors.txt"  # word2vec text format with its header
    vec.write_text("3 4\ngreat 1 0 0 0\nDULL 0 1 0 0\nzebra 0 0 1 0\n", encoding="utf-8")
    matrix, found = load_vectors(vec, ["<pad>", "great", "dull", "film"], 4)
    assert found == 1 and matrix[1].tolist() == [1, 0, 0, 0] and not matrix[2].any()  # "DULL" is not "dull"
    matrix, found = load_vectors(vec, ["Great", "DULL"], 4)
    assert found == 2  # "Great" falls back to the file's lowercase "great"
    model = {"arch": "rnn_classifier", "embed_dim": 4, "hidden": 8, "pooling": "mean", "dropout": 0.0}
    raw_cfg = cls_config(tmp_path, cls_corpus, model)
    text = raw_cfg.read_text() + f"embeddings:\n  pretrained: {vec}\n  freeze_pretrained: true\n"
    raw_cfg.write_text(text)
    train(raw_cfg, tmp_path / "run", max_steps=20, progress=False)
    assert "vectors for 1 of" in caplog.text
    clf = Classifier.load(tmp_path / "run")
    great = clf.enc.tok.stoi["great"]
    assert torch.equal(clf.model.embed.weight[great], torch.tensor([1.0, 0, 0, 0]))  # frozen: unchanged
    bad = tmp_path / "bad.txt"
    bad.write_text("great 1 0\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"{bad}: line 1: expected a word and 4 numbers, found 2"):
        load_vectors(bad, ["great"], 4)


def test_glove_package_converts_to_the_text_format_the_loader_reads(tmp_path):
    """bench/glove.py turns the npm package's JSON (rows: the numbers, then norm and rank) into GloVe text
    lines; the tarball must match the pinned checksum, and a partial file is never left behind."""
    import importlib.util
    import io
    import json
    import subprocess
    import sys
    import tarfile

    from attnkit.data.embeddings import load_vectors

    script = Path(__file__).resolve().parents[1] / "bench" / "glove.py"
    spec = importlib.util.spec_from_file_location("glove", script)
    glove = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(glove)
    doc = {"dimensions": 3, "size": 2, "words": ["the", "n't"],
           "vectors": {"the": [0.5, -0.25, 0.125, 1.1, 0], "n't": [1, 2, 3, 3.7, 1]}}
    out = tmp_path / "glove.txt"
    assert glove.convert(doc, out) == 2
    matrix, found = load_vectors(out, ["<pad>", "n't", "The"], 3)
    assert found == 2 and matrix[1].tolist() == [1, 2, 3] and matrix[2].tolist() == [0.5, -0.25, 0.125]
    with pytest.raises(ValueError, match="'bad word'"):
        glove.convert({**doc, "size": 1, "words": ["bad word"], "vectors": {"bad word": [1, 2, 3]}}, tmp_path / "x.txt")
    assert not list(tmp_path.glob("x.txt*"))  # nothing half-written

    data = json.dumps(doc).encode()
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo(glove.MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "g.txt"), "--from", str(tarball)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "expected " + glove.SHA256 in run.stderr and not (tmp_path / "g.txt").exists()
