#!/bin/bash
# Round MUON20: the laptop preset's recaller (seed 1) pretrained 20 passes with Muon for the blocks' matrices
# (kgpt.training.muon; AdamW for the rest), everything else the recipe's (lr 3e-3, batch 32 grouped, no decay,
# 4x4x128, two processes); then its storage (no label read) and the recipe's validation reader of the 1,600 fit
# people (seed 0, 6 epochs, beam 4). Rules: docs/results/2026-12-03-rules.md, "Fifteenth session".
cd /work/main
R=runs/muon20
mkdir -p $R
echo "== $(date -u +%T) pretrain start $(git rev-parse --short HEAD)"
kgpt pretrain rope ../shared/data/birthplaces/wiki.txt --recipe recall-half-hour --optimizer muon --max_epochs 20 \
  --seed 1 --device cpu --processes 2 --n_layer 4 --n_head 4 --n_embd 128 --checkpoint_every 300 --no_progress \
  --writing_params_path $R/pretrain-s1.params $RESUME || exit 1
echo "== $(date -u +%T) pretrain done; storage"
python docs/results/2026-12-03-floor-storage.py $R/pretrain-s1.params > $R/storage.jsonl
echo "== $(date -u +%T) validation reader"
cd benchmarks
python recall_proxy.py --pretrained ../$R/pretrain-s1.params --seed 0 --epochs 6 --recall_beams 4 --out ../$R/val-e6 \
  > ../$R/val-e6.jsonl 2> ../$R/val-e6.err
echo "== $(date -u +%T) done"
