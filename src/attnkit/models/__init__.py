"""Building a model from its config: the name-to-class mapping, written out in one place."""

from __future__ import annotations

from attnkit.config import RNNConfig, TransformerConfig
from attnkit.models.base import DecoderOutput, EncoderOutput, Seq2Seq
from attnkit.models.rnn import RNNDecoder, RNNSourceEncoder
from attnkit.models.transformer import Embeddings, TransformerDecoder, TransformerEncoder

__all__ = ["build_model", "Seq2Seq", "EncoderOutput", "DecoderOutput"]


def build_rnn(cfg: RNNConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    encoder = RNNSourceEncoder(src_vocab, cfg.embed_dim, cfg.cell, cfg.encoder_hidden, cfg.encoder_layers,
                               cfg.bidirectional, cfg.dropout)
    decoder = RNNDecoder(tgt_vocab, cfg.embed_dim, cfg.cell, cfg.decoder_hidden, cfg.decoder_layers,
                         encoder.output_dim, cfg.context, cfg.attention_dim, cfg.input_feeding,
                         cfg.dropout, cfg.tie_embeddings)
    return Seq2Seq(encoder, decoder, max_positions=None)


def build_transformer(cfg: TransformerConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    def embeddings(vocab: int) -> Embeddings:
        return Embeddings(vocab, cfg.d_model, cfg.positional, cfg.max_positions, cfg.dropout)

    src_embed = embeddings(src_vocab)
    tgt_embed = src_embed if cfg.share_src_tgt_embeddings else embeddings(tgt_vocab)
    layer_args = (cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.dropout, cfg.attention_dropout, cfg.norm)
    encoder = TransformerEncoder(src_embed, cfg.encoder_layers, *layer_args)
    decoder = TransformerDecoder(tgt_embed, tgt_vocab, cfg.decoder_layers, *layer_args, cfg.tie_embeddings)
    return Seq2Seq(encoder, decoder, max_positions=cfg.max_positions)


BUILDERS = {"rnn": build_rnn, "transformer": build_transformer}


def build_model(cfg: RNNConfig | TransformerConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    if getattr(cfg, "share_src_tgt_embeddings", False) and src_vocab != tgt_vocab:
        raise ValueError("share_src_tgt_embeddings needs a joint vocabulary")
    return BUILDERS[cfg.arch](cfg, src_vocab, tgt_vocab)
