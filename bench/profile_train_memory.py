"""Where a training run's resident memory goes: peak RSS of the trainer process per phase.

Runs `unetr_pp_train` in this process (same arguments) with the named functions below wrapped: each
wrapper records the peak RSS while the function ran (VmHWM, reset through /proc/self/clear_refs at every
phase boundary, nested phases exact) and the RSS when it returned. Workers are other processes and are
not counted here (bench_train_memory.py measures the whole tree).

    PYTHONPATH=$PWD python bench/profile_train_memory.py 3d_fullres unetr_pp_trainer 997 0 \\
        --epochs 1 --iters_per_epoch 3 --val_iters 1 -npda 2 --seed 0
"""
from __future__ import annotations

import functools
import importlib
import sys
import time

from bench_preprocessing_memory import PeakRecorder, _reset_peak, _status

PHASES = {  # module -> {attribute (Class.method allowed): phase label}
    "unetr_pp.training.trainer": {
        "Trainer._prepare_fold": "network built (split + network)", "Trainer.initialize": "initialize (total)",
        "Trainer.train_step": "train step", "Trainer.validation_step": "validation step (patches)",
        "Trainer.save": "checkpoint save",
    },
    "unetr_pp.training.data.loader": {"make_loaders": "make loaders"},
    "unetr_pp.experiment.fold_run": {"final_validation": "final validation (total)"},
    "unetr_pp.experiment.validation": {
        "load_case": "final val: load case", "predict_preprocessed_case": "final val: predict (sliding window)",
        "export_case": "final val: export", "evaluate_folders": "final val: evaluate",
    },
    "unetr_pp.inference.sliding_window": {"sliding_window_logits": "sliding window logits"},
    "unetr_pp.inference.export": {
        "resample_to_spacing": "export: resample probabilities", "probabilities_to_labels": "export: labels",
        "write_image": "export: write",
    },
}


class PhaseRecorder(PeakRecorder):
    """PeakRecorder that also keeps the largest RSS seen when a phase returned."""

    def __init__(self) -> None:
        super().__init__()
        self.after: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, func, label: str):
        inner = super().wrap(func, label)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return inner(*args, **kwargs)
            finally:
                self.after[label] = max(self.after.get(label, 0), _status("VmRSS"))
                self.calls[label] = self.calls.get(label, 0) + 1
        return wrapper


def install(recorder: PhaseRecorder) -> None:
    """Wrap every named function or method that exists in this checkout."""
    for module_name, names in PHASES.items():
        module = importlib.import_module(module_name)
        for name, label in names.items():
            owner, _, attr = name.rpartition(".")
            target = getattr(module, owner) if owner else module
            if hasattr(target, attr):
                setattr(target, attr, recorder.wrap(getattr(target, attr), label))


def main() -> None:
    from unetr_pp.cli import train

    recorder = PhaseRecorder()
    install(recorder)
    baseline = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    code = train.main(sys.argv[1:])
    peak = max([_status("VmHWM"), *recorder.peaks.values()])
    print(f"exit {code}, {time.perf_counter() - start:.0f} s; RSS after imports {baseline / 2**20:.0f} MB")
    print(f"{'phase':40} {'calls':>5} {'peak MB':>8} {'RSS after MB':>12}")
    for label, value in recorder.peaks.items():
        print(f"{label:40} {recorder.calls[label]:5d} {value / 2**20:8.0f} {recorder.after[label] / 2**20:12.0f}")
    print(f"{'whole run':40} {'':5} {peak / 2**20:8.0f}")


if __name__ == "__main__":
    main()
