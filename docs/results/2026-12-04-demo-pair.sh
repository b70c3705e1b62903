#!/bin/bash
# Round DEMOPAIR (timing): the demo's two pretraining cells at once, one thread each (one a core), against the longer of
# them alone with two threads, as `kgpt demo` runs each cell. Seed 0, the demo's data and settings, the machine to itself.
cd "$(dirname "$0")/../.."
O=runs/pair
echo "== $(date -u +%T) pair, one thread each $(git rev-parse --short HEAD)"
OMP_NUM_THREADS=1 python benchmarks/demo_cell.py --setting pretrain+finetune --out $O/pf1 > $O/pf1.jsonl 2> $O/pf1.err &
OMP_NUM_THREADS=1 python benchmarks/demo_cell.py --setting recall-read --out $O/rr1 > $O/rr1.jsonl 2> $O/rr1.err &
wait
echo "== $(date -u +%T) pretrain+finetune alone, two threads"
OMP_NUM_THREADS=2 python benchmarks/demo_cell.py --setting pretrain+finetune --out $O/pf2 > $O/pf2.jsonl 2> $O/pf2.err
echo "== $(date -u +%T) done"
