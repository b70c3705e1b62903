#!/bin/bash
# Round END2, seed $1: the half-hour recaller with end marks (wt7), the recipe's reader of fit.tsv, validation with beam 4. One thread.
set -e
s=$1
cd /work/main
D=../shared/data/birthplaces; C=runs/conf; R=runs/d3
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) pretrain (wt7, end marks)"
PYTHONPATH=/work/wt7/src /usr/bin/time -f "%e s wall" python -m kgpt pretrain rope $D/wiki.txt --recipe recall-half-hour \
  --n_layer 4 --n_head 4 --n_embd 128 --seed $s --device cpu --writing_params_path $R/end-s$s.params --checkpoint_every 300 --no_progress
echo "== $(date -u +%T) reader of fit.tsv (main)"
python -m kgpt finetune rope $D/wiki.txt --recipe recall --reading_params_path $R/end-s$s.params \
  --writing_params_path $R/end-s$s.reader.params --finetune_corpus_path $C/fit.tsv --seed $s --device cpu --no_progress
echo "== $(date -u +%T) validation, beam 4"
python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $R/end-s$s.reader.params --eval_corpus_path $C/val.tsv \
  --outputs_path $R/end-s$s.beam4.val.txt --analysis_dir $R/end-s$s.beam4.val.analysis --finetune_corpus_path $C/fit.tsv \
  --device cpu --no_progress
echo "== $(date -u +%T) done"
