# Shared helper of training_scripts/run_training_*.sh and evaluation_scripts/run_evaluation_*.sh (sourced, not run).
#
# up_setup <name> <Name> <Task> <preset> <trainer> <protocol|-> <convert command> sets the folders from the
# script's own path (so the scripts work from any cwd) and the environment overrides:
#   DATASET_DIR  data folder (default <repo>/DATASET_<Name>): unetr_pp_raw/, unetr_pp_preprocessed/
#   OUTPUT_DIR   RESULTS_FOLDER (default <repo>/output_<name>; the evaluation scripts use the UNETR++ README's
#                <repo>/unetr_pp/evaluation/unetr_pp_<name>_checkpoint instead when the official file is there)
#   PYTHON       interpreter with unetr_pp installed (default python)
#   FOLD         fold to train / predict with (default 0)
#   TRAINER      trainer name (default: the dataset's)
#   DEVICE       cpu or cuda (default: cuda when available)

UP_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UP_PLANS_ID="unetr_pp_Plansv2.1"
UP_CONFIG="3d_fullres"

up_say() { printf '\n== [%ss] %s\n' "$SECONDS" "$*"; }
up_die() { printf 'error: %s\n' "$*" >&2; exit 1; }
up_abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

# up_setup name Name Task preset trainer protocol convert_cmd
up_setup() {
    UP_NAME="$1"; UP_TITLE="$2"; TASK="$3"; UP_PRESET="$4"; UP_DEFAULT_TRAINER="$5"
    UP_PROTOCOL="$6"; UP_CONVERT="$7"
    [ "$UP_PROTOCOL" = "-" ] && UP_PROTOCOL=""
    DATASET_DIR="${DATASET_DIR:-$UP_REPO_ROOT/DATASET_$UP_TITLE}"
    UP_OFFICIAL_DIR="$UP_REPO_ROOT/unetr_pp/evaluation/unetr_pp_${UP_NAME}_checkpoint"
    if [ -z "${OUTPUT_DIR:-}" ] && [ -f "$UP_OFFICIAL_DIR/unetr_pp/$UP_CONFIG/$TASK/${TRAINER:-$5}__$UP_PLANS_ID/fold_${FOLD:-0}/model_final_checkpoint.model" ]; then
        OUTPUT_DIR="$UP_OFFICIAL_DIR"  # where the UNETR++ README places the released checkpoint
    fi
    OUTPUT_DIR="${OUTPUT_DIR:-$UP_REPO_ROOT/output_$UP_NAME}"
    PYTHON="${PYTHON:-python}"
    FOLD="${FOLD:-0}"
    TRAINER="${TRAINER:-$UP_DEFAULT_TRAINER}"
    DEVICE="${DEVICE:-}"
    DATASET_DIR="$(up_abspath "$DATASET_DIR")"
    OUTPUT_DIR="$(up_abspath "$OUTPUT_DIR")"
    export unetr_pp_raw_data_base="$DATASET_DIR/unetr_pp_raw"
    export unetr_pp_preprocessed="$DATASET_DIR/unetr_pp_preprocessed"
    export RESULTS_FOLDER="$OUTPUT_DIR"
    UP_RAW_DATA="$unetr_pp_raw_data_base/unetr_pp_raw_data"
    UP_RAW_TASK="$UP_RAW_DATA/$TASK"
    UP_MODEL_DIR="$RESULTS_FOLDER/unetr_pp/$UP_CONFIG/$TASK/${TRAINER}__$UP_PLANS_ID"
    UP_FOLD_DIR="$UP_MODEL_DIR/fold_$FOLD"
    return 0
}

# up_usage script what extra: the usage text of a script (printed for -h)
up_usage() {
    cat <<USAGE
usage: bash $1 [-h] [$3]
$2
environment overrides (defaults in brackets):
  DATASET_DIR  data folder [$UP_REPO_ROOT/DATASET_$UP_TITLE], raw task expected in
               \$DATASET_DIR/unetr_pp_raw/unetr_pp_raw_data/$TASK
  OUTPUT_DIR   RESULTS_FOLDER, where models and predictions go [$UP_REPO_ROOT/output_$UP_NAME]
  PYTHON       interpreter with unetr_pp installed [python]
  FOLD         fold [0]
  TRAINER      trainer [$UP_DEFAULT_TRAINER]
  DEVICE       cpu or cuda [cuda when available]
USAGE
}

# up_check_python: the interpreter exists and imports unetr_pp; DEVICE defaults to cuda when available, else cpu
up_check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || up_die "python interpreter '$PYTHON' not found; set PYTHON=/path/to/python"
    "$PYTHON" -c "import unetr_pp" 2>/dev/null \
        || up_die "'$PYTHON' cannot import unetr_pp; install it (pip install -e $UP_REPO_ROOT) or set PYTHON"
    if [ -z "$DEVICE" ]; then
        DEVICE="$("$PYTHON" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")"
    fi
    UP_DEVICE_ARGS=(--device "$DEVICE")
}

