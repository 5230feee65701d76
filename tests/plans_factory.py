"""Valid `Plans` for tests: a small 3d_fullres configuration with the given keys changed."""
from __future__ import annotations

from unetr_pp.io.plans import Plans

TASK = "Task900_Test"


def config_json(**changes) -> dict:
    """A valid configuration JSON (patch 16x32x32, one pooling) with `changes`; per-channel lists follow
    num_input_channels unless given."""
    channels = changes.get("num_input_channels", 1)
    config = {"data_identifier": "p_3d_fullres", "spacing": [1.0, 1.0, 1.0], "patch_size": [16, 32, 32],
              "batch_size": 2, "pool_op_kernel_sizes": [[2, 2, 2]], "conv_kernel_sizes": [[3, 3, 3], [3, 3, 3]],
              "median_shape": [16.0, 32.0, 32.0], "normalization_schemes": ["ZScoreNormalization"] * channels,
              "use_mask_for_norm": [False] * channels, "num_classes": 3, "num_input_channels": channels,
              "resampling": {"order_data": 3, "order_seg": 1, "order_z": 0, "separate_z_anisotropy_threshold": 3.0}}
    config.update(changes)
    return config


def make_plans(configurations: dict | None = None, **top) -> Plans:
    """Plans with `configurations` (name -> configuration JSON; default one 3d_fullres) and top-level `top`."""
    data = {"plans_identifier": "unetr_pp_Plansv2.1", "dataset_name": TASK, "labels": {"0": "background"},
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "foreground_intensity_properties_per_channel": {},
            "configurations": configurations or {"3d_fullres": config_json()}}
    data.update(top)
    return Plans.from_json(data)
