#!/bin/bash
# The half-hour recaller l60-s1 with the recipe's reader (swap) of fit.tsv, validation with beam 4.
set -e
cd /work/main
D=../shared/data/birthplaces; C=runs/conf; R=runs/d3
echo "== $(date -u +%T) reader of fit.tsv"
python -m kgpt finetune rope $D/wiki.txt --recipe recall --reading_params_path runs/l60/checkpoints/pretrain-recall-rope-s1.params \
  --writing_params_path $R/l60swap-s1.reader.params --finetune_corpus_path $C/fit.tsv --seed 1 --device cpu --no_progress
echo "== $(date -u +%T) validation, beam 4"
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $R/l60swap-s1.reader.params --eval_corpus_path $C/val.tsv \
  --outputs_path $R/l60swap-s1.beam4.val.txt --analysis_dir $R/l60swap-s1.beam4.val.analysis --finetune_corpus_path $C/fit.tsv \
  --device cpu --no_progress
echo "== $(date -u +%T) done"
