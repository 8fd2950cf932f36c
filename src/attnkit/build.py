"""Building a model from its config: the one place where a config's ``model`` section becomes a
module (the models themselves know tensors and sizes, never configs). Each task calls its builder
with the vocabulary sizes it learned from the data.

Each builder first builds its model on PyTorch's meta device (shapes, no memory) and refuses one whose
weights alone would not fit in the machine (a hand-edited ``d_model: 200000`` is a one-line error,
not a 1.4-trillion-parameter allocation)."""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from attnkit.config import (
    BagOfEmbeddingsConfig,
    BiLMConfig,
    CaptionTransformerConfig,
    LSTMLMConfig,
    RNNClassifierConfig,
    RNNConfig,
    RNNTaggerConfig,
    ShowAttendTellConfig,
    TransformerClassifierConfig,
    TransformerConfig,
    TransformerLMConfig,
    TransformerTaggerConfig,
)
from attnkit.errors import UserError
from attnkit.layers.transformer import without_residuals
from attnkit.limits import require_memory
from attnkit.models.base import Seq2Seq
from attnkit.models.bilm import BidirectionalLM
from attnkit.models.captioner import ConvGrid, ImageEncoder, TorchvisionGrid
from attnkit.models.classifier import BagOfEmbeddings, RNNClassifier, TransformerClassifier
from attnkit.models.lm import LSTMLanguageModel, TransformerLanguageModel
from attnkit.models.rnn import RNNDecoder, RNNSourceEncoder
from attnkit.models.tagger import RNNTagger, TransformerTagger
from attnkit.models.transformer import Embeddings, TransformerDecoder, TransformerEncoder


def within_memory(build):
    """``build``, refusing a model whose float32 weights would not fit in the machine's memory."""
    @functools.wraps(build)
    def checked(*args, **kwargs):
        with torch.device("meta"), warnings.catch_warnings():  # (a weights file loaded into it is a no-op)
            warnings.simplefilter("ignore")
            probe = build(*args, **kwargs)
        params = sum(p.numel() for p in probe.parameters())
        require_memory("model", 4 * params, f"{params:,} parameters of 4 bytes; lower the sizes in its config")
        return build(*args, **kwargs)
    return checked


