#!/bin/bash
# The headline: --preset laptop as committed, seed 0 (seed 1 of the same recipe ran as separate commands: 2026-12-05-muon40-dev-s1.sh), the machine to itself; then each seed's error split.
cd "$(dirname "$0")/../.."
D=../shared/data/birthplaces
O=runs/laptop
echo "== $(date -u +%T) reproduce $(git rev-parse --short HEAD) on $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), avx512f: $(grep -c avx512f /proc/cpuinfo)"
python -m kgpt reproduce --data_dir $D --preset laptop --seeds 0 --device cpu --out $O/study --checkpoint_every 300
for a in $O/study/analysis/*; do
  echo "== $(date -u +%T) errors $a"
  python benchmarks/reading_errors.py $a --wiki $D/wiki.txt > $O/errors-$(basename $a).json
done
echo "== $(date -u +%T) done"
