"""Sliding-window prediction, fold ensembling, test-time augmentation, export to original geometry."""
