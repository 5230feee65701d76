#!/usr/bin/env bash
# Train on the BraTS brain tumour set (Task003_tumor, preset tumor): plan and preprocess once, then train one fold.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
up_setup tumor Tumor Task003_tumor tumor unetr_pp_trainer_tumor brats \
    "unetr_pp_convert_task --source brats -i /path/to/BraTS"
up_train_dataset "$@"
