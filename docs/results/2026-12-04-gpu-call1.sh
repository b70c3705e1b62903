#!/bin/bash
# The first device call (H200, 2026-12-04 13:37-13:43 UTC): kgpt bench train, round PAIR-GPU and `kgpt reproduce --preset gpu --seeds 0` side by side.
# Sent through the device tool with .data/ (a copy of ../shared/data/birthplaces) carried; $OUT is the folder that comes back.
set -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; python3 -c "import torch;print(torch.__version__, torch.version.cuda)"; nproc; date -u
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
timeout 60 python3 -m kgpt bench train --device cuda --json > $OUT/bench-train.json 2>&1; tail -c 600 $OUT/bench-train.json
SECONDS_LEFT=400 bash docs/results/2026-12-04-pair-gpu.sh .data /tmp/pair cuda > $OUT/pair.log 2>&1 &
timeout 400 python3 -m kgpt reproduce --data_dir .data --preset gpu --seeds 0 --device cuda --out /tmp/gp > $OUT/gpu-preset.log 2>&1 &
wait; date -u
cat /tmp/pair/pretrain-*.jsonl > $OUT/pair-pretrain.jsonl; cat /tmp/pair/val-*.jsonl > $OUT/pair-validation.jsonl
tail -n 4 /tmp/pair/*.err /tmp/gp/*.json > $OUT/errors.txt 2>&1; cp /tmp/gp/results.json $OUT/gpu-preset-results.json
cd /tmp/pair && tar cf $OUT/recallers.tar $(ls recaller-s[01]*.params) ; cat $OUT/pair.log; tail -n 25 $OUT/gpu-preset.log; wc -l $OUT/*.jsonl
