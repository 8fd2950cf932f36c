"""Crash consistency, shown with fault injection (issue 26): a small seeded training run is killed with
SIGKILL at random moments (seeded), some of them while a checkpoint is being written, and resumed,
again and again, until it ends; then it is compared with the same run left alone: every step's loss,
every validation, and the final weights, optimiser state, random state and best model, bit for bit.

    python bench/faults.py [--kills 20] [--seed 0] [--ranks 1|2] [--json FILE]

A kill comes the moment a checkpoint's temporary file appears (the write is under way), once the
attempt has logged a random number of updates, or after a random time (uniform over the uninterrupted
run's wall time, start-up and the closing scores included). After every kill the checkpoints on disk
must read back (whole, checksums verified), and the run continues with ``attnkit train CONFIG --out
OUT --resume`` (or a fresh ``train`` when the kill came before the run directory was marked).
``--ranks 2`` runs every attempt under torchrun (two gloo ranks) and kills the whole job. With one rank
it ends with a kill inside the first write of each checkpoint of a run whose limit came from the command
line alone (issue 37): resumed without it, the run must keep that limit. The quick form runs in
``make test`` (tests/test_faults.py, tests/test_strangers.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from attnkit.checkpoint import read_checkpoint
from attnkit.errors import UserError
from attnkit.training.metrics import read_metrics
from attnkit.training.trainer import BEST, LAST, STARTING

WRITES = (LAST, BEST)  # the checkpoints whose writes a kill can aim at


@dataclass
class Campaign:
    """One run directory taken to its end through kills: what each kill hit, and the comparison."""

    kills: list[str] = field(default_factory=list)  # "after 2.31s (update 14)", "writing last.safetensors (update 20)"
    attempts: int = 0
    same: dict = field(default_factory=dict)  # what matched the uninterrupted run


def corpus(root: Path, pairs: int = 1500, seed: int = 0) -> Path:
    """The first ``pairs`` sentence pairs of the embedded Multi30k (train), 100 of val, as plain files."""
    import gzip

    from attnkit.config import resolve_path

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", pairs), ("val", 100)):
        for lang in ("en", "de"):
            with gzip.open(resolve_path(f"attnkit:multi30k/{split}.{lang}.gz"), "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            (data / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    return data


def config(root: Path, data: Path, steps: int, arch: str = "transformer") -> Path:
    """A small Transformer (or RNN) at word level: a checkpoint every 10 updates, every loss logged."""
    model = ({"arch": "transformer", "d_model": 64, "num_heads": 4, "ff_dim": 128, "encoder_layers": 2,
              "decoder_layers": 2, "dropout": 0.1, "attention_dropout": 0.1}
             if arch == "transformer" else
             {"arch": "rnn", "embed_dim": 64, "encoder_hidden": 64, "decoder_hidden": 128, "context": "additive",
              "dropout": 0.1})
    doc = {"data": {"train": {"src": str(data / "train.en"), "tgt": str(data / "train.de")},
                    "valid": {"src": str(data / "val.en"), "tgt": str(data / "val.de")},
                    "max_len": 40},
           "vocab": {"level": "word", "min_freq": 2},
           "model": model,
           "training": {"batch_tokens": 1200, "lr": 0.002, "warmup_steps": 20, "max_steps": steps, "valid_every": 10,
                        "log_every": 1, "patience": 0, "ema_decay": 0.99, "seed": 7},
           "decoding": {"beam": 1}}
    path = root / f"faults-{arch}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# attnkit's CLI in one process that SIGKILLs itself in the middle of writing checkpoint NAME the N-th
# time (argv: NAME N, then the CLI's arguments): half the file is on disk, then the power goes. A kill
# that is sure to land inside the write, where watching for the temporary file can miss a fast one.
DIE_IN_WRITE = """
import os, signal, sys
import attnkit.checkpoint as checkpoint
name, nth, writes, save_file = sys.argv[1], int(sys.argv[2]), [0], checkpoint.save_file
def dying(tensors, filename, metadata=None):
    if os.path.basename(filename).startswith("." + name + ".tmp"):
        writes[0] += 1
        if writes[0] == nth:
            save_file(tensors, filename, metadata=metadata)
            os.truncate(filename, os.path.getsize(filename) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return save_file(tensors, filename, metadata=metadata)
checkpoint.save_file = dying
from attnkit.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def command(cfg: Path, out: Path, ranks: int, resume: bool, die_in_write: tuple[str, int] | None = None,
            extra: tuple[str, ...] = ()) -> list[str]:
    if die_in_write is not None:
        launcher = [sys.executable, "-c", DIE_IN_WRITE, die_in_write[0], str(die_in_write[1])]
    elif ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                    "-m", "attnkit.cli.main"]
    else:
        launcher = [sys.executable, "-m", "attnkit"]
    return [*launcher, "-q", "train", str(cfg), "--out", str(out), *(["--resume"] if resume else []), *extra]


