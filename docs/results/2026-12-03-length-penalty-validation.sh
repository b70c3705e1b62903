#!/bin/bash
cd /work/main
D=../shared/data/birthplaces; C=runs/conf; R=runs/d3
for s in 0 1; do
  echo "== $(date -u +%T) seed $s, validation, beam 4, length_penalty 1"
  PYTHONPATH=/work/wt9/src python runs/d3/end4.py 1.0 evaluate rope $D/wiki.txt --reading_params_path $R/end-s$s.reader.params \
    --eval_corpus_path $C/val.tsv --outputs_path $R/end-s$s.lp1.val.txt --analysis_dir $R/end-s$s.lp1.val.analysis \
    --finetune_corpus_path $C/fit.tsv --recall_beams 4 --device cpu --no_progress
done
echo "== $(date -u +%T) done"
