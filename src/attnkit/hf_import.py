"""A MarianMT translator of Hugging Face transformers (the ~1,500 OPUS-MT models) as an attnkit model
directory (``attnkit import hf``).

Marian's Transformer is the paper's, post-norm, with options attnkit's Transformer has
(``model.activation``, ``scale_embeddings``, ``output_bias``); two differences are mapped, exactly:

- **The positional table.** Marian puts the sines in the first half of the model dimension and the
  cosines in the second; attnkit interleaves them (sine at 2i, cosine at 2i+1). A permutation P of
  the model dimension turns one into the other, and the whole network commutes with it: the
  residual stream, the embeddings and every LayerNorm are permuted by P, every matrix that reads
  the stream has its columns permuted, every one that writes it its rows. Attention scores and the
  feed-forward hidden layer read the stream through those matrices only, so nothing else changes.
- **The vocabulary.** Marian numbers ``</s>`` 0, ``<unk>`` 1 and ``<pad>`` last, and starts the
  decoder with ``<pad>``; attnkit's ids are ``<pad> <unk> <s> </s>`` then the rest. The embedding
  rows (and the output layer's rows and bias) are reordered: attnkit's ``<s>`` is Marian's decoder
  start, its ``<pad>`` a copy of Marian's pad row (never read: padding is masked). The tokenizers
  are Marian's SentencePiece models with the reordered piece list (``vocab.level: spm_vocab``).

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

import torch
from torch import Tensor, nn

from attnkit.errors import UserError
from attnkit.specials import SPECIALS

log = logging.getLogger(__name__)

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "silu", "silu": "silu"}
# what a MarianConfig may say that attnkit's Transformer cannot compute (config fields of the
# BART family that Marian's code ignores, but a hand-edited or mislabelled config may set)
UNSUPPORTED = ("normalize_before", "add_final_layer_norm", "normalize_embedding", "layernorm_embedding")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("transformers is not installed: pip install transformers "
                        "(or pip install -e '.[hf]')") from None
    return transformers


def half_to_interleaved(d: int) -> Tensor:
    """P: attnkit's dimension k reads Marian's dimension P[k] (sine j at 2j, cosine j at 2j+1)."""
    return torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).reshape(d)  # (d,)


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


class WeightMap:
    """Copies Marian's weights into attnkit's modules, reordering vocabulary rows and the model dimension."""

    def __init__(self, d_model: int):
        self.P = half_to_interleaved(d_model)

    @torch.no_grad()
    def linear(self, dst: nn.Linear, src: nn.Linear, reads: bool, writes: bool) -> None:
        """``reads``: its input is the residual stream (permute columns); ``writes``: its output is (rows)."""
        w = src.weight
        w = w[:, self.P] if reads else w
        dst.weight.copy_(w[self.P] if writes else w)
        dst.bias.copy_(src.bias[self.P] if writes else src.bias)

    @torch.no_grad()
    def norm(self, dst: nn.LayerNorm, src: nn.LayerNorm) -> None:
        if abs(dst.eps - src.eps) > 1e-12:
            raise UserError(f"LayerNorm epsilon {src.eps}; attnkit's is {dst.eps}")
        dst.weight.copy_(src.weight[self.P])
        dst.bias.copy_(src.bias[self.P])

    def attention(self, dst: nn.Module, src: nn.Module) -> None:
        for ours, theirs in (("W_Q", "q_proj"), ("W_K", "k_proj"), ("W_V", "v_proj")):
            self.linear(getattr(dst, ours), getattr(src, theirs), reads=True, writes=False)
        self.linear(dst.W_O, src.out_proj, reads=False, writes=True)

    def feed_forward(self, dst: nn.Module, layer: nn.Module) -> None:
        self.linear(dst.W_1, layer.fc1, reads=True, writes=False)
        self.linear(dst.W_2, layer.fc2, reads=False, writes=True)

    @torch.no_grad()
    def rows(self, dst: Tensor, src: Tensor, order: list[int]) -> None:
        """A (vocabulary, d_model) table: rows in attnkit's id order, columns permuted."""
        dst.copy_(src[torch.tensor(order)][:, self.P])

    def positions(self, table: Tensor, ours: Tensor, source: str) -> None:
        """Marian's table, permuted, must be attnkit's sinusoid (else the model is not what attnkit computes)."""
        gap = (table[: len(ours)][:, self.P] - ours[: len(table)]).abs().max().item()
        if gap > 1e-4:
            raise UserError(f"{source}: its position table is not the sinusoid (max difference {gap:.3g}); "
                            "attnkit imports Marian's static sinusoidal positions only")


