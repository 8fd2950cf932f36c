"""Every ```sh block of the README runs as written, in order, in one scratch folder.

The scratch folder looks like the repository to the commands: ``configs/NAME.yaml`` for each config
the README trains, but tiny (a model of a few thousand weights, a few dozen lines of data, four
updates), ``../shared/data/...`` for the dataset files the README reads directly (tiny stand-ins of
the same format), ``docs/examples/`` as shipped, and ``.venv/bin/activate`` putting this
environment's ``attnkit`` first on the PATH. What changes for the run, and only this:
- ``make demo`` / ``make test`` are not run: the suite is ``make test``, and ``attnkit demo`` has its
  own test (test_first_hour.py);
- ``attnkit serve`` is started in the background (it serves until stopped), and the blocks after it
  talk to it; it is stopped at the end;
- no GPU is visible (``CUDA_VISIBLE_DEVICES=""``): the README's ``torchrun --nproc_per_node 2`` is for
  a machine with two GPUs or none, and on one GPU its second rank would be refused.
A README config with no tiny stand-in here fails the test: add one to ``STANDINS``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import run_config, toy_pairs, write_parallel
from tiny_runs import TRAINING, bilm, captioning, classification, kneser_ney, language_model, lines, tagging

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PORT = 8000  # the README's


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def translation(data: Path) -> dict:
    """multi30k-transformer: two layers and four heads, as ``plot attention --layer 2 --head 3`` needs."""
    for split, n, seed in (("train", 40, 1), ("valid", 6, 2), ("test", 6, 3)):
        write_parallel(data, split, toy_pairs(n, seed))
    raw = run_config(data, "transformer")
    raw["model"].update(num_heads=4, encoder_layers=2, decoder_layers=2, dropout=0.0, attention_dropout=0.0)
    raw["vocab"] = {"level": "subword", "size": 40, "joint": True}  # as the real config: export --to hf needs it
    raw["decoding"].update(batch_size=100)
    return raw


def lstm_lm(data: Path) -> dict:
    raw = language_model(data)
    raw["model"] = {"arch": "lstm_lm", "embed_dim": 16, "hidden": 16, "num_layers": 1, "dropout": 0.0,
                    "tie_embeddings": True}
    raw["generation"] = {"method": "sample", "max_tokens": 6}
    return raw


def rnn_tagger(data: Path) -> dict:
    raw = tagging(data)
    raw["model"] = {"arch": "rnn_tagger", "embed_dim": 8, "hidden": 8, "num_layers": 1, "dropout": 0.0,
                    "char_dim": 4, "char_hidden": 4}
    return raw


def elmo_tagger(data: Path) -> dict:
    raw = rnn_tagger(data)
    raw["embeddings"] = {"contextual": "runs/bilm-elmo", "freeze_contextual": True}
    return raw


STANDINS = {
    "multi30k-transformer": translation,
    "ewt-bilstm-tagger": rnn_tagger,
    "sst2-bilstm-attention": lambda d: classification(d, "rnn"),
    "ptb-kneser-ney": kneser_ney,
    "ptb-lstm-lm": lstm_lm,
    "bilm-elmo": bilm,
    "ewt-bilstm-elmo-tagger": elmo_tagger,
    "digits-captioner": captioning,
}


def write_shared(shared: Path) -> None:
    """Tiny files of the datasets' formats, where the README reads a dataset file directly."""
    test = shared / "ud_english_ewt" / "en_ewt-ud-test.conllu.gz"
    test.parent.mkdir(parents=True)
    blocks = ["".join(f"{i}\t{w}\t{w}\tX\t_\t_\t0\tdep\t_\t_\n" for i, w in enumerate(line.split(), start=1))
              for line in lines(5, 9)]
    test.write_bytes(gzip.compress(("\n".join(blocks) + "\n").encode("utf-8")))


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def scratch(tmp_path) -> Path:
    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True)
    named = sorted(set(re.findall(r"configs/([\w-]+)\.yaml", "".join(sh_blocks(README.read_text())))))
    missing = [name for name in named if name not in STANDINS]
    assert not missing, f"the README trains {missing}: give each a tiny stand-in in STANDINS"
    for name in named:
        raw = STANDINS[name](tmp_path / "data" / name)
        raw["training"] = {**TRAINING, **raw.get("training", {}), "max_steps": 4, "valid_every": 2}
        (repo / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    write_shared(tmp_path / "shared" / "data")
    shutil.copytree(ROOT / "docs" / "examples", repo / "docs" / "examples")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    return repo


def run_blocks(repo: Path, blocks: list[str], port: int) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": ""}
    for number, block in enumerate(blocks, start=1):
        script = []
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("  #")[0].rstrip()
            if command.startswith("make "):
                continue
            if command.startswith("attnkit serve"):
                command = (f"{command.replace(f'--port {PORT}', f'--port {port}')} > serve.log 2>&1 & "
                           f"echo $! > serve.pid; for i in $(seq 300); do curl -s localhost:{port}/api/model "
                           f"> /dev/null && break; sleep 0.2; done")
            script.append(command.replace(f"localhost:{PORT}", f"localhost:{port}"))
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README block {number} failed:\n{block}\n{done.stderr[-3000:]}"
        yield number, done.stdout


def test_every_readme_command_runs_as_written(scratch):
    port = PORT if free(PORT) else 18000 + os.getpid() % 1000
    outputs = {}
    try:
        for number, stdout in run_blocks(scratch, sh_blocks(README.read_text(encoding="utf-8")), port):
            outputs[number] = stdout
    finally:
        pid = scratch / "serve.pid"
        if pid.is_file():
            os.kill(int(pid.read_text()), signal.SIGTERM)
            time.sleep(0.5)
    for made in ("tagged.conllu", "attention.png", "cross.svg", "positions.png", "att/scene.png",
                 "runs/multi30k-transformer/curves.png", "runs/bilm-elmo/model.safetensors"):
        assert (scratch / made).is_file(), made
    assert "BLEU" in "".join(outputs.values()) and '"task":"translation"' in "".join(outputs.values())
