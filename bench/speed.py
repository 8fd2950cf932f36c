"""Speed benchmark: training tokens/s and translation sentences/s, each system in its own process.

    python bench/speed.py --config configs/multi30k-transformer.yaml --model runs/multi30k-transformer \
        --src attnkit:multi30k/test_2016_flickr.en.gz

For every --config it runs ``attnkit bench train CONFIG`` (training target tokens/s on the config's
own training data); for every --model it runs ``attnkit bench translate DIR --beam B`` for each
--beam (sentences/s on the real test sentences). Each measurement is a fresh process: PyTorch's
idle OpenMP threads slow down whatever else runs in the same process. Prints a Markdown table and,
with --json FILE, writes the raw results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "attnkit.cli.main", "-q", "bench", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def resolve(path: str) -> str:
    from attnkit.config import resolve_path

    return str(resolve_path(path))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", default=[], help="config to time training of (repeatable)")
    p.add_argument("--model", action="append", default=[], help="trained model directory (repeatable)")
    p.add_argument("--src", default="attnkit:multi30k/test_2016_flickr.en.gz", help="sentences to translate")
    p.add_argument("--beam", type=int, action="append", default=None, help="beam sizes (default: 1 and 5)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per config")
    p.add_argument("--json", help="write raw results to this file")
    a = p.parse_args()
    beams = a.beam or [1, 5]
    results = []
    for config in a.config:
        r = run(["train", config, "--steps", str(a.steps)])
        results.append(r)
        print(f"train  {config}: {r['train_tokens_per_s']:.0f} target tokens/s ({r['precision']}, "
              f"{r['params']:,} params)", file=sys.stderr)
    for model in a.model:
        for beam in beams:
            r = run(["translate", model, "--src", resolve(a.src), "--beam", str(beam)])
            results.append(r)
            print(f"translate {model} beam {beam}: {r['sentences_per_s']:.1f} sentences/s", file=sys.stderr)
    print("| system | measure | value |\n|---|---|---:|")
    for r in results:
        if "config" in r:
            print(f"| {Path(r['config']).stem} | training target tokens/s ({r['precision']}) | "
                  f"{r['train_tokens_per_s']:.0f} |")
        else:
            print(f"| {Path(r['model_dir']).name} | translation sentences/s, beam {r['beam']} | "
                  f"{r['sentences_per_s']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
