#!/bin/bash
# Round DEMOLR: the demo's pretrain+finetune cell on validation (its data, seed 0, a fixed fifth of the 200 training
# people held out of finetuning) at 80 pretraining passes, lr 2e-3 and 3e-3 (the demo: 120 at 5e-3; 80 at 5e-3 read
# 4 of 40, 120 read 18, round DEMO2 of 2026-12-03). Rules: docs/results/2026-12-03-rules.md, "Thirteenth session".
cd /work/main
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 --pretrain_lr 2e-3 3e-3 \
  --out runs/demolr
echo "== $(date -u +%T) done"
