#!/usr/bin/env bash
# Train on the ACDC cardiac MRI set (Task001_ACDC, preset acdc): plan and preprocess once, then train one fold.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
up_setup acdc Acdc Task001_ACDC acdc unetr_pp_trainer_acdc acdc \
    "unetr_pp_convert_task --source acdc -i /path/to/ACDC/database"
up_train_dataset "$@"
