#!/bin/sh
# Every tagger, classifier and language-model row of docs/BENCHMARKS.md, one after another, each with
# its time cap in minutes (a run ends earlier when validation stops improving); then the table.
#   nohup sh bench/tasks-all.sh > runs/bench-tasks.log 2>&1 &
# The ELMo rows need the pretrained biLM first: bilm-elmo runs before them and is copied to
# runs/bilm-elmo, where configs/*-elmo*.yaml read it.
set -eu
run() { sh bench/task.sh "configs/$1.yaml" "$2"; }
run ptb-kneser-ney 60
run ewt-bilstm-tagger 45
run taiga-bilstm-tagger 45
run ewt-transformer-tagger 45
for c in bag-of-embeddings bilstm-last bilstm-mean bilstm-attention transformer; do run "sst2-$c" 20; done
run ptb-lstm-lm 90
run ptb-transformer-lm 60
run bilm-elmo 90
rm -rf runs/bilm-elmo && cp -r runs/bench-bilm-elmo runs/bilm-elmo
run ewt-bilstm-elmo-tagger 45
run sst2-bilstm-elmo 20
.venv/bin/python bench/tasks_report.py
