"""Architecture converters: from a torch state dict to a Keras model.

One converter per model family, next to its model (e.g.
keras_pbasr/models/rrdbnet/rrdbnet_convert.py). A converter subclasses
`ArchitectureConverter` and is decorated with `@register_converter`; its family's
`__init__.py` imports it and names it in the architecture registry
(`keras_pbasr.models.registry.BACKBONES`). Importing `keras_pbasr` imports every family, so
the lookups below see every converter (this module never imports the models).

Most converters only implement `matches`, `config_from_state_dict`, `build` and
`weight_targets` (torch key -> Keras variable + layout transform); the shared `assign` then
checks every key and shape before writing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_pbasr.convert.tensors import torch_conv_to_keras, torch_linear_to_keras
from keras_pbasr.utils.arguments import UnknownArgumentError

_REGISTRY: dict[str, ArchitectureConverter] = {}


class ConversionError(ValueError):
    """A state dict does not fit the architecture; `report` lists every problem."""

    def __init__(self, message: str, report: ConversionReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class WeightTarget:
    """Where one torch tensor goes: a Keras variable and the layout change on the way."""

    variable: keras.Variable
    transform: Callable[[np.ndarray], np.ndarray] = np.asarray


@dataclass
class ConversionReport:
    """What `assign` did. `skipped` lists everything not converted in non-strict mode."""

    arch: str
    assigned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def skipped(self) -> list[str]:
        return [*self.missing, *self.unexpected, *(key for key, _, _ in self.mismatched)]

    def summary(self, limit: int = 20) -> str:
        lines = [f"{self.arch}: {len(self.assigned)} tensors converted"]
        if self.ignored:
            lines.append(f"ignored (recomputed or not weights): {_clip(self.ignored, limit)}")
        if self.missing:
            lines.append(f"missing from the checkpoint: {_clip(self.missing, limit)}")
        if self.unexpected:
            lines.append(f"unexpected in the checkpoint: {_clip(self.unexpected, limit)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {got}, model expects {want})"
                     for k, want, got in self.mismatched]
            lines.append(f"mis-shaped: {_clip(shown, limit)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "assigned": len(self.assigned),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [
                {"key": k, "expected": list(want), "got": list(got)}
                for k, want, got in self.mismatched
            ],
            "ignored": self.ignored,
        }


class ArchitectureConverter:
    """Base class for one model family's converter.

    Subclasses set `name` and implement `matches`, `config_from_state_dict`, `build` and
    either `weight_targets` (the common case) or a whole `assign`.

    Example:
    >>> @register_converter  # doctest: +SKIP
    ... class MyNetConverter(ArchitectureConverter):
    ...     name = "mynet"
    ...     def matches(self, keys): return "mynet_head.weight" in keys
    ...     def config_from_state_dict(self, sd): return {"num_feat": sd["conv.weight"].shape[0]}
    ...     def build(self, config): return MyNet(**config)
    ...     def weight_targets(self, model, config): return {...}
    """

    name: str = ""

    def matches(self, keys: Collection[str]) -> bool:
        raise NotImplementedError

    def config_from_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> dict:
        raise NotImplementedError

    def build(self, config: dict) -> keras.Model:
        raise NotImplementedError

    def weight_targets(self, model: keras.Model, config: dict) -> dict[str, WeightTarget]:
        """torch state-dict key -> WeightTarget, for every tensor the model needs."""
        raise NotImplementedError

    def is_ignored(self, key: str) -> bool:
        """Keys that are present in official files but not loaded (e.g. buffers that the
        Keras model recomputes). None by default."""
        return False

    def convert(
        self, state_dict: Mapping[str, np.ndarray], strict: bool = True,
        config_overrides: dict | None = None,
    ) -> tuple[keras.Model, ConversionReport]:
        """Infers the config, builds the model and assigns the weights."""
        config = {**self.config_from_state_dict(state_dict), **(config_overrides or {})}
        try:
            model = self.build(config)
        except UnknownArgumentError as exc:
            raise ConversionError(
                f"config override(s) (CLI: --set) {sorted(config_overrides or {})}: {exc}"
            ) from exc
        return model, self.assign(model, state_dict, strict=strict, config=config)

    def assign(
        self,
        model: keras.Model,
        state_dict: Mapping[str, np.ndarray],
        strict: bool = True,
        config: dict | None = None,
    ) -> ConversionReport:
        """Copies `state_dict` into `model`. Strict mode checks everything first and raises
        ConversionError listing every missing, unexpected and mis-shaped key, writing
        nothing; non-strict mode assigns what fits and reports the rest."""
        if config is None:
            config = model.get_config()
        targets = self.weight_targets(model, config)
        report = ConversionReport(arch=self.name)
        converted = {}
        for key in state_dict:
            if key in targets:
                continue
            if self.is_ignored(key):
                report.ignored.append(key)
            else:
                report.unexpected.append(key)
        for key, target in targets.items():
            if key not in state_dict:
                report.missing.append(key)
                continue
            try:
                value = target.transform(np.asarray(state_dict[key]))
            except ValueError:  # a layout helper rejected the tensor's shape
                value = None
            want = tuple(target.variable.shape)
            if value is None or tuple(value.shape) != want:
                report.mismatched.append((key, want, tuple(np.shape(state_dict[key]))))
                continue
            converted[key] = value
        if strict and not report.ok:
            raise ConversionError(
                "the checkpoint does not match the architecture "
                f"(use non-strict mode to convert what fits):\n{report.summary()}",
                report,
            )
        for key, value in converted.items():
            target = targets[key]
            target.variable.assign(value.astype(target.variable.dtype))
            report.assigned.append(key)
        return report


def register_converter(converter):
    """Registers a converter class (used as a decorator) or instance under its `name`."""
    instance = converter() if isinstance(converter, type) else converter
    if not instance.name:
        raise ValueError(f"{type(instance).__name__} has no name")
    _REGISTRY[instance.name] = instance
    return converter


def available_converters() -> list[str]:
    return sorted(_REGISTRY)


def get_converter(name: str) -> ArchitectureConverter:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def infer_converter(keys: Collection[str], source: str = "the checkpoint") -> ArchitectureConverter:
    """The one registered converter whose `matches` accepts these keys."""
    keys = set(keys)
    found = [c for c in _REGISTRY.values() if c.matches(keys)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConversionError(
            f"cannot tell the architecture of {source} from its keys "
            f"(first ones: {_clip(sorted(keys), 8)}); known: {', '.join(sorted(_REGISTRY))}. "
            "Pass arch=... (CLI: --arch)"
        )
    raise ConversionError(
        f"{source} matches several architectures ({', '.join(c.name for c in found)}); "
        "pass arch=... (CLI: --arch)"
    )


# Helpers for weight_targets ------------------------------------------------------------

def require(state_dict: Mapping[str, np.ndarray], key: str, arch: str) -> np.ndarray:
    """`state_dict[key]`, or a ConversionError naming the architecture and the missing key."""
    if key not in state_dict:
        raise ConversionError(f"{arch}: required key {key} is missing")
    return np.asarray(state_dict[key])


def norm_targets(layer: keras.layers.Layer, torch_name: str) -> dict[str, WeightTarget]:
    """`torch_name.weight` / `.bias` of an nn.LayerNorm or nn.GroupNorm -> gamma / beta."""
    return {
        f"{torch_name}.weight": WeightTarget(layer.gamma),
        f"{torch_name}.bias": WeightTarget(layer.beta),
    }


def dense_targets(layer: keras.layers.Dense, torch_name: str) -> dict[str, WeightTarget]:
    """`torch_name.weight` / `.bias` of an nn.Linear -> a Keras Dense's kernel / bias."""
    return {
        f"{torch_name}.weight": WeightTarget(layer.kernel, torch_linear_to_keras),
        f"{torch_name}.bias": WeightTarget(layer.bias),
    }


def conv_targets(layer: keras.layers.Layer, torch_name: str,
                 kernel_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 bias_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 ) -> dict[str, WeightTarget]:
    """`torch_name.weight` / `.bias` of an nn.Conv2d -> a Keras Conv2D's kernel / bias."""
    def kernel(w):
        w = torch_conv_to_keras(w)
        return w if kernel_transform is None else kernel_transform(w)

    targets = {f"{torch_name}.weight": WeightTarget(layer.kernel, kernel)}
    if layer.use_bias:
        targets[f"{torch_name}.bias"] = WeightTarget(layer.bias, bias_transform or np.asarray)
    return targets


def _clip(items: list, limit: int) -> str:
    items = [str(i) for i in items]
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"
    return ", ".join(items)
