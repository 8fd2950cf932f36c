"""One config class per task, each a set of sections; ``task`` names it (default: translation)."""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import Field, ValidationInfo, field_validator

from attnkit.config.captioning import (
    CaptionDecodingConfig,
    CaptionFilesData,
    CaptionTrainingConfig,
    DigitScenesData,
    ImageConfig,
)
from attnkit.config.models import (
    BagOfEmbeddingsConfig,
    BiLMConfig,
    CaptionTransformerConfig,
    FastTextConfig,
    KneserNeyConfig,
    LSTMLMConfig,
    RNNClassifierConfig,
    RNNConfig,
    RNNTaggerConfig,
    ShowAttendTellConfig,
    TransformerClassifierConfig,
    TransformerConfig,
    TransformerLMConfig,
    TransformerTaggerConfig,
    Word2VecConfig,
)
from attnkit.config.sections import (
    DecodingConfig,
    GenerationConfig,
    LabelledData,
    ParallelData,
    Section,
    TaggedData,
    TextData,
    TrainingConfig,
    VocabConfig,
)


class EmbeddingsConfig(Section):
    """Extra input for taggers and classifiers: static vectors and/or ELMo-style contextual vectors."""

    pretrained: str | None = Field(None, description="word2vec or GloVe text file loaded into the word embeddings, "
                                                     "or a static_vectors run directory")
    freeze_pretrained: bool = False
    contextual: str | None = Field(None, description="a trained bilm run directory whose mixed layers are added")
    freeze_contextual: bool = True
    cache_contextual: bool = Field(
        False, description="with freeze_contextual: compute each training sentence's biLM layers once and keep "
                           "them in memory (about 6 KB a word for bilm-elmo), for much faster training")


class TranslationConfig(Section):
    task: Literal["translation"] = "translation"
    data: ParallelData | None = Field(description="null only in an imported model's config (it names no data)")
    vocab: VocabConfig = VocabConfig()
    model: Annotated[RNNConfig | TransformerConfig, Field(discriminator="arch")] = Field(
        default_factory=TransformerConfig)
    training: TrainingConfig = TrainingConfig()
    decoding: DecodingConfig = DecodingConfig()

    @field_validator("model")
    @classmethod
    def _shared_needs_joint(cls, model, info: ValidationInfo):
        vocab = info.data.get("vocab")
        if getattr(model, "share_src_tgt_embeddings", False) and vocab is not None and not vocab.joint:
            raise ValueError("share_src_tgt_embeddings needs a joint vocabulary (vocab.joint: true)")
        return model


def only_teacher_forcing(training: TrainingConfig, info: ValidationInfo) -> TrainingConfig:
    """Strategies feed an autoregressive model its own predictions: a tagger, a classifier or a
    bidirectional LM has none to feed. Starting from another model (init_from) is for translators and
    language models too."""
    task = info.data.get("task", "this")
    if training.strategy.name != "teacher_forcing":
        raise ValueError(f"strategy: {training.strategy.name} trains translators and language models; "
                         f"a {task} model learns from its labels (teacher_forcing)")
    if training.init_from is not None:
        raise ValueError(f"init_from: a {task} model starts from scratch (or from embeddings.pretrained)")
    return training


class TaggingConfig(Section):
    task: Literal["tagging"]
    data: TaggedData
    vocab: VocabConfig = VocabConfig(level="word", size=100_000, min_freq=2)
    model: Annotated[RNNTaggerConfig | TransformerTaggerConfig, Field(discriminator="arch")] = Field(
        default_factory=RNNTaggerConfig)
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    training: TrainingConfig = TrainingConfig()
    _supervised = field_validator("training")(only_teacher_forcing)


class ClassificationConfig(Section):
    task: Literal["classification"]
    data: LabelledData
    vocab: VocabConfig = VocabConfig(level="word", size=100_000, min_freq=1)
    model: Annotated[BagOfEmbeddingsConfig | RNNClassifierConfig | TransformerClassifierConfig,
                     Field(discriminator="arch")] = Field(default_factory=RNNClassifierConfig)
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    training: TrainingConfig = TrainingConfig()
    _supervised = field_validator("training")(only_teacher_forcing)

    @field_validator("embeddings")
    @classmethod
    def _vectors_need_words(cls, embeddings: EmbeddingsConfig, info: ValidationInfo) -> EmbeddingsConfig:
        vocab = info.data.get("vocab")
        if (embeddings.pretrained or embeddings.contextual) and vocab is not None and vocab.level != "word":
            raise ValueError("pretrained and contextual word vectors need vocab.level: word")
        if embeddings.contextual and getattr(info.data.get("model"), "arch", None) == "bag_of_embeddings":
            raise ValueError("contextual vectors are read by rnn_classifier and transformer_classifier; "
                             "bag_of_embeddings is the baseline of word embeddings alone")
        return embeddings


