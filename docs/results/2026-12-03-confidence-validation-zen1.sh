#!/bin/bash
# The confidence on validation with the seed-1 readers of round DROP, without and with dropout (measurement).
cd /work/main/benchmarks
echo "== $(date -u +%T) without dropout"
python confidence_validation.py signals --params ../runs/beam/val/reader-pretrain-s1-bios-drop0-swap1-cont-e6-s1.params \
  --val ../runs/rd/conf/val.tsv > ../runs/rd/conf-nodropout-s1.json
echo "== $(date -u +%T) with dropout"
python confidence_validation.py signals --params ../runs/rd/val/reader-pretrain-s1-bios-drop0-swap1-cont-dropout0.1-e6-s1.params \
  --val ../runs/rd/conf/val.tsv > ../runs/rd/conf-dropout-s1.json
echo "== $(date -u +%T) done"
