# bash dev/corrections/two_rounds.sh gated|plain: the second round (largest errors, K=4,
# traced) from each round-1 model of out/s38/chain2/jobs.json (python -m
# map_refiner.dev.corrections.two_rounds prep), one torch thread; TREE, SNAP as for
# study_chain.sh. Rows: out/corrections/rows_s38_r2_{gated,plain}_*.jsonl.
WHICH=$1
cd ${TREE:-.}
export OMP_NUM_THREADS=1
[ -n "${SNAP:-}" ] && export PYTHONPATH=$SNAP
PY=${PY:-.venv/bin/python}
N=$(python3 -c "import json; print(len(json.load(open('out/s38/chain2/jobs.json'))))")
for i in $(seq 0 $((N-1))); do
  read FOLDER PLAIN GATED PARENT <<< $(python3 -c "import json; j=json.load(open('out/s38/chain2/jobs.json'))[$i]; print(j['folder'], j['plain'], j['gated'], j['parent'] or '-')")
  NAME=$(basename $PLAIN .safetensors)
  SCENE=${NAME%%_largest*}
  SEED=${NAME##*seed}
  MODEL=$PLAIN; EXTRA="--set change_gate=0"
  [ $WHICH = gated ] && MODEL=$GATED && EXTRA=""
  PARTNER=""
  if [ $FOLDER = never_traced ]; then
    G=$SCENE; [ $SCENE = kampala_drone ] && G=lo; [ $SCENE = rio_wv2 ] && G=lo
    PARTNER="--set anchor_partner=out/s35/t2loo/ht_${G}_s1_rnn.safetensors"
  fi
  echo "$(date) $WHICH $FOLDER $NAME" >> out/s38/chain2/progress_$WHICH
  $PY -m map_refiner.dev.corrections.study --variants head+rnn --users largest --ks 4 --drawing traced \
    --model $MODEL --scenes $SCENE --set seed=$SEED $PARTNER $EXTRA \
    --rows rows_s38_r2_${WHICH}_${FOLDER}_${NAME}.jsonl > out/s38/chain2/log_${WHICH}_${FOLDER}_${NAME}.txt 2>&1
  echo "rc=$? $(date)" >> out/s38/chain2/progress_$WHICH
done
echo done > out/s38/chain2/$WHICH.done
