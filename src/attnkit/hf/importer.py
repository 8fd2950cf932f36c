"""A MarianMT translator of Hugging Face transformers (the ~1,500 OPUS-MT models) as an attnkit model
directory (``attnkit import hf``).

Marian's Transformer is the paper's, post-norm, with options attnkit's Transformer has
(``model.activation``, ``scale_embeddings``, ``output_bias``). Its sinusoid's layout and its
vocabulary's order differ, and ``weights.py`` maps both exactly. attnkit's ``<s>`` is Marian's
decoder start (its ``<pad>``), attnkit's ``<pad>`` a copy of that row (never read: padding is
masked). The tokenizers are Marian's SentencePiece models with the reordered piece list
(``vocab.level: spm_vocab``).

The result holds config.yaml, the tokenizers, model.safetensors and summary.json (which names the
source), so every command reads it as a model attnkit trained.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from attnkit.errors import UserError
from attnkit.hf import require_transformers
from attnkit.hf.weights import check_positions, into_attnkit
from attnkit.specials import SPECIALS

log = logging.getLogger(__name__)

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "silu", "silu": "silu"}
# what a MarianConfig may say that attnkit's Transformer cannot compute (config fields of the
# BART family that Marian's code ignores, but a hand-edited or mislabelled config may set)
UNSUPPORTED = ("normalize_before", "add_final_layer_norm", "normalize_embedding", "layernorm_embedding")


def check_config(c, source: str) -> None:
    """One-line errors for what attnkit's Transformer cannot represent, naming the field."""
    if c.model_type != "marian":
        raise UserError(f"{source}: a {c.model_type} model; attnkit imports MarianMT translators (model_type marian)")
    for field in UNSUPPORTED:
        if getattr(c, field, False):
            raise UserError(f"{source}: {field} is set; attnkit's Transformer has no such norm")
    pairs = (("encoder_ffn_dim", "decoder_ffn_dim", "ff_dim"),
             ("encoder_attention_heads", "decoder_attention_heads", "num_heads"))
    for enc, dec, ours in pairs:
        if getattr(c, enc) != getattr(c, dec):
            raise UserError(f"{source}: {enc} ({getattr(c, enc)}) and {dec} ({getattr(c, dec)}) differ; attnkit's "
                            f"Transformer has one {ours}")
    if c.activation_function not in ACTIVATIONS:
        raise UserError(f"{source}: activation_function {c.activation_function!r}; attnkit's feed-forward has "
                        f"{', '.join(sorted(ACTIVATIONS))}")
    if c.d_model % 2:
        raise UserError(f"{source}: d_model {c.d_model} is odd; the sinusoidal table needs it even")
    if c.d_model % c.encoder_attention_heads:
        raise UserError(f"{source}: d_model {c.d_model} is not divisible by {c.encoder_attention_heads} heads")


def attnkit_config(c, generation) -> dict:
    """The config.yaml of the imported model."""
    shared = bool(getattr(c, "share_encoder_decoder_embeddings", True))
    model = {"arch": "transformer", "d_model": c.d_model, "num_heads": c.encoder_attention_heads,
             "ff_dim": c.encoder_ffn_dim, "encoder_layers": c.encoder_layers, "decoder_layers": c.decoder_layers,
             "dropout": c.dropout, "attention_dropout": c.attention_dropout, "positional": "sinusoidal",
             "norm": "post", "max_positions": c.max_position_embeddings,
             "tie_embeddings": bool(c.tie_word_embeddings), "share_src_tgt_embeddings": shared,
             "activation": ACTIVATIONS[c.activation_function], "scale_embeddings": bool(c.scale_embedding),
             "output_bias": True}
    decoding = {"beam": int(getattr(generation, "num_beams", None) or 4)}
    return {"task": "translation", "data": None, "vocab": {"level": "spm_vocab", "joint": shared}, "model": model,
            "decoding": decoding}


