"""Pareto fronts over any two numeric columns (both minimised)."""

from __future__ import annotations

from collections.abc import Sequence

from .catalogue import NUMERIC_COLUMNS, Entry, column_key, numeric_column


def value(entry: Entry, name: str) -> float | None:
    """The value of a numeric column (its key, or a user-facing name: :func:`column_key`) for ``entry``; ``None``
    when unknown."""
    key = column_key(name)
    raw = getattr(entry, key if key in NUMERIC_COLUMNS else numeric_column(name))  # (a text column: the error)
    return None if raw is None else float(raw)


def pareto_front(entries: Sequence[Entry], x: str, y: str) -> list[Entry]:
    """Entries not dominated in ``(x, y)`` (lower is better in both), sorted by ``x`` then ``y``.

    Entries lacking either value are left out. Equal points are all kept.
    """
    points = [(vx, vy, e) for e in entries if (vx := value(e, x)) is not None and (vy := value(e, y)) is not None]
    points.sort(key=lambda p: (p[0], p[1], p[2].full_name))
    front: list[Entry] = []
    best_y = float("inf")
    last: tuple[float, float] | None = None
    for vx, vy, entry in points:
        if vy < best_y or (vx, vy) == last:
            front.append(entry)
            best_y = min(best_y, vy)
            last = (vx, vy)
    return front


def fronts_by_kind(entries: Sequence[Entry], x: str, y: str) -> dict[str, tuple[list[Entry], list[Entry]]]:
    """Per kind (widths and signedness, in width order): ``(entries of that kind, their Pareto front)``."""
    groups: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: (e.bits_a, e.bits_b, e.signed)):
        groups.setdefault(entry.kind, []).append(entry)
    return {kind: (members, pareto_front(members, x, y)) for kind, members in groups.items()}


def pareto_front_reference(entries: Sequence[Entry], x: str, y: str) -> list[Entry]:
    """The same front by checking every pair (quadratic; the obviously correct reference)."""
    points = [(vx, vy, e) for e in entries if (vx := value(e, x)) is not None and (vy := value(e, y)) is not None]
    kept = [
        p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]) for q in points)
    ]
    kept.sort(key=lambda p: (p[0], p[1], p[2].full_name))
    return [p[2] for p in kept]