# up_require_raw_task: exit 1 with the folder and the conversion command when the raw task is missing
up_require_raw_task() {
    if [ ! -f "$UP_RAW_TASK/dataset.json" ]; then
        printf 'error: raw task not found: %s (no dataset.json)\n' "$UP_RAW_TASK" >&2
        printf 'fill it with:\n  %s -o %s\n' "$UP_CONVERT" "$UP_RAW_DATA" >&2
        printf '(or point DATASET_DIR to a folder holding unetr_pp_raw/unetr_pp_raw_data/%s)\n' "$TASK" >&2
        exit 1
    fi
}

# up_run <cli module> args...: run one unetr_pp command, echoing it
up_run() {
    local module="$1"; shift
    printf '$ unetr_pp_%s %s\n' "$module" "$*"
    "$PYTHON" -m "unetr_pp.cli.$module" "$@"
}

# up_plan_once: plan and preprocess the task unless its plans already exist
up_plan_once() {
    local plans="$unetr_pp_preprocessed/$TASK/$UP_PLANS_ID.json"
    if [ -f "$plans" ]; then
        up_say "plans exist ($plans): plan_and_preprocess skipped (delete $unetr_pp_preprocessed/$TASK to re-plan)"
        return 0
    fi
    up_say "planning and preprocessing $TASK (preset $UP_PRESET)"
    up_run plan_and_preprocess -t "$TASK" --preset "$UP_PRESET" -c "$UP_CONFIG"
}

# up_train [extra train options...]: train the fold
up_train() {
    up_say "training $TRAINER on $TASK, fold $FOLD -> $UP_FOLD_DIR"
    up_run train "$UP_CONFIG" "$TRAINER" "$TASK" "$FOLD" "${UP_DEVICE_ARGS[@]}" "$@"
}

# up_hide_validation_table: filter for the train output that keeps the line naming the fold's validation summary but
# not the table after it (at most 60 lines, up to the "validation mean foreground Dice" line), so that the quickstart
# prints one table: the test cases'. Pure bash, line by line (awk may buffer its input from a pipe).
up_hide_validation_table() {
    local line skip=0 n=0
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$skip" = 1 ]; then
            n=$((n + 1))
            if [[ "$line" != *"validation mean foreground Dice"* ]] && [ "$n" -le 60 ]; then
                continue
            fi
            skip=0
        fi
        if [[ "$line" == *"validation summary ("* ]]; then
            printf '%s [table: see summary.md there]\n' "$line"
            skip=1
            n=0
            continue
        fi
        printf '%s\n' "$line"
    done
}

# up_has_images dir pattern: true when dir holds a file matching pattern
up_has_images() {
    compgen -G "$1/$2" >/dev/null 2>&1
}

# up_import_official: a released model_final_checkpoint.model without our .model.json sidecar (the official
# UNETR++ file as its README places it) is imported in place; without its .model.pkl the task is planned first
up_import_official() {
    local model="$UP_FOLD_DIR/model_final_checkpoint.model"
    [ -f "$model" ] && [ ! -f "$model.json" ] || return 0
    up_say "released checkpoint without sidecar: importing $model"
    if [ ! -f "$model.pkl" ] && [ ! -f "$unetr_pp_preprocessed/$TASK/$UP_PLANS_ID.json" ]; then
        up_run plan_and_preprocess -t "$TASK" --preset "$UP_PRESET" -c "$UP_CONFIG" --no_preprocessing
    fi
    up_run import_model "$model" -t "$TASK" -tr "$TRAINER" -f "$FOLD" --preset "$UP_PRESET" \
        || up_die "could not import $model (see the error above)"
}

