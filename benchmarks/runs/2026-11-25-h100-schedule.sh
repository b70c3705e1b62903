# Recorded run (see docs/RESULTS.md): executed with the device tool from the repo root, real data copied to .data/ (never committed).
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1; D=.data; W=/tmp/w; mkdir -p $W; O=$OUT; T0=$(date +%s)
k() { python3 -m kgpt "$@" 2>&1 | grep -v "warn"; }
hist() { python3 -c "
import sys; from kgpt.checkpoint import read_checkpoint
h=read_checkpoint(sys.argv[1]).progress['history']; print(sys.argv[1].split('/')[-1], ' '.join(f\"{e['step']}:{e['loss']:.2f}\" for e in h[::max(1,len(h)//12)]), 'last', round(h[-1]['loss'],3))" $1; }
pipeline() {  # variant [pretrain flags]
  v=$1; shift
  k pretrain $v $D/wiki.txt --writing_params_path $W/$v.pre --no_progress "$@" > $O/$v.log
  hist $W/$v.pre >> $O/$v.log
  k finetune $v $D/wiki.txt --reading_params_path $W/$v.pre --writing_params_path $W/$v.ft --finetune_corpus_path $D/birth_places_train.tsv --no_progress >> $O/$v.log
  k evaluate $v $D/wiki.txt --reading_params_path $W/$v.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $O/$v.dev.txt >> $O/$v.log
}
echo "== vanilla, defaults, alone"
/usr/bin/time -f "pretrain wall %e s" python3 -m kgpt pretrain vanilla $D/wiki.txt --writing_params_path $W/vanilla.pre --no_progress 2>&1 | grep -v "^ *warnings.warn"
hist $W/vanilla.pre
/usr/bin/time -f "finetune wall %e s" python3 -m kgpt finetune vanilla $D/wiki.txt --reading_params_path $W/vanilla.pre --writing_params_path $W/vanilla.ft --finetune_corpus_path $D/birth_places_train.tsv --no_progress 2>&1 | grep -v "^ *warnings.warn"
/usr/bin/time -f "evaluate wall %e s" python3 -m kgpt evaluate vanilla $D/wiki.txt --reading_params_path $W/vanilla.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $O/vanilla.dev.txt 2>&1 | grep -v "^ *warnings.warn"
k bench eval --device cuda --questions 500 --json
echo "== rope, synthesizer, finetune-only concurrently; elapsed $(( $(date +%s) - T0 )) s"
left=$(( 300 - ($(date +%s) - T0) ))
for v in rope synthesizer; do timeout $left bash -c "$(declare -f k hist pipeline); D=$D W=$W O=$O; pipeline $v" & done
(k finetune vanilla $D/wiki.txt --writing_params_path $W/vft.ft --finetune_corpus_path $D/birth_places_train.tsv --no_progress; k evaluate vanilla $D/wiki.txt --reading_params_path $W/vft.ft --eval_corpus_path $D/birth_dev.tsv --outputs_path $O/vanilla.ftonly.dev.txt) > $O/ftonly.log &
wait
for f in ftonly rope synthesizer; do echo "-- $f"; cat $O/$f.log; done
echo "total elapsed $(( $(date +%s) - T0 )) s"
