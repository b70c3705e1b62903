#!/bin/bash
# Round READER3B: the laptop preset's validation reader (1,600 fit people, 400 held out, seed 0, beam 4) on the preset's
# seed-0 recaller (40 Muon passes, from kgpt reproduce --preset laptop --seeds 0): 6 epochs of AdamW (the recipe), then
# 3 epochs of AdamW and of Muon. Rules: docs/results/2026-12-03-rules.md, "Sixteenth session".
cd /work/main
P=../runs/laptop/study/checkpoints/pretrain-recall-half-hour-rope-s0.params
R=../runs/reader3b
mkdir -p runs/reader3b
cd benchmarks
for run in "6 adamw" "3 adamw" "3 muon"; do
  set -- $run
  echo "== $(date -u +%T) reader $1 epochs $2 $(git rev-parse --short HEAD)"
  python recall_proxy.py --pretrained $P --seed 0 --epochs $1 --optimizer $2 --recall_beams 4 --out $R/e$1-$2 \
    > $R/e$1-$2.jsonl 2> $R/e$1-$2.err
done
cat $R/e6-adamw.jsonl $R/e3-adamw.jsonl $R/e3-muon.jsonl > ../docs/results/2026-12-05-reader3b.jsonl
echo "== $(date -u +%T) done"
