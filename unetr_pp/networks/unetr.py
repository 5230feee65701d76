"""UNETR (Hatamizadeh et al.): MONAI's `UNETR` with the network contract; weights and state_dict equal MONAI's."""
from __future__ import annotations

import torch
from monai.networks.nets import UNETR as MonaiUNETR

from unetr_pp.networks.blocks import SingleOutputMixin, check_kwargs, check_patch_divisible, config_value

NETWORK_NAME = "UNETR"
VIT_PATCH = 16
UNUSED_PARAMETER = "norm_cross_attn"
BUILD_OPTIONS = ("feature_size", "hidden_size", "mlp_dim", "num_heads", "proj_type", "norm_name", "res_block",
                 "dropout_rate")


class UNETR(SingleOutputMixin, MonaiUNETR):
    """MONAI UNETR: (B, C_in, *patch) -> logits (B, K, *patch); patch divisible by 16 per axis.

    MONAI has no deep-supervision heads: train mode with deep_supervision returns [logits] and
    `deep_supervision_scales` is [(1, 1, 1)], so the parameters equal MONAI's exactly. MONAI's transformer
    blocks hold a cross-attention LayerNorm that UNETR never uses: it is frozen (requires_grad False) so
    DDP needs no find_unused_parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size, deep_supervision: bool = False,
                 **kwargs) -> None:
        patch = check_patch_divisible(NETWORK_NAME, patch_size, (VIT_PATCH,) * 3)
        super().__init__(in_channels=in_channels, out_channels=out_channels, img_size=patch, **kwargs)
        self.input_size = patch
        for name, param in self.named_parameters():
            if UNUSED_PARAMETER in name:
                param.requires_grad_(False)
        self.deep_supervision = bool(deep_supervision)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C_in, *patch) -> (B, K, *patch), or [that] in train mode with deep supervision."""
        return self.contract_output(super().forward(x_in))


def build(plans_config: dict, deep_supervision: bool, **kwargs) -> UNETR:
    """UNETR for a plans configuration; kwargs (network_kwargs["unetr"]) go to MONAI's UNETR.

    Defaults are the paper's: feature 16, hidden 768, mlp 3072, 12 heads, perceptron embedding,
    instance norm, residual blocks.
    """
    check_kwargs(NETWORK_NAME, kwargs, BUILD_OPTIONS)
    options = {"feature_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12,
               "proj_type": "perceptron", "norm_name": "instance", "res_block": True, **kwargs}
    return UNETR(int(config_value(NETWORK_NAME, plans_config, "num_input_channels")),
                 int(config_value(NETWORK_NAME, plans_config, "num_classes")),
                 config_value(NETWORK_NAME, plans_config, "patch_size"), deep_supervision, **options)
