"""Reading images with Pillow into the size and channel count a captioner reads.

A model reads images of one size (``image.height`` x ``image.width``) with ``image.channels``
channels (1: grayscale, 3: RGB). An image of another size is resized (bilinear, aspect ratio not
kept) and one of another mode is converted, each with a note; a missing, unreadable or non-image
file is a :class:`UserError` naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from attnkit.errors import UserError

log = logging.getLogger(__name__)

MODES = {1: "L", 3: "RGB"}
MODE_NAMES = {"L": "grayscale", "RGB": "RGB", "RGBA": "RGBA", "P": "palette", "1": "black-and-white",
              "LA": "grayscale+alpha", "CMYK": "CMYK", "I": "32-bit grayscale", "I;16": "16-bit grayscale",
              "F": "float grayscale"}


def open_image(path: str | Path) -> Image.Image:
    """The decoded image at ``path``; a missing, unreadable or non-image file is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file (Pillow cannot identify it)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f"{path}: unreadable image ({err})") from None


def fit_image(img: Image.Image, height: int, width: int, channels: int) -> tuple[np.ndarray, str | None]:
    """(height, width, channels) uint8 pixels, and a note saying what was converted (None if nothing)."""
    notes = []
    mode = MODES[channels]
    if img.mode != mode:
        notes.append(f"converted from {MODE_NAMES.get(img.mode, img.mode)} to {MODE_NAMES[mode]}")
        if img.mode in ("I", "I;16", "F"):  # wide grayscale: scale to 0..255 before the 8-bit conversion
            a = np.asarray(img, dtype=np.float64)
            span = a.max() - a.min()
            img = Image.fromarray(((a - a.min()) * (255.0 / span if span else 0.0)).astype(np.uint8))
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))  # transparent parts become black
            img = Image.alpha_composite(background, img)
        img = img.convert(mode)
    if img.size != (width, height):
        notes.append(f"resized from {img.size[0]}x{img.size[1]} to {width}x{height}")
        img = img.resize((width, height), Image.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8).reshape(height, width, channels)
    return pixels, ("; ".join(notes) if notes else None)


def load_image(path: str | Path, height: int, width: int, channels: int) -> tuple[np.ndarray, str | None]:
    """Open, convert and resize: (height, width, channels) uint8 and the note of :func:`fit_image`."""
    return fit_image(open_image(path), height, width, channels)


def to_tensor(pixels: list[np.ndarray]) -> Tensor:
    """(H, W, C) uint8 arrays -> (B, C, H, W) float in [0, 1]."""
    batch = torch.from_numpy(np.stack(pixels))  # (B, H, W, C)
    return batch.permute(0, 3, 1, 2).float().div_(255.0)  # (B, C, H, W)


class ImageFolder:
    """Images of a caption set, read from disk when a batch needs them. The first conversion is
    logged in full; later ones only add to ``converted`` (real sets mix sizes and modes)."""

    def __init__(self, folder: Path, names: list[str], height: int, width: int, channels: int):
        self.folder, self.names = Path(folder), names
        self.height, self.width, self.channels = height, width, channels
        self.converted = 0

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        pixels, note = load_image(self.folder / self.names[i], self.height, self.width, self.channels)
        if note is not None:
            if not self.converted:
                log.info("%s: %s (images of another size or mode are converted the same way; not repeated)",
                         self.folder / self.names[i], note)
            self.converted += 1
        return pixels
