"""Exact gate-level multipliers: array (ripple-carry rows), Wallace and Dadda trees, Baugh-Wooley.

A multiplier is a *partial-product matrix* (rows of bits, each at a column weight) followed by a
reduction to one binary number of ``bits_a + bits_b`` bits. Unsigned operands give the AND terms
``a_i b_j`` at weight ``i + j``. Signed operands use the modified Baugh-Wooley form: the terms with
exactly one sign bit (``i = na-1`` xor ``j = nb-1``) are negative and enter inverted (NAND), and the
constant ``-Σ 2^(i+j)`` over those terms (mod ``2^(na+nb)``) is added as constant-one bits — for
``na = nb = n`` that is the textbook ``2^n + 2^(2n-1)``. The approximate families in
:mod:`approxlut.synth.approx` reuse these pieces with terms dropped or columns treated differently.

Operand buses are ``A`` and ``B`` (LSB first), the output bus ``O``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..circuits.netlist import Netlist
from ..errors import ConfigError
from .logic import Logic

#: Reductions a partial-product matrix can be summed with.
METHODS = ("array", "wallace", "dadda")

#: ``keep(i, j)``: whether the partial product of ``a_i`` and ``b_j`` is built.
KeepFn = Callable[[int, int], bool]

Row = dict[int, int]  # column weight -> net


@dataclass(frozen=True)
class Term:
    """One partial product ``a_i b_j`` at weight ``i + j``; ``negative`` in the Baugh-Wooley form."""

    i: int
    j: int
    negative: bool

    @property
    def weight(self) -> int:
        """Column of the term."""
        return self.i + self.j


def pp_terms(bits_a: int, bits_b: int, *, signed: bool) -> list[Term]:
    """All partial-product terms, row by row (``j`` outer), with their Baugh-Wooley signs."""
    return [
        Term(i, j, signed and ((i == bits_a - 1) != (j == bits_b - 1))) for j in range(bits_b) for i in range(bits_a)
    ]


def check_widths(bits_a: int, bits_b: int, *, signed: bool) -> None:
    """Raise :class:`ConfigError` for widths the generators do not build."""
    low = 2 if signed else 1
    for name, bits in (("bits_a", bits_a), ("bits_b", bits_b)):
        if not low <= bits <= 32:
            kind = "signed" if signed else "unsigned"
            raise ConfigError(f"{name}={bits}: {kind} multipliers need {low}..32 bits per operand")


def partial_products(
    lg: Logic,
    a: Sequence[int],
    b: Sequence[int],
    *,
    signed: bool,
    keep: KeepFn | None = None,
    constant: int = 0,
) -> list[Row]:
    """The partial-product rows (one per bit of ``b``), plus a row of constant bits when needed.

    ``keep`` drops terms; ``constant`` is added on top of the Baugh-Wooley correction (both taken
    modulo ``2^(len(a)+len(b))``).
    """
    width = len(a) + len(b)
    rows: list[Row] = [{} for _ in b]
    total = constant
    for term in pp_terms(len(a), len(b), signed=signed):
        if keep is not None and not keep(term.i, term.j):
            continue
        if term.negative:
            rows[term.j][term.weight] = lg.nand_(a[term.i], b[term.j])
            total -= 1 << term.weight
        else:
            rows[term.j][term.weight] = lg.and_(a[term.i], b[term.j])
    total %= 1 << width
    consts = {w: lg.one for w in range(width) if (total >> w) & 1}
    return [r for r in rows if r] + ([consts] if consts else [])


def columns_of(rows: Sequence[Row]) -> dict[int, list[int]]:
    """The rows' bits grouped by column weight."""
    cols: dict[int, list[int]] = {}
    for row in rows:
        for w, net in sorted(row.items()):
            cols.setdefault(w, []).append(net)
    return cols


def add_rows(lg: Logic, x: Row, y: Row, width: int) -> Row:
    """Ripple-carry sum of two rows, truncated to ``width`` columns."""
    out: Row = {}
    carry: int | None = None
    for w in range(min([*x, *y], default=width), width):
        bits = [n for n in (x.get(w), y.get(w), carry) if n is not None]
        if not bits:
            continue
        if len(bits) == 1:
            out[w], carry = bits[0], None
        elif len(bits) == 2:
            out[w], carry = lg.half_adder(*bits)
        else:
            out[w], carry = lg.full_adder(*bits)
        if carry is not None and lg.value(carry) == 0:
            carry = None
        if carry is None and w >= max([*x, *y]):
            break
    return out


def reduce_array(lg: Logic, rows: Sequence[Row], width: int) -> list[int]:
    """Array multiplier: accumulate the rows one after the other with ripple-carry adders."""
    acc: Row = {}
    for row in rows:
        acc = add_rows(lg, acc, row, width) if acc else dict(row)
    return [acc.get(w, lg.zero) for w in range(width)]


def _wallace_stage(lg: Logic, cols: dict[int, list[int]], width: int) -> dict[int, list[int]]:
    new: dict[int, list[int]] = {}
    for w in sorted(cols):
        bits = list(cols[w])
        while len(bits) >= 3:
            s, c = lg.full_adder(bits.pop(0), bits.pop(0), bits.pop(0))
            new.setdefault(w, []).append(s)
            if w + 1 < width:
                new.setdefault(w + 1, []).append(c)
        if len(bits) == 2:
            s, c = lg.half_adder(bits[0], bits[1])
            new.setdefault(w, []).append(s)
            if w + 1 < width:
                new.setdefault(w + 1, []).append(c)
        elif bits:
            new.setdefault(w, []).append(bits[0])
    return new


