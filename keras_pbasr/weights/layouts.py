"""Layer layouts of the torchvision feature networks (pure data, no Keras).

`feature_layer_names(network)` lists the layers of torchvision's `model.features` in order,
so the torchvision key `features.{i}.weight` belongs to layer `feature_layer_names(net)[i]`.
Names follow BasicSR: `convB_I` (pre-ReLU), `reluB_I` (post-ReLU) and `poolB` for VGG;
`convI`, `reluI`, `poolI` for AlexNet.
"""

from __future__ import annotations

FEATURE_NETWORKS = ("vgg16", "vgg19", "alexnet")

VGG_BLOCK_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_BLOCK_CHANNELS = (64, 128, 256, 512, 512)

# name, out channels, kernel, stride, padding (torchvision alexnet().features)
ALEXNET_CONVS = (
    ("conv1", 64, 11, 4, 2),
    ("conv2", 192, 5, 1, 2),
    ("conv3", 384, 3, 1, 1),
    ("conv4", 256, 3, 1, 1),
    ("conv5", 256, 3, 1, 1),
)
# AlexNet max-pools (kernel 3, stride 2) follow these ReLUs.
ALEXNET_POOLED = {"relu1": "pool1", "relu2": "pool2", "relu5": "pool5"}


def vgg_depth(network: str) -> int:
    depth = {"vgg16": 16, "vgg19": 19}.get(network)
    if depth is None:
        raise ValueError(f"not a VGG network: {network!r} (use vgg16 or vgg19)")
    return depth


def feature_layer_names(network: str) -> list[str]:
    """All layers of torchvision's `features` for `network`, in order."""
    if network == "alexnet":
        names = []
        for conv_name, *_ in ALEXNET_CONVS:
            relu = conv_name.replace("conv", "relu")
            names += [conv_name, relu]
            if relu in ALEXNET_POOLED:
                names.append(ALEXNET_POOLED[relu])
        return names
    names = []
    for block, num_convs in enumerate(VGG_BLOCK_CONVS[vgg_depth(network)], start=1):
        for i in range(1, num_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def conv_shapes(network: str) -> dict[str, tuple[tuple[int, ...], tuple[int]]]:
    """Keras (kernel, bias) shapes of every conv of `network`, in order."""
    if network == "alexnet":
        shapes, in_ch = {}, 3
        for name, out_ch, kernel, _, _ in ALEXNET_CONVS:
            shapes[name] = ((kernel, kernel, in_ch, out_ch), (out_ch,))
            in_ch = out_ch
        return shapes
    shapes, in_ch = {}, 3
    for block, (num_convs, out_ch) in enumerate(
        zip(VGG_BLOCK_CONVS[vgg_depth(network)], VGG_BLOCK_CHANNELS), start=1
    ):
        for i in range(1, num_convs + 1):
            shapes[f"conv{block}_{i}"] = ((3, 3, in_ch, out_ch), (out_ch,))
            in_ch = out_ch
    return shapes
