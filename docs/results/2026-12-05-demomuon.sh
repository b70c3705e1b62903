#!/bin/bash
# Round DEMOMUON: the demo's recall cell (recall-end-marked) on its validation split, pretrained with Muon for 20 and
# 30 passes (the demo: AdamW, 40). Rules: docs/results/2026-12-03-rules.md, "Fourteenth session".
cd /work/main
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python benchmarks/demo_cell.py --validation --optimizer muon --pretrain_epochs 20 30 --out runs/demomuon
echo "== $(date -u +%T) done"
