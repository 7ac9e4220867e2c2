"""One filter language for choosing multipliers, the same for every command that selects from the library.

``lutgen library list``, ``pareto`` and ``report`` take it as options (``--bits 8 --signed --max-mae 0.5``)
or as text (``--filter 'bits=8,signed,max_mae=0.5'``); ``lutgen evaluate --candidates`` takes the text.
Both forms go through :meth:`Filter.parse`, so field names, matching rules and errors are the same.

Text form: comma-separated items, each ``field=value`` or a bare flag (``-`` and ``_`` are alike in names):

=================  ===========================================================================
``bits=8``         operand widths: ``8`` means 8x8, ``8x4`` means 8x4
``signed``         two's complement operands (``unsigned`` the others; also ``signed=yes|no``)
``origin=X``       ``builtin``, ``import``, ``evoapprox`` (any release, EvoApprox8b too), ``evoapprox v2022``
                   or ``evoapprox8b``
``release=X``      a release prefix of the names, e.g. ``v2022``
``family=X``       ``truncated`` (or ``trunc``, the built-ins' name prefix), ``broken_array`` (``bam``), ...
``max_mae=X``      upper bounds: ``max_mae``, ``max_wce``, ``max_mre``, ``max_wcre``, ``max_ep`` (percent),
                   ``max_mse``, ``max_power`` (mW), ``max_area`` (µm²), ``max_delay`` (ns), ``max_gates``
=================  ===========================================================================

An unknown field, or a value that no multiplier of any library could have, is an error that lists the
valid fields or values; a valid filter that the library has nothing for selects nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..clitypes import DECIMAL
from ..errors import ConfigError
from .catalogue import column

if TYPE_CHECKING:
    from .catalogue import Entry, Library

#: Upper-bound fields and the columns they bound: ``max_<name>`` bounds the column ``--sort <name>`` sorts by.
LIMITS = {
    f"max_{name}": column(name)
    for name in ("mae", "wce", "mre", "wcre", "ep", "mse", "power", "area", "delay", "gates")
}
#: Origins that are not ``<publisher> <release>`` but belong to a publisher (see :func:`_origin_names`).
_PUBLISHERS = {"evoapprox8b": "evoapprox"}
#: Fields taking a value, and the flags.
VALUE_FIELDS = ("bits", "signed", "origin", "release", "family", *LIMITS)
FLAGS = ("signed", "unsigned")
_WIDTH = re.compile(r"[0-9]{1,2}")
_YES = ("1", "true", "yes")
_NO = ("0", "false", "no")


def _fields_help() -> str:
    return ", ".join([*FLAGS, *(f"{name}=" for name in VALUE_FIELDS if name != "signed")])


@dataclass(frozen=True)
class Filter:
    """A selection of library entries; every field left ``None`` (or empty) selects everything."""

    bits: tuple[int, int] | None = None
    signed: bool | None = None
    origin: str | None = None
    release: str | None = None
    family: str | None = None
    limits: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, text: str, *, where: str = "--filter") -> Filter:
        """The filter a text form describes; :class:`ConfigError` (prefixed by ``where``) when it is not one."""
        found = cls()
        for raw in (item.strip() for item in text.split(",")):
            if not raw:
                continue
            key, has_value, value = raw.partition("=")
            key, value = key.strip().lower().replace("-", "_"), value.strip()
            if not has_value:
                if key not in FLAGS:
                    raise ConfigError(f"{where}: '{raw}' is not a filter (fields: {_fields_help()})")
                found = found._set("signed", key == "signed", where)
            elif key not in VALUE_FIELDS:
                raise ConfigError(f"{where}: unknown field '{key}' (fields: {_fields_help()})")
            elif not value:
                raise ConfigError(f"{where}: '{raw}' needs a value")
            elif key == "bits":
                found = found._set("bits", _bits(value, where), where)
            elif key == "signed":
                if value.lower() not in (*_YES, *_NO):
                    raise ConfigError(f"{where}: signed={value}: use yes or no (or the flags signed, unsigned)")
                found = found._set("signed", value.lower() in _YES, where)
            elif key in LIMITS:
                found = found._limit(LIMITS[key], _number(key, value, where), where)
            else:
                found = found._set(key, value, where)
        return found

    @classmethod
    def from_options(
        cls,
        *,
        bits: str | None = None,
        signed: bool | None = None,
        origin: str | None = None,
        family: str | None = None,
        max_mae: float | None = None,
        text: str | None = None,
    ) -> Filter:
        """The filter of the command-line options (``--bits`` ... ``--max-mae``) and ``--filter TEXT`` together."""
        items = []
        if bits is not None:
            items.append(f"bits={bits}")
        if signed is not None:
            items.append("signed" if signed else "unsigned")
        if origin is not None:
            items.append(f"origin={origin}")
        if family is not None:
            items.append(f"family={family}")
        if max_mae is not None:
            items.append(f"max_mae={max_mae!r}")
        if text is not None:
            items.append(text)
        return cls.parse(",".join(items), where="filter")

    def _set(self, name: str, value: Any, where: str) -> Filter:
        old = getattr(self, name)
        same = old == value or (isinstance(old, str) and isinstance(value, str) and old.lower() == value.lower())
        if old is not None and not same:
            raise ConfigError(f"{where}: {name} is given twice ({_text(name, old)} and {_text(name, value)})")
        return replace(self, **{name: value}) if old is None else self

    def _limit(self, col: str, value: float, where: str) -> Filter:
        if any(c == col and v != value for c, v in self.limits):
            raise ConfigError(f"{where}: a bound on {col} is given twice, with two values")
        if (col, value) in self.limits:  # (the same bound again, e.g. --max-mae and --filter max_mae=: they agree)
            return self
        return replace(self, limits=(*self.limits, (col, value)))

    def __str__(self) -> str:
        """The text form (``bits=8,signed,max_mae=0.5``); empty for the filter that selects everything."""
        items = []
        if self.bits is not None:
            items.append(_text("bits", self.bits))
        if self.signed is not None:
            items.append("signed" if self.signed else "unsigned")
        items += [f"{name}={getattr(self, name)}" for name in ("origin", "release", "family") if getattr(self, name)]
        bound = {col: name for name, col in LIMITS.items()}
        items += [f"{bound[col]}={value!r}" for col, value in self.limits]  # (repr: read back, the same float)
        return ",".join(items)

    # --------------------------------------------------------------------------------------- matching
    def select(self, lib: Library, *, sort: str | None = None) -> list[Entry]:
        """The library's entries that pass, sorted as :meth:`Library.query` sorts.

        Raises:
            ConfigError: ``origin``, ``release`` or ``family`` names nothing any library could hold
                (the message lists the valid values).
        """
        known = lib.query() if (self.origin or self.release or self.family) else []
        return self.resolved(known).matches(lib.query(bits=self.bits, signed=self.signed, sort=sort))

    def resolved(self, known: Sequence[Entry]) -> Filter:
        """This filter with ``origin``, ``release`` and ``family`` checked against ``known`` and made canonical."""
        return replace(
            self,
            origin=None if self.origin is None else _origin(self.origin, known),
            release=None if self.release is None else _release(self.release, known),
            family=None if self.family is None else _family(self.family, known),
        )

    def matches(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries that pass (``origin``/``family`` compared as given: see :meth:`resolved`)."""
        return [e for e in entries if self._passes(e)]

    def _passes(self, entry: Entry) -> bool:
        if self.bits is not None and (entry.bits_a, entry.bits_b) != self.bits:
            return False
        if self.signed is not None and entry.signed != self.signed:
            return False
        if self.origin is not None and self.origin not in _origin_names(entry.origin):
            return False
        if self.release is not None and entry.release != self.release:
            return False
        if self.family is not None and entry.family != self.family:
            return False
        for col, bound in self.limits:
            value = _bounded_value(entry, col)
            if value is None or value > bound:
                return False
        return True


