#!/bin/sh
# Every Multi30k row of docs/BENCHMARKS.md, one after another (about 6 hours on 2 cores):
#   nohup sh bench/multi30k-all.sh > runs/bench-all.log 2>&1 &
set -eu
for name in transformer rnn-additive rnn-general rnn-dot rnn-mean rnn-none; do
    sh bench/multi30k.sh "configs/multi30k-$name.yaml"
done
python3 bench/report.py
