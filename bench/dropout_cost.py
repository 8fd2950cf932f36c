"""What the dropout mask costs: training tokens/s of a config with attnkit's dropout
(``layers/dropout.py``), with ``torch.nn.functional.dropout``, and with the mask before the fix of
issue 35 (whose int64 words left the top bit 0), each in a fresh process, in turns.

    python bench/dropout_cost.py configs/multi30k-transformer.yaml --rounds 3 --steps 20

Each process runs ``attnkit bench train CONFIG`` with the ``dropout`` of every attnkit module that
imported it replaced by the variant (``--variant``, which this script passes to itself); prints each
measurement as it comes and then the medians.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F

VARIANTS = ("attnkit", "torch", "before-fix")


def torch_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(x, p, training)


def before_fix(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The mask until 70df117: random_() on int64 draws [0, 2^63), so every eighth byte is below 128."""
    if not training or p <= 0.0:
        return x
    k = round(p * 256)
    n = x.numel()
    bytes_ = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_().view(torch.uint8)
    return x * (bytes_[:n].view(x.shape) >= k).to(x.dtype) * (256.0 / (256 - k))


def run_variant(variant: str, bench_args: list[str]) -> int:
    """``attnkit bench train`` with every attnkit module's ``dropout`` replaced by ``variant``'s."""
    import attnkit
    from attnkit.cli.main import main
    from attnkit.layers import dropout as ours

    if variant != "attnkit":
        replacement = torch_dropout if variant == "torch" else before_fix
        for info in pkgutil.walk_packages(attnkit.__path__, "attnkit."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            if getattr(module, "dropout", None) is ours.dropout:
                module.dropout = replacement
        ours.dropout = replacement
    return main(["-q", "bench", "train", *bench_args])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("--rounds", type=int, default=3, help="measurements of each variant, in turns")
    p.add_argument("--steps", type=int, default=20, help="timed updates per measurement")
    p.add_argument("--variant", choices=VARIANTS, help="(run one measurement in this process)")
    a = p.parse_args()
    bench_args = [a.config, "--steps", str(a.steps)]
    if a.variant:
        sys.exit(run_variant(a.variant, bench_args))
    seen: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(a.rounds):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, a.config, "--steps", str(a.steps), "--variant", variant]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{variant} failed:\n{proc.stderr}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            seen[variant].append(row["train_tokens_per_s"])
            print(f"{variant:10s} {row['train_tokens_per_s']:8.1f} tokens/s ({row['precision']})", flush=True)
    base = statistics.median(seen["torch"])
    print("| dropout | median tokens/s | vs torch |\n|---|---:|---:|")
    for variant, values in seen.items():
        print(f"| {variant} | {statistics.median(values):.0f} | {statistics.median(values) / base:.3f} |")


if __name__ == "__main__":
    main()
