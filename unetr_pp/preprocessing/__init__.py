"""Cropping, fingerprint, normalization, resampling and the (parallel, resumable) preprocessor."""
from unetr_pp.preprocessing.preprocessed_data import PreprocessedCase, load_case, preprocess_case_for_inference

__all__ = ["PreprocessedCase", "load_case", "preprocess_case_for_inference"]