def vocabulary_order(piece_of: dict[int, str], size: int, unk: int, start: int, eos: int, pad: int,
                     source: str) -> tuple[list[int], list[str]]:
    """attnkit's ids as Marian ids (``order[i]`` is the Marian id of attnkit's id i) and their pieces."""
    rest = [i for i in range(size) if i not in {unk, start, eos, pad}]
    pieces = [piece_of.get(i, f"<unused{i}>") for i in rest]
    clash = set(pieces) & set(SPECIALS)
    if clash:
        raise UserError(f"{source}: the vocabulary has {sorted(clash)[0]!r} as an ordinary piece, which attnkit "
                        "keeps for its special tokens")
    return [pad, unk, start, eos, *rest], SPECIALS + pieces


def import_hf(source: str, out: str | Path) -> Path:
    """Write the attnkit model directory ``out`` (which must not exist yet) of the MarianMT model
    ``source``: a local transformers directory, or a Hub name (downloaded by transformers when the Hub
    is reachable). Written beside ``out`` and renamed into place, so ``out`` is whole or absent."""
    from attnkit.build import build_model
    from attnkit.checkpoint import save_checkpoint
    from attnkit.config import dump_config, parse_config
    from attnkit.data.vocab import PieceListTokenizer, save_tokenizer
    from attnkit.digests import digests
    from attnkit.model_dir import CONFIG, WEIGHTS, architecture, read_files

    out = Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists; import writes a new directory")
    transformers = require_transformers()
    start = time.monotonic()
    try:
        hf_cfg = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UserError(f"{source}: not a transformers model directory or a Hub model that can be reached "
                        f"({str(err).splitlines()[0]})") from None
    check_config(hf_cfg, source)
    try:
        hf = transformers.MarianMTModel.from_pretrained(source).float().eval()
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"{source}: its weights do not load ({str(err).splitlines()[0]})") from None
    try:
        tok = transformers.MarianTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError, KeyError, AssertionError) as err:
        raise UserError(f"{source}: no Marian SentencePiece tokenizer (source.spm, target.spm, vocab.json: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}); attnkit imports "
                        "SentencePiece vocabularies only") from None
    generation = getattr(hf, "generation_config", None)

    start_id = hf_cfg.decoder_start_token_id
    specials = dict(unk=tok.unk_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)
    src_pieces = {i: p for p, i in tok.encoder.items()}
    tgt_pieces = {i: p for p, i in tok.target_encoder.items()} if tok.separate_vocabs else src_pieces
    src_order, src_list = vocabulary_order(src_pieces, hf_cfg.vocab_size, start=specials["pad"], source=source,
                                           **specials)
    tgt_order, tgt_list = vocabulary_order(tgt_pieces, hf_cfg.decoder_vocab_size, start=start_id, source=source,
                                           **specials)
    bad = [p for p in src_list + tgt_list if "\n" in p]
    if bad:
        raise UserError(f"{source}: the vocabulary has a piece with a line break ({bad[0]!r})")
    spm_files = [Path(f) for f in tok.spm_files]
    src_tok = PieceListTokenizer(spm_files[0].read_bytes(), src_list)
    tgt_tok = PieceListTokenizer(spm_files[1].read_bytes(), tgt_list)

    cfg = parse_config(attnkit_config(hf_cfg, generation), source=f"{source} (imported)")
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    check_positions(hf.model.encoder.embed_positions.weight.float(), model.encoder.embed.positions.table, source)
    into_attnkit(model, hf, {"src": src_order, "tgt": tgt_order})
    params = sum(p.numel() for p in model.parameters())
    summary = {"imported_from": str(source), "architecture": "MarianMTModel",
               "transformers_version": transformers.__version__, "params": params,
               "import_seconds": round(time.monotonic() - start, 2),
               "notes": "imported weights, not trained by attnkit; Marian's activation_dropout "
                        f"({hf_cfg.activation_dropout}) has no attnkit counterpart: fine-tuning drops the "
                        "feed-forward hidden layer with model.dropout"}

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (scratch / CONFIG).write_text(dump_config(cfg), encoding="utf-8")
        save_tokenizer(src_tok, scratch, "src")
        save_tokenizer(tgt_tok, scratch, "tgt")
        save_checkpoint(scratch / WEIGHTS, model, {"step": 0, "imported_from": str(source),
                                                   "architecture": architecture(cfg.model),
                                                   "files": digests(scratch, read_files(scratch))})
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    log.info("imported %s (%s parameters) into %s in %.1f s", source, f"{params:,}", out, summary["import_seconds"])
    return out
