#!/bin/bash
# The second device call (H200, 2026-12-04 13:58-14:00 UTC): the gpu preset's recall-read cell for seeds 1, 2, 3, the three at once.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4; nvidia-smi --query-gpu=name --format=csv,noheader; date -u
for s in 1 2 3; do timeout 240 python3 docs/results/2026-12-04-gpu-recall-seeds.py $s .data /tmp/g$s > /tmp/g$s.log 2>&1 & done; wait; date -u
for s in 1 2 3; do tail -n 1 /tmp/g$s.log; done > $OUT/gpu-recall-seeds.jsonl
