#!/usr/bin/env bash
# Train on the MSD lung tumour set (Task006_Lung, preset lung): plan and preprocess once, then train one fold.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
up_setup lung Lungs Task006_Lung lung unetr_pp_trainer_lung all-labels \
    "unetr_pp_convert_task --source msd -i /path/to/Task06_Lung"
up_train_dataset "$@"
