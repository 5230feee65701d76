"""Training data: cross-validation splits and patch loaders with nnU-Net v1 "moreDA" augmentation."""
from unetr_pp.training.data.loader import BatchLoader, LoaderSettings, make_loaders
from unetr_pp.training.data.splits import fold_cases, kfold_splits, load_or_create_splits

__all__ = ["BatchLoader", "LoaderSettings", "make_loaders", "fold_cases", "kfold_splits", "load_or_create_splits"]
