"""Tiny transformers models made here, offline, for the HF interop tests: a MarianMT with random
weights and SentencePiece models trained on a few hundred Multi30k lines, laid out as the OPUS-MT
models on the Hub are (vocab.json shared by two SentencePiece models, ``</s>`` 0, ``<unk>`` 1,
``<pad>`` last and the decoder's start token)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import sentencepiece as spm
import torch

DATA = Path(__file__).resolve().parents[1] / "src" / "attnkit" / "resources" / "multi30k"


def multi30k(split: str, lang: str, n: int) -> list[str]:
    with gzip.open(DATA / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return [next(f).strip() for _ in range(n)]


def marian_spm(lines: list[str], size: int) -> bytes:
    """A SentencePiece model as Marian's: <unk> 0, <s> 1, </s> 2, no pad."""
    buf = io.BytesIO()
    spm.set_random_generator_seed(1)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=size,
                                   model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    return buf.getvalue()


def train(model, tok, src: list[str], tgt: list[str], steps: int, batch: int = 32) -> None:
    """A few Adam updates in transformers, on batches of the pairs in turn."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        first = step * batch % len(src)
        enc = tok(src[first : first + batch], text_target=tgt[first : first + batch], padding=True,
                  return_tensors="pt")
        enc["labels"][enc["labels"] == tok.pad_token_id] = -100
        model(**enc).loss.backward()
        opt.step()
        opt.zero_grad()


def tiny_marian(out: Path, *, activation: str = "swish", d_model: int = 32, layers: int = 2, heads: int = 4,
                ffn: int = 64, lines: int = 100, seed: int = 0, steps: int = 400, **overrides) -> Path:
    """Save a MarianMT en-de to ``out`` with ``save_pretrained`` and return ``out``: random weights,
    then ``steps`` Adam updates of transformers' own training on the first ``lines`` training pairs
    (64 epochs by default), so that what it says depends on the source and ends, in broken German (a
    random model repeats one token to the length limit). Its output bias (``final_logits_bias``, a
    buffer transformers does not train) is random."""
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    src = marian_spm(multi30k("train", "en", lines), 200)
    tgt = marian_spm(multi30k("train", "de", lines), 220)
    pieces = ["</s>", "<unk>"]
    for proto in (src, tgt):
        sp = spm.SentencePieceProcessor(model_proto=proto)
        pieces += [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                   if not sp.is_control(i) and not sp.is_unknown(i)]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    vocab["<pad>"] = len(vocab)
    work = out / "tokenizer-files"
    work.mkdir(exist_ok=True)
    (work / "source.spm").write_bytes(src)
    (work / "target.spm").write_bytes(tgt)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = MarianTokenizer(str(work / "source.spm"), str(work / "target.spm"), str(work / "vocab.json"),
                          source_lang="en", target_lang="de")
    pad = vocab["<pad>"]
    settings = dict(vocab_size=len(vocab), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                    encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                    decoder_ffn_dim=ffn, activation_function=activation, max_position_embeddings=128,
                    pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
                    scale_embedding=True, share_encoder_decoder_embeddings=True, dropout=0.1,
                    attention_dropout=0.0, activation_dropout=0.0)
    settings.update(overrides)
    torch.manual_seed(seed)
    model = MarianMTModel(MarianConfig(**settings))
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 0.5)
    train(model, tok, multi30k("train", "en", lines), multi30k("train", "de", lines), steps)
    model.eval()
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]], decoder_start_token_id=pad, eos_token_id=0, pad_token_id=pad,
        forced_eos_token_id=0, max_length=128, num_beams=4)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