def _bounded_value(entry: Entry, col: str) -> float | None:
    """``entry``'s value in ``col`` as a bound is checked against it: a worst case from a sample is only a lower
    bound of the circuit's, so a published figure above it counts instead."""
    from .catalogue import PUBLISHED_KEYS, WORST_CASE_COLUMNS

    value = getattr(entry, col)
    if value is None or not (entry.sampled and col in WORST_CASE_COLUMNS):
        return None if value is None else float(value)
    published = [text for key, text in entry.published.items() if PUBLISHED_KEYS.get(key) == col]
    figures = []
    for text in published:
        try:
            figures.append(float(text))
        except ValueError:
            continue
    return max([float(value), *figures])


def _text(name: str, value: object) -> str:
    if name == "bits" and isinstance(value, tuple):
        a, b = value
        return f"bits={a}" if a == b else f"bits={a}x{b}"
    if name == "signed":
        return "signed" if value else "unsigned"
    return f"{name}={value}"


def _bits(value: str, where: str) -> tuple[int, int]:
    fields = value.lower().split("x")
    parts = [int(p) for p in fields] if all(_WIDTH.fullmatch(p) for p in fields) else []
    if len(parts) not in (1, 2) or not all(1 <= p <= 64 for p in parts):
        raise ConfigError(f"{where}: bits={value} is not a width: use e.g. bits=8 (8x8) or bits=8x4")
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _number(key: str, value: str, where: str) -> float:
    number = float(value) if DECIMAL.fullmatch(value) else math.nan
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{where}: {key}={value} needs a non-negative number")
    return number


