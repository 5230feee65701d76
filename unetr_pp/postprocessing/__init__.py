"""Label-level postprocessing: nnU-Net's largest-connected-component rule and label maps for external testing.

`connected_components` and `label_map` are light (numpy/scipy) and used by prediction export;
`determine` decides the rule from cross-validation predictions (it uses the evaluation package).
"""
