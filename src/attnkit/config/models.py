"""Model sections, one per architecture; ``arch`` names it. Each task accepts its own union of
them (``config/tasks.py``) and ``attnkit/build.py`` maps each ``arch`` to its builder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from attnkit.config.base import MAX_HEADS, MAX_LAYERS, MAX_POSITIONS, MAX_TOKENS, MAX_WIDTH
from attnkit.config.sections import Section


class TransformerBlocks(Section):
    """What every Transformer stack shares."""

    d_model: int = Field(256, ge=1, le=MAX_WIDTH)
    num_heads: int = Field(4, ge=1, le=MAX_HEADS)
    ff_dim: int = Field(1024, ge=1, le=MAX_WIDTH)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    norm: Literal["pre", "post", "none"] = Field(
        "pre", description="LayerNorm before each sublayer (pre), after its residual sum (post), or none at all")
    residual: bool = Field(True, description="false: no residual connections (an ablation: deep stacks stop learning)")
    max_positions: int = Field(512, ge=2, le=MAX_POSITIONS)

    @field_validator("num_heads")
    @classmethod
    def _heads_divide(cls, num_heads: int, info: ValidationInfo) -> int:
        if "d_model" in info.data and info.data["d_model"] % num_heads:
            raise ValueError(f"d_model ({info.data['d_model']}) is not divisible by num_heads ({num_heads})")
        return num_heads


# -- translation ------------------------------------------------------------------------------------
class RNNConfig(Section):
    arch: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    embed_dim: int = Field(256, ge=1, le=MAX_WIDTH)
    encoder_hidden: int = Field(256, ge=1, le=MAX_WIDTH, description="per direction")
    decoder_hidden: int = Field(512, ge=1, le=MAX_WIDTH)
    bidirectional: bool = True
    encoder_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    decoder_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    context: Literal["none", "mean", "dot", "general", "additive"] = "additive"
    attention_dim: int = Field(256, ge=1, le=MAX_WIDTH, description="hidden size of the additive score")
    input_feeding: bool = True
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    tie_embeddings: bool = False

    @field_validator("context")
    @classmethod
    def _dot_sizes(cls, context: str, info: ValidationInfo) -> str:
        d = info.data
        if context == "dot" and {"encoder_hidden", "decoder_hidden", "bidirectional"} <= d.keys():
            enc = d["encoder_hidden"] * (2 if d["bidirectional"] else 1)
            if enc != d["decoder_hidden"]:
                raise ValueError(f"dot attention needs decoder_hidden ({d['decoder_hidden']}) equal to the "
                                 f"encoder's output size ({enc}); use context general or change the sizes")
        return context


class TransformerConfig(TransformerBlocks):
    arch: Literal["transformer"] = "transformer"
    encoder_layers: int = Field(3, ge=1, le=MAX_LAYERS)
    decoder_layers: int = Field(3, ge=1, le=MAX_LAYERS)
    tie_embeddings: bool = True
    share_src_tgt_embeddings: bool = False
    activation: Literal["relu", "gelu", "silu"] = Field(
        "relu", description="the feed-forward sublayer's: relu (the paper), gelu, or silu (swish, Marian's)")
    scale_embeddings: bool = Field(True, description="multiply the token embeddings by sqrt(d_model)")
    output_bias: bool = Field(False, description="a bias on the output layer (Marian's final_logits_bias)")


# -- tagging ----------------------------------------------------------------------------------------
class CharFeatures(Section):
    """What every tagger reads of a word's spelling: a character BiLSTM's vector of it."""

    char_dim: int = Field(32, ge=0, le=MAX_WIDTH, description="0: no character features")
    char_hidden: int = Field(64, ge=1, le=MAX_WIDTH, description="per direction of the character BiLSTM")


class RNNTaggerConfig(CharFeatures):
    arch: Literal["rnn_tagger"] = "rnn_tagger"
    cell: Literal["lstm", "gru"] = "lstm"
    embed_dim: int = Field(128, ge=1, le=MAX_WIDTH)
    hidden: int = Field(256, ge=1, le=MAX_WIDTH, description="per direction")
    num_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    dropout: float = Field(0.33, ge=0.0, lt=1.0)


class TransformerTaggerConfig(TransformerBlocks, CharFeatures):
    """The character vector is projected to d_model and added to the word's embedding."""

    arch: Literal["transformer_tagger"] = "transformer_tagger"
    num_layers: int = Field(4, ge=1, le=MAX_LAYERS)


