#!/bin/bash
# Round WORDS, seed $1: the half-hour recallers of 2026-12-02 (runs/l60), a reader whose swap names are the training answers alone.
cd /work/main
S=$1
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) seed $S"
python benchmarks/recall_proxy.py --pretrained runs/l60/checkpoints/pretrain-recall-rope-s$S.params --seed $S \
  --learn_from bios --continue_bios --no-swap_words --out runs/e5/words >> runs/e5/words-s$S.jsonl
echo "== $(date -u +%T) done"
