#!/bin/bash
# Round END3: the end-marked half-hour recallers (END2) with greedy recall, validation.
cd /work/main
D=../shared/data/birthplaces; C=runs/conf; R=runs/d3
for s in 0 1; do
  echo "== $(date -u +%T) seed $s, validation, greedy"
  python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $R/end-s$s.reader.params --eval_corpus_path $C/val.tsv \
    --outputs_path $R/end-s$s.beam1.val.txt --analysis_dir $R/end-s$s.beam1.val.analysis --finetune_corpus_path $C/fit.tsv \
    --recall_beams 1 --device cpu --no_progress
done
echo "== $(date -u +%T) done"
