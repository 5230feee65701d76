"""Metrics (Dice, HD95 exact and fast), evaluation protocols and reports (json/csv/md)."""
from unetr_pp.evaluation.folders import evaluate_folders
from unetr_pp.evaluation.metrics import compute_case_metrics, label_bounding_boxes
from unetr_pp.evaluation.protocols import PROTOCOLS, Protocol, Target

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "Target",
    "compute_case_metrics",
    "evaluate_folders",
    "label_bounding_boxes",
]
