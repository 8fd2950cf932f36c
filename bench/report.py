"""Print the Multi30k rows of docs/BENCHMARKS.md from bench/results/*.json (written by bench/multi30k.sh).

    python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONTEXTS = ["none", "mean", "dot", "general", "additive"]


def row(name: str) -> str | None:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text(encoding="utf-8"))
    s, t = r["summary"], r["test2016_beam5"]
    minutes = s["wall_seconds"] / 60
    return (f"{s['params']:,} | {t['bleu']} | {t['chrf']} | {s['steps']} (best {s['best_step']}) | "
            f"{minutes:.1f} min | {s['train_tokens_per_s']:.0f} | {t['sentences_per_s']:.1f}")


def main() -> None:
    print("| config | params | BLEU | chrF | steps | wall time | train tokens/s | test sent/s (beam 5) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in ["multi30k-transformer"] + [f"multi30k-rnn-{c}" for c in CONTEXTS]:
        cells = row(name)
        print(f"| `{name}.yaml` | {cells if cells else 'not yet run | | | | | |'} |")
    sig = next((json.loads(p.read_text())["test2016_beam5"]["bleu_signature"]
                for p in RESULTS.glob("multi30k-*.json")), None)
    if sig:
        print(f"\nBLEU signature: `{sig}`")


if __name__ == "__main__":
    main()
