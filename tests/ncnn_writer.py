"""Writes small ncnn models (.param text + .bin bytes) from the torch reference networks, in the
layout that the official Real-ESRGAN ncnn files use (Split layers for shared blobs, LeakyReLU
fused into the convolutions, Eltwise sums with coefficients, float16 or float32 storage).

Independent of keras_pbasr: the tests run these files through the ncnn runtime (to check the
writer) and through keras_pbasr's reader (to check the reader and the converters).
"""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np

TAG_FLOAT16 = 0x01306B47


class NcnnGraph:
    def __init__(self, fp16: bool = True):
        self.fp16 = fp16
        self.layers: list[list] = []  # [type, name, inputs, outputs, params]
        self.data: list[bytes] = []
        self.count = 0

    def blob(self) -> str:
        self.count += 1
        return str(self.count)

    def add(self, kind, inputs, params="", name=None, output=None, data=b""):
        output = output or self.blob()
        self.layers.append([kind, name or f"{kind}_{len(self.layers)}", list(inputs), [output],
                            params])
        self.data.append(data)
        return output

    def conv(self, x, weight, bias, leaky=None, output=None):
        out_ch = weight.shape[0]
        params = f"0={out_ch} 1={weight.shape[-1]} 4=1 5=1 6={weight.size}"
        if leaky is not None:
            params += f" 9=2 -23310=1,{leaky:e}"
        if self.fp16:
            blob = struct.pack("<I", TAG_FLOAT16) + weight.astype("<f2").tobytes()
            blob += b"\0" * (-len(blob) % 4)
        else:
            blob = struct.pack("<I", 0) + weight.astype("<f4").tobytes()
        blob += bias.astype("<f4").tobytes()
        return self.add("Convolution", [x], params, output=output, data=blob)

    def text_and_bytes(self) -> tuple[str, bytes]:
        """Inserts a Split after every blob read by more than one layer, as ncnn's converters
        do, and returns the .param text and the .bin bytes."""
        uses = Counter(b for layer in self.layers for b in layer[2])
        layers, data = [], []
        remaining = {b: n for b, n in uses.items() if n > 1}
        taken = Counter()
        for layer, blob_data in zip(self.layers, self.data):
            kind, name, inputs, outputs, params = layer
            renamed = []
            for b in inputs:
                if b in remaining:
                    renamed.append(f"{b}_splitncnn_{taken[b]}")
                    taken[b] += 1
                else:
                    renamed.append(b)
            layers.append([kind, name, renamed, outputs, params])
            data.append(blob_data)
            for b in outputs:
                if b in remaining:
                    copies = [f"{b}_splitncnn_{i}" for i in range(remaining[b])]
                    layers.append(["Split", f"splitncnn_{b}", [b], copies, ""])
                    data.append(b"")
        blobs = {b for layer in layers for b in layer[3]}
        lines = ["7767517", f"{len(layers)} {len(blobs)}"]
        for kind, name, inputs, outputs, params in layers:
            lines.append(f"{kind:<24} {name:<24} {len(inputs)} {len(outputs)} "
                         f"{' '.join(inputs + outputs)} {params}".rstrip())
        return "\n".join(lines) + "\n", b"".join(data)


def _numpy(parameter) -> np.ndarray:
    return parameter.detach().cpu().numpy().astype(np.float32)


def _conv(graph, x, module, leaky=None, output=None):
    return graph.conv(x, _numpy(module.weight), _numpy(module.bias), leaky, output)


def rrdbnet_to_ncnn(net, fp16: bool = True) -> tuple[str, bytes]:
    """tests.torch_reference.rrdbnet.TorchRRDBNet (scale 4) -> (.param text, .bin bytes)."""
    graph = NcnnGraph(fp16)
    data = graph.add("Input", [], name="input.1", output="data")
    feat = _conv(graph, data, net.conv_first)
    x = feat
    for block in net.body:
        block_in = x
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            feats = [x]
            for conv in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4):
                inp = feats[0] if len(feats) == 1 else graph.add("Concat", feats, "0=0")
                feats.append(_conv(graph, inp, conv, leaky=0.2))
            x5 = _conv(graph, graph.add("Concat", feats, "0=0"), rdb.conv5)
            x = graph.add("Eltwise", [x5, x], "0=1 -23301=2,2.000000e-01,1.000000e+00")
        x = graph.add("Eltwise", [x, block_in], "0=1 -23301=2,2.000000e-01,1.000000e+00")
    body = _conv(graph, x, net.conv_body)
    feat = graph.add("BinaryOp", [feat, body], "0=0")
    for conv in (net.conv_up1, net.conv_up2):
        feat = graph.add("Interp", [feat], "0=1 1=2.000000e+00 2=2.000000e+00")
        feat = _conv(graph, feat, conv, leaky=0.2)
    feat = _conv(graph, feat, net.conv_hr, leaky=0.2)
    _conv(graph, feat, net.conv_last, output="output")
    return graph.text_and_bytes()


def srvgg_to_ncnn(net, fp16: bool = True, final_scale: float | None = None) -> tuple[str, bytes]:
    """tests.torch_reference.srvgg.TorchSRVGGNetCompact (prelu or leakyrelu) -> ncnn; with
    `final_scale`, a bicubic Interp by that factor at the end (animevideov3 x2 / x3)."""
    from torch import nn

    graph = NcnnGraph(fp16)
    data = graph.add("Input", [], name="input.1", output="data")
    x = data
    layers = list(net.body)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            fused = isinstance(layers[i + 1], nn.LeakyReLU) if i + 1 < len(layers) else False
            x = _conv(graph, x, layer, leaky=layer_slope(layers[i + 1]) if fused else None)
        elif isinstance(layer, nn.PReLU):
            slopes = _numpy(layer.weight)
            x = graph.add("PReLU", [x], f"0={slopes.size}", data=slopes.astype("<f4").tobytes())
        elif isinstance(layer, nn.ReLU):
            x = graph.add("ReLU", [x])
    r = net.upscale
    shuffled = graph.add("PixelShuffle", [x], f"0={r}")
    base = graph.add("Interp", [data], f"0=1 1={float(r):e} 2={float(r):e}")
    last = "output" if final_scale is None else None
    out = graph.add("BinaryOp", [shuffled, base], "0=0", output=last)
    if final_scale is not None:
        graph.add("Interp", [out], f"0=3 1={final_scale:e} 2={final_scale:e}", output="output")
    return graph.text_and_bytes()


def layer_slope(layer) -> float:
    return float(layer.negative_slope)


def run_ncnn(param_path, bin_path, image_hwc: np.ndarray) -> np.ndarray:
    """The ncnn runtime's output (H', W', C) for one float32 RGB image (H, W, C), on CPU."""
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    assert net.load_param(str(param_path)) == 0, f"ncnn cannot parse {param_path}"
    assert net.load_model(str(bin_path)) == 0, f"ncnn cannot read {bin_path}"
    # ncnn.Mat wraps the array's memory: keep `chw` alive until the output is copied.
    chw = np.ascontiguousarray(image_hwc.transpose(2, 0, 1), dtype=np.float32)
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    status, out = extractor.extract("output")
    assert status == 0
    result = np.array(out).transpose(1, 2, 0).copy()
    del chw
    return result
