#!/usr/bin/env bash
# Evaluate a trained fold on the ACDC cardiac MRI set (Task001_ACDC): predict imagesTs, then evaluate (protocol acdc).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup acdc Acdc Task001_ACDC acdc unetr_pp_trainer_acdc acdc \
    "unetr_pp_convert_task --source acdc -i /path/to/ACDC/database"
up_evaluate_dataset "$@"
