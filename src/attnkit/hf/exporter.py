"""An attnkit Transformer translator as a Hugging Face transformers model (``attnkit export --to hf``).

``AutoModelForSeq2SeqLM.from_pretrained(OUT)`` and ``AutoTokenizer.from_pretrained(OUT)`` load the
result; it computes what attnkit computes (``weights.py`` maps the weights exactly):

- a **post-norm** model (the paper's) becomes a **MarianMT** model, with a MarianTokenizer over
  attnkit's own SentencePiece models (its ``vocab.json`` gives each piece attnkit's id);
- a **pre-norm** model (attnkit's default) becomes a **Pegasus** model: pre-norm, a final LayerNorm on
  each stack, a sinusoid laid out half-and-half from position 0, the activation and the embedding
  scale as options. (M2M100 offsets its positions by the padding index and MBart normalises its
  embeddings: near misses.) Its tokenizer is a ``PreTrainedTokenizerFast`` built from the
  SentencePiece model by transformers' converter, appending ``</s>`` as attnkit does.

The ids stay attnkit's: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2 (the decoder's start), ``</s>`` 3.
What cannot be exported is a one-line error: an RNN, learned positions, word or character
vocabularies, a pre-norm model whose source and target embeddings are not one table.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from attnkit.errors import UserError
from attnkit.hf import require_transformers
from attnkit.hf.weights import check_positions, into_transformers
from attnkit.specials import BOS, EOS, PAD

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": "swish"}


def check_exportable(path: Path, cfg) -> None:
    m, level = cfg.model, cfg.vocab.level
    if m.arch != "transformer":
        raise UserError(f"{path}: holds an {m.arch.upper()} model; transformers has no such encoder-decoder, only "
                        "Transformer models can be exported")
    if m.norm == "none" or not m.residual:
        raise UserError(f"{path}: model.{'norm: none' if m.norm == 'none' else 'residual: false'} is not exportable "
                        "(Marian and Pegasus have their LayerNorms and residual connections)")
    if m.positional != "sinusoidal":
        raise UserError(f"{path}: model.positional: {m.positional} is not exportable (Marian and Pegasus compute a "
                        "sinusoidal table)")
    if level not in ("subword", "spm_vocab"):
        raise UserError(f"{path}: vocab.level: {level} is not exportable (the exported tokenizers are SentencePiece)")
    if m.norm == "pre" and not m.share_src_tgt_embeddings:
        raise UserError(f"{path}: model.share_src_tgt_embeddings: false is not exportable with norm: pre (Pegasus, "
                        "the pre-norm architecture it maps onto, has one embedding table for both sides)")
    if m.norm == "pre" and level == "spm_vocab":
        raise UserError(f"{path}: vocab.level: spm_vocab with norm: pre is not exportable")


def hf_config(transformers, cfg, src_size: int, tgt_size: int):
    m = cfg.model
    common = dict(d_model=m.d_model, encoder_layers=m.encoder_layers, decoder_layers=m.decoder_layers,
                  encoder_attention_heads=m.num_heads, decoder_attention_heads=m.num_heads,
                  encoder_ffn_dim=m.ff_dim, decoder_ffn_dim=m.ff_dim, activation_function=ACTIVATIONS[m.activation],
                  max_position_embeddings=m.max_positions, dropout=m.dropout, attention_dropout=m.attention_dropout,
                  activation_dropout=m.dropout, scale_embedding=m.scale_embeddings, pad_token_id=PAD,
                  bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
                  tie_word_embeddings=m.tie_embeddings)
    if m.norm == "pre":
        return transformers.PegasusConfig(vocab_size=src_size, **common)
    return transformers.MarianConfig(vocab_size=src_size, decoder_vocab_size=tgt_size,
                                     share_encoder_decoder_embeddings=m.share_src_tgt_embeddings, **common)


def marian_tokenizer(transformers, src_tok, tgt_tok, joint: bool, where: Path):
    """A MarianTokenizer whose vocab.json gives every piece attnkit's id (the files are written to ``where``)."""
    names = {"source_spm": "source.spm", "target_spm": "target.spm", "vocab": "vocab.json"}
    (where / "source.spm").write_bytes(src_tok.model_proto)
    (where / "target.spm").write_bytes(tgt_tok.model_proto)
    vocab = lambda tok: json.dumps({p: i for i, p in enumerate(tok.pieces(range(len(tok))))}, ensure_ascii=False)
    (where / "vocab.json").write_text(vocab(src_tok), encoding="utf-8")
    extra = {}
    if not joint:
        (where / "target_vocab.json").write_text(vocab(tgt_tok), encoding="utf-8")
        extra = {"target_vocab_file": str(where / "target_vocab.json"), "separate_vocabs": True}
    return transformers.MarianTokenizer(**{k: str(where / v) for k, v in names.items()}, **extra,
                                        unk_token="<unk>", eos_token="</s>", pad_token="<pad>")


