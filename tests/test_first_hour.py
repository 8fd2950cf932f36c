"""What a new user meets in the first hour (issue 22): each test pins one mistake that once passed
silently or crashed, so that it stays fixed. The bf16 crash is pinned by test_precision.py and
test_configs_run.py, the README's commands by test_readme.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import write_yaml
from tiny_runs import kneser_ney as tiny_kneser_ney
from tiny_runs import lstm_language_model

from attnkit.cli.main import main
from attnkit.config import TrainingConfig, parse_config
from attnkit.training.schedule import make_schedule

ROOT = Path(__file__).resolve().parent.parent


def error_of(capsys, argv: list[str]) -> str:
    """The one-line error of a command that must refuse ``argv`` (exit 2, from argparse or ours)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    return err[-1]


# -- 2. warmup only where the schedule calls for it --------------------------------------------------
def test_warmup_is_off_unless_the_schedule_calls_for_it():
    for schedule in ("plateau", "constant", "linear"):
        t = TrainingConfig(schedule=schedule)
        assert t.warmup_steps == 0
        assert make_schedule(schedule, 0.002, t.warmup_steps, 0.5, 2, 1e-6).lr() == 0.002  # the first update
    assert TrainingConfig(schedule="inverse_sqrt").warmup_steps == 4000  # its formula peaks at the warmup
    assert TrainingConfig(schedule="plateau", warmup_steps=100).warmup_steps == 100  # explicit wins


def test_the_readme_example_config_learns_from_its_first_update():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Train on your own data", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml

    cfg = parse_config(yaml.safe_load(block))
    t = cfg.training
    assert make_schedule(t.schedule, t.lr, t.warmup_steps, t.plateau_factor, t.plateau_patience, t.min_lr).lr() == t.lr


