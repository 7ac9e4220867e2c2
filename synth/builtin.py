"""The built-in library: exact and approximate multipliers that lutgen generates itself.

Names are ``<family><bits><u|s>[_<params>]``: ``exact8s``, ``trunc8u_k6``, ``bam8s_h2v6``,
``loa8u_k6``, ``drum8u_k4``, ``mitchell8u``, ``perf8u_r2``, ``round8s_k2``. The set spans errors from
a few thousandths of a percent MAE to several percent at 8 bits, plus a sample at 4..7 bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..circuits.netlist import Netlist
from .approx import family
from .generators import array_multiplier


@dataclass(frozen=True)
class BuiltinCircuit:
    """One shipped circuit: its netlist and how it was generated."""

    name: str
    netlist: Netlist
    signed: bool
    family: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def bits(self) -> tuple[int, int]:
        """(bits_a, bits_b)."""
        a, b = self.netlist.widths
        return a, b


#: (family, name prefix, params) of the approximate circuits built at 8 bits, signed and unsigned.
_EIGHT_BIT: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("truncated", "trunc", {"k": 4}),
    ("truncated", "trunc", {"k": 6}),
    ("truncated", "trunc", {"k": 7, "compensate": True}),
    ("truncated", "trunc", {"k": 8}),
    ("broken_array", "bam", {"hbl": 1, "vbl": 5}),
    ("broken_array", "bam", {"hbl": 2, "vbl": 6}),
    ("broken_array", "bam", {"hbl": 3, "vbl": 8}),
    ("perforated", "perf", {"rows": 1}),
    ("perforated", "perf", {"rows": 2}),
    ("perforated", "perf", {"rows": 3}),
    ("lower_or", "loa", {"k": 4}),
    ("lower_or", "loa", {"k": 6}),
    ("lower_or", "loa", {"k": 7}),
    ("mitchell", "mitchell", {}),
    ("drum", "drum", {"k": 3}),
    ("drum", "drum", {"k": 4}),
    ("drum", "drum", {"k": 5}),
    ("drum", "drum", {"k": 6}),
    ("rounding", "round", {"k": 1}),
    ("rounding", "round", {"k": 2}),
    ("rounding", "round", {"k": 3}),
)

#: (family, prefix, bits, signed, params) of the narrower approximate circuits.
_NARROW: tuple[tuple[str, str, int, bool, dict[str, Any]], ...] = (
    ("truncated", "trunc", 4, False, {"k": 2}),
    ("mitchell", "mitchell", 4, False, {}),
    ("lower_or", "loa", 5, False, {"k": 3}),
    ("perforated", "perf", 5, True, {"rows": 1}),
    ("drum", "drum", 6, False, {"k": 3}),
    ("truncated", "trunc", 6, True, {"k": 4}),
    ("mitchell", "mitchell", 6, True, {}),
    ("broken_array", "bam", 7, False, {"hbl": 1, "vbl": 4}),
    ("rounding", "round", 7, True, {"k": 2}),
    ("drum", "drum", 7, True, {"k": 4}),
)


#: The name prefix of each family's built-in circuits (``trunc`` for ``truncated``, ``bam`` for ``broken_array``).
FAMILY_PREFIXES: dict[str, str] = {"exact": "exact"}
FAMILY_PREFIXES.update({family: prefix for family, prefix, _ in _EIGHT_BIT})
FAMILY_PREFIXES.update({spec[0]: spec[1] for spec in _NARROW})


def circuit_name(prefix: str, bits: int, signed: bool, params: dict[str, Any]) -> str:
    """The deterministic built-in name, e.g. ``bam8s_h2v6`` or ``trunc8u_k7c``."""
    base = f"{prefix}{bits}{'s' if signed else 'u'}"
    if prefix == "bam":
        return f"{base}_h{params['hbl']}v{params['vbl']}"
    if prefix == "perf":
        return f"{base}_r{params['rows']}" + (f"s{params['start']}" if params.get("start") else "")
    if "k" in params:
        return f"{base}_k{params['k']}" + ("c" if params.get("compensate") else "")
    return base


def builtin_circuits() -> list[BuiltinCircuit]:
    """Every built-in circuit, exact ones first (``exact4u`` .. ``exact8s``); builds in about a second."""
    out: list[BuiltinCircuit] = []
    for bits in range(4, 9):
        for signed in (False, True):
            name = circuit_name("exact", bits, signed, {})
            out.append(BuiltinCircuit(name, array_multiplier(bits, bits, signed=signed, name=name), signed, "exact"))
    specs = [(fam, prefix, 8, signed, params) for signed in (False, True) for fam, prefix, params in _EIGHT_BIT]
    for fam, prefix, bits, signed, params in [*specs, *_NARROW]:
        name = circuit_name(prefix, bits, signed, params)
        netlist = family(fam).build(bits, bits, signed=signed, name=name, **params)
        out.append(BuiltinCircuit(name, netlist, signed, fam, dict(params)))
    return out
