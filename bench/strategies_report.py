"""The table of docs/EXPERIMENTS.md from bench/results/strategies/*.json (bench/strategies.sh):
per model and strategy, the mean and standard deviation over seeds of test2016 BLEU (greedy and
beam 5) and of the exposure-bias gaps, and the training seconds per run.

    python3 bench/strategies_report.py
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["base", "teacher_forcing", "scheduled_sampling", "parallel_scheduled_sampling", "professor_forcing"]


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(root: str = "bench/results/strategies") -> None:
    runs = defaultdict(list)
    for path in sorted(Path(root).glob("*.json")):
        row = json.loads(path.read_text())
        runs[(Path(row["config"]).stem, row["strategy"])].append(row)
    print("| model | strategy | seeds | BLEU greedy | BLEU beam 5 | NLL gap | accuracy gap | train s/run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for model in sorted({m for m, _ in runs}):
        for strategy in ORDER:
            rows = runs.get((model, strategy))
            if not rows:
                continue
            greedy = [r["greedy"]["bleu"] for r in rows]
            beam = [r["beam5"]["bleu"] for r in rows]
            nll = [r["greedy"]["exposure"]["nll_gap"] for r in rows]
            acc = [r["greedy"]["exposure"]["accuracy_gap"] for r in rows]
            seconds = [r["summary"]["train_seconds"] for r in rows if "summary" in r]
            seeds = str(len(rows)) if strategy != "base" else "-"
            per_run = f"{statistics.mean(seconds):.0f}" if seconds else "-"
            print(f"| {model} | {strategy} | {seeds} | {mean_sd(greedy)} | {mean_sd(beam)} | {mean_sd(nll)} | "
                  f"{mean_sd(acc)} | {per_run} |")

if __name__ == "__main__":
    main(*sys.argv[1:])