def build_rnn(cfg: RNNConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    encoder = RNNSourceEncoder(src_vocab, cfg.embed_dim, cfg.cell, cfg.encoder_hidden, cfg.encoder_layers,
                               cfg.bidirectional, cfg.dropout)
    decoder = RNNDecoder(tgt_vocab, cfg.embed_dim, cfg.cell, cfg.decoder_hidden, cfg.decoder_layers,
                         encoder.output_dim, cfg.context, cfg.attention_dim, cfg.input_feeding,
                         cfg.dropout, cfg.tie_embeddings)
    return Seq2Seq(encoder, decoder, max_positions=None)


def build_transformer(cfg: TransformerConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    def embeddings(vocab: int) -> Embeddings:
        return Embeddings(vocab, cfg.d_model, cfg.positional, cfg.max_positions, cfg.dropout, cfg.scale_embeddings)

    src_embed = embeddings(src_vocab)
    tgt_embed = src_embed if cfg.share_src_tgt_embeddings else embeddings(tgt_vocab)
    layer_args = (cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.dropout, cfg.attention_dropout, cfg.norm)
    encoder = TransformerEncoder(src_embed, cfg.encoder_layers, *layer_args, cfg.activation)
    decoder = TransformerDecoder(tgt_embed, tgt_vocab, cfg.decoder_layers, *layer_args, cfg.tie_embeddings,
                                 cfg.activation, cfg.output_bias)
    return residuals(Seq2Seq(encoder, decoder, max_positions=cfg.max_positions), cfg)


def residuals(model: nn.Module, cfg) -> nn.Module:
    """A Transformer as its config has it: with its residual connections, or without (the ablation)."""
    return model if cfg.residual else without_residuals(model)


BUILDERS = {"rnn": build_rnn, "transformer": build_transformer}


@within_memory
def build_model(cfg: RNNConfig | TransformerConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    if getattr(cfg, "share_src_tgt_embeddings", False) and src_vocab != tgt_vocab:
        raise UserError(f"model.share_src_tgt_embeddings needs one vocabulary for both sides (the source has "
                        f"{src_vocab:,} tokens, the target {tgt_vocab:,})")
    return BUILDERS[cfg.arch](cfg, src_vocab, tgt_vocab)


@within_memory
def build_tagger(cfg: RNNTaggerConfig | TransformerTaggerConfig, num_words: int, num_chars: int,
                 num_tags: int, extra_dim: int = 0) -> RNNTagger | TransformerTagger:
    inputs = (num_chars if cfg.char_dim else 0, cfg.char_dim, cfg.char_hidden, extra_dim)
    if cfg.arch == "rnn_tagger":
        return RNNTagger(num_words, num_tags, cfg.embed_dim, cfg.hidden, cfg.num_layers, cfg.dropout, cfg.cell,
                         *inputs)
    return residuals(TransformerTagger(num_words, num_tags, cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.num_layers,
                                       cfg.dropout, cfg.attention_dropout, cfg.positional, cfg.norm,
                                       cfg.max_positions, *inputs), cfg)


@within_memory
def build_classifier(cfg: BagOfEmbeddingsConfig | RNNClassifierConfig | TransformerClassifierConfig,
                     num_words: int, num_labels: int, extra_dim: int = 0) -> nn.Module:
    if cfg.arch == "bag_of_embeddings":
        return BagOfEmbeddings(num_words, num_labels, cfg.embed_dim, cfg.hidden, cfg.dropout)
    if cfg.arch == "rnn_classifier":
        return RNNClassifier(num_words, num_labels, cfg.embed_dim, cfg.hidden, cfg.num_layers, cfg.pooling,
                             cfg.attention_dim, cfg.dropout, cfg.cell, extra_dim)
    return residuals(TransformerClassifier(num_words, num_labels, cfg.d_model, cfg.num_heads, cfg.ff_dim,
                                           cfg.num_layers, cfg.dropout, cfg.attention_dropout, cfg.positional,
                                           cfg.norm, cfg.max_positions, cfg.pooling, cfg.attention_dim, extra_dim), cfg)


@within_memory
def build_language_model(cfg: LSTMLMConfig | TransformerLMConfig, vocab: int) -> nn.Module:
    if cfg.arch == "lstm_lm":
        return LSTMLanguageModel(vocab, cfg.embed_dim, cfg.hidden, cfg.num_layers, cfg.dropout, cfg.tie_embeddings,
                                 cfg.adaptive_softmax or None)
    return residuals(TransformerLanguageModel(vocab, cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.num_layers,
                                              cfg.dropout, cfg.attention_dropout, cfg.positional, cfg.norm,
                                              cfg.max_positions, cfg.tie_embeddings), cfg)


@within_memory
def build_bilm(cfg: BiLMConfig, num_chars: int, num_words: int) -> BidirectionalLM:
    """The bidirectional LM of ELMo over ``num_chars`` characters, predicting ``num_words`` words."""
    return BidirectionalLM(num_chars, num_words, cfg.char_dim, cfg.char_hidden, cfg.dim, cfg.num_layers, cfg.dropout,
                           cfg.adaptive_softmax or None)


@within_memory
def build_captioner(cfg: ShowAttendTellConfig | CaptionTransformerConfig, image_size: tuple[int, int, int],
                    vocab: int, pretrained: bool = True) -> Seq2Seq:
    """A CNN grid encoder for images of ``image_size`` (channels, height, width) and an attention decoder;
    ``pretrained``: load a torchvision backbone's weights file (not needed when a checkpoint follows)."""
    if cfg.backbone == "cnn":
        backbone = ConvGrid(image_size[0], cfg.channels)
    else:
        backbone = TorchvisionGrid(cfg.torchvision_model, cfg.torchvision_weights, cfg.freeze_backbone, pretrained)
    if cfg.arch == "show_attend_tell":
        encoder = ImageEncoder(backbone, cfg.feature_dim, image_size, cfg.cell_positions, cfg.dropout)
        decoder = RNNDecoder(vocab, cfg.embed_dim, cfg.cell, cfg.hidden, cfg.num_layers, cfg.feature_dim,
                             cfg.attention, cfg.attention_dim, cfg.input_feeding, cfg.dropout, cfg.tie_embeddings)
        return Seq2Seq(encoder, decoder, max_positions=None)
    encoder = ImageEncoder(backbone, cfg.d_model, image_size, cfg.cell_positions, cfg.dropout)
    embed = Embeddings(vocab, cfg.d_model, cfg.positional, cfg.max_positions, cfg.dropout)
    decoder = TransformerDecoder(embed, vocab, cfg.decoder_layers, cfg.d_model, cfg.num_heads, cfg.ff_dim,
                                 cfg.dropout, cfg.attention_dropout, cfg.norm, cfg.tie_embeddings)
    return residuals(Seq2Seq(encoder, decoder, max_positions=cfg.max_positions), cfg)
