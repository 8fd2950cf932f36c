#!/bin/sh
# One row of docs/BENCHMARKS.md: train a ready config on Multi30k en-de for 60 minutes on this
# machine, then score test2016 with beam 5 (sacreBLEU, chrF) and write bench/results/NAME.json
# (an existing one is replaced only with FORCE=1).
#   sh bench/multi30k.sh configs/multi30k-transformer.yaml [MINUTES]
set -eu
config=$1
minutes=${2:-60}
name=$(basename "$config" .yaml)
out=runs/bench-$name
bin=.venv/bin
. bench/keep.sh
keep_results "bench/results/$name.json"
rm -rf "$out"
$bin/attnkit -q train "$config" --out "$out" --max-minutes "$minutes"
data=src/attnkit/resources/multi30k
$bin/attnkit -q evaluate "$out" --src $data/test_2016_flickr.en.gz --ref $data/test_2016_flickr.de.gz \
    --beam 5 --json --output "$out/test2016.beam5.de" > "$out/test2016.beam5.json"
$bin/python - "$out" "$config" "$minutes" <<'PY'
import json, sys
out, config, minutes = sys.argv[1:]
summary = json.load(open(f"{out}/summary.json"))
test = json.load(open(f"{out}/test2016.beam5.json"))
row = {"config": config, "max_minutes": float(minutes), "summary": summary, "test2016_beam5": test}
json.dump(row, open(f"bench/results/{config.split('/')[-1][:-5]}.json", "w"), indent=2)
print(json.dumps({"config": config, "bleu": test["bleu"], "chrf": test["chrf"], "params": summary["params"],
                  "wall_seconds": summary["wall_seconds"], "tokens_per_s": summary["train_tokens_per_s"]}))
PY
