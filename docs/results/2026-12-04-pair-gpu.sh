#!/bin/bash
# Round PAIR on a GPU: the half-hour recaller with and without its digit noise, recaller
# seeds 0-3, each validated by readers of seeds 0 and 1 (benchmarks/recall_proxy.py, beam 4),
# eight recallers at once on the one GPU, then their readers. Every run is stopped
# SECONDS_LEFT seconds from the start (default 470), so what finished comes back.
#   bash docs/results/2026-12-04-pair-gpu.sh DATA_DIR RUN_DIR DEVICE [EPOCHS]
set -u
D=$1 R=$2 DEV=$3 EP=${4:-}
END=$(( $(date +%s) + ${SECONDS_LEFT:-470} ))
left() { echo $(( END - $(date +%s) > 1 ? END - $(date +%s) : 1 )); }
mkdir -p "$R"
export PYTHONPATH="$PWD/src:$PWD/benchmarks" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
PROXY_EP=${EP:+--epochs $EP}
one() {
  local tag=s$1-n$2
  timeout "$(left)" python3 docs/results/2026-12-04-pair-gpu-pretrain.py "$1" "$2" "$DEV" "$D" "$R/recaller-$tag.params" $EP \
    > "$R/pretrain-$tag.jsonl" 2> "$R/pretrain-$tag.err" || { echo "pretrain $tag failed"; tail -3 "$R/pretrain-$tag.err"; return; }
  echo "== $(date -u +%T) pretrained $tag $(cat "$R/pretrain-$tag.jsonl")"
  for r in 0 1; do
    timeout "$(left)" python3 benchmarks/recall_proxy.py --data_dir "$D" --device "$DEV" --precision fp32 --pretrained "$R/recaller-$tag.params" \
      --seed $r --recall_beams 4 $PROXY_EP > "$R/val-$tag-r$r.jsonl" 2> "$R/val-$tag-r$r.err" &
  done
  wait
  echo "== $(date -u +%T) validated $tag"
}
echo "== $(date -u +%T) start"
for s in ${SEEDS:-0 1 2 3}; do for n in 0 0.3; do one $s $n & done; done
wait
echo "== $(date -u +%T) done"
