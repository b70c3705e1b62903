#!/bin/bash
# Round DEMOFT: the demo's pretrain+finetune cell on its validation split, the 80-pass lr-2e-3 pretraining of round
# DEMOLR reused (its checkpoint under runs/demolr), finetuned 20 and 40 epochs (the demo: 10). Rules:
# docs/results/2026-12-03-rules.md, "Thirteenth session".
cd /work/main
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 --pretrain_lr 2e-3 \
  --finetune_epochs 20 40 --out runs/demolr
echo "== $(date -u +%T) done"
