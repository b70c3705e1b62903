# Recorded run (see docs/RESULTS.md): executed with the device tool from the repo root, real data copied to .data/ (never committed).
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1; D=.data
python3 benchmarks/profile_train.py $D --steps 30 2>&1 | tail -32 > $OUT/profile_bf16.txt
python3 benchmarks/profile_train.py $D --steps 30 --precision fp32 2>&1 | tail -3 > $OUT/profile_fp32.txt
tail -3 $OUT/profile_bf16.txt; cat $OUT/profile_fp32.txt
for prec in fp32 bf16; do
  python3 -m kgpt pretrain vanilla $D/wiki.txt --writing_params_path $OUT/v_$prec.params --precision $prec --no_progress > $OUT/pre_$prec.log 2>&1 &
done
wait
cat $OUT/pre_*.log | grep -v Warn
python3 - <<'PY'
import os
from kgpt.checkpoint import read_checkpoint
for prec in ("fp32","bf16"):
    h = read_checkpoint(f"{os.environ['OUT']}/v_{prec}.params").progress["history"]
    print(prec, " ".join(f"{e['step']}:{e['loss']:.2f}" for e in h[::25]))
PY
