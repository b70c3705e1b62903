#!/bin/bash
# Round NOATTN: the reader's dropout on all but attention, seeds 0 and 1, one thread each, both at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start"
for S in 0 1; do
  python ../docs/results/2026-12-03-reader-noattn-proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed $S --recall_beams 4 --dropout 0.1 \
    --out ../runs/rd/noattn > ../runs/rd/noattn-s$S.jsonl 2> ../runs/rd/noattn-s$S.err &
done
wait
echo "== $(date -u +%T) done"
