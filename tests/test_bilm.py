"""ELMo-style contextual embeddings: pretraining the bidirectional LM, then a tagger and a classifier
that read its mixed layers."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers import write_yaml
from test_classification import cls_config, text, write_tsv
from test_tagging import BILSTM, TRANSFORMER, sentence, tag_config, write_conllu

from attnkit.tasks.classification import Classifier
from attnkit.tasks.tagging import Tagger
from attnkit.train import train


@pytest.fixture
def bilm_dir(tmp_path):
    r = random.Random(3)
    lines = [" ".join(w for w, _ in sentence(r)) for _ in range(300)] + [text(r)[0] for _ in range(300)]
    (tmp_path / "unlabelled.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "heldout.txt").write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    raw = {"task": "bilm",
           "data": {"train": [str(tmp_path / "unlabelled.txt")], "valid": str(tmp_path / "heldout.txt")},
           "vocab": {"level": "word", "min_freq": 1},
           "model": {"arch": "bilm", "char_dim": 8, "char_hidden": 8, "dim": 16, "num_layers": 2, "dropout": 0.0},
           "training": {"batch_tokens": 200, "lr": 0.01, "schedule": "constant", "warmup_steps": 0,
                        "label_smoothing": 0.0, "valid_every": 50, "patience": 0, "log_every": 10}}
    cfg = write_yaml(tmp_path / "bilm.yaml", raw)
    summary = train(cfg, tmp_path / "bilm", max_steps=100, progress=False)
    assert summary["valid"]["perplexity"] < 10  # it learned something about the word sequences
    return tmp_path / "bilm"


def test_bilm_with_an_adaptive_softmax_learns_and_checks_its_cutoffs(tmp_path, bilm_dir, capsys):
    from attnkit.cli.main import main

    def config(cutoffs: list[int]) -> str:
        text = (bilm_dir.parent / "bilm.yaml").read_text()
        path = tmp_path / f"bilm{len(list(tmp_path.glob('*.yaml')))}.yaml"
        path.write_text(text.replace("  dropout: 0.0\n", f"  dropout: 0.0\n  adaptive_softmax: {cutoffs}\n"))
        return str(path)

    summary = train(config([6, 20]), tmp_path / "run", max_steps=100, progress=False)
    assert summary["valid"]["perplexity"] < 10  # as the full softmax of the fixture
    for cutoffs, error in (([6, 100000], "must stay below the"), ([2, 4, 6], "need dim of at least 64"),
                           ([20, 6], "positive and increasing")):
        assert main(["-q", "train", config(cutoffs), "--out", str(tmp_path / "x")]) == 2
        assert error in capsys.readouterr().err


def with_contextual(cfg_path, bilm_dir, freeze: bool = True):
    cfg_path.write_text(cfg_path.read_text() + f"embeddings:\n  contextual: {bilm_dir}\n"
                        f"  freeze_contextual: {str(freeze).lower()}\n")
    return cfg_path


@pytest.mark.parametrize("model", [BILSTM, TRANSFORMER], ids=["bilstm", "transformer"])
def test_tagger_with_contextual_embeddings_trains_and_reloads(tmp_path, bilm_dir, model):
    r = random.Random(0)
    corpus = {split: write_conllu(tmp_path / f"{split}.conllu", [sentence(r) for _ in range(n)])
              for split, n in (("train", 200), ("valid", 30), ("test", 30))}
    cfg = with_contextual(tag_config(tmp_path, corpus, model), bilm_dir)
    summary = train(cfg, tmp_path / "run", max_steps=150, progress=False)
    assert summary["test"]["accuracy"] >= 95.0
    tagger = Tagger.load(tmp_path / "run")  # rebuilt from run/bilm + the tagger's own checkpoint
    mix = tagger.model.embedder.mix.weights()
    assert torch.allclose(mix.sum(), torch.tensor(1.0)) and mix.numel() == 3
    # frozen: the LM's weights in the tagger equal the pretrained ones
    from attnkit.tasks.bilm import Contextual

    pretrained = Contextual.load(bilm_dir, freeze=True).embedder.bilm.state_dict()
    for name, value in tagger.model.embedder.bilm.state_dict().items():
        assert torch.equal(value, pretrained[name]), name


@pytest.mark.parametrize("model", [
    {"arch": "rnn_classifier", "embed_dim": 16, "hidden": 16, "pooling": "attention", "attention_dim": 8,
     "dropout": 0.0},
    {"arch": "transformer_classifier", "d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 1,
     "dropout": 0.0, "pooling": "attention", "attention_dim": 8},
], ids=["bilstm", "transformer"])
def test_classifier_with_contextual_embeddings(tmp_path, bilm_dir, model):
    r = random.Random(1)
    corpus = {split: write_tsv(tmp_path / f"{split}.tsv", [text(r) for _ in range(n)])
              for split, n in (("train", 300), ("valid", 40), ("test", 40))}
    cfg = with_contextual(cls_config(tmp_path, corpus, model), bilm_dir, freeze=False)
    summary = train(cfg, tmp_path / "run", max_steps=150, progress=False)
    assert summary["test"]["accuracy"] >= 90.0
    assert len(Classifier.load(tmp_path / "run").classify(["great film", "awful"])) == 2


def test_the_bag_of_embeddings_baseline_refuses_contextual_vectors(tmp_path, bilm_dir, capsys):
    from attnkit.cli.main import main

    r = random.Random(1)
    corpus = {split: write_tsv(tmp_path / f"{split}.tsv", [text(r) for _ in range(n)])
              for split, n in (("train", 30), ("valid", 5), ("test", 5))}
    model = {"arch": "bag_of_embeddings", "embed_dim": 8, "hidden": 8}
    cfg = with_contextual(cls_config(tmp_path, corpus, model), bilm_dir)
    assert main(["-q", "train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "embeddings" in err and "bag_of_embeddings is the baseline" in err and len(err.strip().splitlines()) == 1


def test_embed_command_writes_the_layers_of_every_word(tmp_path, bilm_dir, capsys):
    from safetensors import safe_open

    from attnkit.cli.main import main
    from attnkit.tasks.bilm import Contextual, char_tensor, embed

    sentences = ["the cat sat", "", "a dog", "the big cat sat on a mat"]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    assert main(["-q", "embed", str(bilm_dir), "--input", str(tmp_path / "in.txt")]) == 0
    blocks, block = [], []
    for line in capsys.readouterr().out.split("\n")[:-1]:  # an empty line ends each sentence
        if line:
            block.append(line.split("\t"))
        else:
            blocks.append(block)
            block = []
    # one block per input line (the empty sentence gives an empty block), one line per word
    assert [[w for w, _ in b] for b in blocks] == [s.split() for s in sentences]
    ctx = Contextual.load(bilm_dir, freeze=True)
    dim = ctx.embedder.bilm.output_dim
    assert all(len(v.split()) == dim for b in blocks for _, v in b)

    # every layer, to safetensors: each sentence's layers equal the model run on that sentence alone,
    # whatever it was batched with (padding never leaks into the backward LM)
    out = tmp_path / "vectors.safetensors"
    assert main(["-q", "embed", str(bilm_dir), "--input", str(tmp_path / "in.txt"), "--output", str(out),
                 "--layer", "all"]) == 0
    bilm = ctx.embedder.bilm.eval()
    with safe_open(str(out), "pt") as f:
        assert json.loads(f.metadata()["sentences"]) == [s.split() for s in sentences]
        for i, s in enumerate(sentences):
            got = f.get_tensor(str(i))
            assert got.shape == (bilm.num_layers + 1, len(s.split()), dim)
            if s:
                with torch.no_grad():
                    alone = bilm(char_tensor(ctx.chars, [s.split()])).layers[:, 0]
                torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)
                avg = embed(bilm, ctx.chars, [s.split()], "average")[0]
                torch.testing.assert_close(avg, alone.mean(0), atol=1e-5, rtol=1e-5)


def test_embed_command_errors(tmp_path, bilm_dir, capsys):
    from attnkit.cli.main import main

    (tmp_path / "in.txt").write_text("a cat\n", encoding="utf-8")
    assert main(["-q", "embed", str(bilm_dir), "--input", str(tmp_path / "in.txt"), "--layer", "all"]) == 2
    assert "--layer all" in capsys.readouterr().err
    assert main(["-q", "embed", str(bilm_dir), "--input", str(tmp_path / "in.txt"), "--layer", "7"]) == 2
    assert "layers 0 to 2" in capsys.readouterr().err
    assert main(["-q", "embed", str(tmp_path), "--input", str(tmp_path / "in.txt")]) == 2
    assert "model directory is incomplete, config.yaml is missing" in capsys.readouterr().err
