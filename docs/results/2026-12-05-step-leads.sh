#!/bin/bash
# Seconds a pass of the laptop recaller's Muon pretraining for the two leads left (issue #32): batch 64 (half the
# orthogonalisations a pass) and a wider model (4x4x192), beside the recipe's batch 32 at 4x4x128, back to back,
# the machine to itself. A timing, not a choice: no model is kept.
cd /work/main/benchmarks
for args in "--batch 32 --n_embd 128" "--batch 64 --n_embd 128" "--batch 32 --n_embd 192"; do
  echo "== $(date -u +%T) $args"
  python recall_step.py --threads 2 --processes 2 --group --steps 40 --optimizer muon $args
done
echo "== $(date -u +%T) done"
