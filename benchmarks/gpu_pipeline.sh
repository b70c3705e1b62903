#!/usr/bin/env bash
# The assignment's full pipeline for one variant on a GPU, timed, logs under $OUT.
# usage: benchmarks/gpu_pipeline.sh DATA_DIR OUT VARIANT [extra pretrain flags...]
set -euo pipefail
data=$1; out=$2; variant=$3; shift 3
mkdir -p "$out"
run() { echo "+ $*" >&2; /usr/bin/time -f "wall %e s" "$@"; }
run python3 -m kgpt pretrain "$variant" "$data/wiki.txt" --writing_params_path "$out/$variant.pretrain.params" \
    --no_progress "$@" 2>&1 | tee "$out/$variant.pretrain.log"
run python3 -m kgpt finetune "$variant" "$data/wiki.txt" --reading_params_path "$out/$variant.pretrain.params" \
    --writing_params_path "$out/$variant.finetune.params" --finetune_corpus_path "$data/birth_places_train.tsv" \
    --no_progress 2>&1 | tee "$out/$variant.finetune.log"
run python3 -m kgpt evaluate "$variant" "$data/wiki.txt" --reading_params_path "$out/$variant.finetune.params" \
    --eval_corpus_path "$data/birth_dev.tsv" --outputs_path "$out/$variant.dev.predictions" 2>&1 | tee "$out/$variant.eval.log"
