#!/usr/bin/env bash
# Evaluate a trained fold on the MSD lung tumour set
# (Task006_Lung): predict imagesTs, then evaluate (protocol all-labels).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup lung Lungs Task006_Lung lung unetr_pp_trainer_lung all-labels \
    "unetr_pp_convert_task --source msd -i /path/to/Task06_Lung"
up_evaluate_dataset "$@"
