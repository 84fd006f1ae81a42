"""Run the same model (and PBaSR training) on several Keras backends and compare them."""

from keras_pbasr.compare.runner import compare_backends

__all__ = ["compare_backends"]
