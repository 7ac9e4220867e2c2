"""Per-layer configuration: :class:`LayerConfig` and the assignment of configs to a model's layers.

A :class:`LayerConfig` says which multiplier a layer uses and how its operands are quantised. An
:class:`AssignmentMapping` maps a model's layers to configs with a clear priority, lowest first:
global default < module type < name regex < exact name (among regexes, the last one that matches
wins). Both are frozen and round-trip through JSON with ``to_dict``/``from_dict``.

Multiplier specs: ``"float"`` (leave the layer in float), ``"exact"`` (quantised, exact products),
a library name (e.g. ``"mul8s_1KV6"``), a path to a ``.npz`` LUT or a netlist, or a
:class:`~approxlut.lutgen.lut.Lut` object.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union

from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut

SCHEMES = ("auto", "symmetric", "affine")
CALIBRATIONS = ("percentile", "max", "mse")
GRADS = ("difference", "ste")
MIN_BITS = 2
MAX_LUT_BITS = 8
MAX_EXACT_BITS = 16

Spec = Union[str, Lut, "LayerConfig"]


@dataclass(frozen=True)
class LayerConfig:
    """How one layer multiplies.

    Attributes:
        multiplier: ``"float"``, ``"exact"``, a library name, a path (``.npz`` LUT or netlist) or a ``Lut``.
        bits: operand widths ``(bits_a, bits_b)`` (activation, weight) or one int for both. ``None``:
            the LUT's widths (8 for ``"exact"``). Given together with a LUT, it must match the LUT.
        scheme: ``"symmetric"`` (signed codes, zero point 0), ``"affine"`` (unsigned codes with zero
            points) or ``"auto"``: symmetric for a signed LUT, affine for an unsigned one.
        calibration: activation range method, ``"percentile"``, ``"max"`` or ``"mse"``.
        percentile: the percentile (of |x| for symmetric, of both tails for affine) used by ``"percentile"``.
        weight_calibration: weight range method (``"max"`` by default; percentile/mse also allowed).
        per_channel: weight scales per output channel (``None``: yes for symmetric, no for affine); for a
            product of two activations (:mod:`approxlut.nn.products`), ``True`` gives each head its own
            range (operands ``[batch, heads, L, E]``), otherwise one range per operand.
        grad: backward through the multiplier, ``"difference"`` (gradient LUTs) or ``"ste"``.
        engine: LUT-GEMM engine name, or ``None`` for the best available.
    """

    multiplier: str | Lut = "exact"
    bits: int | tuple[int, int] | None = None
    scheme: str = "auto"
    calibration: str = "percentile"
    percentile: float = 99.9
    weight_calibration: str = "max"
    per_channel: bool | None = None
    grad: str = "difference"
    engine: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.multiplier, (str, Lut)) or (isinstance(self.multiplier, str) and not self.multiplier):
            raise ConfigError(f"multiplier must be a name, path, 'exact', 'float' or a Lut, got {self.multiplier!r}")
        if isinstance(self.bits, list):
            object.__setattr__(self, "bits", tuple(self.bits))
        if self.bits is not None:
            pair = (self.bits, self.bits) if isinstance(self.bits, int) else self.bits
            limit = MAX_EXACT_BITS if self.multiplier == "exact" else MAX_LUT_BITS
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) and MIN_BITS <= b <= limit for b in pair)
            ):
                raise ConfigError(f"bits={self.bits!r}: expected an int or a pair of ints in {MIN_BITS}..{limit}")
        _choice("scheme", self.scheme, SCHEMES)
        _choice("calibration", self.calibration, CALIBRATIONS)
        _choice("weight_calibration", self.weight_calibration, CALIBRATIONS)
        _choice("grad", self.grad, GRADS)
        if not isinstance(self.percentile, (int, float)) or not 50.0 < float(self.percentile) <= 100.0:
            raise ConfigError(f"percentile={self.percentile!r} must be in (50, 100]")
        if self.per_channel is not None and not isinstance(self.per_channel, bool):
            raise ConfigError(f"per_channel={self.per_channel!r}: expected true, false or null")
        if self.engine is not None and (not isinstance(self.engine, str) or not self.engine):
            raise ConfigError(f"engine={self.engine!r}: expected an engine name or null")

    def __deepcopy__(self, memo: dict[int, Any]) -> LayerConfig:
        return self  # immutable (a Lut in it is never modified): copies of a model share it

    @property
    def is_float(self) -> bool:
        """Whether the layer stays in float (no quantisation, no multiplier)."""
        return self.multiplier == "float"

    @property
    def bit_pair(self) -> tuple[int, int] | None:
        """``bits`` as ``(bits_a, bits_b)``, or ``None``."""
        if self.bits is None:
            return None
        return (self.bits, self.bits) if isinstance(self.bits, int) else self.bits

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the fields that differ from the defaults (``multiplier`` always)."""
        if isinstance(self.multiplier, Lut):
            raise ConfigError(
                f"multiplier {self.multiplier!r} is a Lut object and cannot be written to JSON; "
                "add it to the library or save it as .npz and refer to it by name or path"
            )
        out: dict[str, Any] = {"multiplier": self.multiplier}
        default = LayerConfig()
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "multiplier" and value != getattr(default, f.name):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> LayerConfig:
        """The inverse of :meth:`to_dict`; a plain string is a multiplier spec."""
        if isinstance(data, str):
            return cls(multiplier=data)
        if not isinstance(data, Mapping):
            raise ConfigError(f"layer config must be a string or an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown layer config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def as_config(spec: Spec) -> LayerConfig:
    """A :class:`LayerConfig` from a config, a ``Lut`` or a multiplier spec string."""
    if isinstance(spec, LayerConfig):
        return spec
    if isinstance(spec, (str, Lut)):
        return LayerConfig(multiplier=spec)
    raise ConfigError(f"cannot use {spec!r} as a layer config (expected a name, path, Lut or LayerConfig)")


def _type_name(t: type) -> str:
    return t.__name__ if t.__module__.startswith("torch.nn") else f"{t.__module__}.{t.__qualname__}"


def _resolve_type(name: str) -> type[nn.Module]:
    """A module class from a JSON name: ``"Conv2d"`` (torch.nn) or ``"package.module.Class"`` of a module already
    imported (the model's own: an assignment never imports code it names)."""
    if "." not in name:
        found = getattr(nn, name, None)
    else:
        module_name, _, attr = name.rpartition(".")
        found = getattr(sys.modules.get(module_name), attr, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ConfigError(
            f"unknown module type {name!r} in assignment (use e.g. 'Conv2d', or 'module.Class' of the model's "
            "own modules)"
        )
    return found


def saved_file(text: str) -> tuple[Path, str | None] | None:
    """``(path, front point text or None)`` where ``--assign`` text names a saved assignment (``FILE.json`` or
    ``FILE.json#N``), else ``None``."""
    saved = re.fullmatch(r"(?P<path>.+\.json)(?:#(?P<point>[^#]*))?", text.strip(), flags=re.IGNORECASE)
    return None if saved is None else (Path(saved["path"]).expanduser(), saved["point"])


def read_saved(text: str) -> Any:
    """The JSON of the saved assignment file ``--assign`` text names (``FILE.json`` or ``FILE.json#N``), read once
    for every use of it (:meth:`AssignmentMapping.parse` ``saved=``), or ``None`` where the text names no file."""
    saved = saved_file(text)
    if saved is None:
        return None
    from ..fileio import read_json

    return read_json(saved[0], what="assignment file")


@dataclass(frozen=True)
class AssignmentMapping:
    """Which :class:`LayerConfig` each layer gets; priority global < type < name regex < exact name.

    Attributes:
        default: the global config (``"float"``: layers not otherwise named stay float).
        types: ``(module type, config)`` pairs; a module matches its own class or a base class listed
            here (the most specific listed class wins).
        patterns: ``(regex, config)`` pairs matched with ``re.fullmatch`` on the qualified layer name;
            the last matching pattern wins.
        names: ``{exact layer name: config}``.

    Example:
        >>> m = AssignmentMapping.build(default="exact", types={nn.Linear: "float"}, names={"fc": "exact"})
        >>> m.config_for("fc", nn.Linear(2, 2)).multiplier
        'exact'
    """

    default: LayerConfig = field(default_factory=lambda: LayerConfig(multiplier="float"))
    types: tuple[tuple[type[nn.Module], LayerConfig], ...] = ()
    patterns: tuple[tuple[str, LayerConfig], ...] = ()
    names: tuple[tuple[str, LayerConfig], ...] = ()

    def __post_init__(self) -> None:
        for pattern, _ in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"bad layer-name regex {pattern!r}: {exc}") from None

    @classmethod
    def build(
        cls,
        default: Spec = "float",
        *,
        types: Mapping[type[nn.Module], Spec] | None = None,
        patterns: Mapping[str, Spec] | None = None,
        names: Mapping[str, Spec] | None = None,
    ) -> AssignmentMapping:
        """A mapping from plain specs (names, paths, ``Lut`` objects or configs)."""
        return cls(
            default=as_config(default),
            types=tuple((t, as_config(s)) for t, s in (types or {}).items()),
            patterns=tuple((p, as_config(s)) for p, s in (patterns or {}).items()),
            names=tuple((n, as_config(s)) for n, s in (names or {}).items()),
        )

    @classmethod
    def coerce(cls, assignment: AssignmentMapping | Mapping[str, Any] | Spec) -> AssignmentMapping:
        """An assignment from a mapping, a dict (JSON form, or ``{layer name: spec}``) or one global spec."""
        if isinstance(assignment, AssignmentMapping):
            return assignment
        if isinstance(assignment, Mapping):
            if set(assignment) & {"default", "types", "regex", "layers"}:
                return cls.from_dict(assignment)
            return cls.build(names=assignment)
        return cls.build(default=assignment)

    @classmethod
    def parse(cls, text: str, *, default: Spec = "float", saved: Any = None) -> AssignmentMapping:
        """An assignment from command-line text; ``default`` where it gives none.

        ``NAME`` (one multiplier spec for every layer), ``path.json`` (the :meth:`to_dict` form; a file
        ``lutgen evaluate --save`` wrote after an auto search also lists its front: ``path.json#N`` takes
        front point ``N``), or comma-separated ``key=SPEC`` items where ``key`` is a layer name,
        ``default`` (or ``*``), ``type:Conv2d`` or ``re:<regex>``, e.g.
        ``default=exact,type:Linear=float,conv1=mul8s_1KV6``. ``saved``: that file's JSON where the caller read
        it already (:func:`read_saved`), so that every use of the text sees one version of the file.
        """
        text = text.strip()
        if not text:
            raise ConfigError("empty assignment")
        named = saved_file(text)
        if named:
            path, mark = named
            if mark is not None and not re.fullmatch(r"\d{1,9}", mark):
                raise ConfigError(f"{text}: a front point is a number, 0 for the first (FILE.json#N)")
            data = read_saved(text) if saved is None else saved
            if mark is None:
                return cls.from_dict(data, default=default)
            front = data.get("front") if isinstance(data, Mapping) else None
            point = int(mark)
            if not isinstance(front, list) or not 0 <= point < len(front) or not isinstance(front[point], Mapping):
                size = len(front) if isinstance(front, list) else 0
                raise ConfigError(f"{path}: no front point #{point} (the file lists {size})")
            if "assignment" not in front[point]:
                raise ConfigError(f"{path}: front point #{point} has no assignment")
            return cls.from_dict(front[point]["assignment"], default=default)
        if "=" not in text:
            return cls.build(default=text)
        mapping = cls(default=as_config(default))
        for item in text.split(","):
            key, sep, spec = item.partition("=")
            key, spec = key.strip(), spec.strip()
            if not sep or not key or not spec:
                raise ConfigError(f"assignment item {item.strip()!r} must look like layer=MULTIPLIER")
            if key in ("default", "*"):
                mapping = mapping.with_default(spec)
            elif key.startswith("type:"):
                mapping = mapping.with_type(_resolve_type(key[5:]), spec)
            elif key.startswith("re:"):
                mapping = mapping.with_pattern(key[3:], spec)
            else:
                mapping = mapping.with_name(key, spec)
        return mapping

    def with_default(self, spec: Spec) -> AssignmentMapping:
        """A copy with another global default."""
        return replace(self, default=as_config(spec))

    def with_type(self, module_type: type[nn.Module], spec: Spec) -> AssignmentMapping:
        """A copy where ``module_type`` maps to ``spec``."""
        kept = tuple((t, c) for t, c in self.types if t is not module_type)
        return replace(self, types=(*kept, (module_type, as_config(spec))))

    def with_pattern(self, pattern: str, spec: Spec) -> AssignmentMapping:
        """A copy with the regex ``pattern`` (appended last, so it wins over earlier patterns)."""
        kept = tuple((p, c) for p, c in self.patterns if p != pattern)
        return replace(self, patterns=(*kept, (pattern, as_config(spec))))

    def with_name(self, name: str, spec: Spec) -> AssignmentMapping:
        """A copy where the layer called ``name`` maps to ``spec``."""
        kept = tuple((n, c) for n, c in self.names if n != name)
        return replace(self, names=(*kept, (name, as_config(spec))))

    def config_for(self, name: str | Sequence[str], module: nn.Module) -> LayerConfig:
        """The config of the layer called ``name`` (qualified name in the model) holding ``module``.

        ``name`` may list every name of a module used at several places; at each priority level the
        first name that matches decides.
        """
        names = [name] if isinstance(name, str) else list(name)
        exact = dict(self.names)
        for alias in names:
            if alias in exact:
                return exact[alias]
        for alias in names:
            for pattern, config in reversed(self.patterns):
                if re.fullmatch(pattern, alias):
                    return config
        best: LayerConfig | None = None
        best_rank = len(type(module).__mro__)
        for module_type, config in self.types:
            if isinstance(module, module_type):
                rank = type(module).__mro__.index(module_type)
                if rank < best_rank:
                    best, best_rank = config, rank
        return best if best is not None else self.default

    def configs(self) -> list[LayerConfig]:
        """Every config the mapping holds (the default first)."""
        return [self.default, *(config for _, config in (*self.types, *self.patterns, *self.names))]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"default": ..., "types": {...}, "regex": {...}, "layers": {...}}``.

        Configs that only name a multiplier are written as that string.
        """

        def compact(config: LayerConfig) -> Any:
            data = config.to_dict()
            return data["multiplier"] if len(data) == 1 else data

        return {
            "default": compact(self.default),
            "types": {_type_name(t): compact(c) for t, c in self.types},
            "regex": {p: compact(c) for p, c in self.patterns},
            "layers": {n: compact(c) for n, c in self.names},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default: Spec = "float") -> AssignmentMapping:
        """The inverse of :meth:`to_dict` (missing sections are empty, a missing ``default`` is ``default``;
        ``front`` and ``search``, which ``lutgen evaluate --save`` adds, are ignored)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"assignment must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"default", "types", "regex", "layers", "front", "search"})
        if unknown:
            raise ConfigError(
                f"unknown assignment keys {unknown}; expected default, types, regex, layers (a dict with 'default' is "
                "this form: put layer names under 'layers', patterns under 'regex', types under 'types')"
            )
        sections = {}
        for key in ("types", "regex", "layers"):
            section = data.get(key, {})
            if not isinstance(section, Mapping):
                raise ConfigError(f"assignment '{key}' must be an object mapping names to multipliers")
            sections[key] = section
        return cls(
            default=LayerConfig.from_dict(data["default"]) if "default" in data else as_config(default),
            types=tuple((_resolve_type(t), LayerConfig.from_dict(c)) for t, c in sections["types"].items()),
            patterns=tuple((p, LayerConfig.from_dict(c)) for p, c in sections["regex"].items()),
            names=tuple((n, LayerConfig.from_dict(c)) for n, c in sections["layers"].items()),
        )
