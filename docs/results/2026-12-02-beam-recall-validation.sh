#!/bin/bash
# usage: runs/late/beam.sh TAG BEAMS : validation of runs/conf/TAG.reader.params with that recall beam
D=../shared/data/birthplaces; C=runs/conf; T=$1; W=$2
export OMP_NUM_THREADS=${THREADS:-1}
/usr/bin/time -f "%e s wall" python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $C/$T.reader.params \
  --eval_corpus_path $C/val.tsv --outputs_path runs/late/$T.beam$W.val.txt --analysis_dir runs/late/$T.beam$W.val.analysis \
  --finetune_corpus_path $C/fit.tsv --recall_beams $W --device cpu --no_progress