# up_predict_and_evaluate [extra predict options...]: predict imagesTs with the fold's final checkpoint and
# evaluate against labelsTs (with --plots on the images); without labelsTs, evaluate the fold's validation_raw
# instead. Sets UP_SUMMARY_DIR and UP_OVERLAY (the first case's overlay picture, empty when none was drawn).
up_predict_and_evaluate() {
    [ -f "$UP_FOLD_DIR/model_final_checkpoint.model" ] \
        || up_die "no trained model: $UP_FOLD_DIR/model_final_checkpoint.model is missing; train first" \
                  "(training_scripts/run_training_$UP_NAME.sh)"
    up_import_official
    local protocol_args=(--dataset_json "$UP_RAW_TASK/dataset.json")  # its labels (or regions)
    case "$UP_PROTOCOL" in
        "") ;;
        all-labels) protocol_args+=(--protocol all-labels) ;;
        *) protocol_args=(--protocol "$UP_PROTOCOL") ;;  # a named protocol fixes the labels itself
    esac
    local pred="$UP_MODEL_DIR/test_predictions_fold_$FOLD"
    if up_has_images "$UP_RAW_TASK/imagesTs" "*_0000.*"; then
        up_say "predicting $UP_RAW_TASK/imagesTs -> $pred"
        up_run predict -i "$UP_RAW_TASK/imagesTs" -o "$pred" -t "$TASK" -tr "$TRAINER" -f "$FOLD" \
            -chk model_final_checkpoint --overwrite "${UP_DEVICE_ARGS[@]}" "$@"
    else
        up_say "no test images in $UP_RAW_TASK/imagesTs: nothing to predict"
    fi
    if up_has_images "$UP_RAW_TASK/labelsTs" "*" && [ -d "$pred" ]; then
        up_say "evaluating $pred against $UP_RAW_TASK/labelsTs"
        UP_SUMMARY_DIR="$pred"
        up_plot_args "$UP_RAW_TASK/imagesTs"
        up_run evaluate -ref "$UP_RAW_TASK/labelsTs" -pred "$pred" "${protocol_args[@]}" -o "$UP_SUMMARY_DIR" \
            "${UP_PLOT_ARGS[@]}"
    else
        local val="$UP_FOLD_DIR/validation_raw"
        [ -d "$val" ] || up_die "no labelsTs in $UP_RAW_TASK and no $val to evaluate instead"
        UP_SUMMARY_DIR="$UP_MODEL_DIR/validation_evaluation_fold_$FOLD"
        up_say "no labelsTs in $UP_RAW_TASK: evaluating the fold's validation predictions ($val) instead"
        up_plot_args "$UP_RAW_TASK/imagesTr"
        up_run evaluate -ref "$UP_RAW_TASK/labelsTr" -pred "$val" --only-predicted "${protocol_args[@]}" \
            -o "$UP_SUMMARY_DIR" "${UP_PLOT_ARGS[@]}"
    fi
    UP_OVERLAY="$(up_first_overlay "$UP_SUMMARY_DIR/plots")"
}

# up_plot_args images_dir: UP_PLOT_ARGS = the evaluate options that draw the plots (on the images if the folder exists)
up_plot_args() {
    UP_PLOT_ARGS=(--plots)
    if [ -d "$1" ]; then UP_PLOT_ARGS+=(-img "$1"); fi
}

# up_first_overlay dir: the first <case>.png in dir (not metrics.png), or nothing
up_first_overlay() {
    local png
    for png in "$1"/*.png; do
        if [ -f "$png" ] && [ "$(basename "$png")" != "metrics.png" ]; then
            printf '%s' "$png"
            return 0
        fi
    done
}

# up_print_pictures: where the evaluation's pictures are (the last lines of the evaluation scripts and the quickstart)
up_print_pictures() {
    printf 'metric plot:         %s\n' "$UP_SUMMARY_DIR/plots/metrics.png"
    if [ -n "$UP_OVERLAY" ]; then
        printf 'look at a case:      %s\n' "$UP_OVERLAY"
    else
        printf 'look at a case:      no overlay was drawn (see the warning above)\n'
    fi
}

# up_handle_help script what extra args...: print the usage and exit 0 on -h/--help
up_handle_help() {
    local script="$1" what="$2" extra="$3"; shift 3
    case "${1:-}" in
        -h|--help) up_usage "$script" "$what" "$extra"; exit 0 ;;
    esac
}

# up_script_name: the running script as <folder>/<file>.sh, for its usage line
up_script_name() {
    local script="${BASH_SOURCE[-1]}"
    printf '%s/%s' "$(basename "$(cd "$(dirname "$script")" && pwd)")" "$(basename "$script")"
}

# up_train_dataset args...: what every run_training_<dataset>.sh does after up_setup (usage, plan once, train)
up_train_dataset() {
    up_handle_help "$(up_script_name)" \
        "Plan and preprocess $TASK once (preset $UP_PRESET), then train $TRAINER on fold $FOLD." \
        "extra unetr_pp_train options, e.g. -c (continue) or --epochs N" "$@"
    up_require_raw_task
    up_check_python
    up_plan_once
    up_train "$@"
}

# up_evaluate_dataset args...: what every run_evaluation_<dataset>.sh does after up_setup (usage, predict, evaluate)
up_evaluate_dataset() {
    up_handle_help "$(up_script_name)" \
        "Predict imagesTs of $TASK with fold $FOLD of $TRAINER (model_final_checkpoint) and evaluate with protocol
$UP_PROTOCOL against labelsTs (without labelsTs: the fold's validation_raw predictions)." \
        "extra unetr_pp_predict options, e.g. --disable_tta" "$@"
    up_require_raw_task
    up_check_python
    up_predict_and_evaluate "$@"
    echo
    up_print_pictures
}
