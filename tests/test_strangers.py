"""What a stranger hands over (issue 37): model directories, configs, exports and prepared corpora
damaged on purpose, each opened by the CLI as a user runs it, in a subprocess under a 4 GiB address-space
limit and 30 s. Each must end with a non-zero exit, one error line under 400 characters and no
traceback, and leave every input file as it was."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import run_config, toy_pairs, write_parallel, write_yaml
from safetensors.torch import save_file

from attnkit.checkpoint import checksum, read_checkpoint

ADDRESS_SPACE = 4 << 30
SECONDS = 30


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def attnkit(*args: str, stdin: str = "", seconds: float = SECONDS) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, bounded in memory and time (a hang fails the test)."""
    return subprocess.run([sys.executable, "-m", "attnkit", "-q", *args], input=stdin, capture_output=True,
                          text=True, timeout=seconds, preexec_fn=limited, env={**os.environ, "OMP_NUM_THREADS": "1"})


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """The one error line of a refused command, which names ``words``."""
    err = done.stderr.strip()
    assert done.returncode not in (0, None) and "Traceback" not in err, err[-3000:]
    line = err.splitlines()[-1]
    assert line.startswith("attnkit: error: ") and len(line) < 400, line[:1000]
    for word in words:
        assert word in line, line
    return line


def snapshot(*paths: Path) -> dict[Path, str]:
    """SHA-256 of every file under ``paths``: what must not change."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture
def model(model_dir, tmp_path) -> Path:
    """A copy of the session's tiny Transformer, to damage."""
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def edit_config(model: Path, **changes) -> None:
    raw = yaml.safe_load((model / "config.yaml").read_text())
    raw["model"].update(changes)
    (model / "config.yaml").write_text(yaml.safe_dump(raw))


# -- configs: bounded before anything is built -------------------------------------------------------
def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_a_config_of_nested_aliases_is_refused_before_it_expands(model, levels):
    before = snapshot(model)
    (model / "config.yaml").write_text(billion_laughs(levels))
    start = time.monotonic()
    line = refused(attnkit("translate", str(model), stdin="ab cd\n"), "config.yaml", "line 2", "alias")
    assert time.monotonic() - start < SECONDS and len(line) < 250
    assert {f: h for f, h in snapshot(model).items() if f.name != "config.yaml"} == \
        {f: h for f, h in before.items() if f.name != "config.yaml"}


def test_a_config_nested_too_deeply_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("[" * 100_000 + "]" * 100_000)
    refused(attnkit("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")), "c.yaml")


def test_values_quoted_in_errors_are_cut(tmp_path, toy_corpus):
    raw = run_config(toy_corpus, "transformer")
    raw["model"]["num_heads"] = "y" * 100_000
    line = refused(attnkit("train", str(write_yaml(tmp_path / "c.yaml", raw)), "--out", str(tmp_path / "r")),
                   "model.num_heads")
    assert "yyyyyyyy..." in line and len(line) < 200


@pytest.mark.parametrize("key, value", [("encoder_layers", 100_000), ("max_positions", 2_000_000_000),
                                        ("d_model", 1 << 20), ("num_heads", 4096)])
def test_every_size_of_a_model_has_a_bound(model, key, value):
    edit_config(model, **{key: value})
    refused(attnkit("translate", str(model), stdin="ab cd\n"), f"model.{key}", "less than or equal")


def test_a_huge_beam_is_refused_by_its_bound(model):
    refused(attnkit("translate", str(model), "--beam", "100000", stdin="ab cd\n"), "beam", "1024")


# -- weights and config agree ------------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("num_heads", 4), ("norm", "post"), ("activation", "gelu"),
                                        ("positional", "learned")])
def test_a_config_that_disagrees_with_its_weights_is_refused(model, key, value):
    edit_config(model, **{key: value})
    refused(attnkit("translate", str(model), stdin="ab cd\n"), f"model.{key}", "trained with")


