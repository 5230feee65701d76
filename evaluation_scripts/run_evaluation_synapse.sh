#!/usr/bin/env bash
# Evaluate a trained fold on the Synapse multi-organ CT set
# (Task002_Synapse): predict imagesTs, then evaluate (protocol synapse).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../training_scripts" && pwd)/_env.sh"
up_setup synapse Synapse Task002_Synapse synapse unetr_pp_trainer_synapse synapse \
    "unetr_pp_convert_task --source synapse -i /path/to/RawData"
up_evaluate_dataset "$@"
