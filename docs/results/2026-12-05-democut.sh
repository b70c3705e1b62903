#!/bin/bash
# Round DEMOCUT: the demo's pretrain+finetune cell pretrained with Muon for 40 and 60 passes (the demo: AdamW, 120),
# and its recall cell at 10 Muon passes (the demo: 20), on the demo's validation split. Rules:
# docs/results/2026-12-03-rules.md, "Sixteenth session".
cd /work/main
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --setting pretrain+finetune --optimizer muon --pretrain_epochs 40 60 \
  --out runs/democut
echo "== $(date -u +%T) recall cell"
python benchmarks/demo_cell.py --validation --pretrain_epochs 10 --out runs/democut
echo "== $(date -u +%T) done"
