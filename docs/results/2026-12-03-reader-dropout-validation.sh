#!/bin/bash
# Round DROP: readers of fit.tsv on the BEAM8 recaller, one thread each, two at once.
cd /work/main/benchmarks
export OMP_NUM_THREADS=1
echo "== $(date -u +%T) start"
python recall_proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed 0 --recall_beams 4 --dropout 0.1 --out ../runs/rd/val > ../runs/rd/drop-s0.jsonl 2> ../runs/rd/drop-s0.err &
python recall_proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed 1 --recall_beams 4 --dropout 0.1 --out ../runs/rd/val > ../runs/rd/drop-s1.jsonl 2> ../runs/rd/drop-s1.err &
wait
echo "== $(date -u +%T) reference seed 0"
python recall_proxy.py --pretrained ../runs/beam/pretrain-s1.params --seed 0 --recall_beams 4 --out ../runs/rd/val > ../runs/rd/ref-s0.jsonl 2> ../runs/rd/ref-s0.err
echo "== $(date -u +%T) done"
