"""Independent PyTorch references for the feature networks and what is built on them, written
from the architecture descriptions (torchvision is not installed here):

- torchvision's VGG16 / VGG19 / AlexNet `features` (nn.Sequential, keys features.{i}.*);
- LPIPS v0.1 (ScalingLayer, unit-normalised features, 1x1 heads lin{i}.model.1.weight);
- DISTS (VGG16 with L2 pooling, alpha/beta of shape (1, 1475, 1, 1));
- BasicSR's PerceptualLoss (VGG at pre-ReLU taps, ImageNet normalisation, L1/L2).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

VGG_CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Features(nn.Module):
    """Holds torchvision's `features` Sequential, so state_dict keys are features.{i}.*."""

    def __init__(self, network: str):
        super().__init__()
        layers: list[nn.Module] = []
        if network == "alexnet":
            layers = [
                nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
            ]
        else:
            in_ch = 3
            for v in VGG_CFG[network]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU()]
                    in_ch = v
        self.features = nn.Sequential(*layers)

    def run(self, x: torch.Tensor, indices: list[int]) -> list[torch.Tensor]:
        """Outputs after the layers at `indices` of `features` (NCHW)."""
        outputs = []
        for i, layer in enumerate(self.features):
            if i > max(indices):
                break
            x = layer(x)
            if i in indices:
                outputs.append(x)
        return outputs


def set_features_from_keras(module: Features, arrays: dict[str, np.ndarray], names: list[str]):
    """Loads Keras-layout arrays (name/kernel (kh, kw, I, O)) into features.{i}.weight."""
    state = {}
    for i, name in enumerate(names):
        if f"{name}/kernel" in arrays:
            state[f"features.{i}.weight"] = torch.from_numpy(
                np.ascontiguousarray(np.transpose(arrays[f"{name}/kernel"], (3, 2, 0, 1)))
            )
            state[f"features.{i}.bias"] = torch.from_numpy(arrays[f"{name}/bias"])
    module.load_state_dict(state)


class LPIPSReference(nn.Module):
    def __init__(self, net: str, features: Features):
        super().__init__()
        self.net = features
        # ReLU outputs: AlexNet relu1..relu5, VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
        self.taps = [1, 4, 7, 9, 11] if net == "alex" else [3, 8, 15, 22, 29]
        channels = [64, 192, 384, 256, 256] if net == "alex" else [64, 128, 256, 512, 512]
        for i, c in enumerate(channels):
            head = nn.Module()
            head.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            setattr(self, f"lin{i}", head)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x, y, normalize=True):
        if normalize:
            x, y = 2 * x - 1, 2 * y - 1
        fx = self.net.run((x - self.shift) / self.scale, self.taps)
        fy = self.net.run((y - self.shift) / self.scale, self.taps)
        total = 0
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
            total = total + getattr(self, f"lin{i}").model((a - b) ** 2).mean([2, 3])
        return total[:, 0]


class DISTSReference(nn.Module):
    def __init__(self, features: Features):
        super().__init__()
        vgg = features.features
        window = torch.tensor(np.hanning(5)[1:-1], dtype=torch.float32)
        window = window[:, None] * window[None, :]
        self.register_buffer("window", window / window.sum())
        # Conv/ReLU runs of VGG16 between its max-pools (replaced by L2 pooling).
        self.stages = nn.ModuleList([vgg[0:4], vgg[5:9], vgg[10:16], vgg[17:23], vgg[24:30]])
        self.chns = [3, 64, 128, 256, 512, 512]
        self.alpha = nn.Parameter(torch.zeros(1, sum(self.chns), 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, sum(self.chns), 1, 1))

    def l2pool(self, x):
        c = x.shape[1]
        kernel = self.window[None, None].repeat(c, 1, 1, 1)
        return torch.sqrt(F.conv2d(x**2, kernel, stride=2, padding=1, groups=c) + 1e-12)

    def forward(self, x, y):
        def stages(img):
            h = (img - IMAGENET_MEAN) / IMAGENET_STD
            out = [img]
            for k, stage in enumerate(self.stages):
                h = stage(h if k == 0 else self.l2pool(h))
                out.append(h)
            return out

        fx, fy = stages(x), stages(y)
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, self.chns, dim=1)
        beta = torch.split(self.beta / w_sum, self.chns, dim=1)
        d1 = d2 = 0
        for k in range(len(self.chns)):
            mx, my = fx[k].mean([2, 3], keepdim=True), fy[k].mean([2, 3], keepdim=True)
            s1 = (2 * mx * my + 1e-6) / (mx**2 + my**2 + 1e-6)
            d1 = d1 + (alpha[k] * s1).sum(1, keepdim=True)
            vx = ((fx[k] - mx) ** 2).mean([2, 3], keepdim=True)
            vy = ((fy[k] - my) ** 2).mean([2, 3], keepdim=True)
            cov = (fx[k] * fy[k]).mean([2, 3], keepdim=True) - mx * my
            s2 = (2 * cov + 1e-6) / (vx + vy + 1e-6)
            d2 = d2 + (beta[k] * s2).sum(1, keepdim=True)
        return 1 - (d1 + d2).flatten()


def basicsr_perceptual_loss(features: Features, indices: dict[int, float], x, gt,
                            criterion: str = "l1") -> torch.Tensor:
    """BasicSR PerceptualLoss (perceptual_weight 1, no style) with ImageNet input norm."""
    order = sorted(indices)
    fx = features.run((x - IMAGENET_MEAN) / IMAGENET_STD, order)
    fg = features.run((gt.detach() - IMAGENET_MEAN) / IMAGENET_STD, order)
    distance = F.l1_loss if criterion == "l1" else F.mse_loss
    return sum(indices[i] * distance(a, b) for i, a, b in zip(order, fx, fg))


def nhwc_to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
