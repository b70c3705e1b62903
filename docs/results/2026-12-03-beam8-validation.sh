#!/bin/bash
# Round BEAM8: one reader of fit.tsv (the recipe's), validation recalled with beams of 4 and 8.
cd /work/main/benchmarks
echo "== $(date -u +%T) validation"
python recall_proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed 1 --recall_beams 4 8 --out ../runs/beam/val \
  > ../runs/beam/val.jsonl
echo "== $(date -u +%T) done rc=$?"
