#!/bin/bash
# Seed 1's error split from round S01's study (the study analyses its best cell only, seed 0's).
cd "$(dirname "$0")/../.."
D=../shared/data/birthplaces
S=runs/laptop/study
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $S/checkpoints/recall-read-rope-s1.params \
  --eval_corpus_path $D/birth_dev.tsv --outputs_path runs/laptop/s1-dev.txt --analysis_dir runs/laptop/s1-analysis \
  --finetune_corpus_path $D/birth_places_train.tsv \
  --pretrained_params_path $S/checkpoints/pretrain-recall-half-hour-rope-s1.params --device cpu --no_progress
python benchmarks/reading_errors.py runs/laptop/s1-analysis --wiki $D/wiki.txt > docs/results/2026-12-05-laptop-s1-errors.json