# -- classification ---------------------------------------------------------------------------------
class BagOfEmbeddingsConfig(Section):
    arch: Literal["bag_of_embeddings"] = "bag_of_embeddings"
    embed_dim: int = Field(300, ge=1, le=MAX_WIDTH)
    hidden: int = Field(256, ge=1, le=MAX_WIDTH)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


class RNNClassifierConfig(Section):
    arch: Literal["rnn_classifier"] = "rnn_classifier"
    cell: Literal["lstm", "gru"] = "lstm"
    embed_dim: int = Field(300, ge=1, le=MAX_WIDTH)
    hidden: int = Field(256, ge=1, le=MAX_WIDTH, description="per direction")
    num_layers: int = Field(1, ge=1, le=MAX_LAYERS)
    pooling: Literal["last", "mean", "attention"] = "attention"
    attention_dim: int = Field(128, ge=1, le=MAX_WIDTH)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


class TransformerClassifierConfig(TransformerBlocks):
    arch: Literal["transformer_classifier"] = "transformer_classifier"
    num_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    pooling: Literal["mean", "attention"] = "attention"
    attention_dim: int = Field(128, ge=1, le=MAX_WIDTH)


# -- language models --------------------------------------------------------------------------------
class KneserNeyConfig(Section):
    arch: Literal["kneser_ney"] = "kneser_ney"
    order: int = Field(5, ge=1, le=10)


# -- static word vectors ------------------------------------------------------------------------------
class Word2VecConfig(Section):
    """word2vec (Mikolov et al. 2013), trained by gensim: one vector per word type, predicted from its
    window (CBOW) or predicting it (skip-gram), with negative sampling."""

    arch: Literal["word2vec"] = "word2vec"
    algorithm: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = Field(100, ge=2, le=MAX_WIDTH)
    window: int = Field(5, ge=1, le=MAX_TOKENS, description="words on each side that count as context")
    min_count: int = Field(5, ge=1, description="rarer words get no vector")
    negative: int = Field(5, ge=1, le=1000, description="negative samples per positive pair")
    epochs: int = Field(5, ge=1, le=10_000)
    workers: int = Field(1, ge=1, le=1024, description="gensim's threads; 1 gives the same vectors on every run")


class FastTextConfig(Word2VecConfig):
    """fastText (Bojanowski et al. 2017): word2vec whose word vector is the sum of its character
    n-grams' (min_n to max_n characters), so words share what their spelling shares."""

    arch: Literal["fasttext"] = "fasttext"
    min_n: int = Field(3, ge=1, le=64)
    max_n: int = Field(6, ge=1, le=64)

    @model_validator(mode="after")
    def _ngram_range(self) -> FastTextConfig:
        if self.max_n < self.min_n:
            raise ValueError(f"max_n ({self.max_n}) is smaller than min_n ({self.min_n})")
        return self


class AdaptiveSoftmaxOption(Section):
    adaptive_softmax: list[int] = Field(
        [], description="cutoffs of an adaptive softmax (Grave et al. 2017) over the words it predicts, most "
                        "frequent first, e.g. [2000]: a word past the first cutoff costs its cluster's softmax, "
                        "only when it is the word to predict; []: a full softmax")

    @field_validator("adaptive_softmax")
    @classmethod
    def _increasing(cls, cutoffs: list[int]) -> list[int]:
        if any(c <= 0 for c in cutoffs) or any(a >= b for a, b in zip(cutoffs, cutoffs[1:])) or len(cutoffs) > 8:
            raise ValueError("the cutoffs must be positive and increasing, at most 8 of them")
        return cutoffs


class LSTMLMConfig(AdaptiveSoftmaxOption):
    arch: Literal["lstm_lm"] = "lstm_lm"
    embed_dim: int = Field(650, ge=1, le=MAX_WIDTH)
    hidden: int = Field(650, ge=1, le=MAX_WIDTH)
    num_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    tie_embeddings: bool = True
    carry_state: bool = Field(True, description=(
        "truncated backpropagation through time: training reads the text in order, in batch_tokens "
        "/ max_len parallel rows, each batch starting from the state the one before ended in (its "
        "gradient stops there); false: shuffled chunks of max_len tokens, each from a zero state"))


