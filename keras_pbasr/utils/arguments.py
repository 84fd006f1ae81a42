"""Strict constructors: an unknown keyword argument is an error that lists the valid ones.

Keras' functional `Model.__init__` silently accepts and drops keywords it does not know, so a
typo (`RRDBNet(num_blocks=1)`) used to build the default model. Every backbone and
discriminator calls `refuse_unknown_arguments` with its `**kwargs` before building anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

# What Keras itself may pass to a model's constructor (from_config, clone_model).
KERAS_MODEL_ARGUMENTS = ("name", "dtype", "trainable")


class UnknownArgumentError(TypeError, ValueError):
    """A constructor got a keyword argument it does not have (a TypeError, as Python raises
    for unexpected keywords, and a ValueError, as configuration errors are)."""


def refuse_unknown_arguments(owner: type, kwargs: Mapping[str, object]) -> None:
    """Raises UnknownArgumentError naming the keywords of `kwargs` that are neither
    KERAS_MODEL_ARGUMENTS nor parameters of `owner.__init__`, with the valid ones.

    Example:
    >>> class Net:
    ...     def __init__(self, num_block=23, **kwargs):
    ...         refuse_unknown_arguments(Net, kwargs)
    >>> Net(num_blocks=1)
    Traceback (most recent call last):
    ...
    keras_pbasr.utils.arguments.UnknownArgumentError: Net got unknown argument(s) ['num_blocks']; valid: dtype, name, num_block, trainable
    """  # noqa: E501
    unknown = sorted(set(kwargs) - set(KERAS_MODEL_ARGUMENTS))
    if unknown:
        raise UnknownArgumentError(
            f"{owner.__name__} got unknown argument(s) {unknown}; valid: "
            f"{', '.join(valid_arguments(owner))}"
        )


def valid_arguments(owner: type) -> list[str]:
    """Sorted keyword names `owner(...)` accepts: its own parameters and Keras' own."""
    own = [
        name for name, parameter in inspect.signature(owner.__init__).parameters.items()
        if name != "self"
        and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]
    return sorted({*own, *KERAS_MODEL_ARGUMENTS})
