#!/bin/bash
# Round P40LR2: the laptop preset's recaller (seed 1) pretrained for 40 passes at lr 2e-3, everything else the
# recipe's (batch 32 grouped, no decay, 4x4x128, two processes); then its storage (no label read) and, if it gives
# back at least 2,000 bios whole, the recipe's validation reader of the 1,600 fit people (seed 0). Rules:
# docs/results/2026-12-03-rules.md, "Thirteenth session".
cd /work/main
R=runs/p40lr2
mkdir -p $R
echo "== $(date -u +%T) pretrain start $(git rev-parse --short HEAD)"
kgpt pretrain rope ../shared/data/birthplaces/wiki.txt --recipe recall-half-hour --max_epochs 40 --pretrain_lr 2e-3 --seed 1 \
  --device cpu --processes 2 --n_layer 4 --n_head 4 --n_embd 128 --checkpoint_every 300 --no_progress \
  --writing_params_path $R/pretrain-s1.params $RESUME || exit 1
echo "== $(date -u +%T) pretrain done; storage"
python docs/results/2026-12-03-floor-storage.py $R/pretrain-s1.params > $R/storage.jsonl
W=$(python -c "import json; print(json.load(open('$R/storage.jsonl'))['recalled_whole'])")
[ "$W" -ge 2000 ] || { echo "== $(date -u +%T) $W bios whole, under 2,000: no validation reader (declared)"; exit 0; }
echo "== $(date -u +%T) validation reader"
cd benchmarks
python recall_proxy.py --pretrained ../$R/pretrain-s1.params --seed 0 --recall_beams 4 --out ../$R/val-e6 \
  > ../$R/val-e6.jsonl 2> ../$R/val-e6.err
echo "== $(date -u +%T) done"
