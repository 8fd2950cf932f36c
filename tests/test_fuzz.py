"""Fuzzing every reader and loader a user's file reaches (issue 26), with Hypothesis: each generated
input either works or is refused with a one-line ``UserError`` that names the file (or the key); none
may raise anything else, hang or allocate without bound. Inputs are built from the valid ones
(mutated, truncated, corrupted) as well as from nothing.

The examples are derandomized (the same in every CI run) and their number is fixed per test: EXAMPLES
below. Each class of input that once crashed is a regular test (test_limits.py, test_faults.py).
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnkit.config import apply_overrides, load_config
from attnkit.data.captions import read_coco, read_flickr8k
from attnkit.data.conllu import read_conllu
from attnkit.data.embeddings import load_vectors
from attnkit.data.images import open_image
from attnkit.data.text import read_parallel
from attnkit.data.vocab import load_tokenizer
from attnkit.errors import UserError
from attnkit.tasks.classification import read_tsv

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"config": 300, "overrides": 300, "mutated_config": 300, "parallel": 200, "conllu": 200, "tsv": 200,
            "captions": 200, "images": 150, "vectors": 200, "tokenizer": 150, "model_dir": 200}


def fuzz(name: str):
    return settings(max_examples=EXAMPLES[name], derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextmanager
def scratch():
    """A fresh folder per example (Hypothesis runs many examples in one test call)."""
    folder = Path(tempfile.mkdtemp(prefix="attnkit-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def works_or_refuses(read, *names: str):
    """``read()`` works, or raises a one-line UserError naming one of ``names`` (a file or a key)."""
    try:
        return read()
    except UserError as err:
        message = str(err)
        assert "\n" not in message.strip(), message
        assert any(name in message for name in names), (names, message)
        return None


text_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8")),
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30), max_size=20)
    .map(lambda lines: "\n".join(lines).encode("utf-8")),
)


def maybe_gzip(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """The bytes as they are, gzipped, or gzipped and cut short."""
    return st.tuples(data, st.sampled_from(["plain", "gzip", "cut"]), st.integers(1, 60)).map(
        lambda a: a[0] if a[1] == "plain" else gzip.compress(a[0]) if a[1] == "gzip" else gzip.compress(a[0])[:-a[2]])


# -- the config and its overrides -----------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=20))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=20)
SECTIONS = ["task", "data", "vocab", "model", "training", "decoding", "embeddings", "generation"]


@fuzz("config")
@given(doc=st.one_of(yaml_values, st.dictionaries(st.sampled_from(SECTIONS), yaml_values, max_size=6)),
       raw=st.one_of(st.none(), text_bytes))
def test_any_config_file_loads_or_is_refused_naming_it(doc, raw):
    with scratch() as d:
        path = d / "cfg.yaml"
        path.write_bytes(raw if raw is not None else yaml.safe_dump(doc).encode("utf-8"))
        works_or_refuses(lambda: load_config(path), str(path))


BASE = yaml.safe_load((ROOT / "configs" / "multi30k-transformer.yaml").read_text())
KEYS = [f"{section}.{key}" for section, body in BASE.items() if isinstance(body, dict) for key in body]


@fuzz("overrides")
@given(items=st.lists(st.one_of(st.text(max_size=30),
                                st.tuples(st.sampled_from(KEYS + ["model", "training.nope", "a.b.c"]),
                                          st.one_of(st.text(max_size=12), scalars.map(str))).map("=".join)),
                      max_size=4))
def test_any_set_overrides_apply_or_are_refused_naming_them(items):
    with scratch() as d:
        path = d / "cfg.yaml"
        path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
        works_or_refuses(lambda: load_config(path, items), str(path), "--set", *[i.split("=")[0] for i in items])


@fuzz("mutated_config")
@given(key=st.sampled_from(KEYS), value=yaml_values)
def test_a_config_with_any_value_at_any_key_loads_or_names_the_key(key, value):
    section, name = key.split(".")
    doc = json.loads(json.dumps(BASE))
    doc[section][name] = value
    with scratch() as d:
        path = d / "cfg.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        works_or_refuses(lambda: load_config(path), key, name, section)


def test_apply_overrides_refuses_a_key_under_a_value():
    with pytest.raises(UserError, match="is not a section"):
        apply_overrides({"model": 3}, ["model.d_model=4"])


# -- data files -----------------------------------------------------------------------------------------
@fuzz("parallel")
@given(src=maybe_gzip(text_bytes), tgt=maybe_gzip(text_bytes))
def test_any_parallel_text_reads_or_is_refused_naming_a_file(src, tgt):
    with scratch() as d:
        (d / "a.src").write_bytes(src)
        (d / "a.tgt").write_bytes(tgt)
        works_or_refuses(lambda: read_parallel(d / "a.src", d / "a.tgt"), "a.src", "a.tgt")


GOOD_ROWS = ["1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_", "2\tdog\tdog\tNOUN\tNN\t_\t0\troot\t_\t_",
             "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_", "# text = The dog", ""]


@fuzz("conllu")
@given(rows=st.lists(st.one_of(st.sampled_from(GOOD_ROWS),
                               st.lists(st.text(max_size=6), min_size=0, max_size=12).map("\t".join),
                               st.text(max_size=40)), max_size=12))
def test_any_conllu_reads_or_is_refused_naming_the_file(rows):
    with scratch() as d:
        path = d / "x.conllu"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="surrogatepass")
        sentences = works_or_refuses(lambda: read_conllu(path), str(path))
        for s in sentences or []:
            assert all(s.forms) and all(all(tags) for tags in s.tags.values())  # no empty word or tag


@fuzz("tsv")
@given(rows=st.lists(st.lists(st.text(max_size=10), max_size=4).map("\t".join), max_size=10),
       header=st.booleans(), label=st.sampled_from([None, 0, 1, 3]))
def test_any_tsv_reads_or_is_refused_naming_the_file(rows, header, label):
    with scratch() as d:
        path = d / "x.tsv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="surrogatepass")
        examples = works_or_refuses(lambda: read_tsv(path, 0, label, header), str(path))
        if examples is not None and label is not None:
            assert all(examples.labels)  # an empty label is never a class


@fuzz("captions")
@given(raw=st.one_of(text_bytes, yaml_values.map(lambda v: json.dumps(v).encode()),
                     st.fixed_dictionaries({"images": yaml_values, "annotations": yaml_values})
                     .map(lambda v: json.dumps(v).encode())))
def test_any_captions_file_reads_or_is_refused_naming_it(raw):
    with scratch() as d:
        for name, read in (("c.txt", read_flickr8k), ("c.json", read_coco)):
            (d / name).write_bytes(raw)
            works_or_refuses(lambda read=read, path=d / name: read(path), name)


def png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (9, 7), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


@fuzz("images")
@given(cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 255)), max_size=4),
       raw=st.binary(max_size=64))
def test_any_image_file_opens_or_is_refused_naming_it(cut, flips, raw):
    data = bytearray(png())
    for at, bits in flips:
        data[at % len(data)] ^= bits
    with scratch() as d:
        for name, content in (("a.png", bytes(data[:len(data) - cut % len(data)])), ("b.png", raw)):
            (d / name).write_bytes(content)
            works_or_refuses(lambda path=d / name: open_image(path), name)


@fuzz("vectors")
@given(raw=maybe_gzip(st.one_of(text_bytes, st.lists(st.lists(st.sampled_from(
    ["the", "dog", "1.5", "-2", "nan", "inf", "x", "3", "", " "]), max_size=5).map(" ".join), max_size=6)
    .map(lambda lines: "\n".join(lines).encode()))))
def test_any_vectors_file_loads_or_is_refused_naming_it(raw):
    with scratch() as d:
        path = d / "v.vec"
        path.write_bytes(raw)
        loaded = works_or_refuses(lambda: load_vectors(path, ["the", "dog", "cat"], 3), str(path))
        if loaded is not None:
            assert bool(loaded[0].isfinite().all())


@fuzz("tokenizer")
@given(raw=st.one_of(text_bytes, st.lists(st.text(max_size=8), max_size=8).map(
    lambda t: ("<pad>\n<unk>\n<s>\n</s>\n" + "\n".join(t) + "\n").encode("utf-8", "surrogatepass"))),
    level=st.sampled_from(["word", "char", "subword"]))
def test_any_tokenizer_file_loads_or_is_refused_naming_it(raw, level):
    with scratch() as d:
        path = d / ("src.spm" if level == "subword" else "src.vocab.txt")
        path.write_bytes(raw)
        tok = works_or_refuses(lambda: load_tokenizer(d, "src", level), path.name)
        if tok is not None:
            tok.decode(tok.encode("the dog"))


# -- a trained model directory, damaged ------------------------------------------------------------------
def safetensors_parts(data: bytes) -> tuple[int, bytes, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return n, data[8:8 + n], data[8 + n:]


damage = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.tuples(st.integers(0, 10**6), st.integers(1, 255))),
    st.tuples(st.just("header"), st.sampled_from([
        (b'"F32"', b'"BF16"'), (b'"F32"', b'"I32"'), (b'"F32"', b'"F64"'), (b'"shape":[', b'"shape":[99999999,'),
        (b'"data_offsets":[', b'"data_offsets":[1'), (b'"aliases"', b'"aliasez"'), (b'"format_version"', b'"x"'),
        (b'"checksum": "', b'"checksum": "0')])),
    st.tuples(st.just("length"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("config"), st.tuples(st.sampled_from(["model.d_model", "model.num_heads", "model.ff_dim",
                                                              "model.encoder_layers", "model.max_positions",
                                                              "vocab.level", "decoding.beam", "task", "model.arch"]),
                                            yaml_values)),
    st.tuples(st.just("summary"), text_bytes),
    st.tuples(st.just("vocab"), text_bytes),
)


@fuzz("model_dir")
@given(hurt=damage)
def test_a_damaged_model_directory_translates_or_is_refused_naming_the_file(tiny_runs, hurt):
    from attnkit.translator import load_model_dir

    how, what = hurt
    with scratch() as d:
        run = d / "run"
        shutil.copytree(tiny_runs["transformer"], run, ignore=shutil.ignore_patterns("last.safetensors"))
        weights = run / "model.safetensors"
        data = weights.read_bytes()
        if how == "truncate":
            weights.write_bytes(data[:what % len(data)])
        elif how == "flip":
            at, bits = what
            raw = bytearray(data)
            raw[at % len(raw)] ^= bits
            weights.write_bytes(bytes(raw))
        elif how == "header":
            old, new = what
            n, header, rest = safetensors_parts(data)
            header = header.replace(old, new, 1)
            weights.write_bytes(struct.pack("<Q", len(header)) + header + rest)
        elif how == "length":
            weights.write_bytes(struct.pack("<Q", what) + data[8:])
        elif how == "config":
            key, value = what
            doc = yaml.safe_load((run / "config.yaml").read_text())
            section, name = key.split(".") if "." in key else (None, key)
            (doc[section] if section else doc)[name] = value
            (run / "config.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        elif how == "summary":
            (run / "summary.json").write_bytes(what)
        else:
            (next(run.glob("*.vocab.txt"), None) or next(run.glob("*.spm"))).write_bytes(what)

        def use():
            return load_model_dir(run, "cpu").translate(["ab cd ef"], beam=2)

        works_or_refuses(use, str(run))
