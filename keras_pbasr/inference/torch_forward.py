"""Inference forward pass of functional Keras models on the torch backend, with direct convs.

Keras' torch backend runs a Conv2D as: permute the kernel (a strided view that oneDNN then
copies), convolve, add the bias as a separate broadcast op, apply the activation as a third
op, all under Layer.__call__'s bookkeeping. The profile of RealESRGAN_x4plus on 64x64
(notes/issue-19-speed.md) shows the bias adds, kernel copies and activations costing as
much as a third of the convolutions. Here every plain 2D convolution (stride 1, dilation 1,
one group, "same" or "valid" padding, no activation or ReLU / LeakyReLU) becomes one
`torch.nn.functional.conv2d` with the bias fused, on a kernel prepared once in torch's
(out, in, kh, kw) layout, in channels_last memory, and the activation runs in place. Every
other layer is called as Keras calls it. The arithmetic is the same; only the convolution
algorithm oneDNN picks may differ, so outputs agree to float32 round-off (tested).

Intermediates are freed after their last use, so peak memory follows the live tensors only
(Keras' own eager graph walk keeps every layer's output until the end of the call).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import keras
import numpy as np

# Activations that run in place on the conv output, by the Keras function they replace.
_IN_PLACE_ACTIVATIONS = ("linear", "relu", "leaky_relu")


def _fusable_conv(layer) -> bool:
    """Whether `layer` is a Conv2D the direct path computes exactly as Keras does."""
    if type(layer) is not keras.layers.Conv2D:
        return False
    activation = getattr(layer.activation, "__name__", None)
    return (
        activation in _IN_PLACE_ACTIVATIONS
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and (layer.padding == "valid" or all(k % 2 == 1 for k in layer.kernel_size))
        and getattr(layer, "lora_rank", None) is None
    )


class _DirectConv:
    """One Conv2D as a single torch conv (bias fused) plus an in-place activation.

    The torch-layout kernel is cached and rebuilt whenever the Keras kernel tensor changes
    (another tensor, or an in-place update, seen through torch's version counter), so a
    model trained between calls is run with its current weights.
    """

    def __init__(self, layer):
        import torch

        self.layer = layer
        self.torch = torch
        self.channels_first = layer.data_format == "channels_first"
        self.padding = (
            tuple(k // 2 for k in layer.kernel_size) if layer.padding == "same" else 0
        )
        self.activation = layer.activation.__name__
        self.negative_slope = 0.2  # keras.activations.leaky_relu's default, used by name
        self._key = None
        self._weights = None

    def _prepared(self, dtype):
        kernel = self.layer.kernel.value
        bias = self.layer.bias.value if self.layer.use_bias else None
        key = (id(kernel), kernel._version, None if bias is None else (id(bias), bias._version),
               dtype)
        if key != self._key:
            weight = kernel.detach().permute(3, 2, 0, 1).to(dtype)
            weight = weight.contiguous(memory_format=self.torch.channels_last)
            self._weights = (weight, None if bias is None else bias.detach().to(dtype))
            self._key = key
        return self._weights

    def __call__(self, x):
        torch = self.torch
        dtype = keras.backend.standardize_dtype(self.layer.compute_dtype)
        dtype = getattr(torch, dtype)
        if x.dtype != dtype:
            x = x.to(dtype)  # Keras autocasts a layer's inputs to its compute dtype
        weight, bias = self._prepared(dtype)
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)  # a view: NHWC memory is channels_last NCHW
        y = torch.nn.functional.conv2d(x, weight, bias, padding=self.padding)
        if self.activation == "relu":
            y = torch.relu_(y)
        elif self.activation == "leaky_relu":
            y = torch.nn.functional.leaky_relu_(y, self.negative_slope)
        return y if self.channels_first else y.permute(0, 2, 3, 1)


def build_torch_forward(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy -> numpy inference call of a functional Keras model on the torch backend.

    Example (with KERAS_BACKEND=torch):
    >>> import numpy as np
    >>> from keras_pbasr.models import SRVGGNetCompact
    >>> model = SRVGGNetCompact(num_feat=8, num_conv=2)
    >>> forward = build_torch_forward(model)  # doctest: +SKIP
    >>> forward(np.zeros((1, 8, 8, 3), "float32")).shape  # doctest: +SKIP
    (1, 32, 32, 3)
    """
    import torch

    # Private Keras API with no public equivalent: Functional's own topological order.
    nodes = [
        node
        for depth in sorted(model._nodes_by_depth, reverse=True)
        for node in model._nodes_by_depth[depth]
        if node.operation is not None and not node.is_input
    ]
    direct = {id(node): _DirectConv(node.operation) for node in nodes
              if _fusable_conv(node.operation)}
    calls = [direct.get(id(node), node.operation) for node in nodes]
    uses = Counter(id(t) for node in nodes for t in node.input_tensors)
    keep = {id(t) for t in model.outputs}
    input_id, output_id = id(model.inputs[0]), id(model.outputs[0])

    def forward(x: np.ndarray) -> np.ndarray:
        remaining = Counter(uses)
        with torch.inference_mode():
            tensors = {input_id: keras.ops.convert_to_tensor(x)}
            for node, call in zip(nodes, calls):
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = call(*args, **kwargs)
                for ref, value in zip(node.outputs, keras.tree.flatten(outputs)):
                    tensors[id(ref)] = value
                for ref in node.input_tensors:
                    remaining[id(ref)] -= 1
                    if remaining[id(ref)] == 0 and id(ref) not in keep:
                        tensors.pop(id(ref), None)
            return keras.ops.convert_to_numpy(tensors[output_id])

    return forward