class LanguageModelConfig(Section):
    task: Literal["language_model"]
    data: TextData
    vocab: VocabConfig = VocabConfig(level="word", size=100_000)
    model: Annotated[KneserNeyConfig | LSTMLMConfig | TransformerLMConfig, Field(discriminator="arch")] = Field(
        default_factory=LSTMLMConfig)
    training: TrainingConfig = TrainingConfig()
    generation: GenerationConfig = GenerationConfig()

    @field_validator("training")
    @classmethod
    def _training_suits_the_model(cls, training: TrainingConfig, info: ValidationInfo) -> TrainingConfig:
        model = info.data.get("model")
        if getattr(model, "arch", None) == "kneser_ney" and (
                training.strategy.name != "teacher_forcing" or training.init_from is not None):
            raise ValueError("strategy and init_from: a Kneser-Ney model is counted, not trained")
        if getattr(model, "carry_state", False) and training.strategy.name != "teacher_forcing":
            raise ValueError(f"strategy {training.strategy.name}: it trains on shuffled chunks, each from a "
                             f"zero state; set model.carry_state: false")
        return training


class BiLMTaskConfig(Section):
    task: Literal["bilm"]
    data: TextData
    vocab: VocabConfig = VocabConfig(level="word", size=50_000, min_freq=2)
    model: BiLMConfig = BiLMConfig()
    training: TrainingConfig = TrainingConfig()
    _supervised = field_validator("training")(only_teacher_forcing)


class FittingConfig(Section):
    """A model a library fits in one call (gensim's word vectors): no optimiser of ours, so only a seed."""

    seed: int = 1
    device: Literal["cpu"] = "cpu"
    precision: Literal["fp32"] = "fp32"


class StaticVectorsConfig(Section):
    task: Literal["static_vectors"]
    data: TextData
    model: Annotated[Word2VecConfig | FastTextConfig, Field(discriminator="arch")] = Field(
        default_factory=Word2VecConfig)
    training: FittingConfig = FittingConfig()

    @field_validator("model", mode="before")
    @classmethod
    def _word2vec_by_default(cls, model):
        return {"arch": "word2vec", **model} if isinstance(model, dict) and "arch" not in model else model


class CaptioningConfig(Section):
    task: Literal["captioning"]
    data: Annotated[DigitScenesData | CaptionFilesData, Field(discriminator="source")] = Field(
        default_factory=DigitScenesData)
    image: ImageConfig = ImageConfig()
    vocab: VocabConfig = VocabConfig(level="word", size=10_000, min_freq=1)
    model: Annotated[ShowAttendTellConfig | CaptionTransformerConfig, Field(discriminator="arch")] = Field(
        default_factory=ShowAttendTellConfig)
    training: CaptionTrainingConfig = CaptionTrainingConfig()
    decoding: CaptionDecodingConfig = CaptionDecodingConfig()

    @field_validator("data", mode="before")
    @classmethod
    def _digits_by_default(cls, data):
        return {"source": "digits", **data} if isinstance(data, dict) and "source" not in data else data


# every task's config, once: the config union below and TASK_CONFIGS come from here, and the task
# registry (attnkit.tasks.TASKS) is checked against it (tests/test_tasks.py)
CONFIG_CLASSES = (TranslationConfig, TaggingConfig, ClassificationConfig, LanguageModelConfig, BiLMTaskConfig,
                  StaticVectorsConfig, CaptioningConfig)
TASK_CONFIGS = {get_args(cls.model_fields["task"].annotation)[0]: cls for cls in CONFIG_CLASSES}
AnyConfig = Annotated[Union[CONFIG_CLASSES], Field(discriminator="task")]  # noqa: UP007  (a union of a tuple)


def model_archs(config: type[Section]) -> tuple[str, ...]:
    """The ``model.arch`` names a task's config takes, read from its ``model`` field's type."""
    annotation = config.model_fields["model"].annotation
    return tuple(m.model_fields["arch"].default for m in get_args(annotation) or (annotation,))


ARCHS = tuple(arch for config in TASK_CONFIGS.values() for arch in model_archs(config))
