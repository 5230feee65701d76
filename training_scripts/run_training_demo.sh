#!/usr/bin/env bash
# CPU quickstart: synthetic demo task -> plan + preprocess -> train a small UNETR++ -> predict the held-back
# test cases -> print the DSC/HD95 table and the path of a test case's overlay picture.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
DEMO_EPOCHS="${DEMO_EPOCHS:-10}"
DEMO_ITERS="${DEMO_ITERS:-25}"
DEMO_VAL_ITERS="${DEMO_VAL_ITERS:-5}"
DEMO_CASES="${DEMO_CASES:-10}"
DEMO_TEST_CASES="${DEMO_TEST_CASES:-2}"
TRAINER="${TRAINER:-${DEMO_TRAINER:-unetr_pp_trainer}}"
# idle OpenMP threads sleep instead of spinning: with busy-waiting, any other load on a 2-core machine (even the
# data augmentation workers) slows a CPU training step ~10x (measured: 20 s instead of 2-3 s per UNETR++ step)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
up_setup demo Demo Task990_Demo demo unetr_pp_trainer - "unetr_pp_make_demo_task"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    up_usage training_scripts/run_training_demo.sh \
        "Quickstart: make the synthetic demo task $TASK (if absent), plan and preprocess it (preset demo), train
$TRAINER on fold \$FOLD for \$DEMO_EPOCHS x \$DEMO_ITERS iterations, predict the held-back test cases
(no test-time augmentation), print their DSC/HD95 table and the path of a test case's overlay picture." \
        "extra unetr_pp_train options"
    cat <<USAGE
  DEMO_EPOCHS [10]  DEMO_ITERS [25] iterations/epoch  DEMO_VAL_ITERS [5] validation iterations/epoch
  DEMO_CASES [10] training cases (at least 5: 5-fold split)  DEMO_TEST_CASES [2] held-back test cases
  DEMO_TRAINER same as TRAINER [unetr_pp_trainer]
USAGE
    exit 0
fi
for var in DEMO_EPOCHS DEMO_ITERS DEMO_VAL_ITERS DEMO_CASES DEMO_TEST_CASES; do
    case "${!var}" in
        ''|0*|*[!0-9]*) up_die "$var must be a positive integer, got '${!var}'" ;;
    esac
done
up_check_python
if [ -f "$UP_RAW_TASK/dataset.json" ]; then
    up_say "demo task exists: $UP_RAW_TASK (delete it to regenerate)"
else
    up_say "writing the synthetic demo task ($DEMO_CASES training + $DEMO_TEST_CASES test cases) to $UP_RAW_DATA"
    up_run make_demo_task -o "$UP_RAW_DATA" --cases "$DEMO_CASES" --test_cases "$DEMO_TEST_CASES"
fi
up_plan_once
PYTHONUNBUFFERED=1 up_train --epochs "$DEMO_EPOCHS" --iters_per_epoch "$DEMO_ITERS" --val_iters "$DEMO_VAL_ITERS" \
    --val_disable_tta "$@" | up_hide_validation_table
up_predict_and_evaluate --disable_tta -npp 0 -nps 0  # a few small cases: worker processes would cost more than they save
cat <<DONE

== quickstart finished in ${SECONDS} s
training curves:     $UP_FOLD_DIR/progress.png
training log:        $UP_FOLD_DIR/training_log_*.txt
test evaluation:     $UP_SUMMARY_DIR/summary.{md,json,csv}
validation summary:  $UP_FOLD_DIR/validation_raw/summary.{md,json,csv}
rerun: bash training_scripts/run_training_demo.sh  (longer training: DEMO_EPOCHS=50 DEMO_ITERS=50;
       the demo task and the plans are reused; delete $OUTPUT_DIR to start over)
use the commands directly with:
  export unetr_pp_raw_data_base=$unetr_pp_raw_data_base unetr_pp_preprocessed=$unetr_pp_preprocessed RESULTS_FOLDER=$RESULTS_FOLDER
DONE
up_print_pictures
