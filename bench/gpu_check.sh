#!/usr/bin/env bash
# Every check and measurement of issue 24 that needs a GPU, in one run that fits the device tool's
# 15 minutes (about 11 here, after the machine's start). Run it through the device tool from the
# repository root, with the wheels the GPU machine lacks in .whl (see /work/.library/device/README.md:
# pydantic, pydantic_core, annotated_types, typing_inspection, typing_extensions) and `carry: [".whl"]`:
#   bash bench/gpu_check.sh        what it prints (and $OUT/gpu_check.log) goes into docs/BENCHMARKS.md
#   MINUTES=10 bash bench/gpu_check.sh   the 10-minute BLEU row alone: SKIP_TESTS=1 SKIP_BENCH=1
set -uo pipefail
MINUTES=${MINUTES:-6}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    if [ -z "${SKIP_TESTS:-}" ]; then
        # the tests that skip without a GPU: CPU and GPU loss curves, fp16/bf16, GPU -> CPU, inputs on the GPU
        python3 -m pytest -q -p no:cacheprovider tests/test_device.py -k "cuda or gpu or half" 2>&1 | tail -15
    fi
    if [ -z "${SKIP_BENCH:-}" ]; then
        for precision in fp32 bf16 fp16; do
            python3 -m attnkit -q bench train configs/multi30k-transformer.yaml --device cuda \
                --set training.precision=$precision --steps 50 --warmup 10
        done
    fi
    # training tokens/s and test BLEU of the 60-minute config given MINUTES on one GPU
    python3 -m attnkit -q train configs/multi30k-transformer.yaml --device cuda --max-minutes "$MINUTES" \
        --out "$OUT/run" && python3 -c "import json; d=json.load(open('$OUT/run/summary.json')); print(json.dumps({k: d.get(k) for k in ('steps', 'device', 'precision', 'train_tokens_per_s', 'valid', 'test', 'wall_seconds')}))"
} 2>&1 | tee "$LOG"
