#!/bin/bash
# The correction studies of sessions 32-34, one setting at a time:
#   bash dev/corrections/study_chain.sh own|never TAG DRAWING [--set FIELD=VALUE ...]
# own: the bundled default model's eight scenes (loveda_0 out), fine-tune seeds 0-1;
# never: the never-seen models of dev/corrections/never_seen_models.sh with their
# partners, seeds 0-2 (GROUPS_ and SEEDS_ narrow them). Largest errors (USERS_ names
# another of the study's users), K=4/16, head+rnn,
# one torch thread (the rows depend on the thread count, not on the load: two chains may
# run side by side). Rows: out/corrections/rows_${SESSION}_TAG_*.jsonl (a new TAG per
# setting: the study skips rounds a rows file already holds); progress in
# out/$SESSION/progress_own|never; sums: python -m map_refiner.dev.corrections.sum_rows.
# Run it from a tree no one edits while it runs (a git worktree: each study imports the
# tree anew); TREE is that tree, SNAP a folder whose map_refiner links to it.
WHICH=$1; TAG=$2; DRAWING=$3; shift 3
SESSION=${SESSION:-s34}
cd ${TREE:-.}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
[ -n "${SNAP:-}" ] && export PYTHONPATH=$SNAP
mkdir -p out/$SESSION
P=out/$SESSION/progress_$WHICH
S="$PY -m map_refiner.dev.corrections.study --variants head+rnn --users ${USERS_:-largest} --ks 4,16 --drawing $DRAWING"
if [ $WHICH = own ]; then
  for F in ${SEEDS_:-0 1}; do
    echo "$(date) $TAG own seed $F" >> $P
    $S --scenes austin_dev,austin_enh,kampala_drone,nepal_drone,rio_wv2,isprs_potsdam,isprs_vaihingen,loveda_1 \
      --set seed=$F "$@" --rows rows_${SESSION}_${TAG}_own_seed$F.jsonl > out/$SESSION/log_${TAG}_own_$F.txt 2>&1
    echo "rc=$? $(date)" >> $P
  done
else
  L=${LOO_:-out/s32/loo}
  for SC in ${GROUPS_:-nepal_drone loveda_1 lo}; do
    SCN=$SC; [ $SC = lo ] && SCN=kampala_drone,rio_wv2
    for F in ${SEEDS_:-0 1 2}; do
      echo "$(date) $TAG never $SC seed $F" >> $P
      $S --model $L/hr_${SC}_s1.safetensors --scenes $SCN --set seed=$F \
        --set anchor_partner=$L/ht_${SC}_s1_rnn.safetensors "$@" \
        --rows rows_${SESSION}_${TAG}_never_${SC}_seed$F.jsonl > out/$SESSION/log_${TAG}_never_${SC}_$F.txt 2>&1
      echo "rc=$? $(date)" >> $P
    done
  done
fi
