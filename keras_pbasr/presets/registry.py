"""The built-in official presets, as `keras_pbasr.presets` sees them.

Each family registers its presets from `models/<family>/<family>_presets.py`; the descriptions
(`BuiltinPreset`, `CheckpointSource`, `NcnnSource`), the merged `BUILTIN_PRESETS` table and
the cache location live in `keras_pbasr.models.registry`, which the families import without
importing this package. This module names them for the loading and fetching code here.
"""

from keras_pbasr.models import BUILTIN_PRESETS
from keras_pbasr.models.registry import BuiltinPreset, CheckpointSource, NcnnSource, cache_dir

__all__ = ["BUILTIN_PRESETS", "BuiltinPreset", "CheckpointSource", "NcnnSource", "cache_dir"]
