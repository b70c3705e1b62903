#!/bin/bash
# Dev once: the half-hour preset's reader (all 2,000 training questions) on round MUON's seed-1 recaller (40 passes, Muon), beam 4.
cd /work/main
D=../shared/data/birthplaces
echo "== $(date -u +%T) reader $(git rev-parse --short HEAD)"
python -m kgpt finetune rope $D/wiki.txt --recipe recall-half-hour --processes 2 \
  --reading_params_path runs/muon40/pretrain-s1.params --writing_params_path runs/muon40/reader-s1.params \
  --finetune_corpus_path $D/birth_places_train.tsv --seed 1 --device cpu --no_progress
echo "== $(date -u +%T) dev"
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path runs/muon40/reader-s1.params --eval_corpus_path $D/birth_dev.tsv \
  --outputs_path runs/muon40/dev.txt --analysis_dir runs/muon40/dev --finetune_corpus_path $D/birth_places_train.tsv \
  --recall_beams 4 --device cpu --no_progress
echo "== $(date -u +%T) errors"
python benchmarks/reading_errors.py runs/muon40/dev --wiki $D/wiki.txt > runs/muon40/dev-errors.json
echo "== $(date -u +%T) done"
