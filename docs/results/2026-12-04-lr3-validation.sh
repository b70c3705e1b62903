#!/bin/bash
# Round LR3: readers of fit.tsv (the recipe's, dropout 0.1) on the lr-3e-3 recaller, one thread each, two at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start"
for S in 0 1; do
  python recall_proxy.py --pretrained ../runs/lr3/pretrain-s1.params --seed $S --recall_beams 4 --out ../runs/lr3/val \
    > ../runs/lr3/val-s$S.jsonl 2> ../runs/lr3/val-s$S.err &
done
wait
echo "== $(date -u +%T) done"
