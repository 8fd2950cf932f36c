"""The table of docs/EXPERIMENTS.md from bench/results/strategies/*.json (bench/strategies.sh):
per model and strategy, the mean and standard deviation over seeds of test2016 BLEU (greedy and
beam 5) and of the exposure-bias gaps, and the training seconds per run; then the accuracy gap
(teacher forced minus self fed) by output position, where exposure bias should grow along the
output.

    python3 bench/strategies_report.py
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["base", "teacher_forcing", "scheduled_sampling", "parallel_scheduled_sampling", "professor_forcing"]
BUCKETS = [(0, 5), (5, 10), (10, 15), (15, 20), (20, None)]  # output positions [lo, hi), 0-based


def bucket_gaps(exposure: dict) -> list[float]:
    """Teacher-forced minus self-fed accuracy (points) over each bucket of output positions,
    weighted by the number of reference tokens at each position."""
    gaps = []
    for lo, hi in BUCKETS:
        picked = [i for i, pos in enumerate(exposure["positions"]) if pos >= lo and (hi is None or pos < hi)]
        n = sum(exposure["tokens"][i] for i in picked)
        acc = {side: sum(exposure[side]["accuracy"][i] * exposure["tokens"][i] for i in picked) / n
               for side in ("teacher_forced", "self_fed")}
        gaps.append(acc["teacher_forced"] - acc["self_fed"])
    return gaps


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

    labels = [f"{lo + 1}-{hi}" if hi else f"{lo + 1}+" for lo, hi in BUCKETS]
    print("\nAccuracy gap (teacher forced minus self fed, points) by output position, mean over seeds:\n")
    print("| model | strategy | " + " | ".join(labels) + " |")
    print("|---|---|" + "---:|" * len(labels))
    for model in sorted({m for m, _ in runs}):
        for strategy in ORDER:
            rows = runs.get((model, strategy))
            if not rows:
                continue
            per_run = [bucket_gaps(r["greedy"]["exposure"]) for r in rows]
            cells = [f"{statistics.mean(column):.1f}" for column in zip(*per_run)]
            print(f"| {model} | {strategy} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