def copy_weights(model: nn.Module, hf, src_order: list[int], tgt_order: list[int], source: str) -> None:
    """Fill attnkit's ``Seq2Seq`` ``model`` from the MarianMTModel ``hf``."""
    m, c = hf.model, hf.config
    wm = WeightMap(c.d_model)
    enc, dec = model.encoder, model.decoder
    wm.positions(m.encoder.embed_positions.weight.float(), enc.embed.positions.table, source)
    wm.rows(enc.embed.token.weight, m.encoder.embed_tokens.weight, src_order)
    if dec.embed is not enc.embed:
        wm.rows(dec.embed.token.weight, m.decoder.embed_tokens.weight, tgt_order)
    for ours, theirs in zip(enc.layers, m.encoder.layers):
        wm.attention(ours.self_attn, theirs.self_attn)
        wm.norm(ours.sub_attn.norm, theirs.self_attn_layer_norm)
        wm.feed_forward(ours.ff, theirs)
        wm.norm(ours.sub_ff.norm, theirs.final_layer_norm)
    for ours, theirs in zip(dec.layers, m.decoder.layers):
        wm.attention(ours.self_attn, theirs.self_attn)
        wm.norm(ours.sub_self.norm, theirs.self_attn_layer_norm)
        wm.attention(ours.cross_attn, theirs.encoder_attn)
        wm.norm(ours.sub_cross.norm, theirs.encoder_attn_layer_norm)
        wm.feed_forward(ours.ff, theirs)
        wm.norm(ours.sub_ff.norm, theirs.final_layer_norm)
    if dec.W_out.weight is not dec.embed.token.weight:
        wm.rows(dec.W_out.weight, hf.lm_head.weight, tgt_order)
    with torch.no_grad():
        dec.W_out.bias.copy_(hf.final_logits_bias[0, torch.tensor(tgt_order)])


def import_hf(source: str, out: str | Path) -> Path:
    """Write the attnkit model directory ``out`` (which must not exist yet) of the MarianMT model
    ``source``: a local transformers directory, or a Hub name (downloaded by transformers when the Hub
    is reachable). Written beside ``out`` and renamed into place, so ``out`` is whole or absent."""
    from attnkit.build import build_model
    from attnkit.checkpoint import save_checkpoint
    from attnkit.config import dump_config, parse_config
    from attnkit.data.vocab import PieceListTokenizer, save_tokenizer
    from attnkit.model_dir import CONFIG, WEIGHTS

    out = Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists; import writes a new directory")
    transformers = _transformers()
    start = time.monotonic()
    try:
        hf_cfg = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UserError(f"{source}: not a transformers model directory or a Hub model that can be reached "
                        f"({str(err).splitlines()[0]})") from None
    check_config(hf_cfg, source)
    hf = transformers.MarianMTModel.from_pretrained(source).float().eval()
    tok = transformers.MarianTokenizer.from_pretrained(source)
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
    copy_weights(model, hf, src_order, tgt_order, source)
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
        save_checkpoint(scratch / WEIGHTS, model, {"step": 0, "imported_from": str(source)})
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    log.info("imported %s (%s parameters) into %s in %.1f s", source, f"{params:,}", out, summary["import_seconds"])
    return out
