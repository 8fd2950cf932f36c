"""The table of docs/EXPERIMENTS.md from bench/results/strategies/*.json (bench/strategies.sh):
per model and strategy, the mean and standard deviation over seeds of test2016 BLEU (greedy and
beam 5) and of the exposure-bias gaps, and the training seconds per run; then the accuracy gap
(teacher forced minus self fed) by output position, where exposure bias should grow along the
output.

    python3 bench/strategies_report.py
    python3 bench/strategies_report.py --plot docs/course/img/strategies.png   # and that gap drawn
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def read_runs(root: str) -> dict[tuple[str, str], list[dict]]:
    runs = defaultdict(list)
    for path in sorted(Path(root).glob("*.json")):
        row = json.loads(path.read_text())
        runs[(Path(row["config"]).stem, row["strategy"])].append(row)
    return runs


def plot(runs: dict[tuple[str, str], list[dict]], out: str) -> None:
    """The accuracy gap by output position, a panel per model and a line per strategy (mean over seeds)."""
    from matplotlib.figure import Figure

    models = sorted({m for m, _ in runs})
    labels = [f"{lo + 1}-{hi}" if hi else f"{lo + 1}+" for lo, hi in BUCKETS]
    fig = Figure(figsize=(5.2 * len(models), 3.6), layout="constrained")
    for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        for strategy in ORDER:
            rows = runs.get((model, strategy))
            if rows:
                gaps = [statistics.mean(c) for c in zip(*(bucket_gaps(r["greedy"]["exposure"]) for r in rows))]
                ax.plot(labels, gaps, marker="o", label=strategy.replace("_", " "))
        ax.set(title=model, xlabel="output position (tokens)", ylabel="accuracy gap (points)")
    ax.legend(fontsize=8)
    fig.suptitle("exposure bias along the output: teacher-forced minus self-fed accuracy, test2016", fontsize=10)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description="The strategies' tables of docs/EXPERIMENTS.md.")
    parser.add_argument("root", nargs="?", default="bench/results/strategies", help="the runs' JSON files")
    parser.add_argument("--plot", metavar="FILE", help="also draw the accuracy gap by output position")
    args = parser.parse_args()
    runs = read_runs(args.root)
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
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
