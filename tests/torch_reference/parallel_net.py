"""Reference PBaSR ParallelNet_ncb wrapper: two branches of one generator and a combined
copy; deployment sets combinet = 0.5 * general + 0.5 * defocus and runs combinet."""

from __future__ import annotations

import torch
from torch import nn


class TorchParallelNetNCB(nn.Module):
    def __init__(self, make_branch):
        super().__init__()
        self.general_branch = make_branch()
        self.defocus_branch = make_branch()
        self.combinet = make_branch()

    @torch.no_grad()
    def deploy(self) -> None:
        general = dict(self.general_branch.named_parameters())
        blur = dict(self.defocus_branch.named_parameters())
        for name, param in self.combinet.named_parameters():
            param.copy_(0.5 * general[name] + 0.5 * blur[name])

    def forward(self, x):
        return self.combinet(x)
