"""Tokenizers: text <-> token ids, at subword (SentencePiece), word or character level, and the
scheme of imported Marian models (``spm_vocab``: SentencePiece cuts the text into pieces, a separate
piece list gives their ids).

All share the special ids ``PAD=0, UNK=1, BOS=2, EOS=3`` and are saved as plain files (a
SentencePiece model protobuf, a UTF-8 token list), never pickled.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import sentencepiece as spm

from attnkit.data.text import read_utf8
from attnkit.errors import UserError
from attnkit.specials import BOS, EOS, PAD, SPECIALS, UNK

SPACE = "\u2581"  # the visible space SentencePiece uses; char level uses it too


class Tokenizer(Protocol):
    kind: str

    def __len__(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def pieces(self, ids: Iterable[int]) -> list[str]: ...
    def save(self, path: Path) -> None: ...


class SubwordTokenizer:
    kind = "subword"
    suffix = ".spm"

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, lines: list[str], size: int, model_type: str = "unigram",
              character_coverage: float = 1.0, seed: int = 1) -> SubwordTokenizer:
        buf = io.BytesIO()
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, vocab_size=size,
            model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, hard_vocab_limit=False,
            input_sentence_size=2_000_000, shuffle_input_sentence=True,
            num_threads=2, minloglevel=2,
        )
        return cls(buf.getvalue())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i for i in ids if i > EOS])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def save(self, path: Path) -> None:
        path.write_bytes(self.model_proto)

    @classmethod
    def load(cls, path: Path, plain: bool = False) -> SubwordTokenizer:
        """``plain``: any SentencePiece model, not only one that numbers attnkit's specials first."""
        data = path.read_bytes()
        if not data:  # SentencePiece takes an empty model without a word, and fails at the first use
            raise UserError(f"{path}: not a SentencePiece model (the file is empty)")
        try:
            tok = cls(data)
        except (RuntimeError, OSError) as err:
            raise UserError(f"{path}: not a SentencePiece model ({err})") from None
        if plain:
            return tok
        if len(tok) < len(SPECIALS) or tok.pieces(range(len(SPECIALS))) != SPECIALS:
            raise UserError(f"{path}: not an attnkit SentencePiece model (its first pieces must be "
                            f"{' '.join(SPECIALS)})")
        return tok


class PieceListTokenizer:
    """SentencePiece's pieces, numbered by a list of its own (``spm_vocab``): the scheme of Marian and the
    OPUS-MT models (``attnkit import hf``), whose SentencePiece models do not number their pieces the
    way the model does. A piece missing from the list is ``<unk>``. A leading language tag such as
    ``>>fra<<`` (multilingual OPUS-MT targets) is one token, as MarianTokenizer makes it."""

    kind = "spm_vocab"
    suffix = ".spm"
    list_suffix = ".pieces.txt"

    def __init__(self, model_proto: bytes, pieces: list[str]):
        self.model_proto, self.itos = model_proto, list(pieces)
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.stoi = {p: i for i, p in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        tag = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            tag, text = [text[: end + 2]], text[end + 2 :]
        return [self.stoi.get(p, UNK) for p in tag + self.sp.encode(text, out_type=str)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode_pieces([self.itos[i] for i in ids if i > EOS]).strip()  # MarianTokenizer strips

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def save(self, path: Path) -> None:
        path.write_bytes(self.model_proto)
        path.with_suffix(self.list_suffix).write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> PieceListTokenizer:
        listing = path.with_suffix(cls.list_suffix)
        if not listing.is_file():
            raise UserError(f"{path.parent}: model directory is incomplete, {listing.name} is missing")
        pieces = read_utf8(listing).split("\n")[:-1]
        if pieces[: len(SPECIALS)] != SPECIALS:
            raise UserError(f"{listing}: not an attnkit piece list (must start with {' '.join(SPECIALS)})")
        return cls(SubwordTokenizer.load(path, plain=True).model_proto, pieces)


class ListTokenizer:
    """Word level (split on whitespace) or character level (spaces shown as U+2581)."""

    suffix = ".vocab.txt"

    def __init__(self, tokens: list[str], kind: str):
        assert kind in ("word", "char")
        self.kind = kind
        self.itos = list(tokens)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}

    @staticmethod
    def split(text: str, kind: str) -> list[str]:
        return text.split() if kind == "word" else list(" ".join(text.split()).replace(" ", SPACE))

    @classmethod
    def train(cls, lines: list[str], kind: str, min_freq: int = 1, size: int | None = None) -> ListTokenizer:
        counts = Counter(tok for line in lines for tok in cls.split(line, kind))
        # a literal "<unk>" in the text (Penn Treebank has them) is the UNK token, not a word of its own
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
                        key=lambda t: (-counts[t], t))
        if size is not None:
            ranked = ranked[: max(0, size - len(SPECIALS))]
        return cls(SPECIALS + ranked, kind)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(tok, UNK) for tok in self.split(text, self.kind)]

    def decode(self, ids: Iterable[int]) -> str:
        toks = [self.itos[i] for i in ids if i > EOS or i == UNK]
        if self.kind == "word":
            return " ".join(toks)
        return "".join(toks).replace(SPACE, " ").strip()

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path, kind: str) -> ListTokenizer:
        tokens = read_utf8(path).split("\n")[:-1]
        if tokens[: len(SPECIALS)] != SPECIALS:
            raise UserError(f"{path}: not an attnkit vocabulary (must start with {' '.join(SPECIALS)})")
        return cls(tokens, kind)


def train_tokenizer(lines: list[str], level: str, size: int, subword_model: str = "unigram",
                    min_freq: int = 1, character_coverage: float = 1.0, seed: int = 1) -> Tokenizer:
    if level == "spm_vocab":
        raise UserError("vocab.level: spm_vocab tokenizers come with an imported model (attnkit import hf); "
                        "start from it with training.init_from, or choose subword, word or char")
    if level == "subword":
        return SubwordTokenizer.train(lines, size, subword_model, character_coverage, seed)
    return ListTokenizer.train(lines, level, min_freq, size if level == "word" else None)


def tokenizer_file(directory: Path, name: str, level: str) -> Path:
    return directory / (name + (SubwordTokenizer.suffix if level in ("subword", "spm_vocab") else ListTokenizer.suffix))


def tokenizer_files(directory: Path, name: str, level: str) -> list[Path]:
    """Every file the tokenizer ``name`` is saved in."""
    first = tokenizer_file(directory, name, level)
    return [first, first.with_suffix(PieceListTokenizer.list_suffix)] if level == "spm_vocab" else [first]


def save_tokenizer(tok: Tokenizer, directory: Path, name: str) -> None:
    tok.save(tokenizer_file(directory, name, tok.kind))


def load_tokenizer(directory: Path, name: str, level: str) -> Tokenizer:
    path = tokenizer_file(directory, name, level)
    if not path.is_file():
        raise UserError(f"{directory}: model directory is incomplete, {path.name} is missing")
    if level == "subword":
        return SubwordTokenizer.load(path)
    if level == "spm_vocab":
        return PieceListTokenizer.load(path)
    return ListTokenizer.load(path, level)
