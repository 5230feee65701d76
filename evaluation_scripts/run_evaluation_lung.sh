#!/usr/bin/env bash
# Evaluate a trained fold on the MSD lung tumour set
# (Task006_Lung): predict imagesTs, then evaluate (protocol all-labels).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup lung Lungs Task006_Lung lung unetr_pp_trainer_lung all-labels \
    "unetr_pp_convert_task --source msd -i /path/to/Task06_Lung"
up_handle_help evaluation_scripts/run_evaluation_lung.sh \
    "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate with protocol
$UP_PROTOCOL against labelsTs (without labelsTs: the fold's validation_raw predictions)." \
    "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
up_require_raw_task
up_check_python
up_predict_and_evaluate "$@"
