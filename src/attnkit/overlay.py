"""Attention over an image, drawn with Pillow and numpy: where the captioner looked as it wrote each
word. (Plots with axes and colour bars are ``plotting.py``'s; this needs no matplotlib.)

The weights alpha_t over the h x w grid cells are upsampled bilinearly onto the image and shown as
a red-to-yellow glow whose strength is alpha divided by the step's largest alpha.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORD_HEIGHT = 16  # pixels of the caption band under each picture of a strip


def attention_overlay(pixels: np.ndarray, alpha: np.ndarray, scale: int = 4) -> Image.Image:
    """pixels (H, W, C) uint8, alpha (h, w) -> an RGB picture (H * scale, W * scale) of the image with
    the attention glowing over it."""
    H, W = pixels.shape[:2]
    size = (W * scale, H * scale)
    base = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).convert("RGB")
    base = np.asarray(base.resize(size, Image.NEAREST), dtype=np.float32) / 255.0  # (H', W', 3)
    heat = Image.fromarray((alpha / max(float(alpha.max()), 1e-12)).astype(np.float32))
    heat = np.asarray(heat.resize(size, Image.BILINEAR), dtype=np.float32).clip(0, 1)[..., None]  # (H', W', 1)
    glow = np.concatenate([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)  # red -> yellow
    out = base * 0.7 + glow * heat * (0.8 - 0.4 * base)  # the image, and a glow that leaves its ink readable
    return Image.fromarray((out.clip(0, 1) * 255).round().astype(np.uint8))


def caption_strip(pixels: np.ndarray, words: list[str], alphas: np.ndarray, scale: int = 4) -> Image.Image:
    """One overlay per word side by side, each with its word underneath: alphas (T, h, w), T = len(words)."""
    if not words:
        raise ValueError("caption_strip: no words to draw")
    tiles = [attention_overlay(pixels, a, scale) for a in alphas]
    w, h = tiles[0].size
    strip = Image.new("RGB", (w * len(tiles), h + WORD_HEIGHT), "white")
    draw, font = ImageDraw.Draw(strip), ImageFont.load_default()
    for i, (tile, word) in enumerate(zip(tiles, words)):
        strip.paste(tile, (i * w, 0))
        left, _, right, _ = draw.textbbox((0, 0), word, font=font)
        draw.text((i * w + (w - (right - left)) // 2, h + 2), word, fill="black", font=font)
    return strip


def safe_name(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", word) or "_"


def save_attention(directory: Path, stem: str, pixels: np.ndarray, words: list[str], alphas: np.ndarray,
                   scale: int = 4) -> list[Path]:
    """``directory/stem/NN-WORD.png`` for each word and ``directory/stem.png`` with all of them in a
    row, each written to a temporary file and renamed into place (never half an image); returns the
    paths written."""
    from attnkit.checkpoint import atomic_write

    folder = Path(directory) / stem
    folder.mkdir(parents=True, exist_ok=True)
    pictures = [(folder / f"{t + 1:02d}-{safe_name(word)}.png", attention_overlay(pixels, alpha, scale))
                for t, (word, alpha) in enumerate(zip(words, alphas))]
    if words:
        pictures.append((Path(directory) / f"{stem}.png", caption_strip(pixels, words, alphas, scale)))
    for path, picture in pictures:
        atomic_write(path, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
    return [path for path, _ in pictures]
