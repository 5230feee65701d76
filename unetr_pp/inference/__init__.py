"""Sliding-window prediction, fold ensembling, test-time augmentation, export to original geometry."""
from unetr_pp.inference.export import export_prediction, probabilities_to_labels
from unetr_pp.inference.models import TrainedModel, load_trained_model, trained_model_folder
from unetr_pp.inference.predictor import (
    FolderReport,
    PredictionOptions,
    export_case,
    predict_folder,
    predict_preprocessed_case,
)
from unetr_pp.inference.sliding_window import (
    SlidingWindowSettings,
    gaussian_importance_map,
    predict_probabilities,
    sliding_window_logits,
)

__all__ = [
    "FolderReport",
    "PredictionOptions",
    "SlidingWindowSettings",
    "TrainedModel",
    "export_case",
    "export_prediction",
    "gaussian_importance_map",
    "load_trained_model",
    "predict_folder",
    "predict_preprocessed_case",
    "predict_probabilities",
    "probabilities_to_labels",
    "sliding_window_logits",
    "trained_model_folder",
]