def test_a_changed_dropout_is_no_disagreement(model):
    edit_config(model, dropout=0.3)
    done = attnkit("translate", str(model), stdin="ab cd\n")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, done.stderr[-2000:]


@pytest.mark.parametrize("with_checksum", [True, False])
def test_weights_that_are_not_finite_are_refused_on_load(model, with_checksum):
    groups, doc = read_checkpoint(model / "model.safetensors")
    name = next(iter(groups["model"]))
    groups["model"][name] = torch.full_like(groups["model"][name], float("nan"))
    tensors = {f"{group}.{k}": v for group, part in groups.items() for k, v in part.items()}
    doc.pop("checksum")
    if with_checksum:
        doc["checksum"] = checksum(tensors)
    save_file(tensors, str(model / "model.safetensors"), metadata={"attnkit": json.dumps(doc)})
    refused(attnkit("translate", str(model), stdin="ab cd\n"), "not finite")


def test_a_tokenizer_changed_since_training_is_refused(model, tmp_path):
    vocab = sorted(model.glob("*.vocab.txt"))[0]
    vocab.write_text(vocab.read_text(encoding="utf-8") + "extra\n", encoding="utf-8")
    refused(attnkit("translate", str(model), stdin="ab cd\n"), vocab.name, "checksum")


# -- inputs are never overwritten -----------------------------------------------------------------------
def test_translate_refuses_to_write_over_its_input(model, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("ab cd\nef\n")
    before = snapshot(text, model)
    refused(attnkit("translate", str(model), "--input", str(text), "--output", str(text)), "also an input")
    link = tmp_path / "link.txt"
    link.symlink_to(text)
    refused(attnkit("translate", str(model), "--input", str(text), "--output", str(link)), "also an input")
    refused(attnkit("translate", str(model), "--input", str(text), "--output", str(model / "config.yaml")),
            "model directory")
    assert snapshot(text, model) == before


def test_evaluate_refuses_an_output_linked_to_its_reference(model, tmp_path):
    src, ref = write_parallel(tmp_path / "test", "test", toy_pairs(4, seed=5))
    link = tmp_path / "out.txt"
    link.symlink_to(ref)
    before = snapshot(src, ref, model)
    refused(attnkit("evaluate", str(model), "--src", str(src), "--ref", str(ref), "--output", str(link)),
            "also an input")
    assert snapshot(src, ref, model) == before


def test_an_output_is_written_whole_or_not_at_all(model, tmp_path):
    """Through a temporary file renamed over it: a symlink output is replaced, its target untouched."""
    target, link = tmp_path / "target.txt", tmp_path / "out.txt"
    target.write_text("keep\n")
    link.symlink_to(tmp_path / "elsewhere.txt")
    done = attnkit("translate", str(model), "--output", str(link), stdin="ab cd\n")
    assert done.returncode == 0 and link.is_file() and not link.is_symlink(), done.stderr[-2000:]
    assert target.read_text() == "keep\n" and not list(tmp_path.glob(".*tmp*"))


# -- CTranslate2 exports ------------------------------------------------------------------------------
@pytest.fixture
def export(model, tmp_path) -> Path:
    pytest.importorskip("ctranslate2")
    out = tmp_path / "ct2"
    done = attnkit("export", str(model), "--to", "ctranslate2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("damage", ["truncated model.bin", "cut vocabulary", "broken config.json",
                                    "no checksums"])
def test_a_damaged_ctranslate2_export_is_one_line(export, damage):
    if damage == "truncated model.bin":
        truncate(export / "model.bin")
    elif damage == "cut vocabulary":
        truncate(next(p for p in export.glob("*vocabulary*")))
    elif damage == "broken config.json":
        (export / "config.json").write_text("{")
    else:
        (export / "checksums.json").unlink()
    refused(attnkit("translate", str(export), "--engine", "ctranslate2", stdin="ab cd\n"))