class TransformerLMConfig(TransformerBlocks):
    arch: Literal["transformer_lm"] = "transformer_lm"
    num_layers: int = Field(4, ge=1, le=MAX_LAYERS)
    tie_embeddings: bool = True


class BiLMConfig(AdaptiveSoftmaxOption):
    arch: Literal["bilm"] = "bilm"
    char_dim: int = Field(32, ge=1, le=MAX_WIDTH)
    char_hidden: int = Field(128, ge=1, le=MAX_WIDTH)
    dim: int = Field(256, ge=1, le=MAX_WIDTH)
    num_layers: int = Field(2, ge=1, le=MAX_LAYERS)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _clusters_fit_dim(self) -> BiLMConfig:
        if self.dim // 4 ** len(self.adaptive_softmax) < 1:  # each cluster projects to a quarter of the one before
            raise ValueError(f"adaptive_softmax: {len(self.adaptive_softmax)} clusters need dim of at least "
                             f"{4 ** len(self.adaptive_softmax)}")
        return self


# -- captioning -------------------------------------------------------------------------------------
class ImageGridEncoder(Section):
    """The image encoder every captioner shares: a CNN turns the image into a grid of feature vectors
    a_i (the annotation vectors of Xu et al. 2015), one per cell."""

    backbone: Literal["cnn", "torchvision"] = "cnn"
    channels: list[int] = Field([32, 64, 128], description="cnn: channels of each stage (two 3x3 convolutions); "
                                "a 2x2 max-pool between stages, so the grid is 2^(stages-1) times coarser")
    torchvision_model: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet50"
    torchvision_weights: str | None = Field(
        None, description="local weights file (state dict, safetensors) of the torchvision model; needed with "
                          "backbone: torchvision")
    freeze_backbone: bool = Field(True, description="torchvision: keep the pretrained weights fixed")
    cell_positions: bool = Field(True, description="add a learned row and column embedding to each cell")

    @field_validator("channels")
    @classmethod
    def _stages(cls, channels: list[int]) -> list[int]:
        if not channels or min(channels) < 1 or max(channels) > MAX_WIDTH or len(channels) > 8:
            raise ValueError(f"expected 1 to 8 channel counts from 1 to {MAX_WIDTH}")
        return channels


class ShowAttendTellConfig(ImageGridEncoder):
    """CNN grid encoder + LSTM decoder with attention over the cells (Xu et al. 2015)."""

    arch: Literal["show_attend_tell"] = "show_attend_tell"
    feature_dim: int = Field(128, ge=1, le=MAX_WIDTH, description="D, the size of each annotation vector a_i")
    cell: Literal["lstm", "gru"] = "lstm"
    embed_dim: int = Field(64, ge=1, le=MAX_WIDTH)
    hidden: int = Field(256, ge=1, le=MAX_WIDTH)
    num_layers: int = Field(1, ge=1, le=MAX_LAYERS)
    attention: Literal["dot", "general", "additive"] = "additive"
    attention_dim: int = Field(128, ge=1, le=MAX_WIDTH, description="hidden size of the additive score")
    input_feeding: bool = True
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    tie_embeddings: bool = False

    @field_validator("attention")
    @classmethod
    def _dot_sizes(cls, attention: str, info: ValidationInfo) -> str:
        d = info.data
        if attention == "dot" and {"feature_dim", "hidden"} <= d.keys() and d["feature_dim"] != d["hidden"]:
            raise ValueError(f"dot attention needs hidden ({d['hidden']}) equal to feature_dim ({d['feature_dim']})")
        return attention


class CaptionTransformerConfig(TransformerBlocks, ImageGridEncoder):
    """CNN grid encoder + Transformer decoder whose encoder-decoder attention looks at the cells."""

    arch: Literal["caption_transformer"] = "caption_transformer"
    decoder_layers: int = Field(3, ge=1, le=MAX_LAYERS)
    tie_embeddings: bool = True
