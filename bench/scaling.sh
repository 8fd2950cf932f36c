#!/usr/bin/env bash
# Issue 24's CPU measurements, one at a time (two cores: nothing else may run beside them):
#   1. the single-process training loop against an older commit (OLD, default 6f0dc9e), alternating:
#      attnkit bench train configs/multi30k-transformer.yaml, new and old in turn, PAIRS times
#   2. 1 process with batch_tokens 4096 against 2 gloo ranks with 2048 each (the same updates), 20
#      updates of configs/multi30k-transformer.yaml each, train_tokens_per_s of each run's summary
#   3. bench/corpus_memory.py: start-up time and memory on 5M pairs, text against memory-mapped
# Usage: bench/scaling.sh [LOG]   (default bench/results/scaling-<date>.log)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${OLD:-6f0dc9e}
PAIRS=${PAIRS:-2}
LOG=${1:-bench/results/scaling-$(date +%Y%m%d).log}
PY=${PY:-.venv/bin/python}
CONFIG=configs/multi30k-transformer.yaml
grep -m1 "model name" /proc/cpuinfo | tee "$LOG"

old=$(mktemp -d)
git worktree add -f "$old" "$OLD" > /dev/null 2>&1
trap 'git worktree remove --force "$old"' EXIT
for i in $(seq "$PAIRS"); do
    echo "new: $(PYTHONPATH=src $PY -m attnkit -q bench train $CONFIG --steps 30 --warmup 3)" | tee -a "$LOG"
    echo "old $OLD: $(PYTHONPATH=$old/src $PY -m attnkit -q bench train $CONFIG --steps 30 --warmup 3)" | tee -a "$LOG"
done

runs=$(mktemp -d)
PYTHONPATH=src $PY -m attnkit -q train $CONFIG --out "$runs/one" --max-steps 20 \
    --set training.valid_every=1000 --set training.batch_tokens=4096 > /dev/null
echo "1 process, batch_tokens 4096: $(cat "$runs/one/summary.json" | tr -d '\n ')" | tee -a "$LOG"
PYTHONPATH=src $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m attnkit -q train $CONFIG \
    --out "$runs/two" --max-steps 20 --set training.valid_every=1000 --set training.batch_tokens=2048 > /dev/null
echo "2 gloo ranks, batch_tokens 2048 each: $(cat "$runs/two/summary.json" | tr -d '\n ')" | tee -a "$LOG"
rm -rf "$runs"

PYTHONPATH=src $PY bench/corpus_memory.py | tee -a "$LOG"
