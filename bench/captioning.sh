#!/bin/sh
# The captioning rows of docs/BENCHMARKS.md: train a captioning config on the composed-digits scenes
# for MINUTES (default 25) on this machine, then score its test scenes (1000 scenes, handwriting never
# seen in training) with greedy search and with beam 3: BLEU-4 (sacreBLEU), exact match, attention
# localisation. Writes bench/results/NAME.json and an attention picture of three test scenes under
# runs/bench-NAME/attention/.
#   sh bench/captioning.sh [configs/digits-captioner.yaml] [MINUTES]
set -eu
config=${1:-configs/digits-captioner.yaml}
minutes=${2:-25}
name=$(basename "$config" .yaml)
out=runs/bench-$name
bin=.venv/bin
. bench/keep.sh
keep_results "bench/results/$name.json"
rm -rf "$out"
$bin/attnkit -q train "$config" --out "$out" --max-minutes "$minutes"
$bin/attnkit -q evaluate "$out" --beam 1 --json --output "$out/test.greedy.txt" > "$out/test.greedy.json"
$bin/attnkit -q evaluate "$out" --beam 3 --json --output "$out/test.beam3.txt" > "$out/test.beam3.json"
# three test scenes as PNG files, captioned with their attention maps
$bin/python - "$out" <<'PY'
import sys
from PIL import Image
from attnkit.config import load_config
from attnkit.tasks.captioning import read_splits
out = sys.argv[1]
test = read_splits(load_config(f"{out}/config.yaml"))["test"]
for i in (0, 1, 2):
    Image.fromarray(test.images[i].squeeze(-1)).save(f"{out}/test-scene-{i}.png")
PY
$bin/attnkit -q caption "$out" "$out"/test-scene-0.png "$out"/test-scene-1.png "$out"/test-scene-2.png \
    --beam 3 --attention-dir "$out/attention" > "$out/test-scenes.txt"
# the README's picture, in the run directory (cp it to docs/images/ to replace the tracked one): the
# digit-naming words of test scene 1, each under its attention
$bin/python - "$out" <<'PY'
import sys
from PIL import Image
from attnkit.config import load_config
from attnkit.overlay import caption_strip
from attnkit.tasks.captioning import Captioner, read_splits
out = sys.argv[1]
captioner = Captioner.load(out)
scene = read_splits(load_config(f"{out}/config.yaml"), ("test",))["test"].images[1]
caption = captioner.caption([scene], beam=3)[0]
alpha, _ = captioner.attention([scene], [caption.tokens])  # (1, T, h, w)
words = captioner.tok.pieces(caption.tokens)
named = [i for i, w in enumerate(words) if w in ("zero one two three four five six seven eight nine".split())]
if named:  # a barely trained model may name no digit
    caption_strip(scene, [words[i] for i in named], alpha[0, named].numpy()).save(f"{out}/caption-attention.png")
print(caption.text)
PY
$bin/python - "$out" "$config" "$minutes" "$name" <<'PY'
import json, sys
out, config, minutes, name = sys.argv[1:]
summary = json.load(open(f"{out}/summary.json"))
greedy, beam3 = json.load(open(f"{out}/test.greedy.json")), json.load(open(f"{out}/test.beam3.json"))
row = {"config": config, "max_minutes": float(minutes), "summary": summary, "test_greedy": greedy,
       "test_beam3": beam3}
json.dump(row, open(f"bench/results/{name}.json", "w"), indent=2)
print(json.dumps({"config": config, "params": summary["params"], "steps": summary["steps"],
                  "wall_seconds": summary["wall_seconds"],
                  **{f"{k}_{s}": r[s] for k, r in (("greedy", greedy), ("beam3", beam3))
                     for s in ("bleu", "exact_match", "localisation")}}))
PY
