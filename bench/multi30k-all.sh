#!/bin/sh
# Every Multi30k row of docs/BENCHMARKS.md, one after another (about 6 hours on 2 cores), replacing
# the rows (FORCE=1), or, with KEEP=1, running only those whose bench/results/NAME.json is missing:
#   FORCE=1 nohup sh bench/multi30k-all.sh > runs/bench-all.log 2>&1 &
set -eu
for name in transformer rnn-additive rnn-general rnn-dot rnn-mean rnn-none; do
    if [ "${KEEP:-0}" = 1 ] && [ -f "bench/results/multi30k-$name.json" ]; then continue; fi
    sh bench/multi30k.sh "configs/multi30k-$name.yaml"
done
python3 bench/report.py
