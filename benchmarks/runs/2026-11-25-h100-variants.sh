# Recorded run (see docs/RESULTS.md): executed with the device tool from the repo root, real data copied to .data/ (never committed).
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1; D=.data; W=/tmp/w; mkdir -p $W; O=$OUT; T0=$(date +%s)
k() { python3 -m kgpt "$@" --no_progress 2>&1 | grep -v -i warn; }
hist() { python3 -c "
import sys; from kgpt.checkpoint import read_checkpoint
h=read_checkpoint(sys.argv[1]).progress['history']; print(sys.argv[1].split('/')[-1], ' '.join(f\"{e['step']}:{e['loss']:.2f}\" for e in h[::max(1,len(h)//15)]), 'last', round(h[-1]['loss'],3))" $1; }
pipeline() {  # variant precision
  v=$1; p=$2
  k pretrain $v $D/wiki.txt --writing_params_path $W/$v.pre --precision $p > $O/$v.log
  hist $W/$v.pre >> $O/$v.log
  k finetune $v $D/wiki.txt --reading_params_path $W/$v.pre --writing_params_path $W/$v.ft --finetune_corpus_path $D/birth_places_train.tsv >> $O/$v.log
  python3 -m kgpt evaluate $v $D/wiki.txt --reading_params_path $W/$v.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $O/$v.dev.txt 2>&1 | grep -v -i warn >> $O/$v.log
}
nvidia-smi --query-gpu=name --format=csv,noheader
echo "== A: vanilla, defaults (bf16 autocast, CUDA graphs, no cuDNN attention)"
/usr/bin/time -f "pretrain wall %e s" python3 -m kgpt pretrain vanilla $D/wiki.txt --writing_params_path $W/vanilla.pre --no_progress 2>&1 | grep -v "^ *warnings.warn"
hist $W/vanilla.pre
/usr/bin/time -f "finetune wall %e s" python3 -m kgpt finetune vanilla $D/wiki.txt --reading_params_path $W/vanilla.pre --writing_params_path $W/vanilla.ft --finetune_corpus_path $D/birth_places_train.tsv --no_progress 2>&1 | grep -v "^ *warnings.warn"
/usr/bin/time -f "evaluate wall %e s" python3 -m kgpt evaluate vanilla $D/wiki.txt --reading_params_path $W/vanilla.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $O/vanilla.dev.txt 2>&1 | grep -v -i warn
echo "== A2: vanilla finetune-only (75 epochs from scratch)"
k finetune vanilla $D/wiki.txt --writing_params_path $W/vft.ft --finetune_corpus_path $D/birth_places_train.tsv
python3 -m kgpt evaluate vanilla $D/wiki.txt --reading_params_path $W/vft.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $W/vft.txt 2>&1 | grep -v -i warn
echo "== A3: vanilla from the earlier fp32 eager pretraining"
k finetune vanilla $D/wiki.txt --reading_params_path $D/vanilla_fp32.pretrain.params --writing_params_path $W/v32.ft --finetune_corpus_path $D/birth_places_train.tsv
python3 -m kgpt evaluate vanilla $D/wiki.txt --reading_params_path $W/v32.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $W/v32.txt 2>&1 | grep -v -i warn
last=$(python3 -c "from kgpt.checkpoint import read_checkpoint; print(read_checkpoint('$W/vanilla.pre').progress['history'][-1]['loss'])")
prec=$(python3 -c "print('auto' if $last < 2.0 else 'fp32')")
echo "== B: perceiver synthesizer rope concurrently, precision $prec, elapsed $(( $(date +%s) - T0 )) s"
left=$(( 570 - ($(date +%s) - T0) ))
for v in perceiver synthesizer rope; do timeout $left bash -c "$(declare -f k hist pipeline); D=$D W=$W O=$O; pipeline $v $prec" & done; wait
for v in perceiver synthesizer rope; do echo "-- $v"; cat $O/$v.log; done
echo "total elapsed $(( $(date +%s) - T0 )) s"
