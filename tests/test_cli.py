"""attnkit.cli: help texts, one-line errors for every bad input, translate/evaluate/bench end to end."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_config, write_yaml
from safetensors import safe_open
from safetensors.torch import save_file

from attnkit import FORMAT_VERSION
from attnkit.cli.main import main

# -- help ----------------------------------------------------------------------------------------------

HELP = {
    (): ["train", "translate", "evaluate", "demo", "bench", "--quiet", "--version"],
    ("train",): ["config", "--out", "--set", "--max-steps", "--max-minutes", "--resume"],
    ("translate",): ["DIR", "--beam", "--nbest", "--batch-size", "--input", "--output"],
    ("evaluate",): ["DIR", "--src", "--ref", "--beam", "--batch-size", "--output", "--json"],
    ("demo",): ["--minutes", "--out"],
    ("bench",): ["train", "translate"],
    ("bench", "train"): ["config", "--set", "--steps", "--warmup"],
    ("bench", "translate"): ["DIR", "--src", "--beam", "--batch-size", "--limit"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "attnkit")
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: attnkit")
    for option in HELP[command]:
        assert option in out, option


def test_console_entry_point_help_and_version():
    exe = shutil.which("attnkit", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "attnkit.cli.main"]
    done = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "translate" in done.stdout and done.stderr == ""
    done = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("attnkit ")


def test_quiet_keeps_stderr_to_warnings_and_train_log_whole(tmp_path, toy_config):
    """``-q`` quiets the console only: the run directory's train.log still has the run's records."""
    exe = shutil.which("attnkit", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "attnkit.cli.main"]
    out = tmp_path / "run"
    done = subprocess.run([*cmd, "-q", "train", str(toy_config()), "--out", str(out), "--max-steps", "3"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "step 3" not in done.stderr
    log = (out / "train.log").read_text(encoding="utf-8")
    assert "model with" in log and "parameters" in log and "step 3: loss" in log, log


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["translate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2


# -- one-line errors -----------------------------------------------------------------------------------


def fails(capsys, argv, *needles) -> str:
    """Run the CLI; it must exit 2 with exactly one stderr line 'attnkit: error: ...' holding needles
    (an option argparse refuses exits through SystemExit, before the command runs)."""
    try:
        rc = main(argv)
    except SystemExit as stop:
        rc = stop.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("attnkit: error: ")
    assert "Traceback" not in captured.err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def train_argv(cfg: Path, out: Path, *extra) -> list[str]:
    return ["-q", "train", str(cfg), "--out", str(out), "--max-steps", "2", *extra]


def test_missing_training_file(tmp_path, toy_config, capsys):
    cfg = toy_config("rnn", data={"train": {"src": str(tmp_path / "nope.src"), "tgt": str(tmp_path / "nope.tgt")}})
    fails(capsys, train_argv(cfg, tmp_path / "out"), "nope.src", "file not found")


def test_missing_config_file(tmp_path, capsys):
    fails(capsys, train_argv(tmp_path / "absent.yaml", tmp_path / "out"), "absent.yaml", "not found")


def test_empty_training_file(tmp_path, toy_config, toy_corpus, capsys):
    (toy_corpus / "train.tgt").write_text("")
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out"), "train.tgt", "empty")


def test_line_count_mismatch_names_both_files_and_counts(tmp_path, toy_config, toy_corpus, capsys):
    tgt = toy_corpus / "train.tgt"
    tgt.write_text("".join(tgt.read_text().splitlines(keepends=True)[:37]))
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out"), "train.src has 40 lines", "train.tgt has 37")


def test_invalid_utf8_names_file_and_line(tmp_path, toy_config, toy_corpus, capsys):
    src = toy_corpus / "valid.src"
    lines = src.read_bytes().splitlines(keepends=True)
    lines[4] = b"ab \xc3\x28 cd\n"
    src.write_bytes(b"".join(lines))
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out"), "valid.src", "line 5", "invalid UTF-8")


def test_empty_training_lines_are_skipped_and_training_works(tmp_path, toy_config, toy_corpus, capsys, caplog):
    for side, extra in (("src", "\nab\n"), ("tgt", "cd\n\n")):
        path = toy_corpus / f"train.{side}"
        path.write_text(path.read_text() + extra)
    with caplog.at_level(logging.WARNING):
        assert main(train_argv(toy_config("rnn"), tmp_path / "out")) == 0
    assert "skipped 2 pair(s) with an empty line" in caplog.text
    assert "stopped: max_steps after 2 steps" in capsys.readouterr().out


def test_misspelt_config_key_and_wrong_type(tmp_path, toy_corpus, capsys):
    raw = run_config(toy_corpus, "rnn")
    raw["model"]["contxt"] = "dot"
    cfg = write_yaml(tmp_path / "typo.yaml", raw)
    fails(capsys, train_argv(cfg, tmp_path / "out"), "typo.yaml", "unknown key 'model.contxt'")
    raw = run_config(toy_corpus, "rnn", training={"lr": "fast"})
    cfg = write_yaml(tmp_path / "type.yaml", raw)
    fails(capsys, train_argv(cfg, tmp_path / "out"), "type.yaml", "key 'training.lr'", "'fast'")
    raw = run_config(toy_corpus, "transformer", model={"num_heads": 3})
    cfg = write_yaml(tmp_path / "heads.yaml", raw)
    fails(capsys, train_argv(cfg, tmp_path / "out"), "key 'model.num_heads'", "not divisible")
    raw = run_config(toy_corpus, "rnn", model={"context": "dot", "decoder_hidden": 12})
    cfg = write_yaml(tmp_path / "dot.yaml", raw)
    fails(capsys, train_argv(cfg, tmp_path / "out"), "key 'model.context'", "decoder_hidden (12)")


def test_misspelt_set_override(tmp_path, toy_config, capsys):
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out", "--set", "model.contxt=dot"),
          "unknown key 'model.contxt'")
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out", "--set", "training.lr"),
          "expected section.key=value")


def test_missing_data_file_named_in_the_config(tmp_path, toy_config, toy_corpus, capsys):
    (toy_corpus / "test.tgt").unlink()
    fails(capsys, train_argv(toy_config("rnn"), tmp_path / "out"), str(toy_corpus / "test.tgt"), "file not found")


def test_train_refuses_existing_run_and_empty_resume(tmp_path, toy_config, capsys):
    cfg = toy_config("rnn")
    out = tmp_path / "out"
    assert main(train_argv(cfg, out)) == 0
    capsys.readouterr()
    fails(capsys, train_argv(cfg, out), str(out), "already holds a run", "--resume")
    fails(capsys, ["-q", "train", "--resume", "--out", str(tmp_path / "fresh")], "fresh", "nothing to resume")
    fails(capsys, ["-q", "train"], "give a CONFIG")
    fails(capsys, ["-q", "train", "--resume"], "--out")
    # --resume continues the run to a larger step count
    assert main(["-q", "train", "--resume", "--out", str(out), "--max-steps", "4"]) == 0
    assert "after 4 steps" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


# -- model directories ---------------------------------------------------------------------------------


@pytest.fixture
def model_copy(model_dir, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def translate(capsys, model: Path, tmp_path: Path, lines: list[str], *extra) -> list[str]:
    inp = tmp_path / "in.txt"
    inp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    assert main(["-q", "translate", str(model), "--input", str(inp), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_model_directory_missing(tmp_path, capsys):
    fails(capsys, ["-q", "translate", str(tmp_path / "nowhere")], "nowhere", "model directory not found")


@pytest.mark.parametrize("name", ["model.safetensors", "config.yaml", "src.vocab.txt", "tgt.vocab.txt"])
def test_model_directory_incomplete(model_copy, capsys, name):
    (model_copy / name).unlink()
    fails(capsys, ["-q", "translate", str(model_copy)], str(model_copy), "incomplete", name)


def test_model_from_another_format_version(model_copy, capsys):
    path = model_copy / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["attnkit"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    meta["format_version"] = FORMAT_VERSION + 1
    save_file(tensors, str(path), metadata={"attnkit": json.dumps(meta)})
    fails(capsys, ["-q", "translate", str(model_copy)], "model.safetensors", f"format {FORMAT_VERSION + 1}",
          f"reads format {FORMAT_VERSION}")


def test_model_weights_not_safetensors(model_copy, capsys):
    (model_copy / "model.safetensors").write_bytes(b"PK\x03\x04 a zip, say a pickled torch file")
    fails(capsys, ["-q", "translate", str(model_copy)], "model.safetensors", "not a readable attnkit checkpoint")


def test_model_config_broken(model_copy, capsys):
    (model_copy / "config.yaml").write_text((model_copy / "config.yaml").read_text() + "extra_section: 1\n")
    fails(capsys, ["-q", "translate", str(model_copy)], "config.yaml", "unknown key 'extra_section'")


# -- translate / evaluate ------------------------------------------------------------------------------


def test_translate_keeps_line_count(model_dir, tmp_path, capsys):
    lines = ["ab cd ef", "", "gh", "   ", "ij kl mn op"]
    out = translate(capsys, model_dir, tmp_path, lines)
    assert len(out) == len(lines)
    assert out[1] == "" and out[3] == ""
    # beam 1 and the output file option
    target = tmp_path / "out.txt"
    out_greedy = translate(capsys, model_dir, tmp_path, lines, "--beam", "1", "--output", str(target))
    assert out_greedy == []
    assert len(target.read_text().splitlines()) == len(lines)


def test_translate_nbest(model_dir, tmp_path, capsys):
    lines = ["ab cd", "", "ef gh ij"]
    out = translate(capsys, model_dir, tmp_path, lines, "--nbest", "2", "--beam", "2")
    assert len(out) == 2 * len(lines)
    for k, line in enumerate(out):
        index, _text, score = line.split(" ||| ")
        assert int(index) == k // 2
        float(score)
    scores = [float(line.split(" ||| ")[2]) for line in out]
    assert scores[0] >= scores[1] and scores[4] >= scores[5]  # best first
    fails(capsys, ["-q", "translate", str(model_dir), "--input", str(tmp_path / "in.txt"), "--nbest", "3",
                   "--beam", "2"], "nbest 3", "beam size 2")


def test_translate_from_stdin(model_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ab cd\n\nef\n")))
    assert main(["-q", "translate", str(model_dir), "--beam", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ab cd\nef \xff\n")))
    fails(capsys, ["-q", "translate", str(model_dir)], "<stdin>", "line 2", "invalid UTF-8")


def test_translate_missing_input_file(model_dir, tmp_path, capsys):
    fails(capsys, ["-q", "translate", str(model_dir), "--input", str(tmp_path / "in.txt")], "in.txt", "not found")


def test_sentence_longer_than_max_positions_is_translated_with_a_warning(model_dir, tmp_path, capsys, caplog):
    long_line = " ".join(["ab", "cd", "ef", "gh"] * 6)  # 24 words + EOS; the model takes 12 positions
    with caplog.at_level(logging.WARNING):
        out = translate(capsys, model_dir, tmp_path, ["ab cd", long_line], "--beam", "2")
    assert len(out) == 2
    assert "line 2: source has 25 tokens, more than the model's limit of 12" in caplog.text
    with caplog.at_level(logging.WARNING):
        out = translate(capsys, model_dir, tmp_path, [long_line], "--beam", "1")
    assert len(out) == 1 and len(out[0].split()) <= 11


def test_evaluate(model_dir, tmp_path, capsys):
    data = model_dir.parent / "data"
    assert main(["-q", "evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref",
                 str(data / "test.tgt"), "--beam", "1", "--output", str(tmp_path / "hyp.txt")]) == 0
    out = capsys.readouterr().out
    assert "BLEU" in out and "chrF" in out and "nrefs:1" in out
    assert len((tmp_path / "hyp.txt").read_text().splitlines()) == 6
    assert main(["-q", "evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref",
                 str(data / "test.tgt"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["sentences"] == 6 and scores["beam"] == 2 and 0 <= scores["bleu"] <= 100
    fails(capsys, ["-q", "evaluate", str(model_dir), "--src", str(data / "test.src"), "--ref",
                   str(data / "valid.tgt")], "test.src has 6 lines", "valid.tgt has 8")


def test_bench_commands(model_dir, tmp_path, toy_config, capsys):
    assert main(["-q", "bench", "train", str(toy_config("rnn")), "--steps", "2", "--warmup", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["arch"] == "rnn" and result["steps"] == 2 and result["target_tokens"] > 0
    src = model_dir.parent / "data" / "test.src"
    assert main(["-q", "bench", "translate", str(model_dir), "--src", str(src), "--limit", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == 3 and result["beam"] == 1


def test_trained_run_directory_contents(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.yaml", "model.safetensors", "last.safetensors", "src.vocab.txt", "tgt.vocab.txt",
            "metrics.jsonl", "summary.json", "train.log"} <= names
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["stopped"] == "max_steps" and "test" in summary


def test_translation_does_not_depend_on_batch_size_or_order(model_dir):
    from attnkit.translator import load_model_dir

    translator = load_model_dir(model_dir)
    lines = ["ab cd ef", "gh", "", "ij kl mn op ab", "cd cd", "ef gh ij"]
    for beam in (1, 3):
        one = translator.translate(lines, beam=beam, nbest=1, batch_size=1)
        many = translator.translate(lines, beam=beam, nbest=1, batch_size=4)
        assert [r[0].tokens for r in one] == [r[0].tokens for r in many]
        rev = translator.translate(lines[::-1], beam=beam, batch_size=4)[::-1]
        assert [r[0].text for r in rev] == [r[0].text for r in one]
        for r in one:
            assert r[0].text == translator.tgt_tok.decode(r[0].tokens)


def test_allocator_tuning_is_accepted_by_glibc():
    import platform

    from attnkit.runtime import tune_malloc

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert tune_malloc() is True
