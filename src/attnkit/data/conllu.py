"""CoNLL-U (Universal Dependencies) reading and writing, for taggers.

Only what tagging needs is interpreted: the word forms (column 2) and the UPOS / XPOS tags
(columns 4 and 5). Multiword-token lines (``1-2``) and empty nodes (``1.1``) are kept verbatim
when writing but are not tokens to tag. A malformed line is a :class:`UserError` naming the file
and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attnkit.data.text import read_lines
from attnkit.errors import UserError

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TAG_COLUMN = {"upos": 3, "xpos": 4}


@dataclass
class Sentence:
    """One sentence: its word tokens and, for writing back, every original line."""

    forms: list[str]
    tags: dict[str, list[str]]  # "upos" / "xpos" -> one tag per word
    lines: list[str] = field(default_factory=list)  # comments, token lines, multiword and empty-node lines
    word_lines: list[int] = field(default_factory=list)  # index into ``lines`` of each word


def _is_word(token_id: str) -> bool:
    return token_id.isdigit()


def read_conllu(path: str | Path) -> list[Sentence]:
    return parse_conllu(read_lines(path, strip=False), str(path))


def parse_conllu(lines: list[str], path: str) -> list[Sentence]:
    """Sentences of CoNLL-U ``lines``; errors name ``path`` and the line."""
    sentences: list[Sentence] = []
    current = Sentence([], {"upos": [], "xpos": []})
    for no, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            if current.forms:
                sentences.append(current)
            current = Sentence([], {"upos": [], "xpos": []})
            continue
        if line.startswith("#"):
            current.lines.append(line)
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise UserError(f"{path}: line {no}: expected 10 tab-separated columns, found {len(cols)}")
        token_id = cols[0]
        if "-" in token_id or "." in token_id:
            current.lines.append(line)
            continue
        if not _is_word(token_id):
            raise UserError(f"{path}: line {no}: bad token id {token_id!r}")
        if int(token_id) != len(current.forms) + 1:
            raise UserError(f"{path}: line {no}: token id {token_id} out of order "
                            f"(expected {len(current.forms) + 1}; a blank line must end each sentence)")
        empty = [COLUMNS[i] for i, col in enumerate(cols) if not col.strip()]
        if empty:  # CoNLL-U writes "_" for a value it lacks; an empty field would become a word or a tag
            raise UserError(f"{path}: line {no}: empty {empty[0]} field (CoNLL-U writes _ where a value is missing)")
        current.word_lines.append(len(current.lines))
        current.lines.append(line)
        current.forms.append(cols[1])
        current.tags["upos"].append(cols[3])
        current.tags["xpos"].append(cols[4])
    if current.forms:
        sentences.append(current)
    if not sentences:
        raise UserError(f"{path}: no sentences found")
    return sentences


def sentences_from_tokens(lines: list[str]) -> list[Sentence]:
    """One whitespace-tokenized sentence per line (an empty line gives an empty sentence)."""
    out = []
    for line in lines:
        forms = line.split()
        rows = [f"{i}\t{w}\t_\t_\t_\t_\t_\t_\t_\t_" for i, w in enumerate(forms, start=1)]
        out.append(Sentence(forms, {"upos": ["_"] * len(forms), "xpos": ["_"] * len(forms)},
                            rows, list(range(len(rows)))))
    return out


def format_conllu(sentences: list[Sentence], predicted: list[dict[str, list[str]]]) -> str:
    """CoNLL-U text with the predicted tags written into their columns; everything else unchanged."""
    blocks = []
    for sent, tags in zip(sentences, predicted):
        lines = list(sent.lines)
        for name, values in tags.items():
            col = TAG_COLUMN[name]
            for word, value in zip(sent.word_lines, values):
                cols = lines[word].split("\t")
                cols[col] = value
                lines[word] = "\t".join(cols)
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + ("\n" if blocks else "")