def test_an_intact_export_translates(export):
    done = attnkit("translate", str(export), "--engine", "ctranslate2", stdin="ab cd\n")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, done.stderr[-2000:]


# -- prepared corpora ------------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path, toy_corpus) -> tuple[Path, Path]:
    """A prepared corpus and the config that trains from it."""
    raw = run_config(toy_corpus, "transformer")
    done = attnkit("prepare", str(write_yaml(tmp_path / "plain.yaml", raw)), "--out", str(tmp_path / "corpus"))
    assert done.returncode == 0, done.stderr[-2000:]
    raw["data"]["prepared"] = str(tmp_path / "corpus")
    return tmp_path / "corpus", write_yaml(tmp_path / "prepared.yaml", raw)


def rewrite_ids(directory: Path, change, restamp: bool) -> None:
    """Change train.tgt.bin's ids; ``restamp``: record the changed file's checksum too (a forger)."""
    path = directory / "train.tgt.bin"
    ids = np.fromfile(path, dtype="<i4")
    change(ids)
    ids.astype("<i4").tofile(path)
    if restamp:
        doc = json.loads((directory / "corpus.json").read_text())
        doc["files"]["train.tgt.bin"] = hashlib.sha256(path.read_bytes()).hexdigest()
        (directory / "corpus.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, words", [
    ("ids out of range", ["outside its vocabulary"]),
    ("ids out of range, no checksum", ["checksum"]),
    ("ids flipped", ["checksum"]),
    ("every id padding", ["checksum"]),
    ("offsets changed", ["checksum"]),
    ("manifest truncated", ["corpus.json", "damaged"]),
    ("manifest not UTF-8", ["corpus.json", "damaged"]),
    ("manifest a list", ["corpus.json", "damaged"]),
])
def test_a_damaged_prepared_corpus_is_one_line_before_training(corpus, tmp_path, damage, words):
    directory, cfg = corpus
    manifest = directory / "corpus.json"
    if damage.startswith("ids out of range"):
        rewrite_ids(directory, lambda ids: ids.__setitem__(0, 10**6), restamp="no checksum" not in damage)
    elif damage == "ids flipped":
        rewrite_ids(directory, lambda ids: ids.__setitem__(slice(None), ids[::-1].copy()), restamp=False)
    elif damage == "every id padding":
        rewrite_ids(directory, lambda ids: ids.fill(0), restamp=False)
    elif damage == "offsets changed":
        offsets = np.load(directory / "train.src.offsets.npy")
        offsets[1] += 1  # sentence 0 takes a token of sentence 1
        np.save(directory / "train.src.offsets.npy", offsets)
    elif damage == "manifest truncated":
        truncate(manifest)
    elif damage == "manifest not UTF-8":
        manifest.write_bytes(b"\xff\xfe{" + manifest.read_bytes())
    else:
        manifest.write_text("[1, 2]")
    refused(attnkit("train", str(cfg), "--out", str(tmp_path / "run"), "--max-steps", "1"), *words)
    assert not (tmp_path / "run").exists()


def test_an_intact_prepared_corpus_trains(corpus, tmp_path):
    done = attnkit("train", str(corpus[1]), "--out", str(tmp_path / "run"), "--max-steps", "2")
    assert done.returncode == 0, done.stderr[-2000:]


# -- resume keeps the limits wherever the kill lands ----------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import faults  # noqa: E402  (bench/faults.py: DIE_IN_WRITE)


