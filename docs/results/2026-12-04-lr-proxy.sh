#!/bin/bash
# Round LR (eleventh session): the half-hour recaller's training on every 2nd bio (1,468), 60 passes, batch 32
# grouped, no weight decay, at its learning rate (4e-3) and at 6e-3; one thread each, both at once, seed 0.
cd "$(dirname "$0")/../../benchmarks"
export OMP_NUM_THREADS=1
OUT=${1:-../runs/lr}
mkdir -p "$OUT"
echo "== $(date -u +%T) start"
for LR in 4e-3 6e-3; do
  python recall_passes.py --every 2 --epochs 60 --batch 32 --lr $LR --weight_decay 0 --group --seed 0 \
    > "$OUT/lr-$LR.jsonl" 2> "$OUT/lr-$LR.err" &
done
wait
echo "== $(date -u +%T) done"
cat "$OUT"/lr-*.jsonl