def _final_adder(lg: Logic, cols: dict[int, list[int]], width: int) -> list[int]:
    """Ripple-carry adder over columns of at most two bits (a third is the running carry)."""
    while max((len(v) for v in cols.values()), default=0) > 2:
        cols = _wallace_stage(lg, cols, width)
    out: list[int] = []
    carry: int | None = None
    for w in range(width):
        bits = [*cols.get(w, []), *([carry] if carry is not None else [])]
        if not bits:
            out.append(lg.zero)
            carry = None
        elif len(bits) == 1:
            out.append(bits[0])
            carry = None
        elif len(bits) == 2:
            s, carry = lg.half_adder(*bits)
            out.append(s)
        else:
            s, carry = lg.full_adder(*bits)
            out.append(s)
    return out


def reduce_wallace(lg: Logic, rows: Sequence[Row], width: int) -> list[int]:
    """Wallace tree: full adders on every triple, half adders on leftover pairs, until height 2."""
    cols = columns_of(rows)
    while max((len(v) for v in cols.values()), default=0) > 2:
        cols = _wallace_stage(lg, cols, width)
    return _final_adder(lg, cols, width)


def reduce_dadda(lg: Logic, rows: Sequence[Row], width: int) -> list[int]:
    """Dadda tree: reduce each column just enough to meet heights ..., 6, 4, 3, 2, then ripple."""
    cols = columns_of(rows)
    height = max((len(v) for v in cols.values()), default=0)
    targets = [2]
    while targets[-1] * 3 // 2 < height:
        targets.append(targets[-1] * 3 // 2)
    for d in reversed(targets):
        new: dict[int, list[int]] = {}
        for w in range(width):
            bits = list(cols.get(w, []))
            here = new.setdefault(w, [])
            while len(bits) + len(here) > d and len(bits) >= 2:
                if len(bits) + len(here) - d >= 2 and len(bits) >= 3:
                    s, c = lg.full_adder(bits.pop(0), bits.pop(0), bits.pop(0))
                else:
                    s, c = lg.half_adder(bits.pop(0), bits.pop(0))
                here.append(s)
                if w + 1 < width:
                    new.setdefault(w + 1, []).append(c)
            here.extend(bits)
        cols = new
    return _final_adder(lg, cols, width)


_REDUCERS = {"array": reduce_array, "wallace": reduce_wallace, "dadda": reduce_dadda}


def reduce_rows(lg: Logic, rows: Sequence[Row], width: int, method: str) -> list[int]:
    """Sum partial-product rows into ``width`` output bits with the named reduction."""
    if method not in _REDUCERS:
        raise ConfigError(f"unknown reduction '{method}' (choose from {', '.join(METHODS)})")
    if not rows:
        return [lg.zero] * width
    return _REDUCERS[method](lg, rows, width)


def multiply(
    lg: Logic,
    a: Sequence[int],
    b: Sequence[int],
    *,
    signed: bool,
    method: str = "array",
    keep: KeepFn | None = None,
    constant: int = 0,
) -> list[int]:
    """``len(a) + len(b)`` product bits of two buses inside an existing :class:`Logic`."""
    rows = partial_products(lg, a, b, signed=signed, keep=keep, constant=constant)
    return reduce_rows(lg, rows, len(a) + len(b), method)


def new_logic(name: str, bits_a: int, bits_b: int) -> tuple[Logic, list[int], list[int]]:
    """A :class:`Logic` with operand buses ``A`` and ``B`` declared."""
    lg = Logic(name)
    return lg, lg.input_bus("A", bits_a), lg.input_bus("B", bits_b)


def _exact(method: str, bits_a: int, bits_b: int, signed: bool, name: str | None) -> Netlist:
    check_widths(bits_a, bits_b, signed=signed)
    tag = "s" if signed else "u"
    lg, a, b = new_logic(name or f"{method}{bits_a}x{bits_b}{tag}", bits_a, bits_b)
    return lg.build(multiply(lg, a, b, signed=signed, method=method))


def array_multiplier(bits_a: int, bits_b: int, *, signed: bool, name: str | None = None) -> Netlist:
    """Exact array multiplier (rows accumulated by ripple-carry adders); Baugh-Wooley when signed.

    Example:
        >>> array_multiplier(4, 4, signed=False).gate_count()
        64
    """
    return _exact("array", bits_a, bits_b, signed, name)


def wallace_multiplier(bits_a: int, bits_b: int, *, signed: bool, name: str | None = None) -> Netlist:
    """Exact Wallace-tree multiplier with a ripple-carry final adder; Baugh-Wooley when signed."""
    return _exact("wallace", bits_a, bits_b, signed, name)


def dadda_multiplier(bits_a: int, bits_b: int, *, signed: bool, name: str | None = None) -> Netlist:
    """Exact Dadda-tree multiplier with a ripple-carry final adder; Baugh-Wooley when signed."""
    return _exact("dadda", bits_a, bits_b, signed, name)
