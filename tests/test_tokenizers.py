"""attnkit.data.vocab: subword, word and character tokenizers."""

from __future__ import annotations

import pytest

from attnkit.data.vocab import (
    SPACE,
    ListTokenizer,
    SubwordTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_file,
    train_tokenizer,
)
from attnkit.errors import UserError
from attnkit.specials import BOS, EOS, PAD, SPECIALS, UNK

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a dog and a fox are friends",
    "Zwei Hunde spielen im Schnee.",
    "the brown dog sleeps , the fox runs !",
    "über die Brücke gehen drei Männer",
] * 4
SEEN = ["the lazy fox jumps over a brown dog", "Zwei Männer spielen im Schnee.", "a fox runs !"]


def test_special_ids():
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert SPECIALS == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.fixture(scope="module")
def tokenizers():
    return {
        "subword": train_tokenizer(CORPUS, "subword", 60, "unigram", seed=1),
        "bpe": train_tokenizer(CORPUS, "subword", 60, "bpe", seed=1),
        "word": train_tokenizer(CORPUS, "word", 1000),
        "char": train_tokenizer(CORPUS, "char", 1000),
    }


@pytest.mark.parametrize("kind", ["subword", "bpe", "word", "char"])
def test_round_trip_and_specials(tokenizers, kind):
    tok = tokenizers[kind]
    for i, name in enumerate(SPECIALS):
        assert tok.pieces([i]) == [name]
    for line in SEEN + CORPUS[:5]:
        ids = tok.encode(line)
        assert ids and all(i > EOS for i in ids)  # only seen symbols: no UNK, no specials
        assert tok.decode(ids) == line
        assert tok.decode([BOS] + ids + [EOS, PAD, PAD]) == line  # specials are dropped


@pytest.mark.parametrize("kind", ["subword", "word", "char"])
def test_save_load_equality(tokenizers, tmp_path, kind):
    tok = tokenizers["subword" if kind == "subword" else kind]
    save_tokenizer(tok, tmp_path, "src")
    assert tokenizer_file(tmp_path, "src", tok.kind).is_file()
    loaded = load_tokenizer(tmp_path, "src", tok.kind)
    assert len(loaded) == len(tok) and loaded.kind == tok.kind
    assert loaded.pieces(range(len(tok))) == tok.pieces(range(len(tok)))
    for line in SEEN + ["unseen Wörter ßß"]:
        assert loaded.encode(line) == tok.encode(line)
        assert loaded.decode(tok.encode(line)) == tok.decode(tok.encode(line))


def test_word_and_char_details(tokenizers):
    word, char = tokenizers["word"], tokenizers["char"]
    assert word.encode("the platypus") == [word.stoi["the"], UNK]
    assert word.decode(word.encode("the platypus")) == "the <unk>"
    assert word.itos[: len(SPECIALS)] == SPECIALS
    assert word.itos[4] == "the"  # most frequent first
    assert char.pieces(char.encode("a b")) == ["a", SPACE, "b"]
    assert char.decode(char.encode("  a   b ")) == "a b"  # whitespace normalised
    assert char.encode("\u2603")[0] == UNK


def test_min_freq_and_size():
    tok = ListTokenizer.train(["a a a b b c"], "word", min_freq=2)
    assert tok.itos == SPECIALS + ["a", "b"]
    tok = ListTokenizer.train(["a a a b b c"], "word", size=5)
    assert tok.itos == SPECIALS + ["a"]


def test_subword_training_is_seeded():
    a = train_tokenizer(CORPUS, "subword", 60, seed=5)
    b = train_tokenizer(CORPUS, "subword", 60, seed=5)
    assert a.model_proto == b.model_proto


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match=r"incomplete, src\.vocab\.txt is missing"):
        load_tokenizer(tmp_path, "src", "word")
    with pytest.raises(UserError, match=r"incomplete, tgt\.spm is missing"):
        load_tokenizer(tmp_path, "tgt", "subword")
    (tmp_path / "src.vocab.txt").write_text("hello\nworld\n")
    with pytest.raises(UserError, match="not an attnkit vocabulary"):
        load_tokenizer(tmp_path, "src", "word")
    (tmp_path / "src.spm").write_bytes(b"this is not a protobuf")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        SubwordTokenizer.load(tmp_path / "src.spm")
