#!/bin/sh
# One row of the taggers / classifiers / language models tables of docs/BENCHMARKS.md: train CONFIG
# for at most MINUTES on this machine (it stops earlier when validation stops improving), then keep
# the run's summary (validation and test scores of the best checkpoint, parameters, steps, time) in
# bench/results/NAME.json (NAME: the config's, or the environment's NAME for a variant of it; an
# existing result is replaced only with FORCE=1).
#   sh bench/task.sh configs/ewt-bilstm-tagger.yaml [MINUTES] [--set section.key=value ...]
# The ELMo configs read the pretrained biLM from runs/bilm-elmo: train it first with
#   sh bench/task.sh configs/bilm-elmo.yaml 60 && cp -r runs/bench-bilm-elmo runs/bilm-elmo
set -eu
config=$1
minutes=${2:-60}
shift; [ $# -gt 0 ] && shift
name=${NAME:-$(basename "$config" .yaml)}
out=runs/bench-$name
bin=.venv/bin
. bench/keep.sh
keep_results "bench/results/$name.json"
rm -rf "$out"
$bin/attnkit -q train "$config" --out "$out" --max-minutes "$minutes" "$@"
$bin/python - "$out" "$config" "$minutes" "$name" "$@" <<'PY'
import json, sys
out, config, minutes, name, *overrides = sys.argv[1:]
summary = json.load(open(f"{out}/summary.json"))
row = {"config": config, "max_minutes": float(minutes), "summary": summary}
if overrides:  # a variant's --set options, so that its row can be rerun as it was
    row["overrides"] = [o for o in overrides if o != "--set"]
json.dump(row, open(f"bench/results/{name}.json", "w"), indent=2)
print(json.dumps({"config": config, "params": summary.get("params"), "steps": summary.get("steps"),
                  "wall_seconds": summary["wall_seconds"], "valid": summary.get("valid"),
                  "test": summary.get("test")}))
PY
