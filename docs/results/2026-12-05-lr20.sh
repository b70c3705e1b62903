#!/bin/bash
# Round LR20 (proxy): the laptop recaller's Muon pretraining at 20 passes on every 5th bio (588), at three peak
# learning rates, the three at once on one thread each. Rules: docs/results/2026-12-03-rules.md, "Sixteenth session".
cd /work/main/benchmarks
for lr in 3e-3 6e-3 1.2e-2; do
  OMP_NUM_THREADS=1 python recall_passes.py --every 5 --batch 32 --weight_decay 0 --group --seed 0 --epochs 20 \
    --optimizer muon --lr $lr > ../runs/lr20-$lr.jsonl 2> ../runs/lr20-$lr.err &
done
wait
cat ../runs/lr20-*.jsonl > ../docs/results/2026-12-05-lr20.jsonl
