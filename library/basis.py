"""Cost bases: a multiplier's power relative to the exact multiplier *of the same cost source*.

Power figures come from two kinds of sources that must never be mixed silently: figures a library
published (EvoApproxLib's 45 nm synthesis, one set per release) and lutgen's own cell model (built-in
and imported circuits without published figures). A candidate's relative power is its power over the
exact multiplier's power from its own source: published figures against the exact circuit the same
release published (or, where that release has none, another release of the same library, which the
label says), modelled figures against the modelled exact multiplier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LibraryError
from .catalogue import Entry, Library

MODEL = "lutgen model"


@dataclass(frozen=True)
class CostBasis:
    """Where a power figure comes from and the exact multiplier it is measured against.

    Attributes:
        label: ``"lutgen model"``, ``"published v2022"`` or ``"published v1.0 (exact: v1.1)"``.
        exact_name: the exact multiplier of that source (``full_name``).
        exact_power_mw: its power.
    """

    label: str
    exact_name: str
    exact_power_mw: float


def is_exact(entry: Entry) -> bool:
    """Whether ``entry`` computes the exact product (no error on any pair)."""
    return entry.mae_pct == 0 and entry.wce_pct == 0


def _priced_exact(entry: Entry) -> bool:
    return is_exact(entry) and entry.power_mw is not None and entry.power_mw > 0


def preferred_exact(entries: Iterable[Entry], bits_a: int, bits_b: int, signed: bool) -> Entry | None:
    """The exact multiplier of this kind among ``entries`` that reports and cost bases take: lutgen's modelled
    ``exact<bits>{s,u}`` first, then any modelled one, one without a release, by name; ``None`` if none is exact."""
    modelled = f"exact{bits_a}{'s' if signed else 'u'}" if bits_a == bits_b else ""
    exacts = [e for e in entries if is_exact(e) and (e.bits_a, e.bits_b, e.signed) == (bits_a, bits_b, signed)]
    return min(
        exacts,
        key=lambda e: (e.name != modelled, e.power_source != "estimated", e.release != "", e.full_name),
        default=None,
    )


def exact_multiplier(library: Library, bits_a: int, bits_b: int, signed: bool) -> Entry | None:
    """The library's exact multiplier of this kind (:func:`preferred_exact`); ``None`` if it has none."""
    return preferred_exact(library.query(bits=(bits_a, bits_b), signed=signed), bits_a, bits_b, signed)


def _publisher(entry: Entry) -> str:
    """The library a release belongs to (``evoapprox v2022`` -> ``evoapprox``)."""
    return entry.origin.split()[0] if entry.origin else ""


def cost_basis(library: Library, entry: Entry, *, signed: bool | None = None) -> CostBasis:
    """The cost basis of ``entry``: the exact multiplier of its source and widths, of ``signed``-ness (default:
    the entry's own); raises :class:`LibraryError` if its source has no such exact multiplier."""
    signed = entry.signed if signed is None else signed
    kind = f"{entry.bits_a}x{entry.bits_b}{'s' if signed else 'u'}"
    exacts = [
        e
        for e in library.query(bits=(entry.bits_a, entry.bits_b), signed=signed)
        if _priced_exact(e) and e.power_source == entry.power_source
    ]
    if entry.power_source != "published":
        exact = preferred_exact(exacts, entry.bits_a, entry.bits_b, signed)
        if exact is not None:
            return CostBasis(MODEL, exact.full_name, float(exact.power_mw or 0))
        raise LibraryError(
            f"'{entry.full_name}' has modelled power, but the library has no modelled exact {kind} multiplier "
            "to measure it against (lutgen library init adds the built-in one)"
        )
    same = [e for e in exacts if (e.origin, e.release) == (entry.origin, entry.release)]
    if same:  # (the same release of the same library: an unreleased checkout of one is not another's)
        exact = min(same, key=lambda e: e.full_name)
        label = f"published {entry.release or entry.origin}".strip()
        return CostBasis(label, exact.full_name, float(exact.power_mw or 0))
    sibling = [e for e in exacts if _publisher(e) == _publisher(entry) and _publisher(entry)]
    if sibling:
        exact = max(sibling, key=lambda e: (e.release, e.full_name))
        return CostBasis(
            f"published {entry.release or entry.origin} (exact: {exact.release or exact.origin})",
            exact.full_name,
            float(exact.power_mw or 0),
        )
    fix = (
        "import that release's exact circuit"
        if signed == entry.signed
        else f"import a {'signed' if signed else 'unsigned'} exact circuit of another release of that library, or "
        "compare multipliers of one signedness"
    )
    raise LibraryError(
        f"'{entry.full_name}' has published power, but its source ({entry.origin or 'unknown'}) published no exact "
        f"{kind} multiplier to measure it against; {fix}"
    )


def relative_power(library: Library, entry: Entry, *, signed: bool | None = None) -> tuple[float, CostBasis]:
    """``entry``'s power over the power of the exact multiplier of the same source (of ``signed``-ness, default
    the entry's own: see :func:`cost_basis`), and that basis."""
    if entry.power_mw is None:
        raise LibraryError(f"'{entry.full_name}' has no power figure")
    basis = cost_basis(library, entry, signed=signed)
    return float(entry.power_mw) / basis.exact_power_mw, basis


__all__ = ["MODEL", "CostBasis", "cost_basis", "exact_multiplier", "is_exact", "preferred_exact", "relative_power"]
