#!/bin/sh
# docs/EXPERIMENTS.md: what each training strategy buys, on Multi30k en-de.
#
# Every strategy continues the same teacher-forced model (BASE, a trained run directory, e.g. the
# 60-minute run of bench/multi30k.sh) for the same number of updates at the same constant learning
# rate; teacher forcing continued alike is the control. Each run is then scored on test2016 with
# greedy search (plus the exposure-bias diagnostic) and with beam 5, into
# bench/results/strategies/NAME-STRATEGY-sSEED.json.
#
#   sh bench/strategies.sh runs/bench-multi30k-rnn-general configs/multi30k-rnn-general.yaml [STEPS] [SEEDS]
# STRATEGIES="professor_forcing" (in the environment) runs only those.
set -eu
base=$1
config=$2
steps=${3:-300}
seeds=${4:-"1 2 3"}
lr=${LR:-0.0003}
strategies=${STRATEGIES:-"teacher_forcing scheduled_sampling parallel_scheduled_sampling professor_forcing"}
name=$(basename "$config" .yaml)
bin=.venv/bin
data=src/attnkit/resources/multi30k
results=bench/results/strategies
mkdir -p "$results" runs/strategies
. bench/keep.sh
for seed in $seeds; do for s in $strategies; do keep_results "$results/$name-$s-s$seed.json"; done; done

# eps falls linearly from 1 to 0.7 over the run: 30% of the inputs are the model's own by the end
decay=$(python3 -c "print(0.3 / $steps)")
strategy() {
    case $1 in
        teacher_forcing) echo "{name: teacher_forcing}" ;;
        scheduled_sampling) echo "{name: scheduled_sampling, schedule: linear, k: 1.0, c: $decay, feed: sample}" ;;
        parallel_scheduled_sampling)
            echo "{name: parallel_scheduled_sampling, passes: 2, schedule: linear, k: 1.0, c: $decay, feed: sample}" ;;
        professor_forcing) echo "{name: professor_forcing, weight: 1.0, feed: sample}" ;;
    esac
}

# the base model itself, before any further training
if [ ! -f "$results/$name-base.json" ]; then
    $bin/attnkit -q evaluate "$base" --src $data/test_2016_flickr.en.gz --ref $data/test_2016_flickr.de.gz \
        --beam 1 --exposure --json > runs/strategies/base.greedy.json
    $bin/attnkit -q evaluate "$base" --src $data/test_2016_flickr.en.gz --ref $data/test_2016_flickr.de.gz \
        --beam 5 --json > runs/strategies/base.beam5.json
    $bin/python -c "
import json
row = {'base': '$base', 'config': '$config', 'strategy': 'base', 'seed': 0, 'steps': 0,
       'greedy': json.load(open('runs/strategies/base.greedy.json')),
       'beam5': json.load(open('runs/strategies/base.beam5.json'))}
json.dump(row, open('$results/$name-base.json', 'w'), indent=1)"
fi

for seed in $seeds; do
    for s in $strategies; do
        out=runs/strategies/$name-$s-s$seed
        rm -rf "$out"
        $bin/attnkit -q train "$config" --out "$out" --max-steps "$steps" \
            --set training.init_from="$base" --set training.seed="$seed" --set "training.strategy=$(strategy $s)" \
            --set training.lr="$lr" --set training.schedule=constant --set training.warmup_steps=0 \
            --set training.valid_every="$steps" --set training.patience=0 --set training.log_every=50
        $bin/attnkit -q evaluate "$out" --src $data/test_2016_flickr.en.gz --ref $data/test_2016_flickr.de.gz \
            --beam 1 --exposure --json > "$out/test2016.greedy.json"
        $bin/attnkit -q evaluate "$out" --src $data/test_2016_flickr.en.gz --ref $data/test_2016_flickr.de.gz \
            --beam 5 --json > "$out/test2016.beam5.json"
        $bin/python - "$out" "$base" "$config" "$s" "$seed" "$steps" "$lr" "$results" <<'PY'
import json, sys
out, base, config, strategy, seed, steps, lr, results = sys.argv[1:]
load = lambda name: json.load(open(f"{out}/{name}"))
row = {"base": base, "config": config, "strategy": strategy, "seed": int(seed), "steps": int(steps),
       "lr": float(lr), "summary": load("summary.json"), "greedy": load("test2016.greedy.json"),
       "beam5": load("test2016.beam5.json")}
name = f"{config.split('/')[-1][:-5]}-{strategy}-s{seed}"
json.dump(row, open(f"{results}/{name}.json", "w"), indent=1)
print(json.dumps({"run": name, "greedy": row["greedy"]["bleu"], "beam5": row["beam5"]["bleu"],
                  "nll_gap": row["greedy"]["exposure"]["nll_gap"], "seconds": row["summary"]["train_seconds"]}))
PY
    done
done
