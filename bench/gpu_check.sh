#!/usr/bin/env bash
# The checks and measurements that need a GPU, in parts that each fit one command of the device tool
# (at most 10 minutes; planned for 8), run one at a time from the repository root:
#   bash bench/gpu_check.sh tests          ~4 min: the tests that skip without a GPU, the RNN's dtype under
#                                          bf16 autocast, the GPU-path tests, exact resume with and without
#                                          training.deterministic (bench/gpu_resume.py)
#   bash bench/gpu_check.sh speed          ~3 min: training tokens/s of the Transformer and the dot-attention
#                                          RNN in fp32, bf16 and fp16
#   bash bench/gpu_check.sh bleu [MINUTES] MINUTES (default 6) of the Multi30k Transformer, its test2016
#                                          BLEU at beam 5 within them
# Each part prints its results as it goes and keeps them in $OUT/gpu_check-PART.log; they go into
# docs/SCALING.md ("On a GPU").
#
# What the GPU machine lacks must be brought along as wheels in .whl (ignored by git) and named in the
# device tool's carry (see /work/.library/device/README.md for the pip download line): pydantic,
# pydantic_core, annotated_types, typing_inspection, typing_extensions for every part; ctranslate2 as
# well for the export tests (without it they skip). The part installs them into /tmp/site.
set -uo pipefail
part=${1:-}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 -c "import pydantic" 2>/dev/null || { echo "$0: pydantic is missing: bring its wheels in .whl (see the header)" >&2; exit 2; }

tests() {
    # the RNN under bf16 autocast: plain cuDNN runs it in fp16; attnkit's recurrent() in fp32
    python3 - <<'PY'
import torch
from attnkit.runtime import recurrent
lstm = torch.nn.LSTM(8, 8, batch_first=True).cuda()
x = torch.randn(2, 5, 8, device="cuda")
with torch.autocast("cuda", dtype=torch.bfloat16):
    print({"lstm under bf16 autocast": str(lstm(x)[0].dtype), "through recurrent()": str(recurrent(lstm, x)[0].dtype)})
PY
    python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_gpu_path.py tests/test_precision.py \
        tests/test_limits.py tests/test_export.py 2>&1 | tail -15
    python3 bench/gpu_resume.py --device cuda --steps 60
}

speed() {
    for config in multi30k-transformer multi30k-rnn-dot; do
        for precision in fp32 bf16 fp16; do
            python3 -m attnkit -q bench train configs/$config.yaml --device cuda \
                --set training.precision=$precision --steps 50 --warmup 10
        done
    done
}

bleu() {
    # the run directory outside $OUT: only the log comes back; summary.json holds test2016 at the config's beam 5
    minutes=${1:-6}
    rm -rf /tmp/gpu_check_run
    python3 -m attnkit -q train configs/multi30k-transformer.yaml --device cuda --max-minutes "$minutes" \
        --out /tmp/gpu_check_run || return 1
    python3 -c "import json; d=json.load(open('/tmp/gpu_check_run/summary.json')); print(json.dumps({k: d.get(k) for k in ('steps', 'device', 'precision', 'train_tokens_per_s', 'valid', 'test', 'wall_seconds')}))"
}

case "$part" in
    tests|speed|bleu) ;;
    *) echo "usage: bash bench/gpu_check.sh tests|speed|bleu [MINUTES]" >&2; exit 2 ;;
esac
shift
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    "$part" "$@"
} 2>&1 | tee "$OUT/gpu_check-$part.log"
