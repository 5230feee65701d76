#!/usr/bin/env bash
# Evaluate a trained fold on the Synapse multi-organ CT set
# (Task002_Synapse): predict imagesTs, then evaluate (protocol synapse).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup synapse Synapse Task002_Synapse synapse unetr_pp_trainer_synapse synapse \
    "unetr_pp_convert_task --source synapse -i /path/to/RawData"
up_handle_help evaluation_scripts/run_evaluation_synapse.sh \
    "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate with protocol
$UP_PROTOCOL against labelsTs (without labelsTs: the fold's validation_raw predictions)." \
    "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
up_require_raw_task
up_check_python
up_predict_and_evaluate "$@"
