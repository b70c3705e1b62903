#!/bin/bash
# Dev once (round DIGITS adopted): the half-hour preset's reader (all 2,000 training questions, dropout 0.1) on the digit-noised recaller (runs/nd), beam 4.
cd /work/main
D=../shared/data/birthplaces
echo "== $(date -u +%T) reader $(git rev-parse --short HEAD)"
python -m kgpt finetune rope $D/wiki.txt --recipe recall-half-hour --processes 2 \
  --reading_params_path runs/nd/pretrain-s1.params --writing_params_path runs/nd/reader-s1.params \
  --finetune_corpus_path $D/birth_places_train.tsv --seed 1 --device cpu --no_progress
echo "== $(date -u +%T) dev, beam 4"
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path runs/nd/reader-s1.params --eval_corpus_path $D/birth_dev.tsv \
  --outputs_path runs/nd/dev-b4.txt --analysis_dir runs/nd/dev-b4 --finetune_corpus_path $D/birth_places_train.tsv \
  --recall_beams 4 --device cpu --no_progress
echo "== $(date -u +%T) errors"
python benchmarks/reading_errors.py runs/nd/dev-b4 --wiki $D/wiki.txt > runs/nd/dev-b4-errors.json
echo "== $(date -u +%T) done"
