# bash dev/corrections/average_study.sh: session 43's study of the fit's weight averages
# against none, on the new user's case: the previous bundled model (never trained on the
# shared scenes but austin's) on all nine scenes, no anchor partner, largest-errors user,
# K=4/16, head+rnn, fine-tune seeds 0-2 (SEEDS to change them). SETTINGS: the FitParams
# settings compared, each NAME=VALUE (default: average=0 average=0.9; refit_mean=1 the
# refit's plain mean). Rows out/corrections/rows_s43_new_${NAME}${VALUE}_seed${SEED}.jsonl
# (average=0 writes rows_s43_new_avg0_*, average=0.9 rows_s43_new_avg0.9_*); read them with
# python -m map_refiner.dev.corrections.seeds_table "base=...avg0_seed*" "avg0.9=...avg0.9_seed*".
# Run alone (about 4 min a run on the 2-core CPU); SNAP as for study_chain.sh.
cd "$(dirname "$0")/../.."
[ -n "${SNAP:-}" ] && export PYTHONPATH=$SNAP
PY=${PY:-.venv/bin/python}
mkdir -p out/s43 out/multiscene
OLD=out/multiscene/old_default.safetensors
[ -f $OLD ] || git show 22fcb3c:resources/models/default.safetensors > $OLD
for seed in ${SEEDS:-0 1 2}; do
  for setting in ${SETTINGS:-average=0 average=0.9}; do
    tag=${setting/average=/avg}; tag=${tag/=/}
    $PY -m map_refiner.dev.corrections.study --model $OLD --set anchor_partner= \
      --users largest --ks 4,16 --variants head+rnn \
      --rows rows_s43_new_${tag}_seed${seed}.jsonl --set seed=$seed --set $setting \
      > out/s43/new_${tag}_seed${seed}.log 2>&1
  done
done
