#!/bin/bash
# The never-seen models the correction studies since session 32 use (out/s32/loo): for
# each group (nepal_drone, loveda_1, lo = rio_wv2 + kampala_drone) the bundled recipe
# with the group left out (hr_GROUP_s1, the study's --model) and the general recipe
# without it (ht_GROUP_s1, its RNN retrained: ht_GROUP_s1_rnn, the anchors' partner).
# Needs out/multiscene/old_default.safetensors
# (`git show 22fcb3c:resources/models/default.safetensors > out/multiscene/old_default.safetensors`).
# About 2.5 min (hr), 8 min (ht) and 3 min (rnn) a group alone on a 2-core CPU.
#   bash dev/corrections/never_seen_models.sh   (from the repository root)
set -u
PY=${PY:-.venv/bin/python}
B=out/multiscene/old_default.safetensors
L=out/s32/loo
S=1
mkdir -p $L
for SC in nepal_drone loveda_1 lo; do
  LO=$SC; [ $SC = lo ] && LO=rio_wv2,kampala_drone
  [ -f $L/hr_${SC}_s$S.safetensors ] || $PY -m map_refiner.dev.default_model.multiscene train \
    --base $B --normalisation model --leave-out $LO --seed $S \
    --out $L/hr_${SC}_s$S.safetensors > $L/hr_${SC}.log 2>&1
  EXTRA=""; [ $SC = lo ] && EXTRA="--restyle 0.5"
  [ -f $L/ht_${SC}_s$S.safetensors ] || $PY -m map_refiner.dev.default_model.trunk --base $B \
    --normalisation model --trunk-lr-scale 0.1 --steps 2000 --osm --turn-share 0.5 --seed $S \
    --leave-out $LO $EXTRA --out $L/ht_${SC}_s$S.safetensors > $L/ht_${SC}.log 2>&1
  [ -f $L/ht_${SC}_s${S}_rnn.safetensors ] || $PY -m map_refiner.dev.default_model.multiscene train \
    --out $L/ht_${SC}_s${S}_rnn.safetensors --base $L/ht_${SC}_s$S.safetensors \
    --normalisation model --adapt rnn --leave-out $LO > $L/htrnn_${SC}.log 2>&1
  echo "$SC: $(ls $L/*${SC}_s$S*.safetensors | wc -l) models"
done
