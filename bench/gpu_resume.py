"""Exact resume on a device: a run stopped at step N and resumed to 2N against the same run
uninterrupted, with ``training.deterministic`` off and on (docs/SCALING.md says what it found).

    python bench/gpu_resume.py --device cuda [--steps 60] [--config configs/multi30k-transformer.yaml]

A small model of the config (d_model 64, 2+2 layers, its own precision) on the config's data; each
mode trains three runs (uninterrupted, first half, resumed) and prints one JSON line: whether the
resumed run's weights and optimiser state equal the uninterrupted run's bit for bit, and the
largest difference of a weight.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SMALL = ["model.d_model=64", "model.ff_dim=128", "model.encoder_layers=2", "model.decoder_layers=2",
         "model.num_heads=2", "training.valid_every=1000000", "training.batch_tokens=2048", "vocab.size=2000"]


def train(config: str, out: Path, steps: int, device: str, deterministic: bool, resume: bool = False) -> None:
    sets = [f"--set={s}" for s in SMALL + [f"training.deterministic={str(deterministic).lower()}"]]
    cmd = [sys.executable, "-m", "attnkit", "-q", "train", config, "--out", str(out), "--device", device,
           "--max-steps", str(steps), *sets] + (["--resume"] if resume else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def compare(one: Path, two: Path) -> dict:
    from attnkit.checkpoint import read_checkpoint

    a, _ = read_checkpoint(one / "last.safetensors")
    b, _ = read_checkpoint(two / "last.safetensors")
    equal = all(a[g].keys() == b[g].keys() and all(a[g][k].equal(b[g][k]) for k in a[g]) for g in ("model", "optim"))
    diff = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"])
    return {"bit_for_bit": equal, "max_weight_diff": diff}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--config", default="configs/multi30k-transformer.yaml")
    a = p.parse_args()
    for deterministic in (False, True):
        with tempfile.TemporaryDirectory() as scratch:
            whole, split = Path(scratch) / "whole", Path(scratch) / "split"
            train(a.config, whole, a.steps, a.device, deterministic)
            train(a.config, split, a.steps // 2, a.device, deterministic)
            train(a.config, split, a.steps, a.device, deterministic, resume=True)
            print(json.dumps({"device": a.device, "deterministic": deterministic, "steps": a.steps,
                              **compare(whole, split)}), flush=True)


if __name__ == "__main__":
    main()
