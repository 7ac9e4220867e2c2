"""Port conventions shared by every reader: grouping bit names into buses and ordering operands.

Multipliers name their ports ``A/B/O`` (EvoApproxLib), ``IN1/IN2/Out``, ``a/b/y`` and more; the
first operand is ``a`` (the activation in a DNN), the second ``b`` (the weight).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..errors import ParseError

#: Known (operand a, operand b) name pairs, tried case-insensitively in this order.
OPERAND_PAIRS: tuple[tuple[str, str], ...] = (
    ("a", "b"),
    ("in1", "in2"),
    ("x", "y"),
    ("in_a", "in_b"),
    ("op1", "op2"),
    ("i1", "i2"),
)

_BIT = re.compile(
    r"^(?P<bus>.*?)(?:\[(?P<i1>[0-9]+)\]|<(?P<i2>[0-9]+)>|\((?P<i3>[0-9]+)\)|_(?P<i4>[0-9]+)|(?P<i5>[0-9]+))$"
)
#: Most digits of a bit index (a wider one makes the name a plain name: no bus has 10^9 bits).
_MAX_INDEX_DIGITS = 9


def split_bit_name(name: str) -> tuple[str, int | None]:
    """Split ``A[3]``, ``A<3>``, ``A(3)``, ``A_3`` or ``A3`` into ``("A", 3)``; plain names give ``(name, None)``.
    Indices are ASCII digits (not other scripts' digits), at most nine of them."""
    match = _BIT.match(name)
    if not match or not match.group("bus"):
        return name, None
    index = next(g for g in match.group("i1", "i2", "i3", "i4", "i5") if g is not None)
    if len(index) > _MAX_INDEX_DIGITS:
        return name, None
    return match.group("bus"), int(index)


def group_bits(names: Iterable[str]) -> dict[str, list[str]]:
    """Group bit names into buses, each LSB first; keeps the first-seen order of buses.

    Raises ``ValueError`` when a bus has gaps or repeated indices (callers add the location).
    """
    buses: dict[str, dict[int, str]] = {}
    for name in names:
        bus, index = split_bit_name(name)
        bits = buses.setdefault(bus, {})
        key = 0 if index is None else index
        if key in bits:
            raise ValueError(f"bit {bus}[{key}] appears twice ({bits[key]!r} and {name!r})")
        bits[key] = name
    result: dict[str, list[str]] = {}
    for bus, bits in buses.items():
        lo = min(bits)
        indices = sorted(bits)
        if indices != list(range(lo, lo + len(indices))):
            raise ValueError(f"bus {bus} has missing bits (indices {indices})")
        result[bus] = [bits[i] for i in indices]
    return result


def group_inputs(names: Sequence[str]) -> dict[str, list[str]]:
    """:func:`group_bits` for a multiplier's input bits, except that two names which would make one bus by an
    unbracketed index (``in1``, ``in2``; ``x_0``, ``x_1``) are two 1-bit operands, as the Verilog reader reads two
    single-bit ports: one bus cannot be both operands."""
    buses = group_bits(names)
    if len(names) == 2 and len(buses) == 1:
        matches = [_BIT.match(name) for name in names]
        if all(m is not None and (m.group("i4") or m.group("i5")) for m in matches):
            return {name: [name] for name in names}
    return buses


def group_input_ports(ports: Sequence[str], widths: Sequence[int]) -> dict[str, list[str]]:
    """The buses a module's single-bit input ports make (``ports`` in declaration order, ``widths`` their bits):
    grouped as :func:`group_bits` does, or, when every input is a single bit, as :func:`group_inputs` groups the
    input bits of a BLIF or SOP file (``in1``, ``in2`` are two operands; ``b0``, ``a0`` are buses ``b``, ``a``).
    A port of several bits is a bus of its own name. Raises ``ValueError`` as :func:`group_bits` does."""
    scalars = [port for port, width in zip(ports, widths, strict=True) if width == 1]
    return group_inputs(scalars) if len(scalars) == len(ports) else group_bits(scalars)


def order_operands(
    buses: Sequence[str],
    operands: tuple[str, str] | None = None,
    *,
    path: str | None = None,
    line: int | None = None,
    col: int | None = None,
) -> tuple[str, str]:
    """Pick the two operand buses among ``buses``: ``(a, b)``.

    With ``operands`` given, those names (exact, else case-insensitive). Otherwise a known pair from
    :data:`OPERAND_PAIRS`, else the two buses in declaration order when there are exactly two.
    """
    by_lower: dict[str, str] = {}
    for bus in buses:
        by_lower.setdefault(bus.lower(), bus)

    def find(name: str) -> str | None:
        return name if name in buses else by_lower.get(name.lower())

    if operands is not None:
        found = tuple(find(n) for n in operands)
        missing = [n for n, f in zip(operands, found, strict=True) if f is None]
        if missing:
            raise ParseError(
                f"operand bus {', '.join(missing)} not found; inputs are {', '.join(buses) or 'none'}", path, line, col
            )
        return found[0], found[1]  # type: ignore[return-value]
    for a_name, b_name in OPERAND_PAIRS:
        a, b = find(a_name), find(b_name)
        if a is not None and b is not None and a != b:
            return a, b
    if len(buses) == 2:
        return buses[0], buses[1]
    raise ParseError(
        f"cannot tell the two operands among inputs {', '.join(buses) or '(none)'}; name them with --operands A,B",
        path,
        line,
        col,
    )
