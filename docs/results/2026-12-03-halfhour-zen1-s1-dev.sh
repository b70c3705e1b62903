#!/bin/bash
# Dev once: the half-hour preset's reader (all 2,000 training questions) on this recaller, recalled with a beam of $1 (the recipe's: 4).
cd /work/main
D=../shared/data/birthplaces; B=${1:?beam width}
echo "== $(date -u +%T) reader $(git rev-parse --short HEAD)"
[ -f runs/beam/reader-s1.params ] || python -m kgpt finetune rope $D/wiki.txt --recipe recall-half-hour --processes 2 \
  --reading_params_path runs/beam/pretrain-s1.params --writing_params_path runs/beam/reader-s1.params \
  --finetune_corpus_path $D/birth_places_train.tsv --seed 1 --device cpu --no_progress
echo "== $(date -u +%T) dev, beam $B"
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path runs/beam/reader-s1.params --eval_corpus_path $D/birth_dev.tsv \
  --outputs_path runs/beam/dev-b$B.txt --analysis_dir runs/beam/dev-b$B --finetune_corpus_path $D/birth_places_train.tsv \
  --recall_beams $B --device cpu --no_progress
echo "== $(date -u +%T) errors"
python benchmarks/reading_errors.py runs/beam/dev-b$B --wiki $D/wiki.txt > runs/beam/dev-b$B-errors.json
echo "== $(date -u +%T) done"
