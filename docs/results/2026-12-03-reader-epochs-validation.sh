#!/bin/bash
# Round EPOCHS: the dropout reader at 4 epochs, seeds 0 and 1, one thread each, both at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start"
for S in 0 1; do
  python recall_proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed $S --recall_beams 4 --dropout 0.1 --epochs 4 \
    --out ../runs/rd/val > ../runs/rd/e4-s$S.jsonl 2> ../runs/rd/e4-s$S.err &
done
wait
echo "== $(date -u +%T) done"
