"""A trained Transformer translation model as a CTranslate2 model (``attnkit export``).

CTranslate2 (https://opennmt.net/CTranslate2) is an inference engine for Transformers; its Python
``specs`` API takes an encoder-decoder by named weights. attnkit's Transformer maps onto its
``TransformerSpec`` one to one:

==========================================  ===============================================
attnkit                                     CTranslate2
==========================================  ===============================================
Embed(x) * sqrt(d_model) (or 1) + PE[pos]   embeddings, scale_embeddings, position_encodings
W_Q, W_K, W_V of self-attention             one fused projection, rows [Q; K; V]
W_Q / W_K, W_V of encoder-decoder attn      linear_0 / one fused [K; V] projection
pre- or post-norm sublayers, final norm     pre_norm, layer_norm (epsilon 1e-5)
FFN activation relu / gelu / silu           activation RELU / GELU / SWISH
W_out (tied or not), its bias if any        projection
==========================================  ===============================================

Positional encodings are exported as a table (sinusoidal or learned: attnkit interleaves sine
and cosine, CTranslate2's own table does not). The source gets ``</s>`` appended by
CTranslate2 itself (``add_source_eos``), as attnkit does, so the exported model reads plain
SentencePiece pieces. The output directory also holds attnkit's ``config.yaml`` and tokenizers,
so ``attnkit translate OUT --engine ctranslate2`` reads it like a model directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from attnkit.digests import check_digests, digests
from attnkit.errors import UserError

QUANTIZATIONS = ("float32", "int8", "int8_float32", "float16", "bf16")
CT2_MODEL = "model.bin"  # the file CTranslate2 writes, the mark of an exported directory
CHECKSUMS = "checksums.json"  # SHA-256 of every file of an export, checked before it is read


def _ct2():
    try:
        import ctranslate2
    except ImportError:
        raise UserError("CTranslate2 is not installed: pip install ctranslate2 "
                        "(or pip install -e '.[export]')") from None
    return ctranslate2


def _numpy(*tensors: Tensor):
    """One float32 array of the tensors stacked along rows (a fused projection)."""
    return torch.cat([t.detach().float().cpu() for t in tensors], dim=0).numpy()


def _linear(spec, *layers: nn.Linear) -> None:
    """``spec`` <- the layers' weights (and biases) stacked along the output rows."""
    spec.weight = _numpy(*(layer.weight for layer in layers))
    if layers[0].bias is not None:
        spec.bias = _numpy(*(layer.bias for layer in layers))


def _norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _numpy(norm.weight), _numpy(norm.bias)


def _self_attention(spec, norm: nn.LayerNorm, attn: nn.Module) -> None:
    """A self-attention sublayer: its norm, one fused [Q; K; V] projection, and W_O."""
    _norm(spec.layer_norm, norm)
    _linear(spec.linear[0], attn.W_Q, attn.W_K, attn.W_V)
    _linear(spec.linear[1], attn.W_O)


def _feed_forward(spec, norm: nn.LayerNorm, ff: nn.Module) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ff.W_1)
    _linear(spec.linear_1, ff.W_2)


def _positions(embed) -> Tensor:
    positions = embed.positions
    return positions.table if hasattr(positions, "table") else positions.embedding.weight  # (P, d)


def _embeddings(spec, embed, embeddings_spec) -> None:
    embeddings_spec.weight = _numpy(embed.token.weight)
    spec.scale_embeddings = embed.scale != 1.0  # CTranslate2's scale is sqrt(d_model), as attnkit's
    spec.position_encodings.encodings = _numpy(_positions(embed))


def transformer_spec(model: nn.Module, pre_norm: bool, num_heads: int, activation: str = "relu"):
    """The ``TransformerSpec`` of an attnkit Transformer ``Seq2Seq``, weights filled in."""
    specs = _ct2().specs
    act = {"relu": specs.Activation.RELU, "gelu": specs.Activation.GELU, "silu": specs.Activation.SWISH}[activation]
    enc, dec = model.encoder, model.decoder
    spec = specs.TransformerSpec.from_config((len(enc.layers), len(dec.layers)), num_heads, pre_norm=pre_norm,
                                             activation=act)
    spec.config.layer_norm_epsilon = enc.layers[0].sub_attn.norm.eps
    spec.config.add_source_eos = True

    _embeddings(spec.encoder, enc.embed, spec.encoder.embeddings[0])
    for layer, ls in zip(enc.layers, spec.encoder.layer):
        _self_attention(ls.self_attention, layer.sub_attn.norm, layer.self_attn)
        _feed_forward(ls.ffn, layer.sub_ff.norm, layer.ff)
    if pre_norm:
        _norm(spec.encoder.layer_norm, enc.final_norm)

    _embeddings(spec.decoder, dec.embed, spec.decoder.embeddings)
    for layer, ls in zip(dec.layers, spec.decoder.layer):
        _self_attention(ls.self_attention, layer.sub_self.norm, layer.self_attn)
        c = layer.cross_attn  # queries from the decoder; keys and values of the encoder's output, fused
        _norm(ls.attention.layer_norm, layer.sub_cross.norm)
        _linear(ls.attention.linear[0], c.W_Q)
        _linear(ls.attention.linear[1], c.W_K, c.W_V)
        _linear(ls.attention.linear[2], c.W_O)
        _feed_forward(ls.ffn, layer.sub_ff.norm, layer.ff)
    if pre_norm:
        _norm(spec.decoder.layer_norm, dec.final_norm)
    _linear(spec.decoder.projection, dec.W_out)
    return spec


