"""The captioning task's sections: where images and captions come from, the image size the model
reads, training and decoding additions. The model sections (``show_attend_tell``,
``caption_transformer``) are in ``config/models.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from attnkit.config.base import MAX_BEAM, MAX_TOKENS
from attnkit.config.sections import Section, TrainingConfig

DATA_SOURCES = ("digits", "files")  # the tags of the data union (config error messages drop them)


class DigitScenesData(Section):
    """The embedded default: scenes composed from real handwritten digits (``data/digit_scenes.py``)."""

    source: Literal["digits"] = "digits"
    digits: str = Field("attnkit:uci_digits/digits.csv.gz", description="the UCI digits CSV")
    seed: int = Field(0, description="scenes and the split of the digit images follow from it")
    min_digits: int = Field(1, ge=1, le=4)
    max_digits: int = Field(4, ge=1, le=4)
    train_scenes: int = Field(50_000, ge=1, le=10_000_000)
    valid_scenes: int = Field(500, ge=1, le=10_000_000)
    test_scenes: int = Field(1000, ge=1, le=10_000_000)
    digit_split: list[float] = Field([0.7, 0.15, 0.15], description="fractions of the 1797 digit images "
                                     "for train, valid and test scenes (disjoint)")
    max_len: int = Field(40, ge=2, le=MAX_TOKENS, description="longest caption in words")

    @field_validator("max_digits")
    @classmethod
    def _order(cls, max_digits: int, info) -> int:
        if max_digits < info.data.get("min_digits", 1):
            raise ValueError(f"max_digits ({max_digits}) is below min_digits ({info.data['min_digits']})")
        return max_digits

    @field_validator("digit_split")
    @classmethod
    def _fractions(cls, split: list[float]) -> list[float]:
        if len(split) != 3 or min(split) <= 0 or abs(sum(split) - 1.0) > 1e-6:
            raise ValueError("expected three positive fractions (train, valid, test) that sum to 1")
        return split


class CaptionSplit(Section):
    captions: str = Field(description="Flickr8k token file (IMAGE#N<TAB>CAPTION) or COCO captions JSON")
    images: str = Field(description="the folder the captions file's image names are relative to")
    split: str | None = Field(None, description="a file naming this split's images, one per line")


class CaptionFilesData(Section):
    """Real caption sets: an image folder and a captions file (``data/captions.py``)."""

    source: Literal["files"]
    layout: Literal["auto", "flickr8k", "coco"] = "auto"
    train: CaptionSplit
    valid: CaptionSplit
    test: CaptionSplit | None = None
    max_len: int = Field(50, ge=2, le=MAX_TOKENS,
                         description="training captions longer than this (in words) are skipped")


class ImageConfig(Section):
    """What the model reads: every image is resized to height x width and converted to grayscale
    (channels 1) or RGB (channels 3), with a note."""

    height: int = Field(48, ge=8, le=4096)
    width: int = Field(48, ge=8, le=4096)
    channels: Literal[1, 3] = 1


class CaptionTrainingConfig(TrainingConfig):
    batch_size: int = Field(32, ge=1, le=1 << 16, description="images per batch (batch_tokens is not used)")
    doubly_stochastic: float = Field(1.0, ge=0.0, description="lambda of the attention regulariser "
                                     "lambda * sum_i (1 - sum_t alpha_ti)^2 (Xu et al. 2015); 0: off")


class CaptionDecodingConfig(Section):
    beam: int = Field(3, ge=1, le=MAX_BEAM)
    length_penalty: float = Field(1.0, ge=0.0, description="alpha of ((5+len)/6)^alpha; 0: raw log-probs")
    max_len: int = Field(40, ge=1, le=MAX_TOKENS, description="longest caption generated, in tokens")
    min_len: int = Field(1, ge=0, le=MAX_TOKENS)
    batch_size: int = Field(64, ge=1, le=1 << 16, description="images per batch when captioning")
