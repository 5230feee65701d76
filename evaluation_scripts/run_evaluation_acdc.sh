#!/usr/bin/env bash
# Evaluate a trained fold on the ACDC cardiac MRI set (Task001_ACDC): predict imagesTs, then evaluate (protocol acdc).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup acdc Acdc Task001_ACDC acdc unetr_pp_trainer_acdc acdc \
    "unetr_pp_convert_task --source acdc -i /path/to/ACDC/database"
up_handle_help evaluation_scripts/run_evaluation_acdc.sh \
    "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate with protocol
$UP_PROTOCOL against labelsTs (without labelsTs: the fold's validation_raw predictions)." \
    "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
up_require_raw_task
up_check_python
up_predict_and_evaluate "$@"
