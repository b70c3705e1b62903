#!/bin/bash
# The confidence on validation with no-noise half-hour recallers (round PAIR-GPU's seeds 0 and 1, trained on the H200):
# a reader of the 1,600 fit people on each (recall_proxy, reader seed 0, one thread each, two at once), then the signals.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) split"
python confidence_validation.py split --out ../runs/conf
for S in 0 1; do
  python recall_proxy.py --pretrained ../runs/gpu/recaller-s$S-n0.params --seed 0 --recall_beams 4 --out ../runs/conf/r$S \
    > ../runs/conf/val-r$S.jsonl 2> ../runs/conf/val-r$S.err &
done
wait
echo "== $(date -u +%T) readers done"
for S in 0 1; do
  python confidence_validation.py signals --params ../runs/conf/r$S/*.params --val ../runs/conf/val.tsv > ../runs/conf/conf-s$S.json 2> ../runs/conf/conf-s$S.err &
done
wait
echo "== $(date -u +%T) done"
