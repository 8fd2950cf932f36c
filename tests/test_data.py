"""attnkit.data.text and attnkit.data.batching: reading files, and batches."""

from __future__ import annotations

import gzip
import logging
import random

import pytest

from attnkit.data.batching import inference_batches, make_batch, pad, token_batches
from attnkit.data.text import read_lines, read_parallel
from attnkit.errors import UserError
from attnkit.specials import BOS, EOS, PAD

# -- reading text --------------------------------------------------------------------------------------


def test_read_lines_plain_and_gzip(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("  one two \nthree\r\n\nfour", encoding="utf-8")
    assert read_lines(plain) == ["one two", "three", "", "four"]
    gz = tmp_path / "a.txt.gz"
    gz.write_bytes(gzip.compress("één\ntwee\n".encode()))
    assert read_lines(gz) == ["één", "twee"]
    hidden = tmp_path / "gz-without-suffix"  # detected by its magic bytes, not its name
    hidden.write_bytes(gzip.compress(b"x\n"))
    assert read_lines(hidden) == ["x"]


def test_read_lines_errors(tmp_path):
    with pytest.raises(UserError, match=r"missing\.txt: file not found"):
        read_lines(tmp_path / "missing.txt")
    with pytest.raises(UserError, match="not a regular file"):
        read_lines(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(UserError, match=r"empty\.txt: file is empty"):
        read_lines(empty)
    assert read_lines(empty, allow_empty_file=True) == ["", ""]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nstill fine\nbad \xff here\n")
    with pytest.raises(UserError, match=r"bad\.txt: line 3: invalid UTF-8 \(byte 0xff\)"):
        read_lines(bad)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"hello world\n" * 50)[:30])
    with pytest.raises(UserError, match="broken gzip"):
        read_lines(broken)


def test_read_parallel_counts_must_agree(tmp_path):
    (tmp_path / "a.src").write_text("1\n2\n3\n")
    (tmp_path / "a.tgt").write_text("1\n2\n")
    with pytest.raises(UserError) as info:
        read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")
    msg = str(info.value)
    assert "a.src has 3 lines" in msg and "a.tgt has 2" in msg and "\n" not in msg


def test_read_parallel_skips_empty_pairs_with_a_warning(tmp_path, caplog):
    (tmp_path / "a.src").write_text("a\n\nc\nd\n")
    (tmp_path / "a.tgt").write_text("A\nB\n\nD\n")
    with caplog.at_level(logging.WARNING):
        data = read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")
    assert data.src == ["a", "d"] and data.tgt == ["A", "D"] and len(data) == 2
    assert "skipped 2 pair(s) with an empty line" in caplog.text
    kept = read_parallel(tmp_path / "a.src", tmp_path / "a.tgt", skip_empty=False)
    assert len(kept) == 4
    (tmp_path / "b.src").write_text("x\n\n")
    (tmp_path / "b.tgt").write_text("\ny\n")
    with pytest.raises(UserError, match="no non-empty sentence pairs"):
        read_parallel(tmp_path / "b.src", tmp_path / "b.tgt")


# -- batches -------------------------------------------------------------------------------------------


def test_pad_and_make_batch():
    assert pad([[5, 6], [7], [8, 9, 10]]).tolist() == [[5, 6, PAD], [7, PAD, PAD], [8, 9, 10]]
    b = make_batch([[5, 6], [7]], [[8], [9, 10, 11]], [4, 2])
    assert b.src.tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    assert b.tgt_in.tolist() == [[BOS, 8, PAD, PAD], [BOS, 9, 10, 11]]
    assert b.tgt_out.tolist() == [[8, EOS, PAD, PAD], [9, 10, 11, EOS]]
    assert b.num_tokens == 6 and len(b) == 2 and b.index == [4, 2]


def lengths_of(n: int, seed: int = 0):
    r = random.Random(seed)
    return [(r.randint(1, 30), r.randint(1, 30)) for _ in range(n)]


def test_token_batches_deterministic_per_seed_and_epoch():
    lengths = lengths_of(500)
    a = token_batches(lengths, 200, seed=3, epoch=2)
    assert a == token_batches(lengths, 200, seed=3, epoch=2)
    assert a != token_batches(lengths, 200, seed=3, epoch=1)
    assert a != token_batches(lengths, 200, seed=4, epoch=2)


@pytest.mark.parametrize("batch_tokens", [31, 64, 200, 1000])
def test_token_batches_cover_every_example_once_and_respect_the_budget(batch_tokens):
    lengths = lengths_of(300, seed=batch_tokens)
    for epoch in range(3):
        batches = token_batches(lengths, batch_tokens, seed=1, epoch=epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(lengths)))  # each example exactly once
        for b in batches:
            assert b
            cost = len(b) * max(max(lengths[i]) + 1 for i in b)
            assert cost <= batch_tokens or len(b) == 1
        # the padded tensors really hold at most batch_tokens target tokens
        tgt = [[5] * lengths[i][1] for i in batches[0]]
        src = [[5] * lengths[i][0] for i in batches[0]]
        batch = make_batch(src, tgt, batches[0])
        assert batch.tgt_out.numel() <= max(batch_tokens, batch.tgt_out.size(1))


def test_token_batches_group_similar_lengths():
    lengths = lengths_of(1000)
    batches = token_batches(lengths, 300, seed=1, epoch=0)
    padded = sum(len(b) * max(lengths[i][1] for i in b) for b in batches)
    real = sum(t for _, t in lengths)
    assert padded < 1.2 * real  # bucketing keeps target padding small


def test_inference_batches_longest_first_and_complete():
    lengths = [3, 9, 1, 7, 7, 2, 5]
    batches = inference_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(7))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
