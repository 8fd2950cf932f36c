"""attnkit export --to hf: a tiny attnkit Transformer, trained here on Multi30k lines, loads in
transformers (MarianMT when post-norm, Pegasus when pre-norm) and computes what attnkit computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from hf_fixtures import multi30k

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SENTENCES = multi30k("train", "en", 100)
VARIANTS = {  # norm -> what else differs, so that each option crosses over
    "pre": {"activation": "gelu", "tie_embeddings": True, "output_bias": False},
    "post": {"activation": "silu", "tie_embeddings": False, "output_bias": True, "scale_embeddings": False},
}


def train_tiny(root, norm: str, steps: int = 300):
    from attnkit.train import train

    root.mkdir(parents=True, exist_ok=True)
    for side, lang in (("src", "en"), ("tgt", "de")):
        for split, n in (("train", 100), ("val", 10)):
            (root / f"{split}.{side}").write_text("\n".join(multi30k(split, lang, n)) + "\n", encoding="utf-8")
    cfg = {"task": "translation",
           "data": {split: {"src": str(root / f"{name}.src"), "tgt": str(root / f"{name}.tgt")}
                    for split, name in (("train", "train"), ("valid", "val"))},
           "vocab": {"level": "subword", "size": 250, "joint": True},
           "model": {"arch": "transformer", "d_model": 32, "num_heads": 4, "ff_dim": 64, "encoder_layers": 2,
                     "decoder_layers": 2, "dropout": 0.0, "attention_dropout": 0.0, "norm": norm,
                     "share_src_tgt_embeddings": True, "max_positions": 128, **VARIANTS[norm]},
           "training": {"batch_tokens": 800, "lr": 3e-3, "schedule": "constant", "warmup_steps": 50,
                        "label_smoothing": 0.0, "valid_every": 1000, "ema_decay": 0.0}}
    (root / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    train(root / "c.yaml", root / "run", max_steps=steps, progress=False)
    return root / "run"


@pytest.fixture(scope="module", params=["pre", "post"])
def exported(request, tmp_path_factory):
    """(attnkit's translator, the transformers model, its tokenizer, the export directory)."""
    from attnkit.hf.exporter import export_hf
    from attnkit.translator import load_model_dir

    root = tmp_path_factory.mktemp(f"export-{request.param}")
    run = train_tiny(root, request.param)
    out = export_hf(run, root / "hf")
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(out).eval()
    return load_model_dir(run, "cpu"), model, transformers.AutoTokenizer.from_pretrained(out), out


def test_it_loads_as_the_architecture_of_its_norm(exported):
    tr, model, _, out = exported
    expected = "PegasusForConditionalGeneration" if tr.cfg.model.norm == "pre" else "MarianMTModel"
    assert type(model).__name__ == expected
    card = (out / "README.md").read_text()
    assert "attnkit export" in card and "library_name: transformers" in card


def test_the_tokenizer_gives_attnkits_ids(exported):
    from attnkit.specials import EOS

    tr, _, tok, _ = exported
    for line in multi30k("val", "en", 200):
        assert tok(line)["input_ids"] == tr.encode_source(line), line
    for line in multi30k("val", "de", 50):
        ids = tr.tgt_tok.encode(line)
        assert tok.decode(ids + [EOS], skip_special_tokens=True) == tr.tgt_tok.decode(ids)


def test_logits_equal_attnkits(exported):
    from attnkit.specials import BOS

    tr, model, tok, _ = exported
    worst = 0.0
    for src, ref in zip(multi30k("val", "en", 20), multi30k("val", "de", 20)):
        tgt_in = torch.tensor([[BOS] + tr.tgt_tok.encode(ref)])
        with torch.no_grad():
            ours = tr.model(torch.tensor([tr.encode_source(src)]), tgt_in).logits
            theirs = model(**tok(src, return_tensors="pt"), decoder_input_ids=tgt_in).logits
        worst = max(worst, float((ours - theirs).abs().max()))
    assert worst < 1e-4


def test_greedy_generate_equals_attnkits_greedy(exported):
    tr, model, tok, _ = exported
    lengths = set()
    for src in SENTENCES[:40]:
        ours = tr.translate([src], beam=1)[0][0]
        limit = int(len(tr.encode_source(src)) * tr.cfg.decoding.max_len_a + tr.cfg.decoding.max_len_b)
        with torch.no_grad():
            out = model.generate(**tok(src, return_tensors="pt"), num_beams=1, do_sample=False, min_new_tokens=1,
                                 max_new_tokens=limit)[0].tolist()
        assert [t for t in out[1:] if t not in (0, 3)] == ours.tokens, src
        assert tok.decode(out, skip_special_tokens=True) == ours.text
        lengths.add(len(ours.tokens))
    assert len(lengths) > 8  # ended by </s> at many lengths


def unrecorded(source: Path, target: Path) -> None:
    """``source``'s weights without the architecture and file checksums a checkpoint records (as one
    written before it recorded them), so that an edited config reaches the exporter's own checks."""
    from safetensors.torch import save_file

    from attnkit.checkpoint import checksum, read_checkpoint

    groups, doc = read_checkpoint(source)
    tensors = {f"{group}.{k}": v for group, part in groups.items() for k, v in part.items()}
    doc = {k: v for k, v in doc.items() if k not in ("architecture", "files")}
    doc["checksum"] = checksum(tensors)
    save_file(tensors, str(target), metadata={"attnkit": json.dumps(doc)})


def test_what_transformers_cannot_hold_is_a_one_line_error(exported, tmp_path):
    from attnkit.errors import UserError
    from attnkit.hf.exporter import export_hf

    tr, _, _, out = exported
    run = out.parent / "run"
    with pytest.raises(UserError, match="already exists"):
        export_hf(run, out)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    changes = ((("model", "positional", "learned"), "model.positional: learned is not exportable"),
               (("vocab", "level", "word"), "vocab.level: word is not exportable"),
               (("model", "share_src_tgt_embeddings", False), "share_src_tgt_embeddings: false is not exportable"),
               (("model", None, {"arch": "rnn"}), "only Transformer models can be exported"),
               (("model", "residual", False), "model.residual: false is not exportable"),
               (("model", "norm", "none"), "model.norm: none is not exportable"))
    for i, (change, message) in enumerate(changes):
        if "share_src" in message and cfg["model"]["norm"] == "post":
            continue  # MarianMT has separate tables too
        bad = tmp_path / str(i)
        bad.mkdir()
        c = json.loads(json.dumps(cfg))
        if change[1] is None:
            c[change[0]] = change[2]
        else:
            c[change[0]][change[1]] = change[2]
        (bad / "config.yaml").write_text(yaml.safe_dump(c))
        unrecorded(run / "model.safetensors", bad / "model.safetensors")
        with pytest.raises(UserError, match=message):
            export_hf(bad, tmp_path / "never")
        assert not (tmp_path / "never").exists()
