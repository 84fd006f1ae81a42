"""keras_pbasr: blur-aware blind super-resolution (PBaSR) for Keras 3.

Importing this package never imports TensorFlow; only `keras_pbasr.data` does, lazily.
"""

from keras_pbasr import blurmap
from keras_pbasr.version import __version__

__all__ = ["__version__", "blurmap"]
