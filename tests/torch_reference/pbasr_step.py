"""Independent PyTorch reference of one PBaSR training iteration, written from the paper
(shared/docs/paper-pbasr.md), Real-ESRGAN's RealESRGANModel.optimize_parameters (BasicSR) and
shared/docs/reference.md sections 1 and 3. Imports nothing from keras_pbasr.

One iteration on a batch whose first half is general samples and second half blur samples:

1. Generator step, discriminators frozen (requires_grad False, still in train mode, so each
   spectral-norm layer does one power iteration per call, as in BasicSR):
   general: L1(G_G(lr), USM(hr) or hr) + gan_weight * BCEWithLogits(D_G(SR), real);
   blur:    L1(G_B(lr), USM(hr) or hr) + gan_weight * (-mean(D_B(SR | M)))  (hinge generator).
   Each branch is updated by its own optimizer.
2. Discriminator step on the real HR and the SR computed in step 1, detached (real, then fake):
   D_G: BCE(D_G(hr), 1) + BCE(D_G(sr), 0);  D_B (paper Eq. 1, hinge):
   mean(relu(1 - D_B(hr | M))) + mean(relu(1 + D_B(sr | M))).
3. EMA of each generator's parameters: ema = decay * ema + (1 - decay) * param.
4. Every `interval` iterations the Cross Fusion Module (paper Eq. 2, as printed):
   cos = cosine of all generator parameters flattened (one vector per branch),
   lam = lambda0 + (1 - lambda0) * cos / 2, W_G' = lam W_G + (1 - lam) W_B,
   W_B' = lam W_B + (1 - lam) W_G, both from the pre-fusion weights.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

USM_KERNEL_SIZE = 51
USM_SIGMA = 0.3 * ((USM_KERNEL_SIZE - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel(51, 0): 8.0


def gaussian_kernel_2d(size: int = USM_KERNEL_SIZE, sigma: float = USM_SIGMA) -> torch.Tensor:
    """cv2.getGaussianKernel(size, sigma) times its transpose (Real-ESRGAN's USMSharp kernel),
    in float64 then float32."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    taps = taps / taps.sum()
    return torch.outer(taps, taps).float()


def filter2d(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """BasicSR's filter2D: reflect padding by k // 2, then the same kernel on every channel."""
    channels = images.shape[1]
    pad = kernel.shape[-1] // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    weight = kernel.expand(channels, 1, *kernel.shape)
    return F.conv2d(padded, weight, groups=channels)


def usm_sharpen(images: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
    """Real-ESRGAN's USMSharp.forward on NCHW images in [0, 1]."""
    kernel = gaussian_kernel_2d()
    blurred = filter2d(images, kernel)
    residual = images - blurred
    mask = (torch.abs(residual) * 255 > threshold).float()
    soft_mask = filter2d(mask, kernel)
    sharp = torch.clip(images + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * images


def ema_update_(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """BasicSR model_ema: parameters only (buffers untouched)."""
    with torch.no_grad():
        source = dict(net.named_parameters())
        for name, param in ema.named_parameters():
            param.mul_(decay).add_(source[name], alpha=1 - decay)


def cross_fuse_(net_general: nn.Module, net_blur: nn.Module, lambda0: float) -> tuple[float, float]:
    """Paper Eq. 2 as printed, global cosine over all parameters; in place. Returns (cos, lam)."""
    with torch.no_grad():
        general = [p for p in net_general.parameters()]
        blur = [p for p in net_blur.parameters()]
        flat_g = torch.cat([p.reshape(-1) for p in general]).double()
        flat_b = torch.cat([p.reshape(-1) for p in blur]).double()
        cos = float(flat_g @ flat_b / (flat_g.norm() * flat_b.norm()))
        lam = lambda0 + (1 - lambda0) * cos / 2
        for pg, pb in zip(general, blur):
            old_g, old_b = pg.clone(), pb.clone()
            pg.copy_(lam * old_g + (1 - lam) * old_b)
            pb.copy_(lam * old_b + (1 - lam) * old_g)
    return cos, lam


def _requires_grad_(module: nn.Module, flag: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(flag)


class PBaSRStepReference:
    """Two generator branches, their discriminators, SGD optimizers and EMA copies.

    d_general(image) is unconditional; d_blur(image, mask) is conditioned on the HR blur map.
    """

    def __init__(self, g_general, g_blur, d_general, d_blur, *, g_lr: float, d_lr: float,
                 pixel_weight: float = 1.0, gan_weight: float = 0.1, ema_decay: float = 0.999,
                 usm_general: bool = True, usm_blur: bool = False, interval: int = 20,
                 lambda0: float = 0.99):
        self.nets = {"g_general": g_general, "g_blur": g_blur,
                     "d_general": d_general, "d_blur": d_blur}
        for net in self.nets.values():
            net.train()
        self.ema = {"general": copy.deepcopy(g_general), "blur": copy.deepcopy(g_blur)}
        self.optimizers = {
            name: torch.optim.SGD(net.parameters(), lr=g_lr if name.startswith("g") else d_lr)
            for name, net in self.nets.items()
        }
        self.pixel_weight, self.gan_weight, self.ema_decay = pixel_weight, gan_weight, ema_decay
        self.usm = {"general": usm_general, "blur": usm_blur}
        self.interval, self.lambda0 = interval, lambda0
        self.iteration = 0
        self.last_fusion = None

    def step(self, lr: torch.Tensor, hr: torch.Tensor, mask: torch.Tensor) -> dict:
        """One iteration on NCHW tensors (general samples first); returns the loss values."""
        half = lr.shape[0] // 2
        parts = {"general": (lr[:half], hr[:half], mask[:half]),
                 "blur": (lr[half:], hr[half:], mask[half:])}
        nets, logs = self.nets, {}

        # 1. Generator step with both discriminators frozen.
        for branch in parts:
            _requires_grad_(nets[f"d_{branch}"], False)
        srs, g_loss = {}, 0.0
        for branch, (lr_b, hr_b, mask_b) in parts.items():
            sr = nets[f"g_{branch}"](lr_b)
            target = usm_sharpen(hr_b) if self.usm[branch] else hr_b
            pixel = self.pixel_weight * F.l1_loss(sr, target)
            if branch == "general":
                fake = nets["d_general"](sr)
                gan = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
            else:
                gan = -nets["d_blur"](sr, mask_b).mean()
            gan = self.gan_weight * gan
            logs[f"{branch}_pixel"], logs[f"{branch}_gan"] = pixel.item(), gan.item()
            g_loss = g_loss + pixel + gan
            srs[branch] = sr
        for branch in parts:
            self.optimizers[f"g_{branch}"].zero_grad()
        g_loss.backward()
        for branch in parts:
            self.optimizers[f"g_{branch}"].step()

        # 2. Discriminator step on real HR and the detached SR of step 1 (real first).
        for branch in parts:
            _requires_grad_(nets[f"d_{branch}"], True)
        d_loss = 0.0
        for branch, (_, hr_b, mask_b) in parts.items():
            sr = srs[branch].detach().clone()
            if branch == "general":
                real = nets["d_general"](hr_b)
                fake = nets["d_general"](sr)
                real_term = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                fake_term = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            else:
                real = nets["d_blur"](hr_b, mask_b)
                fake = nets["d_blur"](sr, mask_b)
                real_term = F.relu(1 - real).mean()
                fake_term = F.relu(1 + fake).mean()
            logs[f"d_{branch}_real"], logs[f"d_{branch}_fake"] = real_term.item(), fake_term.item()
            d_loss = d_loss + real_term + fake_term
        for branch in parts:
            self.optimizers[f"d_{branch}"].zero_grad()
        d_loss.backward()
        for branch in parts:
            self.optimizers[f"d_{branch}"].step()

        # 3. EMA, 4. CFM every `interval` iterations.
        for branch in parts:
            ema_update_(self.ema[branch], nets[f"g_{branch}"], self.ema_decay)
        self.iteration += 1
        if self.iteration % self.interval == 0:
            self.last_fusion = cross_fuse_(nets["g_general"], nets["g_blur"], self.lambda0)
        assert all(math.isfinite(v) for v in logs.values())
        return logs
