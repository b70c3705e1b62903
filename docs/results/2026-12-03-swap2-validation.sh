#!/bin/bash
# Round SWAP2, seed $1: the half-hour recallers of 2026-12-02 (runs/l60), a reader with two swapped copies, 4 epochs.
cd /work/main
S=$1
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) seed $S"
python benchmarks/recall_proxy.py --pretrained runs/l60/checkpoints/pretrain-recall-rope-s$S.params --seed $S \
  --learn_from bios --continue_bios --swap_places 2 --epochs 4 --out runs/e5/swap2 >> runs/e5/swap2-s$S.jsonl
echo "== $(date -u +%T) done"
