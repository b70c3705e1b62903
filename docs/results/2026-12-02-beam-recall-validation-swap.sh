#!/bin/bash
# Round END's reference: the half-hour recaller l60-s0 (no end marks), the recipe's reader of fit.tsv, validation.
set -e
cd /work/main
D=../shared/data/birthplaces; C=runs/conf; R=runs/late
export OMP_NUM_THREADS=${THREADS:-1}
echo "== $(date -u +%T) reader of fit.tsv"
python -m kgpt finetune rope $D/wiki.txt --recipe recall --reading_params_path runs/l60/checkpoints/pretrain-recall-rope-s0.params \
  --writing_params_path $R/l60swap-s0.reader.params --finetune_corpus_path $C/fit.tsv --seed 0 --device cpu --no_progress
for W in 4 1; do
  echo "== $(date -u +%T) validation, beam $W"
  python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $R/l60swap-s0.reader.params --eval_corpus_path $C/val.tsv \
    --outputs_path $R/l60swap-s0.beam$W.val.txt --analysis_dir $R/l60swap-s0.beam$W.val.analysis --finetune_corpus_path $C/fit.tsv \
    --recall_beams $W --device cpu --no_progress
done
echo "== $(date -u +%T) done"
