#!/bin/bash
# Round CONT: the half-hour recallers (runs/l60), readers with and without continue_bios, validation.
cd /work/main
S=$1
export OMP_NUM_THREADS=1
for flag in "" "--continue_bios"; do
  echo "== $(date -u +%T) seed $S $flag"
  python benchmarks/recall_proxy.py --pretrained runs/l60/checkpoints/pretrain-recall-rope-s$S.params --seed $S \
    --learn_from bios $flag --out runs/cont >> runs/cont/s$S.jsonl
done
echo "== $(date -u +%T) done"
