#!/bin/bash
# Round DEMOFLR: the demo's pretrain+finetune cell on its validation split, round DEMOLR's 80-pass lr-2e-3 pretraining
# reused (its checkpoint under runs/demolr), finetuned 10 epochs at four learning rates (the demo: 1e-3). Rules:
# docs/results/2026-12-03-rules.md, "Fourteenth session".
cd /work/main
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 --pretrain_lr 2e-3 \
  --finetune_lr 3e-4 6e-4 2e-3 3e-3 --out runs/demolr
echo "== $(date -u +%T) done"
