"""A trained model directory, loaded and ready to translate.

A model directory holds ``config.yaml``, the tokenizers (``src.*``, ``tgt.*``) and
``model.safetensors``; :func:`load_model_dir` checks each and says what is missing or wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from attnkit.build import build_model
from attnkit.config import TranslationConfig
from attnkit.data.batching import inference_batches, pad
from attnkit.data.vocab import Tokenizer, load_tokenizer
from attnkit.decoding.search import beam_search, greedy, max_lengths
from attnkit.errors import UserError
from attnkit.model_dir import load_best_weights, open_model_dir
from attnkit.models import Seq2Seq
from attnkit.runtime import autocast, device_of, pick_device, to_device
from attnkit.specials import EOS

log = logging.getLogger(__name__)


@dataclass
class Translation:
    text: str
    score: float
    tokens: list[int]


class Translator:
    def __init__(self, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer, cfg: TranslationConfig):
        self.model, self.src_tok, self.tgt_tok, self.cfg = model.eval(), src_tok, tgt_tok, cfg

    def encode_source(self, line: str, line_no: int | None = None) -> list[int]:
        """Token ids (EOS-terminated), cut to the model's limit with a warning."""
        ids = self.src_tok.encode(line) + [EOS]
        limit = self.model.max_positions
        if limit is not None and len(ids) > limit:
            where = f"line {line_no}: " if line_no is not None else ""
            log.warning("%ssource has %d tokens, more than the model's limit of %d: translating the first %d",
                        where, len(ids), limit, limit - 1)
            ids = ids[: limit - 1] + [EOS]
        return ids

    @torch.no_grad()
    def translate(self, lines: list[str], beam: int | None = None, nbest: int = 1, batch_size: int | None = None,
                  progress: Iterable | None = None) -> list[list[Translation]]:
        """Translate every line (an empty line gives an empty translation); best first, ``nbest`` each."""
        d = self.cfg.decoding
        beam, batch_size = beam or d.beam, batch_size or d.batch_size
        if nbest > beam:
            raise UserError(f"nbest {nbest} cannot exceed the beam size {beam}")
        encoded = [self.encode_source(line, i + 1) if line.strip() else None for i, line in enumerate(lines)]
        todo = [i for i, ids in enumerate(encoded) if ids is not None]
        results: list[list[Translation]] = [[Translation("", 0.0, [])] * nbest for _ in lines]
        device = device_of(self.model)
        for batch in inference_batches([len(encoded[i]) for i in todo], batch_size):
            rows = [todo[j] for j in batch]
            src = to_device(pad([encoded[i] for i in rows]), device)
            limit = max_lengths(src, d.max_len_a, d.max_len_b, self.model.max_positions)
            with autocast(self.cfg.training.precision, device):
                if beam == 1:
                    hyps = greedy(self.model, src, limit, d.min_len)
                else:
                    hyps = beam_search(self.model, src, beam, limit, d.length_penalty, nbest, d.min_len)
            for i, sent in zip(rows, hyps):
                out = [Translation(self.tgt_tok.decode(h.tokens), h.score, h.tokens) for h in sent]
                results[i] = (out + [Translation("", float("-inf"), [])] * nbest)[:nbest]
            if progress is not None:
                progress.update(len(rows))
        return results


def load_model_dir(path: str | Path, device: str = "auto") -> Translator:
    """The translator of a model directory, on ``device`` (auto: the GPU when there is one)."""
    where = pick_device(device)
    path, cfg = open_model_dir(path, "translation", "a translation model")
    src_tok = load_tokenizer(path, "src", cfg.vocab.level)
    tgt_tok = load_tokenizer(path, "tgt", cfg.vocab.level)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    load_best_weights(model, path)
    return Translator(model.to(where), src_tok, tgt_tok, cfg)
