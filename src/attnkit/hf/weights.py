"""Which attnkit tensor is which transformers tensor, for Marian and Pegasus encoder-decoders (they
name their modules alike), and how a tensor changes on the way.

Two things differ between attnkit's Transformer and theirs, and both are exact reorderings:

- **The model dimension.** Their sinusoidal table puts the sines in the first half of the model
  dimension and the cosines in the second; attnkit interleaves them (sine i at 2i, cosine i at
  2i+1). A permutation P of the model dimension turns one into the other, and the whole network
  commutes with it: the residual stream, the embeddings and every LayerNorm are permuted by P,
  every matrix that reads the stream has its columns permuted, every one that writes it its rows
  (and its bias). Attention scores and the feed-forward hidden layer see the stream only through
  those matrices, so nothing else changes.
- **The vocabulary** (import only). Marian numbers ``</s>`` 0, ``<unk>`` 1 and ``<pad>`` last;
  attnkit's ids start ``<pad> <unk> <s> </s>``. The rows of the embeddings and of the output
  layer (and its bias) are reordered; an export keeps attnkit's ids.

Each link is (attnkit tensor, transformers tensor, kind); ``kind`` says which axes hold the model
dimension or the vocabulary: ``reads`` (columns), ``writes`` (rows, or the entries of a vector),
``same`` (neither), ``src``/``tgt`` (vocabulary rows and model columns), ``tgt_bias`` (vocabulary
entries).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnkit.errors import UserError


def half_to_interleaved(d: int) -> Tensor:
    """P: attnkit's dimension k is their dimension P[k] (sine j at 2j, cosine j at 2j+1)."""
    return torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).reshape(d)  # (d,)


def _linear(ours: nn.Linear, theirs: nn.Linear, kind: str) -> list[tuple[Tensor, Tensor, str]]:
    """A projection that reads the stream (``reads``) or writes it (``writes``), with its bias."""
    return [(ours.weight, theirs.weight, kind), (ours.bias, theirs.bias, "writes" if kind == "writes" else "same")]


def _norm(ours: nn.LayerNorm, theirs: nn.LayerNorm) -> list[tuple[Tensor, Tensor, str]]:
    if abs(ours.eps - theirs.eps) > 1e-12:
        raise UserError(f"LayerNorm epsilon {theirs.eps}; attnkit's is {ours.eps}")
    return [(ours.weight, theirs.weight, "writes"), (ours.bias, theirs.bias, "writes")]


def _attention(ours: nn.Module, theirs: nn.Module) -> list[tuple[Tensor, Tensor, str]]:
    return (_linear(ours.W_Q, theirs.q_proj, "reads") + _linear(ours.W_K, theirs.k_proj, "reads")
            + _linear(ours.W_V, theirs.v_proj, "reads") + _linear(ours.W_O, theirs.out_proj, "writes"))


def _feed_forward(ours: nn.Module, theirs: nn.Module) -> list[tuple[Tensor, Tensor, str]]:
    return _linear(ours.W_1, theirs.fc1, "reads") + _linear(ours.W_2, theirs.fc2, "writes")


def links(model: nn.Module, hf: nn.Module) -> list[tuple[Tensor, Tensor, str]]:
    """Every weight of attnkit's Transformer ``Seq2Seq`` beside its MarianMT / Pegasus counterpart."""
    m, enc, dec = hf.model, model.encoder, model.decoder
    out = [(enc.embed.token.weight, m.encoder.embed_tokens.weight, "src"),
           (dec.embed.token.weight, m.decoder.embed_tokens.weight, "tgt")]
    for ours, theirs in zip(enc.layers, m.encoder.layers, strict=True):
        out += _attention(ours.self_attn, theirs.self_attn) + _norm(ours.sub_attn.norm, theirs.self_attn_layer_norm)
        out += _feed_forward(ours.ff, theirs) + _norm(ours.sub_ff.norm, theirs.final_layer_norm)
    for ours, theirs in zip(dec.layers, m.decoder.layers, strict=True):
        out += _attention(ours.self_attn, theirs.self_attn) + _norm(ours.sub_self.norm, theirs.self_attn_layer_norm)
        out += _attention(ours.cross_attn, theirs.encoder_attn)
        out += _norm(ours.sub_cross.norm, theirs.encoder_attn_layer_norm)
        out += _feed_forward(ours.ff, theirs) + _norm(ours.sub_ff.norm, theirs.final_layer_norm)
    if isinstance(enc.final_norm, nn.LayerNorm):  # pre-norm: Pegasus's layer_norm after each stack
        out += _norm(enc.final_norm, m.encoder.layer_norm) + _norm(dec.final_norm, m.decoder.layer_norm)
    out.append((dec.W_out.weight, hf.lm_head.weight, "tgt"))
    if dec.W_out.bias is not None:
        out.append((dec.W_out.bias, hf.final_logits_bias, "tgt_bias"))
    return out


def moved(t: Tensor, kind: str, P: Tensor, orders: dict[str, Tensor]) -> Tensor:
    """``t`` with the model dimension read through ``P`` and vocabulary rows through ``orders``."""
    if kind == "reads":
        return t[:, P]
    if kind == "writes":
        return t[P]
    if kind in ("src", "tgt"):
        return t[orders[kind]][:, P] if kind in orders else t[:, P]
    if kind == "tgt_bias":
        return t[..., orders["tgt"]] if "tgt" in orders else t
    return t


@torch.no_grad()
def into_attnkit(model: nn.Module, hf: nn.Module, orders: dict[str, list[int]]) -> None:
    """Fill attnkit's ``model`` from ``hf``; ``orders[side][i]`` is the transformers id of attnkit's id i."""
    P = half_to_interleaved(hf.config.d_model)
    index = {side: torch.tensor(order) for side, order in orders.items()}
    for ours, theirs, kind in links(model, hf):
        ours.copy_(moved(theirs.detach().float(), kind, P, index).reshape(ours.shape))


@torch.no_grad()
def into_transformers(model: nn.Module, hf: nn.Module) -> None:
    """Fill ``hf`` from attnkit's ``model``, keeping attnkit's ids."""
    P_inverse = torch.argsort(half_to_interleaved(hf.config.d_model))
    for ours, theirs, kind in links(model, hf):
        theirs.copy_(moved(ours.detach().float(), kind, P_inverse, {}).reshape(theirs.shape))


def check_positions(table: Tensor, ours: Tensor, source: str) -> None:
    """Their table (P, d), read through P, must be attnkit's sinusoid: else the model is not what attnkit computes."""
    n = min(len(table), len(ours))
    gap = float((table[:n].detach()[:, half_to_interleaved(table.size(1))] - ours[:n]).abs().max())
    if gap > 1e-4:
        raise UserError(f"{source}: its position table is not the sinusoid (max difference {gap:.3g}); attnkit "
                        "computes the static sinusoidal one only")
