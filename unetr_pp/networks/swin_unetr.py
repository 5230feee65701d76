"""SwinUNETR (Hatamizadeh et al.): MONAI's `SwinUNETR` with the network contract; state_dict equals MONAI's."""
from __future__ import annotations

import torch
from monai.networks.nets import SwinUNETR as MonaiSwinUNETR

from unetr_pp.networks.blocks import SingleOutputMixin, check_kwargs, check_patch_divisible, config_value
from unetr_pp.utilities.errors import UnetrPPError

NETWORK_NAME = "SwinUNETR"
DIVISOR = 32
BUILD_OPTIONS = ("feature_size", "depths", "num_heads", "window_size", "drop_rate", "attn_drop_rate",
                 "dropout_path_rate", "use_checkpoint", "use_v2", "norm_name")


class SwinUNETR(SingleOutputMixin, MonaiSwinUNETR):
    """MONAI SwinUNETR: (B, C_in, *patch) -> logits (B, K, *patch); patch divisible by 32 per axis, not 32³.

    A 32×32×32 patch leaves a 1×1×1 bottleneck, which instance norm cannot normalise in training.

    MONAI has no deep-supervision heads: train mode with deep_supervision returns [logits] and
    `deep_supervision_scales` is [(1, 1, 1)], so the parameters equal MONAI's exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size, deep_supervision: bool = False,
                 **kwargs) -> None:
        patch = check_patch_divisible(NETWORK_NAME, patch_size, (DIVISOR,) * 3)
        if all(p == DIVISOR for p in patch):
            raise UnetrPPError(f"{NETWORK_NAME}: patch size {list(patch)} leaves a 1x1x1 bottleneck that instance "
                               f"norm cannot train on; make at least one axis {2 * DIVISOR} or more")
        super().__init__(in_channels=in_channels, out_channels=out_channels, **kwargs)
        self.input_size = patch
        self.deep_supervision = bool(deep_supervision)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [that] in train mode with deep supervision."""
        return self.contract_output(super().forward(x_in))


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> SwinUNETR:
    """SwinUNETR for a plans configuration; kwargs (network_kwargs["swin_unetr"]) go to MONAI (feature_size 48)."""
    check_kwargs(NETWORK_NAME, kwargs, BUILD_OPTIONS)
    options = {"feature_size": 48, **kwargs}
    return SwinUNETR(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                     int(config_value(NETWORK_NAME, plans_config, "num_classes")),
                     config_value(NETWORK_NAME, plans_config, "patch_size"), deep_supervision, **options)
