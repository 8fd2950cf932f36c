#!/bin/sh
# The models of the by-length study (docs/course, issue 27): the five RNN contexts and the Transformer
# of docs/BENCHMARKS.md, each trained for the same number of updates (STEPS, default 1000), so that a
# busy machine changes how long it takes, not what it learns. Trains into runs/bylength-NAME.
#   sh bench/by_length_train.sh [STEPS]
set -eu
steps=${1:-1000}
for name in multi30k-rnn-none multi30k-rnn-mean multi30k-rnn-dot multi30k-rnn-general multi30k-rnn-additive \
            multi30k-transformer; do
    out=runs/bylength-$name
    if [ -f "$out/summary.json" ]; then echo "$out: done"; continue; fi
    rm -rf "$out"
    .venv/bin/attnkit -q train "configs/$name.yaml" --out "$out" --max-steps "$steps"
done
