#!/bin/bash
# Round DIGITS: readers of fit.tsv (the recipe's, dropout 0.1) on the digit-noised recaller, one thread each, two at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start"
for S in 0 1; do
  python recall_proxy.py --pretrained ../runs/nd/pretrain-s1.params --seed $S --recall_beams 4 --out ../runs/nd/val \
    > ../runs/nd/val-s$S.jsonl 2> ../runs/nd/val-s$S.err &
done
wait
echo "== $(date -u +%T) done"
