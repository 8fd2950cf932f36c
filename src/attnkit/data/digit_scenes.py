"""Composed scenes of real handwritten digits, each with a sentence that describes it: the
captioner's embedded data set (no download).

The digits are the 1797 8x8 images of the UCI "Optical Recognition of Handwritten Digits" set
(``resources/uci_digits``). A scene is a canvas cut into four quadrants; one to four digits sit in
distinct quadrants, each small or large, at a random place inside its quadrant. The sentence names
the digits in reading order (top row first, left to right), with a grammar small enough that a
scene has exactly one sentence, so exact match is a meaningful score:

    1 digit              a small three at the top left
    2 in a row           a small three left of a large seven at the bottom
    2 in a column        a large five above a small one on the right
    2 on a diagonal      a small two at the top right and a large nine at the bottom left
    3 or 4               a small three at the top left , a large seven at the top right and a small one
                         at the bottom right

Every scene records each digit's bounding box and the position of the word that names it (for the
attention-localisation score). Scene ``i`` of a split is a pure function of ``(seed, split, i)``,
and the three splits draw on disjoint digit images (a seeded permutation of the 1797), so test
scenes show handwriting never seen in training.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from attnkit.errors import UserError

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ROWS, COLS = ("top", "bottom"), ("left", "right")
SPLITS = ("train", "valid", "test")
INK = 16  # the UCI pixel maximum


@dataclass(frozen=True)
class Digit:
    label: int  # 0..9
    large: bool
    row: int  # quadrant row: 0 top, 1 bottom
    col: int  # quadrant column: 0 left, 1 right
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1 and y1 exclusive
    word: int  # position of the word that names the digit in the caption's whitespace tokens

    def phrase(self) -> list[str]:
        return ["a", "large" if self.large else "small", WORDS[self.label]]


@dataclass
class Scene:
    image: np.ndarray  # (H, W) uint8, ink bright on black
    caption: str
    digits: list[Digit]  # in reading order: the order the caption names them


def load_digits(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) pixel values 0..16 and (N,) labels from the UCI CSV (gzip or plain)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    rows = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [int(float(v)) for v in line.split(",")]
        except ValueError:
            raise UserError(f"{path}: line {no}: expected 65 comma-separated numbers") from None
        if len(values) != 65 or not 0 <= values[64] <= 9:
            raise UserError(f"{path}: line {no}: expected 64 pixels and a label 0..9, found {len(values)} values")
        rows.append(values)
    if not rows:
        raise UserError(f"{path}: no digits found")
    data = np.asarray(rows, dtype=np.int64)
    return data[:, :64].reshape(-1, 8, 8).clip(0, INK), data[:, 64]


def split_digits(n: int, seed: int, fractions: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Disjoint index pools for train / valid / test: a seeded permutation of ``range(n)`` cut by
    ``fractions``."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    return {"train": order[:n_train], "valid": order[n_train : n_train + n_valid],
            "test": order[n_train + n_valid :]}


def describe(digits: list[Digit]) -> list[str]:
    """The caption's words for digits in reading order, and each digit's word position filled in."""
    def where(d: Digit) -> list[str]:
        return ["at", "the", ROWS[d.row], COLS[d.col]]

    if len(digits) == 2:
        a, b = digits
        if a.row == b.row:  # side by side
            return [*a.phrase(), "left", "of", *b.phrase(), "at", "the", ROWS[a.row]]
        if a.col == b.col:  # one above the other
            return [*a.phrase(), "above", *b.phrase(), "on", "the", COLS[a.col]]
        return [*a.phrase(), *where(a), "and", *b.phrase(), *where(b)]
    words: list[str] = []
    for i, d in enumerate(digits):
        if i:
            words.append("and" if i == len(digits) - 1 else ",")
        words += [*d.phrase(), *where(d)]
    return words


class DigitScenes:
    """Scenes of one split, drawn from that split's pool of digit images."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, pool: np.ndarray, split: str, count: int,
                 seed: int, height: int, width: int, min_digits: int = 1, max_digits: int = 4):
        if not 1 <= min_digits <= max_digits <= 4:
            raise ValueError(f"need 1 <= min_digits <= max_digits <= 4, got {min_digits}..{max_digits}")
        self.images, self.labels, self.pool = images, labels, pool
        self.split_code, self.count, self.seed = SPLITS.index(split), count, seed
        self.height, self.width = height, width
        self.min_digits, self.max_digits = min_digits, max_digits
        q = min(height, width) // 2  # quadrant side
        self.small = (max(4, round(0.375 * q)), max(4, round(0.5 * q)))
        self.large = (max(self.small[1] + 2, round(0.75 * q)), max(self.small[1] + 2, q - 2))
        if self.large[1] > q:
            raise ValueError(f"a {height}x{width} canvas is too small for digit scenes")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Scene:
        if not 0 <= i < self.count:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, self.split_code, i])
        k = int(rng.integers(self.min_digits, self.max_digits + 1))
        quadrants = sorted(rng.choice(4, size=k, replace=False).tolist())  # reading order: 0 1 / 2 3
        canvas = np.zeros((self.height, self.width), dtype=np.float32)
        placed = []
        qh, qw = self.height // 2, self.width // 2
        for quadrant in quadrants:
            row, col = divmod(quadrant, 2)
            index = int(self.pool[rng.integers(len(self.pool))])
            large = bool(rng.integers(2))
            lo, hi = self.large if large else self.small
            size = int(rng.integers(lo, hi + 1))
            x0 = col * qw + int(rng.integers(0, qw - size + 1))
            y0 = row * qh + int(rng.integers(0, qh - size + 1))
            glyph = Image.fromarray(self.images[index].astype(np.float32)).resize((size, size), Image.BILINEAR)
            canvas[y0 : y0 + size, x0 : x0 + size] = np.asarray(glyph)
            placed.append((int(self.labels[index]), large, row, col, (x0, y0, x0 + size, y0 + size)))
        digits = [Digit(label, large, row, col, box, -1) for label, large, row, col, box in placed]
        words = describe(digits)
        named = [i for i, w in enumerate(words) if w in WORDS]  # one digit word per digit, in order
        digits = [Digit(d.label, d.large, d.row, d.col, d.box, w) for d, w in zip(digits, named)]
        image = (canvas.clip(0, INK) * (255.0 / INK)).round().astype(np.uint8)
        return Scene(image, " ".join(words), digits)


def digit_splits(path: str | Path, seed: int, counts: dict[str, int], height: int, width: int,
                 min_digits: int = 1, max_digits: int = 4,
                 fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, DigitScenes]:
    """The three splits' scenes (``counts`` per split) from the digits file at ``path``."""
    images, labels = load_digits(path)
    pools = split_digits(len(labels), seed, fractions)
    return {name: DigitScenes(images, labels, pools[name], name, counts[name], seed, height, width,
                              min_digits, max_digits) for name in SPLITS}
