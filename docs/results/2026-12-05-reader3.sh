#!/bin/bash
# Round READER3: the validation reader (1,600 fit / 400 held out, seed 0, beam 4) at 3 epochs instead of the
# recipe's 6, with Muon and with AdamW, on round MUON20's recaller (seed 1). Rules: docs/results/2026-12-03-rules.md,
# "Fifteenth session".
cd /work/main/benchmarks
R=../runs/muon20
for opt in muon adamw; do
  echo "== $(date -u +%T) reader 3 epochs $opt $(git rev-parse --short HEAD)"
  python recall_proxy.py --pretrained $R/pretrain-s1.params --seed 0 --epochs 3 --optimizer $opt --recall_beams 4 \
    --out $R/val-e3-$opt > $R/val-e3-$opt.jsonl 2> $R/val-e3-$opt.err || exit 1
done
echo "== $(date -u +%T) done"
