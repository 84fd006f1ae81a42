"""Reference SRFormer (permuted self-attention) in the official state_dict key layout.

Written from the description in shared/docs/reference.md section 2: keys conv_first,
patch_embed.norm, layers.{i}.residual_group.blocks.{j}.{norm1, attn.{q, kv, proj,
relative_position_bias_table}, norm2, mlp.{fc1, dwconv.depthwise_conv.0, fc2}}, layers.{i}.conv,
norm, conv_after_body, then the head. Like the official files, the state_dict also carries
the buffers attn.aligned_relative_position_index and (shifted blocks) attn_mask, computed for
`img_size` rounded up to a multiple of the window. The implementation deliberately differs
from the Keras one (unfold windows, slicing for the 2x2 key fold, loops for the index and
mask) so the parity test compares two independent derivations.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def bias_index(window_size: int) -> torch.Tensor:
    """(ws*ws, p*p), p = ws/2: table row of query (y, x) against permuted key cell (a, b)."""
    return _bias_index(window_size).clone()


@functools.lru_cache
def _bias_index(window_size: int) -> torch.Tensor:
    p = window_size // 2
    index = torch.empty(window_size * window_size, p * p, dtype=torch.long)
    for y in range(window_size):
        for x in range(window_size):
            for a in range(p):
                for b in range(p):
                    dy, dx = y // 2 - a, x // 2 - b
                    index[y * window_size + x, a * p + b] = (dy + p - 1) * (2 * p - 1) + dx + p - 1
    return index


def _region_map(height: int, width: int, window: int, wrapped: int) -> torch.Tensor:
    labels = torch.zeros(height, width)
    bounds = [slice(0, -window), slice(-window, -wrapped), slice(-wrapped, None)]
    label = 0
    for rows in bounds:
        for cols in bounds:
            labels[rows, cols] = label
            label += 1
    return labels


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, window*window, C) via unfold."""
    b, _, _, c = x.shape
    patches = x.unfold(1, window, window).unfold(2, window, window)  # B, nh, nw, C, ws, ws
    return patches.permute(0, 1, 2, 4, 5, 3).reshape(-1, window * window, c)


