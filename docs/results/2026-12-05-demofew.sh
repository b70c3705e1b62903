#!/bin/bash
# Round DEMOFEW: the demo's pretrain+finetune cell pretrained with Muon for 20 and 30 passes (the demo: 40),
# on the demo's validation split. Rules: docs/results/2026-12-03-rules.md, "Seventeenth session".
cd "$(dirname "$0")/../.."
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --setting pretrain+finetune --optimizer muon --pretrain_epochs 20 30 \
  --out runs/demofew
echo "== $(date -u +%T) done"
