"""Independent PyTorch references for the U-Net discriminators, written from the architecture
description (Real-ESRGAN's UNetDiscriminatorSN and PBaSR's two mask-conditioned variants) in the
official state_dict key layout: convN.weight_orig / weight_u / weight_v for spectral-normalised
convolutions, conv0, conv9, pred_conv, pred_conv_cond, concat_layer as plain convolutions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=0.2)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class _UNetBody(nn.Module):
    """conv1..conv9 shared by all three discriminators; forward starts from x0."""

    def __init__(self, num_feat: int, skip_connection: bool):
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def body(self, x0: torch.Tensor) -> torch.Tensor:
        x1 = _lrelu(self.conv1(x0))
        x2 = _lrelu(self.conv2(x1))
        x3 = _lrelu(self.conv3(x2))
        x4 = _lrelu(self.conv4(_up2(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = _lrelu(self.conv5(_up2(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = _lrelu(self.conv6(_up2(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = _lrelu(self.conv7(x6))
        out = _lrelu(self.conv8(out))
        return self.conv9(out)


class TorchUNetDiscriminatorSN(_UNetBody):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__(num_feat, skip_connection)
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(_lrelu(self.conv0(x)))


class TorchConditionalUNetDiscriminatorSNv1(_UNetBody):
    """Image and condition each to num_feat/2 channels, concatenated (image first), fused by a
    1x1 conv, then conv0 (num_feat -> num_feat) and the U-Net; no activation before conv0."""

    def __init__(self, num_in_ch=3, num_con_in_ch=1, num_feat=64, skip_connection=True):
        super().__init__(num_feat, skip_connection)
        self.pred_conv = nn.Conv2d(num_in_ch, num_feat // 2, 3, 1, 1)
        self.pred_conv_cond = nn.Conv2d(num_con_in_ch, num_feat // 2, 3, 1, 1)
        self.concat_layer = nn.Conv2d(num_feat, num_feat, 1, 1, 0)
        self.conv0 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        fused = self.concat_layer(torch.cat([self.pred_conv(x), self.pred_conv_cond(cond)], 1))
        return self.body(_lrelu(self.conv0(fused)))


class TorchConditionalUNetDiscriminatorSNv2(_UNetBody):
    """lrelu(conv0(image)) and lrelu(pred_conv_cond(cond)) concatenated and fused by a 1x1 conv
    (num_feat + num_feat/2 -> num_feat) initialised to pass the image features through; the fused
    features are x0 (input of conv1 and the last skip)."""

    def __init__(self, num_in_ch=3, num_con_in_ch=1, num_feat=64, skip_connection=True):
        super().__init__(num_feat, skip_connection)
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.pred_conv_cond = nn.Conv2d(num_con_in_ch, num_feat // 2, 3, 1, 1)
        self.concat_layer = nn.Conv2d(num_feat + num_feat // 2, num_feat, 1, 1, 0)
        with torch.no_grad():
            self.concat_layer.weight.zero_()
            self.concat_layer.weight[:, :num_feat, 0, 0] = torch.eye(num_feat)
            self.concat_layer.bias.zero_()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x0 = _lrelu(self.conv0(x))
        cond_feat = _lrelu(self.pred_conv_cond(cond))
        return self.body(self.concat_layer(torch.cat([x0, cond_feat], 1)))


def randomize_(module: nn.Module, seed: int = 0, scale: float = 0.2,
               warmup_iterations: int = 3) -> nn.Module:
    """Give every parameter and SN buffer reproducible random values.

    u and v start as random unit vectors advanced by a few power iterations, as in a checkpoint
    saved after some training: sigma is then close to the top singular value (random u, v give
    a tiny sigma that multiplies through the eight SN layers), while further iterations still
    move u and v measurably.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            values = torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype)
            if name.endswith(("weight_u", "weight_v")):
                values = values / values.norm()
            else:
                values = values * scale
            tensor.copy_(values)
        for sub in module.modules():
            if hasattr(sub, "weight_orig"):
                matrix = sub.weight_orig.reshape(sub.weight_orig.shape[0], -1)
                u, v = sub.weight_u, sub.weight_v
                for _ in range(warmup_iterations):
                    v.copy_(F.normalize(matrix.t() @ u, dim=0, eps=1e-12))
                    u.copy_(F.normalize(matrix @ v, dim=0, eps=1e-12))
    return module