def export_ctranslate2(model_dir: str | Path, out: str | Path, quantization: str = "float32") -> Path:
    """Write the CTranslate2 model of the Transformer translation model in ``model_dir`` to ``out``
    (which must not exist yet): ``model.bin``, its vocabularies, and attnkit's config and tokenizers.
    Written beside ``out`` and renamed into place, so ``out`` is whole or absent."""
    from attnkit.build import build_model
    from attnkit.data.vocab import load_tokenizer, tokenizer_files
    from attnkit.model_dir import CONFIG, load_best_weights, open_model_dir

    if quantization not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantization!r}: one of {', '.join(QUANTIZATIONS)}")
    path, cfg = open_model_dir(model_dir, "translation", "a translation model")
    if cfg.model.arch != "transformer":
        raise UserError(f"{path}: holds an {cfg.model.arch.upper()} model; CTranslate2 has no RNN decoder, "
                        "only Transformer models can be exported")
    if cfg.model.norm == "none" or not cfg.model.residual:
        raise UserError(f"{path}: model.{'norm: none' if cfg.model.norm == 'none' else 'residual: false'} is not "
                        "exportable (CTranslate2's Transformer has its LayerNorms and residual connections)")
    out = Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists; export writes a new directory")
    _ct2()  # before the work: the one-line error when it is missing
    src_tok = load_tokenizer(path, "src", cfg.vocab.level)
    tgt_tok = load_tokenizer(path, "tgt", cfg.vocab.level)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok))
    load_best_weights(model, path)
    spec = transformer_spec(model.eval(), cfg.model.norm == "pre", cfg.model.num_heads, cfg.model.activation)
    spec.register_source_vocabulary(_vocabulary(src_tok, path, "src"))
    spec.register_target_vocabulary(_vocabulary(tgt_tok, path, "tgt"))
    spec.validate()
    spec.optimize(quantization={"float32": None, "bf16": "bfloat16"}.get(quantization, quantization))

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        spec.save(str(scratch))
        for file in [path / CONFIG, *tokenizer_files(path, "src", cfg.vocab.level),
                     *tokenizer_files(path, "tgt", cfg.vocab.level)]:
            shutil.copyfile(file, scratch / file.name)
        names = [f.name for f in scratch.iterdir() if f.is_file()]
        (scratch / CHECKSUMS).write_text(json.dumps(digests(scratch, names), indent=2) + "\n", encoding="utf-8")
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out


def _vocabulary(tok, path: Path, name: str) -> list[str]:
    """The tokenizer's pieces in id order; CTranslate2 maps strings to ids, so they must be distinct."""
    pieces = tok.pieces(range(len(tok)))
    if len(set(pieces)) != len(pieces):
        raise UserError(f"{path}: the {name} vocabulary has repeated pieces, which CTranslate2 cannot tell apart")
    return pieces


def check_export(path: Path) -> None:
    """Refuse an export whose files differ from the checksums ``export`` wrote (a truncated model.bin,
    a cut vocabulary, a changed config.json), before CTranslate2 or a tokenizer reads them."""
    listed = path / CHECKSUMS
    if not listed.is_file():
        raise UserError(f"{path}: {CHECKSUMS} is missing, so its files cannot be checked (not written by "
                        "attnkit export, or before exports carried checksums); export the model again")
    try:
        recorded = json.loads(listed.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UserError(f"{listed}: damaged, not JSON; export the model again") from None
    check_digests(path, recorded, str(listed))


def load_ctranslate2(path: Path, device: torch.device):
    """CTranslate2's translator of an exported directory (checked first), on ``device``, with torch's
    thread count."""
    ct2 = _ct2()
    try:
        return ct2.Translator(str(path), device=device.type, device_index=device.index or 0,
                              intra_threads=torch.get_num_threads() if device.type == "cpu" else 0)
    except (RuntimeError, ValueError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: CTranslate2 cannot read this export ({reason[:200]})") from None