def resumable(out: Path) -> bool:
    """What a user does after a kill: ``--resume`` once the run directory is marked (a checkpoint or the
    mark of a run starting), a fresh ``train`` before that."""
    return (out / LAST).is_file() or (out / STARTING).is_file()


def start(cfg: Path, out: Path, ranks: int, die_in_write: tuple[str, int] | None = None,
          extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1" if ranks > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.Popen(command(cfg, out, ranks, resumable(out), die_in_write, extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)


def finished(proc: subprocess.Popen) -> None:
    """Wait for an attempt that was not killed; it must end well."""
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"an attempt failed (exit {proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (torchrun starts its ranks in sessions of their own, out of its group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the attempt and every process under it, at once: a power cut, not a shutdown."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


def kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL the attempt (its whole process group) after ``seconds``; False if it ended first."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        kill(proc)
        return True


def kill_while_writing(proc: subprocess.Popen, out: Path, name: str) -> bool:
    """SIGKILL the attempt the moment a temporary file of checkpoint ``name`` appears (its write is under
    way); False if the attempt ended first."""
    prefix = f".{name}.tmp"
    while proc.poll() is None:
        try:
            if any(entry.startswith(prefix) for entry in os.listdir(out)):
                kill(proc)
                return True
        except FileNotFoundError:  # the run directory is not made yet
            pass
        time.sleep(0.0002)
    return False


def kill_after_updates(proc: subprocess.Popen, out: Path, updates: int) -> bool:
    """SIGKILL the attempt once it has logged ``updates`` updates of its own (records of earlier attempts
    do not count, nor do they look the same: each carries its own tokens/s); False if it ended first."""
    def losses() -> list[str]:
        try:
            return [json.dumps(r, sort_keys=True) for r in read_metrics(out) if "loss" in r]
        except UserError:  # no run directory or no metrics yet
            return []

    before = set(losses())
    while proc.poll() is None:
        if sum(r not in before for r in losses()) >= updates:
            kill(proc)
            return True
        time.sleep(0.005)
    return False


def last_step(out: Path) -> int:
    """The last update an attempt logged before it was killed (0: none; the updates of earlier attempts
    count, the run goes on from its checkpoint)."""
    try:
        return max((r["step"] for r in read_metrics(out) if "loss" in r), default=0)
    except UserError:
        return 0


def checkpoints_read_back(out: Path) -> None:
    """Whatever checkpoint a kill left must be whole: it reads and its checksum holds."""
    for name in WRITES:
        if (out / name).is_file():
            read_checkpoint(out / name)


def losses(out: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, training loss) of every step and (step, validation loss) of every validation, in log order."""
    records = read_metrics(out)
    return ([(r["step"], r["loss"]) for r in records if "loss" in r],
            [(r["step"], r["valid_loss"]) for r in records if "valid_loss" in r])


def compare(ref: Path, out: Path) -> dict:
    """Each check against the uninterrupted run: True where it is the same, bit for bit."""
    (ref_train, ref_valid), (got_train, got_valid) = losses(ref), losses(out)
    same = {"step_losses": got_train == ref_train and [s for s, _ in ref_train] == list(range(1, len(ref_train) + 1)),
            "validations": got_valid == ref_valid}
    for name in WRITES:
        a, _ = read_checkpoint(ref / name)
        b, _ = read_checkpoint(out / name)
        same[name] = all(a[g].keys() == b[g].keys() and all(torch.equal(a[g][k], b[g][k]) for k in a[g])
                         for g in a)
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (ref, out))
    same["summary"] = all(summary_a.get(k) == summary_b.get(k) for k in ("steps", "best_step", "valid", "test"))
    return same


def plan(rng: random.Random, kills: int, span: float) -> list[tuple[str, float | str]]:
    """``kills`` seeded kill moments: about a third aimed at a checkpoint write, a third once an attempt
    has logged 1 to 25 updates (checkpoints come every 10), a third after a random time within ``span``
    seconds (start-up and the closing scores too)."""
    def one() -> tuple[str, float | str]:
        r = rng.random()
        if r < 1 / 3:
            return "writing", rng.choice(WRITES)
        if r < 2 / 3:
            return "updates", rng.randint(1, 25)
        return "after", round(rng.uniform(0.0, span), 2)

    return [one() for _ in range(kills)]


def campaign(cfg: Path, ref: Path, out: Path, ranks: int, kills: list[tuple[str, float | str]]) -> Campaign:
    """Take ``out`` to the end of its run through these kills: ("writing", checkpoint name), ("dying in
    write", (checkpoint name, n): in the attempt's n-th write of it, one process only), ("updates", n:
    once the attempt logged n updates) or ("after", seconds); those the run outlives are not made. Check
    after each kill that the checkpoints on disk read back; then compare the run with ``ref``."""
    record = Campaign()
    for how, what in kills:
        proc = start(cfg, out, ranks, die_in_write=what if how == "dying in write" else None)
        record.attempts += 1
        if how == "dying in write":
            proc.communicate()
            hit, what = proc.returncode == -signal.SIGKILL, f"{what[1]} of {what[0]}"
        else:
            hit = (kill_while_writing(proc, out, what) if how == "writing" else
                   kill_after_updates(proc, out, what) if how == "updates" else kill_after(proc, what))
        if not hit:  # the run ended first
            if proc.returncode != 0:
                raise SystemExit(f"an attempt failed (exit {proc.returncode})")
            break
        record.kills.append(f"{how} {what}" + ("s" if how == "after" else "") + f" (update {last_step(out)})")
        checkpoints_read_back(out)
    else:
        finished(start(cfg, out, ranks))
        record.attempts += 1
    record.same = compare(ref, out)
    return record


def first_writes(cfg: Path, root: Path, steps: int) -> dict[str, dict]:
    """A kill half-way through the first write of each checkpoint, in a run whose limit was given on the
    command line only (``--max-steps``, none in the config): ``--resume`` without it finds no checkpoint,
    starts afresh with the limit the mark of the starting run kept, and must end as the run left alone."""
    raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    raw["training"].pop("max_steps")
    bare = cfg.with_name(cfg.stem + "-no-limit.yaml")
    bare.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    limit = ("--max-steps", str(steps))
    ref = root / "first-writes-reference"
    finished(start(bare, ref, 1, extra=limit))
    results = {}
    for name in WRITES:
        out = root / f"first-write-of-{name}"
        proc = start(bare, out, 1, die_in_write=(name, 1), extra=limit)
        proc.communicate()
        killed = proc.returncode == -signal.SIGKILL
        finished(start(bare, out, 1))  # --resume, no limit given
        results[name] = {"killed_in_write": killed, "steps": json.loads((out / "summary.json").read_text())["steps"],
                         **compare(ref, out)}
    return results


def reference(cfg: Path, root: Path, ranks: int) -> tuple[Path, float]:
    """The uninterrupted run, and its wall time."""
    ref = root / "reference"
    t0 = time.monotonic()
    finished(start(cfg, ref, ranks))
    return ref, time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills in all (default 20)")
    parser.add_argument("--per-run", type=int, default=5, help="kills per run directory (default 5)")
    parser.add_argument("--steps", type=int, default=200, help="updates of the run (default 200)")
    parser.add_argument("--ranks", type=int, default=1, choices=(1, 2))
    parser.add_argument("--arch", default="transformer", choices=("transformer", "rnn"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="attnkit-faults-") as tmp:
        root = Path(tmp)
        cfg = config(root, corpus(root), args.steps, args.arch)
        ref, span = reference(cfg, root, args.ranks)
        print(f"uninterrupted run: {args.steps} updates in {span:.1f} s (start-up included)", flush=True)
        campaigns: list[Campaign] = []
        t0 = time.monotonic()
        while sum(len(c.kills) for c in campaigns) < args.kills:
            n = min(args.per_run, args.kills - sum(len(c.kills) for c in campaigns))
            c = campaign(cfg, ref, root / f"run{len(campaigns)}", args.ranks, plan(rng, n, span))
            campaigns.append(c)
            differ = [k for k, v in c.same.items() if not v]
            print(f"run {len(campaigns)}: {len(c.kills)} kills ({', '.join(c.kills) or 'none'}), "
                  f"{c.attempts} attempts; " + (f"DIFFERENT: {', '.join(differ)}" if differ else
                                                 f"the same as uninterrupted: {', '.join(c.same)}"), flush=True)
        firsts = first_writes(cfg, root, args.steps) if args.ranks == 1 else {}
        for name, r in firsts.items():
            print(f"killed in the first write of {name}: {'yes' if r['killed_in_write'] else 'NO'}; resumed without "
                  f"--max-steps to step {r['steps']} of {args.steps}; "
                  + ("the same as uninterrupted" if all(v for k, v in r.items() if k != "steps") else "DIFFERENT"),
                  flush=True)
    kills = [k for c in campaigns for k in c.kills]
    result = {"ranks": args.ranks, "arch": args.arch, "steps": args.steps, "seed": args.seed,
              "kills": len(kills), "kills_in_writes": sum(k.startswith("writing") for k in kills),
              "attempts": sum(c.attempts for c in campaigns),
              "runs": len(campaigns), "first_writes": firsts,
              "all_same": all(all(c.same.values()) for c in campaigns)
              and all(v for r in firsts.values() for k, v in r.items() if k != "steps"),
              "seconds": round(time.monotonic() - t0, 1), "campaigns": [asdict(c) for c in campaigns]}
    print(json.dumps({k: v for k, v in result.items() if k != "campaigns"}))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not result["all_same"]:
        raise SystemExit("a resumed run differs from the uninterrupted one")


if __name__ == "__main__":
    main()
