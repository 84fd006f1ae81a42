"""Converting official PyTorch checkpoints into keras_pbasr models and presets.

torch is imported only when a checkpoint is read.
"""

from keras_pbasr.convert.checkpoint_conversion import convert_checkpoint
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
from keras_pbasr.convert.torch_checkpoint import CheckpointError, load_torch_state_dict

__all__ = [
    "ArchitectureConverter",
    "CheckpointError",
    "ConversionError",
    "ConversionReport",
    "WeightTarget",
    "available_converters",
    "convert_checkpoint",
    "get_converter",
    "infer_converter",
    "load_torch_state_dict",
    "register_converter",
]
