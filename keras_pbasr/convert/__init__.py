"""Converting official PyTorch checkpoints and ncnn models into keras_pbasr models.

torch is imported only when a checkpoint is read. ncnn models (.param + .bin) are read in
pure Python (`keras_pbasr.convert.ncnn`). Writing either as a preset directory is the
presets package's job (`keras_pbasr.presets.convert_checkpoint`, `convert_ncnn`), which sits
above this one: the built-in presets are converted on first use.
"""

from keras_pbasr.convert.checkpoint_conversion import checkpoint_weights, convert_weights
from keras_pbasr.convert.ncnn import (
    NcnnFormatError,
    read_ncnn_model,
    recognise_ncnn_graph,
)
from keras_pbasr.convert.ncnn_conversion import ncnn_bytes_to_model, ncnn_to_model
from keras_pbasr.convert.registry import (
    ArchitectureConverter,
    ConversionError,
    ConversionReport,
    WeightTarget,
    available_converters,
    get_converter,
    infer_converter,
    register_converter,
)
from keras_pbasr.utils.torch_files import CheckpointError, load_torch_state_dict

__all__ = [
    "ArchitectureConverter",
    "CheckpointError",
    "ConversionError",
    "ConversionReport",
    "NcnnFormatError",
    "WeightTarget",
    "available_converters",
    "checkpoint_weights",
    "convert_weights",
    "get_converter",
    "infer_converter",
    "load_torch_state_dict",
    "ncnn_bytes_to_model",
    "ncnn_to_model",
    "read_ncnn_model",
    "recognise_ncnn_graph",
    "register_converter",
]