def fast_tokenizer(transformers, tok):
    """A PreTrainedTokenizerFast of attnkit's SentencePiece model (its ids), appending </s>."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers.processors import TemplateProcessing
    from transformers.convert_slow_tokenizer import SpmConverter

    if not hasattr(SpmConverter, "build_tokenizer_from_spm_proto"):
        raise UserError(f"transformers {transformers.__version__} cannot build a tokenizer from a SentencePiece "
                        "model; pip install -U transformers")
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tok.model_proto)
    if proto.trainer_spec.model_type == proto.trainer_spec.BPE:
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    else:
        vocab = [(p.piece, p.score) for p in proto.pieces]
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    backend.post_processor = TemplateProcessing(single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", EOS)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>")


def model_card(path: Path, cfg, architecture: str) -> str:
    """README.md: where the model came from, its config, data and scores, and how to load it."""
    summary = {}
    if (path / "summary.json").is_file():
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    scores = {k: summary[k] for k in ("valid", "test", "steps", "wall_seconds", "imported_from") if k in summary}
    data = cfg.data.model_dump(mode="json") if cfg.data is not None else "none recorded (an imported model)"
    return "\n".join([
        "---", "library_name: transformers", "pipeline_tag: translation", "tags: [attnkit, translation]", "---", "",
        f"# {path.name}", "",
        f"A {architecture} translation model exported by attnkit (`attnkit export {path} --to hf`) from the run "
        f"directory `{path}`. It computes what attnkit's model computes: the weights are mapped exactly (a "
        "permutation of the model dimension, no retraining).", "",
        "```python", "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer",
        "tok = AutoTokenizer.from_pretrained(PATH)", "model = AutoModelForSeq2SeqLM.from_pretrained(PATH)",
        "out = model.generate(**tok(['A dog runs.'], return_tensors='pt'), num_beams=1)",
        "print(tok.batch_decode(out, skip_special_tokens=True))", "```", "",
        "Beam search: transformers divides a hypothesis's log-probability by length^length_penalty, attnkit by "
        "GNMT's ((5 + length) / 6)^alpha; the two agree at 0 (raw log-probabilities).", "",
        "To publish it: `huggingface-cli upload USER/NAME PATH` (or `model.push_to_hub` and `tok.push_to_hub`).", "",
        "## Data", "", "```yaml", _yaml({"data": data}), "```", "",
        "## Scores (attnkit's summary.json)", "", "```json", json.dumps(scores, indent=2), "```", "",
        "## attnkit config", "", "```yaml", _yaml(cfg.model_dump(mode="json")), "```", ""])


def _yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).strip()


def export_hf(model_dir: str | Path, out: str | Path) -> Path:
    """Write ``out`` (which must not exist yet): a transformers model directory of the translation
    model in ``model_dir``, with its tokenizer, generation config and a model card. Written beside
    ``out`` and renamed into place, so ``out`` is whole or absent."""
    from attnkit.build import build_model
    from attnkit.data.vocab import load_tokenizer
    from attnkit.model_dir import load_best_weights, open_model_dir

    path, cfg = open_model_dir(model_dir, "translation", "a translation model")
    check_exportable(path, cfg)
    out = Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists; export writes a new directory")
    transformers = require_transformers()
    src_tok, tgt_tok = load_tokenizer(path, "src", cfg.vocab.level), load_tokenizer(path, "tgt", cfg.vocab.level)
    model = build_model(cfg.model, len(src_tok), len(tgt_tok)).eval()
    load_best_weights(model, path)
    hf_cfg = hf_config(transformers, cfg, len(src_tok), len(tgt_tok))
    pre = cfg.model.norm == "pre"
    architecture = "Pegasus" if pre else "MarianMT"
    hf = (transformers.PegasusForConditionalGeneration if pre else transformers.MarianMTModel)(hf_cfg).eval()
    into_transformers(model, hf)
    check_positions(hf.model.encoder.embed_positions.weight.float(), model.encoder.embed.positions.table,
                    f"{architecture} of transformers {transformers.__version__}")
    hf.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=BOS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        bad_words_ids=[[PAD], [BOS]], num_beams=cfg.decoding.beam, max_length=cfg.model.max_positions)

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        hf.save_pretrained(scratch)
        if pre:
            fast_tokenizer(transformers, src_tok).save_pretrained(scratch)
        else:
            marian_tokenizer(transformers, src_tok, tgt_tok, cfg.vocab.joint, scratch).save_pretrained(scratch)
        (scratch / "README.md").write_text(model_card(path, cfg, architecture), encoding="utf-8")
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out
