#!/bin/bash
# The half-hour preset's recaller (seed 1), pretraining alone, for validation rounds.
cd /work/main
D=../shared/data/birthplaces
echo "== $(date -u +%T) start $(git rev-parse --short HEAD)"
python -m kgpt pretrain rope $D/wiki.txt --recipe recall-half-hour --n_layer 4 --n_head 4 --n_embd 128 \
  --processes 2 --seed 1 --device cpu --writing_params_path runs/beam/pretrain-s1.params \
  --checkpoint_every 300 --no_progress "$@"
echo "== $(date -u +%T) done rc=$?"
