#!/bin/sh
# The ELMo gain where Peters et al. (2018, section 5.4) found it largest: little labelled data. The
# BiLSTM tagger with and without frozen ELMo vectors, trained on the first N sentences of EWT's
# training set (the biLM in runs/bilm-elmo read all of its words, none of its tags), scored on the
# full dev and test sets; the same cap for both, validating every 50 updates (a small set takes few).
#   sh bench/elmo_low_resource.sh [N] [MINUTES]
# Results: bench/results/lowres-ewt-N-bilstm-tagger.json and lowres-ewt-N-bilstm-elmo-tagger.json.
set -eu
n=${1:-1000}
minutes=${2:-5}
subset=runs/data/ewt-train-$n.conllu
mkdir -p runs/data
.venv/bin/python - "$n" "$subset" <<'PY'
import gzip, sys
n, out = int(sys.argv[1]), sys.argv[2]
text = gzip.open("../shared/data/ud_english_ewt/en_ewt-ud-train.conllu.gz", "rt", encoding="utf-8").read()
sentences = [s for s in text.split("\n\n") if s.strip()]
if n > len(sentences):
    sys.exit(f"N={n}: the training set has {len(sentences)} sentences")
open(out, "w", encoding="utf-8").write("\n\n".join(sentences[:n]) + "\n\n")
PY
for model in bilstm-tagger bilstm-elmo-tagger; do
    NAME=lowres-ewt-$n-$model sh bench/task.sh configs/ewt-$model.yaml "$minutes" \
        --set "data.train=$subset" --set training.valid_every=50
done
