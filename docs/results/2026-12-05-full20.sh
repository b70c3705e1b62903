#!/bin/bash
# Round FULL20: the laptop preset's recaller (seed 1) pretrained 20 Muon passes at peak lr $LR (round LR20's choice),
# everything else the recipe's (batch 32 grouped, no decay, 4x4x128, two processes); then its storage (no label
# read) and the validation reader of the 1,600 fit people at 3 epochs (AdamW, seed 0, beam 4); READER6=1 adds the
# 6-epoch reader. Rules: docs/results/2026-12-03-rules.md, "Sixteenth session".
cd /work/main
: "${LR:?set LR}"
R=runs/full20
mkdir -p $R
echo "== $(date -u +%T) pretrain start $(git rev-parse --short HEAD) lr $LR"
kgpt pretrain rope ../shared/data/birthplaces/wiki.txt --recipe recall-half-hour --max_epochs 20 --pretrain_lr $LR \
  --seed 1 --device cpu --processes 2 --n_layer 4 --n_head 4 --n_embd 128 --checkpoint_every 300 --no_progress \
  --writing_params_path $R/pretrain-s1.params $RESUME || exit 1
echo "== $(date -u +%T) pretrain done; storage"
python docs/results/2026-12-03-floor-storage.py $R/pretrain-s1.params > $R/storage.jsonl
cd benchmarks
for E in 3 ${READER6:+6}; do
  echo "== $(date -u +%T) validation reader, $E epochs"
  python recall_proxy.py --pretrained ../$R/pretrain-s1.params --seed 0 --epochs $E --recall_beams 4 --out ../$R/val-e$E \
    > ../$R/val-e$E.jsonl 2> ../$R/val-e$E.err
done
echo "== $(date -u +%T) done"