@pytest.mark.parametrize("name", ["last.safetensors", "model.safetensors"])
def test_a_kill_inside_the_first_checkpoint_write_resumes_to_the_same_limit(toy_config, tmp_path, name):
    cfg, out = toy_config("transformer", training={"valid_every": 3}), tmp_path / "run"
    first = subprocess.run([sys.executable, "-c", faults.DIE_IN_WRITE, name, "1", "-q", "train",
                            str(cfg), "--out", str(out), "--max-steps", "7"], capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    done = attnkit("train", "--out", str(out), "--resume", seconds=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["steps"] == 7


def test_a_damaged_mark_of_a_starting_run_is_refused(toy_config, tmp_path):
    cfg, out = toy_config("transformer"), tmp_path / "run"
    out.mkdir()
    shutil.copy(cfg, out / "config.yaml")
    (out / ".starting").write_text("{")
    refused(attnkit("train", "--out", str(out), "--resume"), ".starting", "damaged")


# -- the server ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["%00", "a" * 5000, "loop/README.md"])
def test_a_course_path_it_cannot_serve_is_404_without_a_path_of_the_machine(page, tmp_path, monkeypatch):
    from starlette.exceptions import HTTPException

    import attnkit.server as server

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    monkeypatch.setattr(server, "COURSE", tmp_path)
    with pytest.raises(HTTPException) as err:
        server.course_file(page.replace("%00", "\x00"))
    assert err.value.status_code == 404 and str(tmp_path) not in err.value.detail and len(err.value.detail) < 120


def test_half_sent_headers_are_answered_408_and_the_connection_closed(tiny_runs):
    """A slowloris client, the request line and half the headers, then a byte now and then: after the
    header deadline it gets a 408 and the connection closes, while a whole request beside it is served."""
    import uvicorn

    from attnkit.server import header_deadline_protocol, make_app
    from attnkit.tasks import load_inspector

    app = make_app(load_inspector(tiny_runs["transformer"]), "tiny")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           http=header_deadline_protocol(0.5)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            start, answer = time.monotonic(), b""
            slow.settimeout(0.2)
            while time.monotonic() - start < 4:
                try:
                    chunk = slow.recv(4096)
                except TimeoutError:
                    try:
                        slow.sendall(b"X")  # a byte now and then keeps no connection alive
                    except OSError:  # closed meanwhile
                        break
                    continue
                if not chunk:
                    break
                answer += chunk
            assert time.monotonic() - start < 3
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=5) as good:
            good.sendall(b"GET /api/model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := good.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(5)


# -- the search's memory, estimated before it runs -----------------------------------------------------
PEAK = """
import json, resource, sys
import torch
sys.path.insert(0, sys.argv[1])
from helpers import tiny_transformer
from attnkit.build import build_model
from attnkit.decoding.search import beam_search, state_bytes
from attnkit.limits import search_bytes
from attnkit.runtime import tune_malloc

tune_malloc()
torch.set_num_threads(1)
torch.manual_seed(0)
sentences, beam, S, T, V = (int(a) for a in sys.argv[2:7])
cfg = tiny_transformer(d_model=256, num_heads=4, ff_dim=512, encoder_layers=2, decoder_layers=3, max_positions=256)
model = build_model(cfg, V, V).eval()
src = torch.randint(4, V, (sentences, S))
estimate, _ = search_bytes(sentences, beam, V, state_bytes(model, src[:1], T))
beam_search(model, src[:1], 2, torch.full((1,), 4))  # the kernels' own memory, before the baseline
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
beam_search(model, src, beam, torch.full((sentences,), T), min_len=T)  # every row to its limit
# VmHWM, the peak of this process's own memory map (ru_maxrss would carry over the forking parent's)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
peak = int(hwm.split()[1]) * 1024 - before
print(json.dumps({"estimate": estimate, "peak": peak}))
"""


@pytest.mark.parametrize("sentences, beam, src_len, steps, vocab", [(8, 32, 40, 60, 4000), (2, 128, 20, 30, 16000)])
def test_the_search_memory_estimate_is_within_30_percent_of_the_measured_peak(sentences, beam, src_len, steps,
                                                                              vocab):
    """The states (a Transformer's key-value cache, which grows with the output) and the score tables,
    against the peak resident memory of a search that runs every hypothesis to its limit."""
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", PEAK, here, *map(str, (sentences, beam, src_len, steps, vocab))],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert 0.7 < got["estimate"] / got["peak"] < 1.3, got
