#!/usr/bin/env bash
# Evaluate a trained fold on the BraTS brain tumour set
# (Task003_tumor): predict imagesTs, then evaluate (protocol brats).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup tumor Tumor Task003_tumor tumor unetr_pp_trainer_tumor brats \
    "unetr_pp_convert_task --source brats -i /path/to/BraTS"
up_evaluate_dataset "$@"