def shift_mask(height: int, width: int, window_size: int, shift: int) -> torch.Tensor:
    """(nW, ws*ws, (ws/2)^2): 0 within one region, -100 across regions. Keys are labelled on
    the half-resolution grid with the last ceil(shift/2) cells wrapped, as in the official
    code."""
    queries = _region_map(height, width, window_size, shift)
    keys = _region_map(height // 2, width // 2, window_size // 2, math.ceil(shift / 2))
    q = _windows(queries[None, :, :, None], window_size)[..., 0]
    k = _windows(keys[None, :, :, None], window_size // 2)[..., 0]
    return (q[:, :, None] != k[:, None, :]).float() * -100.0


class PSA(nn.Module):
    def __init__(self, dim, window_size, num_heads):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        p = window_size // 2
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * p - 1) ** 2, num_heads))
        self.register_buffer("aligned_relative_position_index", bias_index(window_size))
        self.kv = nn.Linear(dim, dim // 2)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        nb, n, c = x.shape
        ws, heads = self.window_size, self.num_heads
        d = c // heads
        kv = self.kv(x).view(nb, ws, ws, c // 2)
        quarter = c // 4
        # 2x2 neighbourhood (r, s) contributes channels [(2r+s)*c/4, (2r+s+1)*c/4).
        k = torch.cat([kv[:, r::2, s::2, :quarter] for r in (0, 1) for s in (0, 1)], dim=-1)
        v = torch.cat([kv[:, r::2, s::2, quarter:] for r in (0, 1) for s in (0, 1)], dim=-1)
        k = k.reshape(nb, n // 4, heads, d)
        v = v.reshape(nb, n // 4, heads, d)
        q = self.q(x).view(nb, n, heads, d) * d**-0.5
        attn = torch.einsum("bqhd,bkhd->bhqk", q, k)
        bias = self.relative_position_bias_table[self.aligned_relative_position_index]
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(nb // nw, nw, heads, n, n // 4) + mask[None, :, None]).view(
                nb, heads, n, n // 4)
        attn = attn.softmax(dim=-1)
        out = torch.einsum("bhqk,bkhd->bqhd", attn, v).reshape(nb, n, c)
        return self.proj(out)


class DWConv(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.depthwise_conv = nn.Sequential(nn.Conv2d(hidden, hidden, 5, 1, 2, groups=hidden),
                                            nn.GELU())

    def forward(self, x):  # (B, H, W, C)
        return self.depthwise_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ConvFFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = F.gelu(self.fc1(x))
        return self.fc2(x + self.dwconv(x))


class Block(nn.Module):
    def __init__(self, dim, heads, window_size, shift, mlp_ratio, resolution):
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = PSA(dim, window_size, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        mask = shift_mask(resolution, resolution, window_size, shift) if shift else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x):  # (B, H, W, C)
        b, h, w, c = x.shape
        ws = self.window_size
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
            mask = shift_mask(h, w, ws, self.shift)
        else:
            mask = None
        y = self.attn(_windows(y, ws), mask)
        y = y.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


def _resi_conv(dim, resi_connection):
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(dim // 4, dim // 4, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )


class PSAGroup(nn.Module):
    def __init__(self, dim, depth, heads, window_size, mlp_ratio, resolution, resi_connection):
        super().__init__()
        self.residual_group = ResidualGroup([
            Block(dim, heads, window_size, 0 if j % 2 == 0 else window_size // 2, mlp_ratio,
                  resolution)
            for j in range(depth)
        ])
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x):  # (B, H, W, C)
        y = x
        for block in self.residual_group.blocks:
            y = block(y)
        y = self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + y


class PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class TorchSRFormer(nn.Module):
    def __init__(self, upscale=4, img_size=64, window_size=22, depths=(6,) * 6, embed_dim=180,
                 num_heads=(6,) * 6, mlp_ratio=2.0, upsampler="nearest+conv",
                 resi_connection="1conv"):
        super().__init__()
        self.upscale, self.window_size, self.upsampler = upscale, window_size, upsampler
        resolution = math.ceil(img_size / window_size) * window_size
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        self.layers = nn.ModuleList([
            PSAGroup(embed_dim, depth, heads, window_size, mlp_ratio, resolution, resi_connection)
            for depth, heads in zip(depths, num_heads)
        ])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        feat = 64
        if upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, 3 * upscale**2, 3, 1, 1),
                                          nn.PixelShuffle(upscale))
            return
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, feat, 3, 1, 1),
                                                  nn.LeakyReLU())
        if upsampler == "pixelshuffle":
            stages = []
            for factor in ([3] if upscale == 3 else [2] * int(math.log2(upscale))):
                stages += [nn.Conv2d(feat, feat * factor**2, 3, 1, 1), nn.PixelShuffle(factor)]
            self.upsample = nn.Sequential(*stages)
        else:
            self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(feat, 3, 3, 1, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        ws = self.window_size
        x = F.pad(x, (0, (-w) % ws, 0, (-h) % ws), mode="reflect")
        x = self.conv_first(x - self.mean)
        feat = self.patch_embed.norm(x.permute(0, 2, 3, 1))
        for group in self.layers:
            feat = group(feat)
        feat = self.norm(feat).permute(0, 3, 1, 2)
        x = self.conv_after_body(feat) + x
        if self.upsampler == "pixelshuffledirect":
            x = self.upsample(x)
        else:
            x = self.conv_before_upsample(x)
            if self.upsampler == "pixelshuffle":
                x = self.conv_last(self.upsample(x))
            else:
                lrelu = nn.functional.leaky_relu
                x = lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
                x = lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
                x = self.conv_last(lrelu(self.conv_hr(x), 0.2))
        x = x + self.mean
        return x[:, :, : h * self.upscale, : w * self.upscale]
