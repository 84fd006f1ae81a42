"""Reference FeMaSR (HQ VQGAN and LQ x4 stage) in the official state_dict key layout.

Written from the architecture description (shared/docs/reference.md section 2) and the official
module names of chaofengc/FeMaSR basicsr/archs/femasr_arch.py: multiscale_encoder.in_conv,
multiscale_encoder.blocks.{i} (down: 0 conv, 1-2 ResBlocks; LQ: then SwinLayers
`swin_blks.{j}` = SwinIR RSTBs `residual_group.blocks.{k}.*` + `conv`, then two upsamplers
1 conv, 2-3 ResBlocks), before_quant_group.0, quantize_group.0.embedding, after_quant_group.0.conv,
decoder_group.{i}.block.{1 conv, 2-3 ResBlocks}, out_conv; ResBlock keys conv.{0,3}.norm
(GroupNorm) and conv.{2,5}. Like the official files, Swin blocks carry the buffers
relative_position_index and (shifted blocks) attn_mask for `input_resolution`.
`use_semantic_loss` adds the HQ pretraining's conv_semantic head (not used for SR).

The implementation deliberately differs from the Keras one (unfold windows, loops for the
index and mask, one-hot matmul quantization) so parity compares two derivations.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CODE_RESOLUTION = 32  # codebook at 1/8 of the 256 px training patches


class NormLayer(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)

    def forward(self, x):
        return self.norm(x)


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Sequential(
            NormLayer(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1),
            NormLayer(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x):
        return x + self.conv(x)


class VectorQuantizer(nn.Module):
    def __init__(self, codebook_size, code_dim):
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, code_dim)

    def indices(self, z):  # (B, C, H, W) -> (B, H, W)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        codebook = self.embedding.weight
        dist = (flat**2).sum(1, keepdim=True) + (codebook**2).sum(1) - 2 * flat @ codebook.t()
        return dist.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, z):
        idx = self.indices(z)
        onehot = F.one_hot(idx.reshape(-1), self.embedding.num_embeddings).to(z.dtype)
        z_q = (onehot @ self.embedding.weight).view(*idx.shape, -1).permute(0, 3, 1, 2)
        return z + (z_q - z).detach(), idx


def _bias_index(ws):
    index = torch.empty(ws * ws, ws * ws, dtype=torch.long)
    for qy in range(ws):
        for qx in range(ws):
            for ky in range(ws):
                for kx in range(ws):
                    dy, dx = qy - ky + ws - 1, qx - kx + ws - 1
                    index[qy * ws + qx, ky * ws + kx] = dy * (2 * ws - 1) + dx
    return index


def _windows(x, ws):  # (B, H, W, C) -> (B*nW, ws*ws, C)
    c = x.shape[-1]
    patches = x.unfold(1, ws, ws).unfold(2, ws, ws)  # B, nh, nw, C, ws, ws
    return patches.permute(0, 1, 2, 4, 5, 3).reshape(-1, ws * ws, c)


def _unwindows(w, ws, b, h, wd):
    c = w.shape[-1]
    x = w.view(b, h // ws, wd // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def swin_mask(h, w, ws, shift):
    labels = torch.zeros(h, w)
    bounds = [slice(0, -ws), slice(-ws, -shift), slice(-shift, None)]
    count = 0
    for rows in bounds:
        for cols in bounds:
            labels[rows, cols] = count
            count += 1
    lw = _windows(labels[None, :, :, None], ws)[..., 0]
    return (lw[:, :, None] != lw[:, None, :]).float() * -100.0


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.ws, self.heads = ws, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", _bias_index(ws))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        nb, n, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).view(nb, n, 3, self.heads, d).unbind(2)
        attn = torch.einsum("bqhd,bkhd->bhqk", q * d**-0.5, k)
        bias = self.relative_position_bias_table[self.relative_position_index]
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(nb // nw, nw, self.heads, n, n) + mask[None, :, None]).view(
                nb, self.heads, n, n)
        out = torch.einsum("bhqk,bkhd->bqhd", attn.softmax(-1), v).reshape(nb, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, ws, shift, mlp_ratio, resolution):
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", swin_mask(resolution, resolution, ws, shift)
                             if shift else None)

    def forward(self, x):  # (B, H, W, C)
        b, h, w, _ = x.shape
        y = self.norm1(x)
        mask = None
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
            mask = swin_mask(h, w, self.ws, self.shift)
        y = _unwindows(self.attn(_windows(y, self.ws), mask), self.ws, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, heads, ws, mlp_ratio, resolution):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, ws, 0 if k % 2 == 0 else ws // 2, mlp_ratio, resolution)
            for k in range(depth))


class RSTB(nn.Module):
    def __init__(self, dim, depth, heads, ws, mlp_ratio, resolution):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, heads, ws, mlp_ratio, resolution)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x):  # (B, C, H, W)
        y = x.permute(0, 2, 3, 1)
        for block in self.residual_group.blocks:
            y = block(y)
        return self.conv(y.permute(0, 3, 1, 2)) + x


class SwinLayers(nn.Module):
    def __init__(self, dim, num_layers, depth, heads, ws, mlp_ratio, resolution=32):
        super().__init__()
        self.swin_blks = nn.ModuleList(
            RSTB(dim, depth, heads, ws, mlp_ratio, resolution) for _ in range(num_layers))

    def forward(self, x):
        for rstb in self.swin_blks:
            x = rstb(x)
        return x


def _up(cin, cout):
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1),
                         ResBlock(cout), ResBlock(cout))


class MultiScaleEncoder(nn.Module):
    def __init__(self, ch, in_res, lq, swin):
        super().__init__()
        self.in_conv = nn.Conv2d(3, ch[in_res], 4, padding=1)
        self.blocks = nn.ModuleList()
        res = in_res
        while res > CODE_RESOLUTION:
            self.blocks.append(nn.Sequential(nn.Conv2d(ch[res], ch[res // 2], 3, 2, 1),
                                             ResBlock(ch[res // 2]), ResBlock(ch[res // 2])))
            res //= 2
        if lq:
            self.blocks.append(SwinLayers(ch[res], **swin))
            for _ in range(2):
                self.blocks.append(_up(ch[res], ch[res * 2]))
                res *= 2

    def forward(self, x):
        feats = []
        x = self.in_conv(x)
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = _up(cin, cout)

    def forward(self, x):
        return self.block(x)


class CombineQuantBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)

    def forward(self, x):
        return self.conv(x)


class TorchFeMaSR(nn.Module):
    """FeMaSRNet with one codebook at 1/8 of HR. `lq=False`: the HQ VQGAN (scale 1).
    `channels`: per level (HR, 1/2, 1/4, 1/8), FeMaSR's (64, 128, 256, 256).
    forward(x) = the official `test` (symmetric pad by 1..64/scale px, crop)."""

    def __init__(self, lq=True, scale=4, channels=(64, 128, 256, 256), codebook_size=1024,
                 code_dim=512, swin=None, use_semantic_loss=False):
        super().__init__()
        self.lq, self.scale = lq, scale if lq else 1
        self.window = (swin or {}).get("ws", 8)
        ch = {256 >> level: c for level, c in enumerate(channels)}
        swin = swin or dict(num_layers=4, depth=6, heads=8, ws=8, mlp_ratio=4.0)
        self.multiscale_encoder = MultiScaleEncoder(ch, 256 // self.scale, lq, swin)
        self.decoder_group = nn.ModuleList(
            DecoderBlock(ch[CODE_RESOLUTION << i], ch[CODE_RESOLUTION << (i + 1)])
            for i in range(3))
        self.out_conv = nn.Conv2d(ch[256], 3, 3, 1, 1)
        self.quantize_group = nn.ModuleList([VectorQuantizer(codebook_size, code_dim)])
        self.before_quant_group = nn.ModuleList([nn.Conv2d(ch[CODE_RESOLUTION], code_dim, 1)])
        self.after_quant_group = nn.ModuleList([CombineQuantBlock(code_dim, ch[CODE_RESOLUTION])])
        if use_semantic_loss:
            self.conv_semantic = nn.Sequential(nn.Conv2d(512, 512, 1), nn.ReLU())

    def encode_and_decode(self, x):
        feats = self.multiscale_encoder(x)
        skips = feats[-3:] if self.lq else feats[::-1]
        z = self.before_quant_group[0](skips[0])
        z_q, idx = self.quantize_group[0](z)
        y = self.after_quant_group[0](z_q)
        for i, block in enumerate(self.decoder_group):
            if self.lq and i:
                y = y + skips[i]
            y = block(y)
        return self.out_conv(y), z, idx

    def forward(self, x):
        multiple = 8 * self.window // self.scale if self.lq else 64
        h, w = x.shape[2:]
        x = torch.cat([x, x.flip(2)], 2)[:, :, : (h // multiple + 1) * multiple]
        x = torch.cat([x, x.flip(3)], 3)[:, :, :, : (w // multiple + 1) * multiple]
        out, _, _ = self.encode_and_decode(x)
        return out[:, :, : h * self.scale, : w * self.scale]
