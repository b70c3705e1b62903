#!/bin/bash
# The confidence on the lr-3e-3 half-hour recallers: round LR3's seed 1 (its validation reader, seed 1) and this
# session's preset seed 0 (a validation reader of the 1,600 fit people, seed 0, made here). For each: the signals on the
# 400 validation people + 200 made-up names (benchmarks/confidence_validation.py, the declared rule chooses), kgpt
# calibrate with the chosen signal and share, then dev once: calibrated with the analysis, uncalibrated (predictions
# must be byte-identical), and at the recommended threshold (the score line). One thread a job, two jobs at once.
cd "$(dirname "$0")/../.."
D=../shared/data/birthplaces
O=runs/lr3/conf
export OMP_NUM_THREADS=1
mkdir -p $O
echo "== $(date -u +%T) split $(git rev-parse --short HEAD)"
(cd benchmarks && python confidence_validation.py split --out ../$O)

one() {  # SEED READER: the signals, the calibration and dev for one recaller
  local S=$1 R=$2 C=$O/cal-s$1.params
  (cd benchmarks && python confidence_validation.py signals --params ../$R --val ../$O/val.tsv) > $O/validation-s$S.json
  local SIG SHARE
  SIG=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['chosen_signal'])" $O/validation-s$S.json)
  SHARE=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['chosen_made_up_share'])" $O/validation-s$S.json)
  echo "== $(date -u +%T) s$S: chosen $SIG @ $SHARE"
  python -m kgpt calibrate rope $D/wiki.txt --reading_params_path $R --calibration_corpus_path $O/val.tsv \
    --writing_params_path $C --signal $SIG --made_up_share $SHARE --device cpu
  python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $C --eval_corpus_path $D/birth_dev.tsv \
    --outputs_path $O/dev-s$S.txt --analysis_dir $O/dev-s$S --finetune_corpus_path $O/fit.tsv --device cpu --no_progress
  python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $R --eval_corpus_path $D/birth_dev.tsv \
    --outputs_path $O/dev-s$S.uncalibrated.txt --device cpu --no_progress
  cmp $O/dev-s$S.uncalibrated.txt $O/dev-s$S.txt && echo "s$S: predictions byte-identical"
  python -m kgpt evaluate rope $D/wiki.txt --reading_params_path $C --eval_corpus_path $D/birth_dev.tsv \
    --outputs_path $O/dev-s$S.abstain.txt --min_confidence recommended --device cpu --no_progress
  python benchmarks/confidence_validation.py summary --analysis $O/dev-s$S/analysis.json > $O/dev-s$S.json
  echo "== $(date -u +%T) s$S done"
}

one 1 runs/lr3/val/reader-pretrain-s1-bios-drop0-swap1-cont-dropout0.1-e6-s1.params > $O/s1.log 2>&1 &
(cd benchmarks && python recall_proxy.py --pretrained ../runs/h3/study/checkpoints/pretrain-recall-half-hour-rope-s0.params \
   --seed 0 --recall_beams 4 --out ../$O/r0 > ../$O/val-r0.jsonl 2> ../$O/val-r0.err) \
  && one 0 $(ls $O/r0/*.params) > $O/s0.log 2>&1 &
wait
echo "== $(date -u +%T) done"
