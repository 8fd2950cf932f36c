"""Binarized corpora (``attnkit prepare``): training on the memory-mapped token ids is training on the
text, batch for batch; a corpus that does not match its config, or is damaged, is a one-line error."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run_config, toy_pairs, write_parallel, write_yaml

from attnkit.checkpoint import read_checkpoint
from attnkit.data.batching import token_batches


def reference_token_batches(lengths, batch_tokens, seed, epoch, pool_batches=50):
    """token_batches as it was before it read length arrays (kept here to pin its batches)."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    cost = [max(s, t) + 1 for s, t in lengths]
    pool_size = max(1, pool_batches * batch_tokens // max(1, int(sum(cost) / max(1, len(cost)))))
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda i: (lengths[i][1], lengths[i][0]))
        batch, longest = [], 0
        for i in pool:
            longest_if = max(longest, cost[i])
            if batch and longest_if * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch, longest_if = [], cost[i]
            batch.append(i)
            longest = longest_if
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


@pytest.mark.parametrize("n", [0, 1, 9, 3000])
def test_batches_from_length_arrays_are_the_batches_from_pairs(n):
    r = random.Random(n)
    pairs = [(r.randint(1, 40), r.randint(1, 40)) for _ in range(n)]
    arrays = (np.array([s for s, _ in pairs], dtype=np.int64), np.array([t for _, t in pairs], dtype=np.int64))
    for batch_tokens in (8, 100, 4096):
        expected = reference_token_batches(pairs, batch_tokens, seed=3, epoch=2)
        assert token_batches(pairs, batch_tokens, 3, 2) == expected
        assert token_batches(arrays, batch_tokens, 3, 2) == expected


def attnkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnkit", "-q", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    pairs = toy_pairs(60, seed=1)
    pairs[5] = (" ".join(["a"] * 30), "b")  # over data.max_len 20: skipped by both readers
    write_parallel(data, "train", pairs)
    write_parallel(data, "valid", toy_pairs(8, seed=2))
    raw = run_config(data, "transformer", training={"valid_every": 5})
    del raw["data"]["test"]
    return tmp_path, raw


def test_training_on_a_prepared_corpus_is_training_on_the_text(setup):
    tmp_path, raw = setup
    cfg = write_yaml(tmp_path / "c.yaml", raw)
    done = attnkit("prepare", str(cfg), "--out", str(tmp_path / "corpus"))
    assert done.returncode == 0, done.stderr
    assert "59 training pairs" in done.stdout and "(1 skipped)" in done.stdout
    manifest = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert manifest["pairs"] == 59 and manifest["max_len"] == 20
    assert attnkit("train", str(cfg), "--out", str(tmp_path / "text"), "--max-steps", "12").returncode == 0
    done = attnkit("train", str(cfg), "--out", str(tmp_path / "mapped"), "--max-steps", "12",
                   "--set", f"data.prepared={tmp_path / 'corpus'}")
    assert done.returncode == 0, done.stderr
    logs = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("text", "mapped")]
    assert [r.get("loss") for r in logs[0]] == [r.get("loss") for r in logs[1]]
    a, b = (read_checkpoint(tmp_path / run / "last.safetensors")[0]["model"] for run in ("text", "mapped"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the run directory has the corpus's tokenizers: it translates like any other
    out = attnkit("translate", str(tmp_path / "mapped"), "--input", str(tmp_path / "data" / "valid.src"))
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 8


def test_a_corpus_that_does_not_match_its_config_is_one_line(setup):
    tmp_path, raw = setup
    cfg = write_yaml(tmp_path / "c.yaml", raw)
    corpus = tmp_path / "corpus"
    assert attnkit("prepare", str(cfg), "--out", str(corpus)).returncode == 0
    again = attnkit("prepare", str(cfg), "--out", str(corpus))
    assert again.returncode == 2 and "already holds a prepared corpus" in again.stderr
    cases = {"vocab.size=50": "was prepared with vocab", "data.max_len=12": "was prepared with max_len"}
    for override, message in cases.items():
        done = attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--set", f"data.prepared={corpus}",
                       "--set", override)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with open(corpus / "train.tgt.bin", "r+b") as f:  # a damaged corpus
        f.truncate(8)
    done = attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--set", f"data.prepared={corpus}")
    assert done.returncode == 2 and "train.tgt.bin: damaged: does not match the checksum" in done.stderr
    done = attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--set", f"data.prepared={tmp_path}")
    assert done.returncode == 2 and "holds no prepared corpus" in done.stderr
    (tmp_path / "data" / "train.src").unlink()  # the text the corpus was made from
    done = attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--set", f"data.prepared={corpus}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "train.src" in done.stderr


def test_prepare_says_which_tasks_it_binarizes(tmp_path):
    conllu = tmp_path / "t.conllu"
    conllu.write_text("1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    raw = {"task": "tagging", "data": {"train": str(conllu), "valid": str(conllu)},
           "model": {"arch": "rnn_tagger"}}
    done = attnkit("prepare", str(write_yaml(tmp_path / "t.yaml", raw)), "--out", str(tmp_path / "c"))
    assert done.returncode == 2 and "attnkit prepare binarizes translation corpora" in done.stderr
