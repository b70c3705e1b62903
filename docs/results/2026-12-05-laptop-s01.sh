#!/bin/bash
# The issue's command whole: --preset laptop, seeds 0 and 1, into the study that holds seed 0's cells
# (2026-12-05-laptop.sh, kept as they are), so seed 1 runs here with the machine to itself; then each seed's error split.
cd "$(dirname "$0")/../.."
D=../shared/data/birthplaces
O=runs/laptop
echo "== $(date -u +%T) reproduce $(git rev-parse --short HEAD) on $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), avx512f: $(grep -c avx512f /proc/cpuinfo)"
python -m kgpt reproduce --data_dir $D --preset laptop --seeds 0 1 --device cpu --out $O/study --checkpoint_every 300
for a in $O/study/analysis/*; do
  echo "== $(date -u +%T) errors $a"
  python benchmarks/reading_errors.py $a --wiki $D/wiki.txt > $O/errors-$(basename $a).json
done
echo "== $(date -u +%T) done"
