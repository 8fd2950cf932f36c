#!/bin/sh
# Every picture of docs/course (issue 27), from the runs its pages name: trains the few-minute models
# that are missing (each on a fixed number of updates, so a busy machine changes how long it takes,
# not what it learns), then draws into docs/course/img/. The by-length models come from
# bench/by_length_train.sh, the hour-long Transformer from bench/multi30k.sh.
#   sh bench/course.sh
set -eu
k=.venv/bin/attnkit
img=docs/course/img
train() {  # NAME CONFIG STEPS: train runs/NAME unless it is there
    if [ ! -f "runs/$1/summary.json" ]; then rm -rf "runs/$1"; $k -q train "$2" --out "runs/$1" ${3:+--max-steps $3}; fi
}
train course-sst2-attention configs/sst2-bilstm-attention.yaml 800
train course-ptb-transformer-lm configs/ptb-transformer-lm.yaml 500
train static-word2vec configs/static-word2vec.yaml
train course-bilm configs/bilm-elmo.yaml 2000
for m in runs/bench-multi30k-transformer runs/bylength-multi30k-rnn-dot; do
    [ -d "$m" ] || { echo "$m is missing: see docs/course/README.md"; exit 1; }
done
S="A man in a vest is sitting in a chair and holding magazines."
T=runs/bench-multi30k-transformer
# page 1
$k -q plot attention runs/course-sst2-attention --text "a gorgeous , witty , seductive movie ." --out $img/pooling.png
# page 2
$k -q plot by-length runs/bylength-multi30k-rnn-none runs/bylength-multi30k-rnn-mean runs/bylength-multi30k-rnn-dot \
    runs/bylength-multi30k-rnn-general runs/bylength-multi30k-rnn-additive runs/bylength-multi30k-transformer $T \
    --src attnkit:multi30k/test_2016_flickr.en.gz --ref attnkit:multi30k/test_2016_flickr.de.gz --join 1 2 3 \
    --out $img/by-length.png --json $img/by-length.json
# page 3
for score in dot general additive; do
    $k -q plot attention runs/bylength-multi30k-rnn-$score --text "$S" --out $img/attention-$score.png
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
$k -q plot attention $T --text "$S" --kind encoder --layer 1 --out $img/self-attention.png
$k -q plot attention $T --text "$S" --kind cross --layer 3 --out $img/multi-head.png
$k -q plot positions --text "I am a robot" --d-model 64 --out $img/positions.png
$k -q plot attention $T --text "$S" --kind self --layer 1 --head 1 --out $img/masked-self-attention.png
$k -q plot curves $T --out $img/curves.png
$k -q plot beam $T --text "A man cutting branches of trees." --beam 3 --out $img/beam.png
$k -q plot beam $T --text "A man cutting branches of trees." --beam 1 --out $img/greedy.png
