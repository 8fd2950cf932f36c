#!/bin/sh
# Every picture of docs/course (issue 27), from the runs its pages name: trains the few-minute models
# that are missing (each on a fixed number of updates, so a busy machine changes how long it takes,
# not what it learns), then draws into docs/course/img/. The by-length models come from
# bench/by_length_train.sh, the hour-long Transformer from bench/multi30k.sh; where they are missing,
# by-length.png is redrawn from the numbers in docs/course/img/by-length.json, the pictures of the
# other models that are missing are left as they are, and the script names them and fails at the end.
# The pictures of the notebooks (pages 2, 3, 5, 9) are copied from course-img/, where `make notebooks`
# leaves them.
#   sh bench/course.sh
set -eu
k=.venv/bin/attnkit
img=docs/course/img
missing=""
train() {  # NAME CONFIG STEPS: train runs/NAME unless it is there
    if [ ! -f "runs/$1/summary.json" ]; then rm -rf "runs/$1"; $k -q train "$2" --out "runs/$1" ${3:+--max-steps $3}; fi
}
have() {  # RUN...: whether every run is there (those that are not are noted in $missing)
    found=0
    for run in "$@"; do
        if [ ! -d "$run" ]; then
            found=1
            case " $missing " in *" $run "*) ;; *) missing="$missing $run" ;; esac
        fi
    done
    return $found
}
by_length() {  # ARGS...: plot by-length, each of the seven models of page 2 named as the page names it
    $k -q plot by-length "$@" --label "RNN, context none" --label "RNN, context mean" --label "RNN, context dot" \
        --label "RNN, context general" --label "RNN, context additive" --label "Transformer, 1,000 updates" \
        --label "Transformer, 60 minutes" --out $img/by-length.png
}
train course-sst2-attention configs/sst2-bilstm-attention.yaml 800
train course-digits-captioner configs/digits-captioner.yaml 2000
train course-ptb-transformer-lm configs/ptb-transformer-lm.yaml 500
train static-word2vec configs/static-word2vec.yaml
train course-bilm configs/bilm-elmo.yaml 2000
S="A man in a vest is sitting in a chair and holding magazines."
T=runs/bench-multi30k-transformer
B=runs/bylength-multi30k
# page 1
$k -q plot attention runs/course-sst2-attention --text "a gorgeous , witty , seductive movie ." --out $img/pooling.png
scene=runs/course-digits-captioner/test-scene-1.png  # a test scene: handwriting the captioner never saw
[ -f $scene ] || .venv/bin/python - runs/course-digits-captioner <<'PY'
import sys
from PIL import Image
from attnkit.config import load_config
from attnkit.tasks.captioning import read_splits
out = sys.argv[1]
scene = read_splits(load_config(f"{out}/config.yaml"), ("test",))["test"].images[1]
Image.fromarray(scene.squeeze(-1)).save(f"{out}/test-scene-1.png")
PY
$k -q plot attention runs/course-digits-captioner --image $scene --out $img/caption-attention.png
# page 2
if have $B-rnn-none $B-rnn-mean $B-rnn-dot $B-rnn-general $B-rnn-additive $B-transformer $T; then
    by_length $B-rnn-none $B-rnn-mean $B-rnn-dot $B-rnn-general $B-rnn-additive $B-transformer $T \
        --src attnkit:multi30k/test_2016_flickr.en.gz --ref attnkit:multi30k/test_2016_flickr.de.gz --join 1 2 3 \
        --json $img/by-length.json
else
    echo "by-length.png: from the numbers of $img/by-length.json"
    by_length --from-json $img/by-length.json
fi
# page 3
for score in dot general additive; do
    if have $B-rnn-$score; then
        $k -q plot attention $B-rnn-$score --text "$S" --out $img/attention-$score.png
    fi
done
# page 4
$k -q plot attention runs/course-ptb-transformer-lm --text "the company said it expects profits to rise" --layer 2 --head 1 \
    --out $img/lm-attention.png
# page 5
for word in play bank; do
    $k -q plot contexts --static runs/static-word2vec --contextual runs/course-bilm --word $word --out $img/contexts-$word.png
done
$k -q plot contexts --static runs/static-word2vec --contextual runs/course-bilm --word play --layer 0 \
    --out $img/contexts-play-layer0.png
# pages 6 to 10
$k -q plot positions --text "I am a robot" --d-model 64 --out $img/positions.png
$k -q plot entropy --out $img/softmax-entropy.png --json $img/softmax-entropy.json
.venv/bin/python bench/strategies_report.py --plot $img/strategies.png > /dev/null  # page 10, from bench/results
if have $T; then
    $k -q plot attention $T --text "$S" --kind encoder --layer 1 --out $img/self-attention.png
    $k -q plot attention $T --text "$S" --kind cross --layer 3 --out $img/multi-head.png
    $k -q plot attention $T --text "$S" --kind self --layer 1 --head 1 --out $img/masked-self-attention.png
    $k -q plot curves $T --out $img/curves.png
    $k -q plot beam $T --text "A man cutting branches of trees." --beam 3 --out $img/beam.png
    $k -q plot beam $T --text "A man cutting branches of trees." --beam 1 --out $img/greedy.png
fi
# pages 2, 3, 5 and 9: the pictures the notebooks draw (make notebooks saves them in course-img/)
for picture in copy-by-position general-2x256-384 contexts-fasttext-play ablation-curves; do
    if [ -f course-img/$picture.png ]; then
        cp course-img/$picture.png $img/$picture.png
    else
        missing="$missing course-img/$picture.png"
    fi
done
if [ -n "$missing" ]; then
    echo "missing:$missing (see docs/course/README.md): their pictures were not redrawn" >&2
    exit 1
fi
