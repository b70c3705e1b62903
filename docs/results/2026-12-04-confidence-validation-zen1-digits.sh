#!/bin/bash
# The confidence on validation with round DIGITS' seed-1 reader (measurement; the same val.tsv as round DROP's).
cd /work/main/benchmarks
echo "== $(date -u +%T) digits reader, seed 1"
python confidence_validation.py signals --params ../runs/nd/val/reader-pretrain-s1-bios-drop0-swap1-cont-dropout0.1-e6-s1.params \
  --val ../runs/rd/conf/val.tsv > ../runs/h0/conf-digits-s1.json
echo "== $(date -u +%T) done"
