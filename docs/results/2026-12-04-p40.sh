#!/bin/bash
# Round P40: the laptop preset's recaller (seed 1) pretrained for 40 passes instead of 60, everything else the
# recipe's (lr 3e-3, batch 32 grouped, no decay, 4x4x128, two processes); then its storage (no label read) and two
# validation readers of the 1,600 fit people (seed 0): the recipe's 6 epochs, and 3 epochs. Rules:
# docs/results/2026-12-03-rules.md, "Thirteenth session".
cd /work/main
R=runs/p40
echo "== $(date -u +%T) pretrain start $(git rev-parse --short HEAD)"
kgpt pretrain rope ../shared/data/birthplaces/wiki.txt --recipe recall-half-hour --max_epochs 40 --seed 1 \
  --device cpu --processes 2 --n_layer 4 --n_head 4 --n_embd 128 --checkpoint_every 300 --no_progress \
  --writing_params_path $R/pretrain-s1.params $RESUME || exit 1
echo "== $(date -u +%T) pretrain done; storage"
python docs/results/2026-12-03-floor-storage.py $R/pretrain-s1.params > $R/storage.jsonl
echo "== $(date -u +%T) validation readers"
cd benchmarks
export OMP_NUM_THREADS=1
for E in 6 3; do
  python recall_proxy.py --pretrained ../$R/pretrain-s1.params --seed 0 --epochs $E --recall_beams 4 --out ../$R/val-e$E \
    > ../$R/val-e$E.jsonl 2> ../$R/val-e$E.err &
done
wait
echo "== $(date -u +%T) done"
