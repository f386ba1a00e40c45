# bash dev/corrections/turned_rounds.sh PART PARTS: the second round of each gated round-1
# model of out/s38/chain2/jobs.json (python -m map_refiner.dev.corrections.two_rounds prep)
# by two users, K=4 each: the largest errors of round 1's map (as two_rounds.sh), and the
# user who turns back round 1's largest wrong changes (study --users turned, session 40:
# what the changes layer and Turn changes back give). Jobs PART, PART+PARTS, ...; one torch
# thread; TREE, SNAP as for study_chain.sh. Rows: out/corrections/rows_${TAG}_r2_*.jsonl
# (TAG s40). Session 41: USERS=swept TAG=s41 runs the rectangle user alone (users.swept:
# every change in a box 8 m wider than each wrong change turned back). Session 42:
# SEED_OFFSET=100 adds to each chain's seed (the fit's and the drawing's): a second sample
# of the same second rounds, to see how much a sum moves by chance.
PART=$1; PARTS=$2
cd ${TREE:-.}
export OMP_NUM_THREADS=1
[ -n "${SNAP:-}" ] && export PYTHONPATH=$SNAP
PY=${PY:-.venv/bin/python}
TAG=${TAG:-s40}; USERS=${USERS:-largest,turned}
LOG=out/$TAG/turned; mkdir -p $LOG
N=$(python3 -c "import json; print(len(json.load(open('out/s38/chain2/jobs.json'))))")
for i in $(seq $PART $PARTS $((N-1))); do
  read FOLDER GATED <<< $(python3 -c "import json; j=json.load(open('out/s38/chain2/jobs.json'))[$i]; print(j['folder'], j['gated'])")
  NAME=$(basename $GATED .safetensors)
  SCENE=${NAME%%_largest*}
  SEED=$(( ${NAME##*seed} + ${SEED_OFFSET:-0} ))
  PARTNER=""
  if [ $FOLDER = never_traced ]; then
    G=$SCENE; [ $SCENE = kampala_drone ] && G=lo; [ $SCENE = rio_wv2 ] && G=lo
    PARTNER="--set anchor_partner=out/s35/t2loo/ht_${G}_s1_rnn.safetensors"
  fi
  echo "$(date) $FOLDER $NAME" >> $LOG/progress_$PART
  $PY -m map_refiner.dev.corrections.study --variants head+rnn --users $USERS --ks 4 \
    --drawing traced --model $GATED --scenes $SCENE --set seed=$SEED $PARTNER \
    --rows rows_${TAG}_r2_${FOLDER}_${NAME}.jsonl > $LOG/log_${FOLDER}_${NAME}.txt 2>&1
  echo "rc=$? $(date)" >> $LOG/progress_$PART
done
echo done > $LOG/part_$PART.done
