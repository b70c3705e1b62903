#!/bin/bash
# The half-hour preset as committed (recaller at lr 3e-3), seeds 0 and 1, the machine to itself; then each seed's error split.
cd "$(dirname "$0")/../.."
D=../shared/data/birthplaces
O=runs/h3
echo "== $(date -u +%T) reproduce $(git rev-parse --short HEAD)"
python -m kgpt reproduce --data_dir $D --preset half-hour --seeds 0 1 --device cpu --out $O/study --checkpoint_every 300
for a in $O/study/analysis/*; do
  echo "== $(date -u +%T) errors $a"
  python benchmarks/reading_errors.py $a --wiki $D/wiki.txt > $O/errors-$(basename $a).json
done
echo "== $(date -u +%T) done"
