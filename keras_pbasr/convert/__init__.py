"""Converting official PyTorch checkpoints and ncnn models into keras_pbasr models and presets.

torch is imported only when a checkpoint is read. ncnn models (.param + .bin) are read in
pure Python (`keras_pbasr.convert.ncnn`); `keras_pbasr.presets.convert_ncnn` writes them as
preset directories.
"""

from keras_pbasr.convert.checkpoint_conversion import convert_checkpoint
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
    "convert_checkpoint",
    "get_converter",
    "infer_converter",
    "load_torch_state_dict",
    "ncnn_bytes_to_model",
    "ncnn_to_model",
    "read_ncnn_model",
    "recognise_ncnn_graph",
    "register_converter",
]
