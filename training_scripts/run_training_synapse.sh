#!/usr/bin/env bash
# Train on the Synapse multi-organ CT set (Task002_Synapse, preset synapse): plan and preprocess once, then
# train one fold.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
up_setup synapse Synapse Task002_Synapse synapse unetr_pp_trainer_synapse synapse \
    "unetr_pp_convert_task --source synapse -i /path/to/RawData"
up_train_dataset "$@"
