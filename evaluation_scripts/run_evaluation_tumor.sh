#!/usr/bin/env bash
# Evaluate a trained fold on the BraTS brain tumour set
# (Task003_tumor): predict imagesTs, then evaluate (protocol brats).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup tumor Tumor Task003_tumor tumor unetr_pp_trainer_tumor brats \
    "unetr_pp_convert_task --source brats -i /path/to/BraTS"
up_handle_help evaluation_scripts/run_evaluation_tumor.sh \
    "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate with protocol
$UP_PROTOCOL against labelsTs (without labelsTs: the fold's validation_raw predictions)." \
    "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
up_require_raw_task
up_check_python
up_predict_and_evaluate "$@"
