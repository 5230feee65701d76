"""The seeds' released-checkpoint modules, re-created from the structure of their public code (key names,
shapes, forward) so tests can write checkpoints in each official layout without downloads.

- UX-Net family (MASILab/3DUX-Net networks/UXNet_3D, MASILab/deform-uxnet networks/RepUXNet_3D and
  DeformUXNet_3D): a `<name>_3d` encoder (downsample_layers, stages of blocks, norm0..3) and MONAI
  UNETR-style decoder blocks named encoder1..5, decoder5..1, out. RepUX-Net's block is dwconv -> BatchNorm ->
  GELU, its kernel multiplied by the BFM in the forward (the first forward after loading; the public code
  then keeps re-multiplying, a defect we do not copy). DeformUX-Net's DCN CUDA kernel is replaced by our
  pure-PyTorch deformable conv (same offset layout: (dz, dy, dx) per tap), its offset conv is 1x1x1 without
  padding (the public code pads it by 1, which cannot run).
- UNETR / SwinUNETR: MONAI's own classes, which research-contributions trains.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from torch import nn

from unetr_pp.networks.deformuxnet import deform_depthwise_conv3d
from unetr_pp.networks.repuxnet import fusion_mask


class ChannelsFirstLN(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class UXBlockPublic(nn.Module):
    """ux_block: dwconv k7 -> LN (channels last) -> pwconv1 (groups=dim) -> GELU -> pwconv2 -> gamma -> residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Conv3d(dim, 4 * dim, 1, groups=dim)
        self.pwconv2 = nn.Conv3d(4 * dim, dim, 1, groups=dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def spatial(self, x):
        return self.dwconv(x)

    def forward(self, x):
        y = self.norm(self.spatial(x).permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + (self.gamma * y.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class DeformConvPackPublic(nn.Module):
    """DeformConvPack (groups=dim): weight, bias, conv_offset (3 k^3 offsets)."""

    def __init__(self, dim: int, k: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, 1, k, k, k) * 0.2)
        self.bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.conv_offset = nn.Conv3d(dim, 3 * k ** 3, 1)

    def forward(self, x):
        return deform_depthwise_conv3d(x, self.weight, self.conv_offset(x), self.bias)


class DeformUXBlockPublic(UXBlockPublic):
    """deformux_block: ddc (deformable k3) instead of dwconv; grouped pwconvs as in its code."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        del self.dwconv
        self.ddc = DeformConvPackPublic(dim)

    def spatial(self, x):
        return self.ddc(x)


class RepUXBlockPublic(nn.Module):
    """repux_block: dwconv k21 (kernel x BFM in the forward) -> BatchNorm3d -> GELU; no MLP, no residual."""

    def __init__(self, dim: int, ks: int = 21) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, ks, padding=ks // 2, groups=dim)
        self.norm = nn.BatchNorm3d(dim)
        self.register_buffer("bfm", fusion_mask(ks), persistent=False)

    def forward(self, x):
        w = self.dwconv.weight * self.bfm
        return F.gelu(self.norm(F.conv3d(x, w, self.dwconv.bias, padding=self.dwconv.padding, groups=w.shape[0])))


class PublicEncoder(nn.Module):
    """uxnet_conv / repuxnet_conv / deformuxnet_conv: downsample_layers, stages, norm0..3."""

    def __init__(self, block, in_chans: int, dims, depths) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv3d(in_chans, dims[0], 7, stride=2, padding=3),
                                                              ChannelsFirstLN(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(ChannelsFirstLN(dims[i]),
                                                        nn.Conv3d(dims[i], dims[i + 1], 2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*(block(dims[i]) for _ in range(depths[i]))) for i in range(4))
        for i in range(4):
            self.add_module(f"norm{i}", ChannelsFirstLN(dims[i]))

    def forward(self, x):
        outs = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            outs.append(getattr(self, f"norm{i}")(x))
        return outs


class PublicUXNet(nn.Module):
    """UXNET / REPUXNET / DEFORMUXNET network_backbone.py: `<attr>` encoder + MONAI decoder; out block takes 48."""

    def __init__(self, attr: str, block, in_chans: int, out_chans: int, dims=(48, 96, 192, 384),
                 depths=(2, 2, 2, 2), hidden_size: int = 768) -> None:
        super().__init__()
        self.attr = attr
        setattr(self, attr, PublicEncoder(block, in_chans, dims, depths))

        def basic(cin, cout):
            return UnetrBasicBlock(3, cin, cout, kernel_size=3, stride=1, norm_name="instance", res_block=True)

        def up(cin, cout):
            return UnetrUpBlock(3, cin, cout, kernel_size=3, upsample_kernel_size=2, norm_name="instance",
                                res_block=True)

        self.encoder1, self.encoder2 = basic(in_chans, dims[0]), basic(dims[0], dims[1])
        self.encoder3, self.encoder4 = basic(dims[1], dims[2]), basic(dims[2], dims[3])
        self.encoder5 = basic(dims[3], hidden_size)
        self.decoder5, self.decoder4 = up(hidden_size, dims[3]), up(dims[3], dims[2])
        self.decoder3, self.decoder2 = up(dims[2], dims[1]), up(dims[1], dims[0])
        self.decoder1 = basic(dims[0], dims[0])
        self.out = UnetOutBlock(3, 48, out_chans)

    def forward(self, x):
        outs = getattr(self, self.attr)(x)
        dec = self.decoder5(self.encoder5(outs[3]), self.encoder4(outs[2]))
        dec = self.decoder4(dec, self.encoder3(outs[1]))
        dec = self.decoder3(dec, self.encoder2(outs[0]))
        dec = self.decoder2(dec, self.encoder1(x))
        return self.out(self.decoder1(dec))


PUBLIC_BLOCKS = {"uxnet": ("uxnet_3d", UXBlockPublic), "repuxnet": ("repuxnet_3d", RepUXBlockPublic),
                 "deformuxnet": ("deformuxnet_3d", DeformUXBlockPublic)}


def public_ux_model(source: str, out_chans: int, **kwargs) -> PublicUXNet:
    """The public UX-family model of `source` (uxnet | repuxnet | deformuxnet)."""
    attr, block = PUBLIC_BLOCKS[source]
    return PublicUXNet(attr, block, 1, out_chans, **kwargs)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values in every float tensor (weights, layer scales, BN statistics) so no part is trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=gen) * 0.2
                tensor.copy_(noise.abs() + 0.5 if name.endswith("running_var") else noise)
    return model.eval()
