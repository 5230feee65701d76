"""Cropping, fingerprint, normalization, resampling and the (parallel, resumable) preprocessor."""
