"""Bad input found by hand and by fuzzing (issue 26), each class a regular test: what would need more
memory than the machine has is refused with the arithmetic before the allocation; a compressed file is
checked as it streams; an empty label or tag is not a class."""

from __future__ import annotations

import gzip

import pytest
import torch

import attnkit.data.text as text
import attnkit.limits as limits
from attnkit.build import build_model
from attnkit.config import TransformerConfig, load_config
from attnkit.data.conllu import read_conllu
from attnkit.data.embeddings import MAX_LINE, load_vectors
from attnkit.data.text import read_lines
from attnkit.errors import UserError
from attnkit.limits import require_search_memory
from attnkit.tasks.classification import read_tsv


def test_a_model_too_large_for_the_machine_is_refused_before_any_allocation():
    cfg = TransformerConfig(d_model=65536, num_heads=4, ff_dim=65536, encoder_layers=3, decoder_layers=3)  # bounds
    with pytest.raises(UserError, match=r"^model: needs [\d,.]+ [GM]iB \([\d,]+ parameters of 4 bytes; lower the sizes "
                                        r"in its config\); this machine has [\d,.]+ [GM]iB$"):
        build_model(cfg, 8000, 8000)


def test_counting_the_parameters_first_changes_no_weight():
    """The meta-device count draws no random numbers: a seeded model is the one it was."""
    cfg = TransformerConfig(d_model=16, num_heads=2, ff_dim=24, encoder_layers=1, decoder_layers=1)
    torch.manual_seed(3)
    checked = build_model(cfg, 20, 20)
    torch.manual_seed(3)
    plain = build_model.__wrapped__(cfg, 20, 20)
    for (name, a), (_, b) in zip(checked.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(a, b), name


def test_training_state_that_does_not_fit_is_refused_with_the_arithmetic(monkeypatch, tmp_path, toy_config):
    from attnkit.train import train

    monkeypatch.setattr(limits, "machine_memory", lambda: 100_000)
    with pytest.raises(UserError, match=r"^training: needs .* parameters x 4 bytes x 5: weights, gradients, "
                                        r"Adam's two moments, the average\)"):
        train(toy_config("transformer", training={"ema_decay": 0.9, "device": "cpu"}), tmp_path / "run", max_steps=1,
              progress=False)


def test_a_beam_too_wide_for_the_machine_is_refused_with_the_arithmetic(tiny_runs):
    from attnkit.translator import load_model_dir

    with pytest.raises(UserError, match=r"^beam 100000: needs [\d,.]+ [GM]iB \(64 sentence\(s\) x beam 100000 x \("
                                        r"[\d,]+ words x 4 float32 tables a step"):
        require_search_memory(64, 100_000, 8000)
    require_search_memory(64, 5, 8000)  # the usual beam fits
    translator = load_model_dir(tiny_runs["transformer"], "cpu")
    with pytest.raises(UserError, match="beam"):
        translator.translate(["ab cd"] * 4, beam=10**9)


def test_a_gzip_bomb_is_stopped_as_it_streams(monkeypatch, tmp_path):
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"a a a a\n" * 2_000_000))  # 16 MB of text in about 16 KB
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(text, "readable_bytes", lambda: 4 << 20)
    with pytest.raises(UserError, match=rf"^{path}: decompresses to over 4.0 MiB, an eighth of this machine's memory"):
        read_lines(path)
    plain = tmp_path / "big.txt"
    plain.write_bytes(b"a\n" * (3 << 20))
    with pytest.raises(UserError, match=rf"^{plain}: over "):
        read_lines(plain)


def test_a_broken_gzip_file_is_one_line(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(b"one line\n" * 1000)[:-20])
    with pytest.raises(UserError, match=rf"^{path}: broken gzip file"):
        read_lines(path)


def test_an_empty_label_is_an_error_not_a_class(tmp_path):
    path = tmp_path / "sst.tsv"
    path.write_text("sentence\tlabel\na fine film\t1\na dull one\t\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}: line 3: empty label \(column 2\)$"):
        read_tsv(path, 0, 1, header=True)
    assert read_tsv(path, 0, None, header=True).labels == ["", ""]  # unlabelled input: no label asked for


def test_an_empty_conllu_field_is_an_error_not_a_tag(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_text("1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tdog\tdog\t\tNN\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}: line 2: empty upos field \(CoNLL-U writes _ where a value is "
                                        r"missing\)$"):
        read_conllu(path)


def test_vectors_are_read_a_bounded_line_at_a_time_and_must_be_finite(tmp_path):
    long = tmp_path / "long.vec"
    long.write_text("the " + "1 " * MAX_LINE + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{long}: line 1: longer than 1,048,576 characters"):
        load_vectors(long, ["the"], 3)
    nan = tmp_path / "nan.vec"
    nan.write_bytes(gzip.compress(b"the 1 2 3\ndog nan 0 1\n"))
    with pytest.raises(UserError, match=rf"^{nan}: line 2: a value is not finite"):
        load_vectors(nan, ["the", "dog"], 3)


def test_a_config_file_of_megabytes_is_not_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("model:\n" + "  # padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}: [\d,]+ bytes, not a config"):
        load_config(path)


def test_an_empty_sentencepiece_file_is_refused(tmp_path):
    from attnkit.data.vocab import load_tokenizer

    (tmp_path / "src.spm").write_bytes(b"")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        load_tokenizer(tmp_path, "src", "subword")


def test_a_training_batch_too_large_for_the_machine_is_refused_with_the_arithmetic(tmp_path, toy_config,
                                                                                   monkeypatch):
    import attnkit.limits
    from attnkit.train import train

    monkeypatch.setattr(attnkit.limits, "machine_memory", lambda: 1 << 30)  # the largest batch the schema allows
    with pytest.raises(UserError, match=r"^training.batch_tokens 16,000,000: needs [\d,.]+ [GM]iB "
                                        r"\(16,000,000 tokens x \d+ words x 4 bytes x 3"):
        train(toy_config("transformer", training={"batch_tokens": 16_000_000}), tmp_path / "run", max_steps=1,
              progress=False)


def test_a_yaml_error_is_one_line(tmp_path):
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"\x00")
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: invalid YAML: unacceptable character") and "\n" not in str(err.value)


def test_a_vocabulary_that_is_not_utf8_is_one_line(tmp_path):
    from attnkit.data.vocab import load_tokenizer

    (tmp_path / "src.vocab.txt").write_bytes(b"<pad>\n<unk>\n<s>\n</s>\n\xff\n")
    with pytest.raises(UserError, match=r"src.vocab.txt: invalid UTF-8 at byte 21$"):
        load_tokenizer(tmp_path, "src", "word")
