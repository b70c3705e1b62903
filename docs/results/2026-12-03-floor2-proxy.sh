#!/bin/bash
# Round FLOOR2 (a proxy): every 4th bio, 60 passes of the half-hour training, floors 0.1 (the recipe's) and 0.25, one thread each, both at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
for F in 0.1 0.25; do
  python recall_passes.py --every 4 --epochs 60 --batch 32 --lr 4e-3 --weight_decay 0 --group --lr_floor $F --seed 0 \
    > ../runs/fl/proxy-f$F.jsonl 2> ../runs/fl/proxy-f$F.err &
done
wait
echo "== $(date -u +%T) done"
