#!/usr/bin/env bash
# Evaluate the quickstart model: predict the demo task's held-back test cases and print their DSC/HD95 table.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
TRAINER="${TRAINER:-${DEMO_TRAINER:-unetr_pp_trainer}}"
up_setup demo Demo Task990_Demo demo unetr_pp_trainer - \
    "bash training_scripts/run_training_demo.sh  # or: unetr_pp_make_demo_task"
up_handle_help evaluation_scripts/run_evaluation_demo.sh \
    "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate them against
labelsTs (the labels of dataset.json)." "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
up_require_raw_task
up_check_python
up_predict_and_evaluate "$@"
echo
up_print_pictures
