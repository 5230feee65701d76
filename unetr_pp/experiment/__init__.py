"""Orchestration above the stages: plan and preprocess a task, train and validate a fold."""
