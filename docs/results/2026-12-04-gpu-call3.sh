#!/bin/bash
# The third device call (H200, 2026-12-04 14:03-14:05 UTC): the assignment preset at full length, vanilla, seed 0.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1; nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 195 python3 -m kgpt reproduce --data_dir .data --preset assignment --seeds 0 --device cuda --out /tmp/as > /tmp/as.log 2>&1; echo rc=$?; date -u
tr '\r' '\n' < /tmp/as.log | grep -a -v "step/s" > $OUT/assignment-s0.log; tr '\r' '\n' < /tmp/as.log | grep -a "step/s" | tail -n 2 >> $OUT/assignment-s0.log; cp /tmp/as/results.json $OUT/assignment-s0.json
