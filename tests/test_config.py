"""attnkit.config: shipped configs parse, overrides, and one-line errors that name the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from attnkit.build import build_model
from attnkit.config import (
    RNNConfig,
    TransformerConfig,
    TranslationConfig,
    apply_overrides,
    dump_config,
    load_config,
    parse_config,
    read_yaml,
    resolve_path,
)
from attnkit.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(ROOT.glob("configs/*.yaml")) + [Path(str(resources.files("attnkit") / "resources" / "demo.yaml"))]
MINIMAL = {"data": {"train": {"src": "a.src", "tgt": "a.tgt"}, "valid": {"src": "b.src", "tgt": "b.tgt"}}}


def error_of(raw) -> str:
    with pytest.raises(UserError) as info:
        parse_config(raw, source="my.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_there_are_shipped_configs():
    assert len(SHIPPED) >= 7


def data_files(cfg) -> list[str]:
    if getattr(cfg.data, "source", None) == "digits":  # captioning's composed scenes: one digits file
        return [cfg.data.digits]
    out = []
    for split in ("train", "valid", "test"):
        value = getattr(cfg.data, split)
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            out += [v.src, v.tgt] if hasattr(v, "src") else [v.captions] if hasattr(v, "captions") else [v]
    return out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_parses_and_names_real_files(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs name data relative to the repository root
    cfg = load_config(path)
    for name in data_files(cfg):
        if name.startswith("../shared/") and not (ROOT.parent / "shared" / "data").is_dir():
            pytest.skip("the project's shared datasets are not beside this checkout")
        assert resolve_path(name).is_file(), name  # the embedded or shared data is really there
    assert parse_config(__import__("yaml").safe_load(dump_config(cfg))) == cfg  # dump -> parse round trip


TRANSLATION = [p for p in SHIPPED if p.name.startswith("multi30k") or p.name == "demo.yaml"]


@pytest.mark.parametrize("path", TRANSLATION, ids=lambda p: p.name)
def test_translation_config_model_builds(path):
    cfg = load_config(path)
    assert isinstance(cfg, TranslationConfig)
    arch = "rnn" if "rnn" in path.name else "transformer"
    assert cfg.model.arch == arch
    if arch == "rnn":
        assert cfg.model.context in path.stem  # multi30k-rnn-<context>.yaml
    build_model(cfg.model, 300, 300)  # sizes are consistent (e.g. dot attention)


def test_defaults_and_architecture_selection():
    cfg = parse_config(MINIMAL)
    assert isinstance(cfg.model, TransformerConfig)
    assert cfg.vocab.level == "subword" and cfg.decoding.beam == 5
    cfg = parse_config({**MINIMAL, "model": {"arch": "rnn", "context": "mean"}})
    assert isinstance(cfg.model, RNNConfig) and cfg.model.context == "mean"


def test_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: {src: a, tgt: b}\n  valid: {src: c, tgt: d}\nmodel:\n  arch: rnn\n")
    cfg = load_config(path, ["training.lr=0.01", "model.context=dot", "model.decoder_hidden=512",
                             "training.adam_betas=[0.8, 0.9]", "decoding.beam=3", "vocab.level=char"])
    assert cfg.training.lr == 0.01
    assert cfg.model.context == "dot" and cfg.model.decoder_hidden == 512
    assert cfg.training.adam_betas == [0.8, 0.9]
    assert cfg.decoding.beam == 3 and cfg.vocab.level == "char"
    # a later override wins, a new section is created
    raw = apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.b=3", "c.d=x y"])
    assert raw == {"a": {"b": 3}, "c": {"d": "x y"}}


def test_misspelt_override_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: {src: a, tgt: b}\n  valid: {src: c, tgt: d}\n")
    with pytest.raises(UserError, match=r"unknown key 'training\.lrr'"):
        load_config(path, ["training.lrr=0.01"])
    with pytest.raises(UserError, match=r"key 'training\.lr'.*'fast'"):
        load_config(path, ["training.lr=fast"])
    with pytest.raises(UserError, match="expected section.key=value"):
        load_config(path, ["training.lr"])
    with pytest.raises(UserError, match="not a section"):
        apply_overrides({"training": {"lr": 1}}, ["training.lr.x=2"])


@pytest.mark.parametrize("raw, expected", [
    ({**MINIMAL, "model": {"arch": "rnn", "contxt": "dot"}}, r"my.yaml: unknown key 'model.contxt'"),
    ({**MINIMAL, "traning": {}}, r"unknown key 'traning'"),
    ({**MINIMAL, "training": {"lr": "fast"}}, r"key 'training.lr': .*valid number.*'fast'"),
    ({**MINIMAL, "training": {"max_steps": "10"}}, r"key 'training.max_steps': .*integer"),
    ({**MINIMAL, "decoding": {"beam": 0}}, r"key 'decoding.beam': .*greater than or equal to 1"),
    ({**MINIMAL, "model": {"arch": "rnn", "context": "luong"}}, r"key 'model.context'.*'luong'"),
    ({**MINIMAL, "model": {"arch": "lstm"}}, r"key 'model.arch': expected one of rnn, transformer \(got 'lstm'\)"),
    ({**MINIMAL, "model": {"d_model": 64}}, r"missing key 'model.arch'"),
    ({"data": {"train": {"src": "a", "tgt": "b"}}}, r"missing key 'data.valid'"),
    ({}, r"missing key 'data'"),
    ({**MINIMAL, "model": {"arch": "rnn", "context": "dot", "encoder_hidden": 8, "decoder_hidden": 12}},
     r"key 'model.context'.*decoder_hidden \(12\).*\(16\)"),
    ({**MINIMAL, "model": {"arch": "transformer", "d_model": 10, "num_heads": 3}},
     r"key 'model.num_heads'.*not divisible"),
    ({**MINIMAL, "vocab": {"joint": False}, "model": {"arch": "transformer", "share_src_tgt_embeddings": True}},
     r"key 'model'.*joint vocabulary"),
])
def test_config_errors_name_the_key(raw, expected):
    import re
    msg = error_of(raw)
    assert re.search(expected, msg), msg


def test_more_than_one_problem_is_counted():
    msg = error_of({**MINIMAL, "training": {"lr": "x", "seed": "y"}})
    assert "and 1 more problem" in msg


def test_yaml_file_errors(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [a\n  valid: b\n")
    with pytest.raises(UserError, match=r"bad.yaml: line \d+ invalid YAML"):
        read_yaml(bad)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"data: \xe9\n")
    with pytest.raises(UserError, match="not valid UTF-8"):
        read_yaml(latin)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="missing key 'data'"):
        load_config(empty)


def test_resolve_path(tmp_path):
    embedded = resolve_path("attnkit:multi30k/val.en.gz")
    assert embedded.is_file() and embedded.name == "val.en.gz"
    assert resolve_path("x/y.txt", base=tmp_path) == tmp_path / "x" / "y.txt"
    assert resolve_path(str(tmp_path / "abs.txt"), base=Path("/elsewhere")) == tmp_path / "abs.txt"
    assert resolve_path("rel.txt") == Path("rel.txt")
