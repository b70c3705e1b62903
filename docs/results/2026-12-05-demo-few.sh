#!/bin/bash
# kgpt demo as committed (its course cell pretrained 30 Muon passes, its recall cell 10: round DEMOFEW), seed 0, the machine to itself.
cd "$(dirname "$0")/../.."
O=runs/demo-few
rm -rf $O
lscpu | grep 'Model name'
echo "CPU family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), avx512f: $(grep -c avx512f /proc/cpuinfo)"
echo "commit $(git rev-parse --short HEAD)"
date -u
/usr/bin/time -f "%e s wall, %U s user" kgpt demo --out $O
cp $O/results.json docs/results/2026-12-05-demo-few.json
date -u