def _listing(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or "none in this library"


def _origin_names(origin: str) -> set[str]:
    """The ``origin=`` values that select an entry of ``origin``: the origin itself and its publisher, the
    first word (``evoapprox v2022``: ``evoapprox``), where EvoApprox8b, EvoApprox's first library (whose
    entries the family ``evoapprox`` holds too), counts as ``evoapprox``."""
    key = origin.lower()
    first = key.split()[0] if key.split() else key
    return {key, first, _PUBLISHERS.get(first, first)}


def _origin(wanted: str, known: Sequence[Entry]) -> str:
    """``evoapprox`` selects every release (``evoapprox v2022``) and EvoApprox8b; a full origin selects itself."""
    key = wanted.strip().lower()
    valid = {name for e in known for name in _origin_names(e.origin)}
    valid |= {"builtin", "import", "user", "evoapprox"}
    if key not in valid:
        raise ConfigError(f"unknown origin '{wanted}' (valid: {_listing(valid)})")
    return key


def _release(wanted: str, known: Sequence[Entry]) -> str:
    releases = {e.release for e in known if e.release}
    if wanted not in releases:
        raise ConfigError(f"unknown release '{wanted}' (releases in this library: {_listing(releases)})")
    return wanted


def _family(wanted: str, known: Sequence[Entry]) -> str:
    """The family a user's word means: itself, the built-ins' name prefix (``bam``), or a unique prefix."""
    from ..synth.builtin import FAMILY_PREFIXES

    key = wanted.strip().lower()
    families = {e.family for e in known if e.family} | set(FAMILY_PREFIXES) | {"evoapprox"}
    if key in families:
        return key
    by_prefix = {prefix: family for family, prefix in FAMILY_PREFIXES.items()}
    if key in by_prefix:
        return by_prefix[key]
    starting = sorted(f for f in families if f.startswith(key))
    if len(starting) == 1:
        return starting[0]
    shown = [f"{f} ({FAMILY_PREFIXES[f]})" if FAMILY_PREFIXES.get(f, f) != f else f for f in families]
    raise ConfigError(f"unknown family '{wanted}' (valid: {_listing(shown)})")