# -- 3. wrong answers with exit code 0 ----------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "X", "--temperature", "0"], "--temperature: input should be greater than 0"),
    (["generate", "X", "--top-p", "1.5"], "--top-p: input should be less than or equal to 1"),
    (["generate", "X", "--top-k", "-3"], "--top-k: input should be greater than or equal to 0"),
    (["generate", "X", "--max-tokens", "0"], "--max-tokens: input should be greater than or equal to 1"),
    (["translate", "X", "--beam", "0"], "--beam: input should be greater than or equal to 1"),
    (["translate", "X", "--batch-size", "0"], "--batch-size: input should be greater than or equal to 1"),
    (["translate", "X", "--nbest", "0"], "--nbest: input should be greater than or equal to 1"),
    (["evaluate", "X", "--beam", "-1"], "--beam: input should be greater than or equal to 1"),
    (["embed", "X", "--batch-size", "0"], "--batch-size: input should be greater than or equal to 1"),
    (["train", __file__, "--max-steps", "-5"], "--max-steps: input should be greater than or equal to 0"),
    (["train", __file__, "--max-minutes", "-1"], "--max-minutes: input should be greater than or equal to 0"),
    (["demo", "--minutes", "0"], "--minutes: input should be greater than 0"),
    (["demo", "--minutes", "inf"], "--minutes: input should be a finite number"),
    (["train", __file__, "--max-minutes", "1e9"], "--max-minutes: input should be less than or equal to 100000"),
    (["plot", "attention", "X", "--text", "a", "--layer", "0"], "--layer: input should be greater than or equal"),
    (["plot", "attention", "X", "--text", "a", "--head", "0"], "--head: input should be greater than or equal"),
    (["plot", "positions", "--text", "a", "--d-model", "1"], "--d-model: input should be greater than or equal"),
    (["serve", "X", "--port", "70000"], "--port: input should be less than or equal to 65535"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_every_numeric_option_is_checked_before_any_work(capsys, argv, message):
    assert message in error_of(capsys, argv)


def test_the_server_refuses_what_the_cli_refuses(tiny_runs, capsys):
    from fastapi.testclient import TestClient

    from attnkit.server import make_app
    from attnkit.tasks import load_inspector

    run = tiny_runs["transformer"]
    client = TestClient(make_app(load_inspector(run), "tiny"))
    answer = client.post("/api/inspect", json={"text": "ab cd", "beam": 2, "nbest": 3})
    assert answer.status_code == 422 and "nbest 3 cannot exceed the beam size 2" in answer.json()["error"]
    assert "nbest 3 cannot exceed the beam size 2" in error_of(capsys, ["translate", str(run), "--beam", "2",
                                                                        "--nbest", "3", "--input", __file__])
    for field, value in (("beam", 0), ("nbest", 0)):
        answer = client.post("/api/inspect", json={"text": "ab cd", field: value})
        assert answer.status_code == 422 and "greater than or equal to 1" in answer.json()["error"]
    lm = TestClient(make_app(load_inspector(tiny_runs["lm"]), "tiny"))
    for field, value, message in (("temperature", 0.0, "greater than 0"), ("max_tokens", 0, "greater than or equal")):
        answer = lm.post("/api/inspect", json={"text": "ab cd", field: value})
        assert answer.status_code == 422 and message in answer.json()["error"]


def test_evaluating_a_classifier_on_an_unlabelled_file_is_an_error(tiny_runs, tmp_path, capsys):
    unlabelled = tmp_path / "test.tsv"  # as SST-2's test.tsv: an index column, then the sentence
    unlabelled.write_text("index\tsentence\n0\tab cd ef\n1\tgh ij\n", encoding="utf-8")
    err = error_of(capsys, ["evaluate", str(tiny_runs["classifier"]), "--src", str(unlabelled)])
    assert str(unlabelled) in err and "holds no label this classifier knows" in err and "'ab cd ef'" in err


def test_training_with_an_unlabelled_test_file_is_an_error_before_any_update(tmp_path, capsys):
    from tiny_runs import classification

    raw = classification(tmp_path / "data", "rnn")
    unlabelled = tmp_path / "test.tsv"
    unlabelled.write_text("index\tsentence\n0\tab cd ef\n", encoding="utf-8")
    raw["data"]["test"] = str(unlabelled)
    err = error_of(capsys, ["train", str(write_yaml(tmp_path / "c.yaml", raw)), "--out", str(tmp_path / "run"),
                            "--max-steps", "2"])
    assert str(unlabelled) in err and "is the file labelled?" in err and not (tmp_path / "run").exists()


def test_evaluating_a_tagger_on_untagged_conllu_is_an_error(tiny_runs, tmp_path, capsys):
    untagged = tmp_path / "raw.conllu"
    untagged.write_text("1\tab\t_\t_\t_\t_\t_\t_\t_\t_\n2\tcd\t_\t_\t_\t_\t_\t_\t_\t_\n\n", encoding="utf-8")
    err = error_of(capsys, ["evaluate", str(tiny_runs["tagger"]), "--src", str(untagged)])
    assert str(untagged) in err and "no UPOS tags to score against" in err


def test_an_empty_line_to_classify_gets_an_empty_line_not_a_label(tiny_runs, tmp_path, capsys):
    inputs = tmp_path / "in.txt"
    inputs.write_text("ab cd\n\n   \ngh\n", encoding="utf-8")
    assert main(["-q", "classify", str(tiny_runs["classifier"]), "--input", str(inputs)]) == 0
    rows = capsys.readouterr().out.split("\n")
    assert rows[1] == rows[2] == "" and rows[0] and rows[3] and len(rows) == 5  # 4 lines and the final newline


@pytest.fixture(scope="module")
def kneser_ney(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kn")
    raw = tiny_kneser_ney(root / "data")
    assert main(["-q", "train", str(write_yaml(root / "kn.yaml", raw)), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def lstm_lm(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lstm")
    cfg = write_yaml(root / "lstm.yaml", lstm_language_model(root / "data"))
    assert main(["-q", "train", str(cfg), "--out", str(root / "run"), "--max-steps", "60"]) == 0
    return root / "run"


@pytest.mark.parametrize("model", ["kneser_ney", "lstm_lm"])
def test_beam_search_continues_a_prompt_instead_of_ending_it(model, request, capsys):
    """Lines of 2-6 words: after a 3-word prompt the line end is likely, and beam search, which ranks
    by probability, ended every line at once (an empty continuation). A continuation has a token."""
    run = str(request.getfixturevalue(model))
    prompts = ["ab cd ef", "gh ij kl", "ab ab"]
    for prompt in prompts:
        assert main(["-q", "generate", run, "--prompt", prompt, "--method", "beam", "--beam", "4"]) == 0
        assert capsys.readouterr().out.strip(), prompt
    assert main(["-q", "generate", run, "--prompt", "ab", "--method", "greedy", "--min-tokens", "3"]) == 0
    assert len(capsys.readouterr().out.split()) >= 3
    assert "above the 2 new tokens allowed" in error_of(capsys, ["generate", run, "--min-tokens", "5",
                                                                 "--max-tokens", "2"])


# -- 4. limits that hold ------------------------------------------------------------------------------
def slow(prepare, seconds: float):
    """A task whose validation and test take ``seconds`` each (the sleep is where the time goes)."""
    def slowed(cfg, out, resume):
        prepared = prepare(cfg, out, resume)
        validate, test = prepared.validate, prepared.test

        def late(fn):
            return lambda m: (time.sleep(seconds), fn(m))[1]

        prepared.validate, prepared.test = late(validate), late(test) if test else None
        return prepared
    return slowed


def test_max_minutes_bounds_the_whole_run_validation_and_test_included(toy_config, tmp_path, monkeypatch, caplog):
    from attnkit.tasks import TASKS
    from attnkit.train import train

    monkeypatch.setattr(TASKS["translation"], "prepare", slow(TASKS["translation"].prepare, 30.0))
    cfg = toy_config("transformer", training={"valid_every": 1000})
    start = time.monotonic()
    summary = train(cfg, tmp_path / "run", max_minutes=0.1, progress=False)  # 6 seconds
    took = time.monotonic() - start
    assert took < 6 + 1.5, took
    assert summary["stopped"] == "time" and "test" not in summary and "deadline" in summary["test_skipped"]
    assert "validation cut short by the time limit" in caplog.text
    assert (tmp_path / "run" / "model.safetensors").is_file()  # unvalidated, but a usable model directory
    assert main(["-q", "translate", str(tmp_path / "run"), "--input", str(cfg.parent / "data" / "test.src")]) == 0


def test_the_deadline_holds_even_when_a_library_swallows_it():
    """A logging handler (tqdm's has a bare except) may swallow the alarm's exception once; the alarm
    fires again until the cut-short computation really ends, and the block ends in DeadlineReached."""
    from attnkit.training.deadline import DeadlineReached, time_limit

    before = signal.getsignal(signal.SIGALRM)
    start = time.monotonic()
    with pytest.raises(DeadlineReached):
        with time_limit(start + 0.2):
            try:
                time.sleep(5)  # interrupted: the exception is swallowed
            except BaseException:
                pass
            time.sleep(5)  # interrupted again: this time it ends the block
    assert time.monotonic() - start < 1.0
    with time_limit(time.monotonic() + 1e12):  # far beyond what an alarm can hold: no limit, no error
        pass
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_resumed_run_keeps_its_limits(toy_config, tmp_path, monkeypatch):
    from attnkit.train import train
    from attnkit.training import strategies

    cfg = toy_config("transformer", training={"valid_every": 2, "max_epochs": 4})
    real = strategies.TeacherForcing.loss

    def interrupt_at_step_3(self, model, batch, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the run stops after this update
        return real(self, model, batch, step)

    monkeypatch.setattr(strategies.TeacherForcing, "loss", interrupt_at_step_3)
    first = train(cfg, tmp_path / "run", max_steps=5, progress=False)
    assert (first["stopped"], first["steps"]) == ("interrupted", 3)
    monkeypatch.setattr(strategies.TeacherForcing, "loss", real)
    again = train(None, tmp_path / "run", resume=True, progress=False)  # no --max-steps: the run's own
    assert (again["stopped"], again["steps"]) == ("max_steps", 5)


def test_resuming_a_finished_run_trains_nothing(toy_config, tmp_path):
    from attnkit.checkpoint import read_checkpoint
    from attnkit.train import train

    cfg = toy_config("transformer", training={"valid_every": 2})
    train(cfg, tmp_path / "run", max_steps=4, progress=False)
    before = read_checkpoint(tmp_path / "run" / "last.safetensors")[0]["model"]
    for _ in range(2):
        again = train(None, tmp_path / "run", resume=True, progress=False)
        assert (again["stopped"], again["steps"]) == ("max_steps", 4)
    after = read_checkpoint(tmp_path / "run" / "last.safetensors")[0]["model"]
    assert all(before[k].equal(after[k]) for k in before)


def test_resuming_a_run_that_ran_out_of_time_trains_nothing_more(toy_config, tmp_path):
    from attnkit.train import train

    cfg = toy_config("transformer", training={"valid_every": 10_000})
    first = train(cfg, tmp_path / "run", max_minutes=0.04, progress=False)  # 2.4 seconds
    assert first["stopped"] == "time" and first["steps"] > 1
    again = train(None, tmp_path / "run", resume=True, progress=False)  # its own budget, spent
    assert (again["stopped"], again["steps"]) == ("time", first["steps"])
    more = train(None, tmp_path / "run", resume=True, max_steps=first["steps"] + 2, max_minutes=0, progress=False)
    assert (more["stopped"], more["steps"]) == ("max_steps", first["steps"] + 2)  # new limits: it goes on


def test_a_run_killed_before_its_first_checkpoint_leaves_a_clean_start(toy_config, tmp_path, capsys):
    """What a kill -9 before the first checkpoint leaves (a torn metrics line, a half-written temporary
    checkpoint) is cleared by the next fresh run; a lone model.safetensors gets an error that says what to do."""
    from attnkit.train import train

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 5, "loss": 9.9}\n{"step": 6, "lo', encoding="utf-8")
    (out / ".last.safetensors.tmp999").write_bytes(b"half")
    train(toy_config("transformer", training={"valid_every": 2}), out, max_steps=2, progress=False)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert 5 not in steps and 6 not in steps and not list(out.glob(".*.tmp*"))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    err = error_of(capsys, ["train", str(toy_config("transformer", name="b.yaml")), "--out", str(lone)])
    assert "no last.safetensors to resume from" in err


def test_resumed_limits_count_the_time_already_spent():
    from attnkit.training.trainer import Limits

    kept = Limits(max_steps=100, max_minutes=10.0)
    assert kept.resumed(None, None, spent_seconds=240) == kept  # 6 minutes left of the 10
    assert kept.resumed(200, None, 240).max_steps == 200
    assert kept.resumed(None, 5.0, 240).max_minutes == pytest.approx(9.0)  # 5 more minutes from now
    assert kept.resumed(None, 0.0, 240).max_minutes == 0.0  # --max-minutes 0: no limit


# -- 5. files and paths -------------------------------------------------------------------------------
def test_output_into_a_missing_folder_is_an_error_before_any_work(tiny_runs, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "out.txt"
    for argv in (["translate", "X", "--output", str(missing)], ["classify", "X", "--output", str(missing)],
                 ["evaluate", "X", "--src", __file__, "--output", str(missing)],
                 ["generate", "X", "--output", str(missing)], ["tag", "X", "--output", str(missing)]):
        err = error_of(capsys, argv)
        assert f"folder {missing.parent} not found" in err, err


def test_shipped_files_are_inputs_too(tiny_runs, capsys):
    """``attnkit:NAME`` is a file shipped in the package, on the command line as in a config."""
    run = tiny_runs["transformer"]
    capsys.readouterr()  # (what training it printed, when this test is the first to ask for it)
    assert main(["-q", "bench", "translate", str(run), "--src", "attnkit:multi30k/val.en.gz",
                 "--limit", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 3
    assert "attnkit:multi30k/nope.gz: file not found" in error_of(capsys, ["evaluate", "X", "--src",
                                                                           "attnkit:multi30k/nope.gz"])


def test_a_failed_train_leaves_no_run_directory(toy_config, tmp_path, capsys):
    bad = toy_config("transformer", training={"lr": -1})
    out = tmp_path / "runs" / "bad"
    assert "training.lr" in error_of(capsys, ["train", str(bad), "--out", str(out)])
    assert not out.exists()
    missing_data = toy_config("transformer", name="missing.yaml", data={"valid": {"src": "nope.src", "tgt": "x"}})
    assert "nope.src" in error_of(capsys, ["train", str(missing_data), "--out", str(out)])
    assert not out.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    error_of(capsys, ["train", str(bad), "--out", str(existing)])
    assert (existing / "notes.txt").is_file()  # a folder the user made is never removed


def test_bench_task_refuses_to_overwrite_a_result(tmp_path):
    """bench/task.sh writes bench/results/NAME.json, a tracked file: an existing one is kept unless
    FORCE=1 (it stops before any training)."""
    existing = sorted((ROOT / "bench" / "results").glob("*.json"))[0]
    before = existing.read_bytes()
    done = subprocess.run(["sh", "bench/task.sh", "configs/ptb-kneser-ney.yaml", "1"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "NAME": existing.stem}, timeout=60)
    assert done.returncode != 0 and "FORCE=1" in done.stderr
    assert existing.read_bytes() == before


def test_make_images_writes_outside_the_repository_unless_asked():
    done = subprocess.run([sys.executable, "docs/images/make_images.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "default: runs/images" in done.stdout


def test_the_api_docs_page_needs_no_internet(tiny_runs):
    from fastapi.testclient import TestClient

    from attnkit.server import make_app
    from attnkit.tasks import load_inspector

    client = TestClient(make_app(load_inspector(tiny_runs["transformer"]), "tiny"))
    assert client.get("/redoc").status_code == 404  # one docs page (ReDoc's fetches a logo from its CDN)
    for page in ("/docs",):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page  # nothing from a CDN
        for asset in [part.split('"')[0] for part in html.split('src="')[1:]] + \
                     [part.split('"')[0] for part in html.split('href="')[1:]]:
            assert client.get(asset).status_code == 200, asset


# -- 6. output a user can follow ----------------------------------------------------------------------
def test_training_prints_a_line_per_log_window(toy_config, tmp_path, caplog):
    import logging

    from attnkit.train import train

    assert TrainingConfig().log_every <= 20
    with caplog.at_level(logging.INFO):
        train(toy_config("transformer", training={"log_every": 2, "valid_every": 100}), tmp_path / "run",
              max_steps=4, progress=False)
    lines = [r.getMessage() for r in caplog.records if "train loss" in r.getMessage()]
    assert len(lines) == 2 and lines[0].startswith("step 2: train loss")


def in_a_terminal(argv: list[str], cwd: Path) -> str:
    """What a 100-column terminal shows of a command (a pseudo-terminal, so the progress bar is on)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the command ended and closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out.decode()[-2000:]
    return out.decode()


def test_on_a_terminal_log_lines_print_above_a_bar_that_stays(toy_config, tmp_path):
    cfg = toy_config("transformer", training={"log_every": 4, "valid_every": 8})
    shown = in_a_terminal([sys.executable, "-m", "attnkit.cli.main", "train", str(cfg), "--out",
                           str(tmp_path / "run"), "--max-steps", "12"], tmp_path)
    lines = [line.split("\r")[-1] for line in shown.split("\r\n")]  # what stays on each line of the screen
    assert [line for line in lines if "train loss" in line] == [
        line for line in lines if line.startswith("attnkit: step ") and "train loss" in line] and \
        len([line for line in lines if "train loss" in line]) == 3  # steps 4, 8, 12, each on a line of its own
    assert any(line.startswith("attnkit: step 8: loss") for line in lines)  # the validation, not glued to the bar
    finished = [line for line in lines if line.startswith("train: 100%")]
    assert finished and lines.index(finished[-1]) < next(i for i, x in enumerate(lines) if x.startswith("run: "))


def test_the_demo_ends_within_its_minutes(tmp_path, capsys):
    start = time.monotonic()
    assert main(["-q", "demo", "--minutes", "0.3", "--out", str(tmp_path / "demo")]) == 0
    took = time.monotonic() - start
    assert took < 0.3 * 60 + 2, took  # 18 s, examples included (not 155 s for --minutes 1)
    out = capsys.readouterr().out
    assert out.count("  de: ") == 4 and "s in all" in out
