#!/bin/bash
# Seed 0 of the half-hour preset without digit noise (the recipe as committed), the machine to itself; then the error split.
cd /work/main
D=../shared/data/birthplaces
echo "== $(date -u +%T) reproduce $(git rev-parse --short HEAD)"
python -m kgpt reproduce --data_dir $D --preset half-hour --seeds 0 --device cpu --out runs/h0/study --checkpoint_every 300
echo "== $(date -u +%T) errors"
python benchmarks/reading_errors.py runs/h0/study/analysis/* --wiki $D/wiki.txt > runs/h0/errors.json
echo "== $(date -u +%T) done"
