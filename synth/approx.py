"""Approximate multiplier families, each as a gate-level generator and as a direct numpy formula.

Every family has a builder ``f(bits_a, bits_b, *, signed, **params) -> Netlist`` and a formula
``f_formula(a, b, bits_a, bits_b, *, signed, **params) -> ndarray`` over operand *values*; the tests
check that the simulated circuit equals the formula on every input pair. Results are the circuit's
``bits_a + bits_b`` output bits, read as two's complement when signed (:func:`wrap`).

- ``truncated``: column truncation, terms ``a_i b_j`` with ``i + j < k`` dropped; with
  ``compensate`` the constant nearest to the expected value of the dropped terms is added.
- ``broken_array`` (BAM): rows ``j < hbl`` and columns ``i + j < vbl`` dropped.
- ``perforated``: partial-product rows ``start .. start+rows-1`` of operand ``b`` dropped.
- ``lower_or`` (LOA): output bits ``w < k`` are the OR of column ``w``'s partial-product bits; the
  upper columns are added exactly, without carries from below.
- ``mitchell``: logarithmic multiplier (leading-one detector, log add, antilog shifter).
- ``drum``: dynamic range (k-bit leading segment with its LSB forced to 1, k×k exact multiplier,
  shift back); ``mitchell`` and ``drum`` are sign-magnitude wrapped when signed.
- ``rounding``: both operands rounded to a multiple of ``2^k`` (half up, saturating at the largest
  representable multiple) or truncated (``mode="truncate"``), then multiplied exactly.

Signed ``truncated``/``broken_array``/``perforated``/``lower_or`` work on the Baugh-Wooley matrix of
:mod:`approxlut.synth.generators`: a dropped term takes its share of the correction constant with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..circuits.netlist import Netlist
from ..errors import ConfigError
from .generators import KeepFn, check_widths, columns_of, multiply, new_logic, partial_products, pp_terms, reduce_rows
from .logic import Logic

# --------------------------------------------------------------------------------------------------
# shared numpy helpers


def wrap(value: np.ndarray, width: int, *, signed: bool) -> np.ndarray:
    """``value`` modulo ``2^width``, read as two's complement when ``signed`` (int64)."""
    v = np.asarray(value, dtype=np.int64) & ((1 << width) - 1)
    if signed:
        v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
    return v


def _codes(value: np.ndarray, bits: int) -> np.ndarray:
    return np.asarray(value, dtype=np.int64) & ((1 << bits) - 1)


def _bit(codes: np.ndarray, i: int) -> np.ndarray:
    return (codes >> i) & 1


def _terms_formula(
    a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, signed: bool, keep: KeepFn, constant: int = 0
) -> np.ndarray:
    """``Σ s_ij a_i b_j 2^(i+j)`` over the kept terms (``s = -1`` for one sign bit) + ``constant``."""
    ca, cb = _codes(a, bits_a), _codes(b, bits_b)
    total = np.zeros(np.broadcast(ca, cb).shape, dtype=np.int64) + constant
    for t in pp_terms(bits_a, bits_b, signed=signed):
        if keep(t.i, t.j):
            total += (-1 if t.negative else 1) * ((_bit(ca, t.i) & _bit(cb, t.j)) << t.weight)
    return wrap(total, bits_a + bits_b, signed=signed)


def _dropped_expectation(bits_a: int, bits_b: int, signed: bool, keep: KeepFn) -> int:
    """Nearest integer (half up) to the mean value of the dropped terms under uniform operands."""
    quarter_units = sum(
        (-1 if t.negative else 1) << t.weight for t in pp_terms(bits_a, bits_b, signed=signed) if not keep(t.i, t.j)
    )
    return (quarter_units + 2) // 4


def _matrix_netlist(
    name: str, bits_a: int, bits_b: int, signed: bool, keep: KeepFn, constant: int, method: str
) -> Netlist:
    lg, a, b = new_logic(name, bits_a, bits_b)
    return lg.build(multiply(lg, a, b, signed=signed, method=method, keep=keep, constant=constant))


def _tag(signed: bool) -> str:
    return "s" if signed else "u"


def _width_tag(bits_a: int, bits_b: int) -> str:
    return str(bits_a) if bits_a == bits_b else f"{bits_a}x{bits_b}"


# --------------------------------------------------------------------------------------------------
# truncation, broken array, perforation


def _truncation_keep(k: int) -> KeepFn:
    return lambda i, j: i + j >= k


def truncated(
    bits_a: int,
    bits_b: int,
    *,
    signed: bool,
    k: int,
    compensate: bool = False,
    method: str = "array",
    name: str | None = None,
) -> Netlist:
    """Column-truncated multiplier: partial products of columns ``< k`` are not built."""
    check_widths(bits_a, bits_b, signed=signed)
    _check_range("k", k, 0, bits_a + bits_b)
    keep = _truncation_keep(k)
    comp = _dropped_expectation(bits_a, bits_b, signed, keep) if compensate else 0
    default = f"trunc{_width_tag(bits_a, bits_b)}{_tag(signed)}_k{k}{'c' if compensate else ''}"
    return _matrix_netlist(name or default, bits_a, bits_b, signed, keep, comp, method)


def truncated_formula(
    a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, k: int, compensate: bool = False
) -> np.ndarray:
    """What :func:`truncated` computes."""
    keep = _truncation_keep(k)
    comp = _dropped_expectation(bits_a, bits_b, signed, keep) if compensate else 0
    return _terms_formula(a, b, bits_a, bits_b, signed, keep, comp)


def _bam_keep(hbl: int, vbl: int) -> KeepFn:
    return lambda i, j: j >= hbl and i + j >= vbl


def broken_array(
    bits_a: int,
    bits_b: int,
    *,
    signed: bool,
    hbl: int,
    vbl: int,
    method: str = "array",
    name: str | None = None,
) -> Netlist:
    """Broken-array multiplier (BAM): rows ``j < hbl`` and columns ``i + j < vbl`` omitted."""
    check_widths(bits_a, bits_b, signed=signed)
    _check_range("hbl", hbl, 0, bits_b)
    _check_range("vbl", vbl, 0, bits_a + bits_b)
    default = f"bam{_width_tag(bits_a, bits_b)}{_tag(signed)}_h{hbl}v{vbl}"
    return _matrix_netlist(name or default, bits_a, bits_b, signed, _bam_keep(hbl, vbl), 0, method)


def broken_array_formula(
    a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, hbl: int, vbl: int
) -> np.ndarray:
    """What :func:`broken_array` computes."""
    return _terms_formula(a, b, bits_a, bits_b, signed, _bam_keep(hbl, vbl))


def _perforation_keep(start: int, rows: int) -> KeepFn:
    return lambda i, j: not start <= j < start + rows


def perforated(
    bits_a: int,
    bits_b: int,
    *,
    signed: bool,
    rows: int,
    start: int = 0,
    method: str = "array",
    name: str | None = None,
) -> Netlist:
    """Partial-product perforation: rows ``start .. start+rows-1`` (bits of ``b``) are skipped."""
    check_widths(bits_a, bits_b, signed=signed)
    _check_range("start", start, 0, bits_b - 1)
    _check_range("rows", rows, 0, bits_b - start)
    default = f"perf{_width_tag(bits_a, bits_b)}{_tag(signed)}_r{rows}" + (f"s{start}" if start else "")
    return _matrix_netlist(name or default, bits_a, bits_b, signed, _perforation_keep(start, rows), 0, method)


def perforated_formula(
    a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, rows: int, start: int = 0
) -> np.ndarray:
    """What :func:`perforated` computes."""
    return _terms_formula(a, b, bits_a, bits_b, signed, _perforation_keep(start, rows))


# --------------------------------------------------------------------------------------------------
# lower-part OR


def lower_or(
    bits_a: int, bits_b: int, *, signed: bool, k: int, method: str = "array", name: str | None = None
) -> Netlist:
    """LOA-style multiplier: columns ``< k`` ORed instead of added; no carry into column ``k``."""
    check_widths(bits_a, bits_b, signed=signed)
    _check_range("k", k, 0, bits_a + bits_b)
    width = bits_a + bits_b
    lg, a, b = new_logic(name or f"loa{_width_tag(bits_a, bits_b)}{_tag(signed)}_k{k}", bits_a, bits_b)
    rows = partial_products(lg, a, b, signed=signed)
    cols = columns_of(rows)
    low = [lg.or_(*cols.get(w, [])) for w in range(k)]
    upper = [r for r in ({w: n for w, n in row.items() if w >= k} for row in rows) if r]
    high = reduce_rows(lg, upper, width, method)
    return lg.build(low + high[k:])


def lower_or_formula(a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, k: int) -> np.ndarray:
    """What :func:`lower_or` computes: Baugh-Wooley matrix bits, ORed per column below ``k``."""
    width = bits_a + bits_b
    ca, cb = _codes(a, bits_a), _codes(b, bits_b)
    shape = np.broadcast(ca, cb).shape
    cols: dict[int, list[np.ndarray]] = {}
    correction = 0
    for t in pp_terms(bits_a, bits_b, signed=signed):
        p = _bit(ca, t.i) & _bit(cb, t.j)
        cols.setdefault(t.weight, []).append(1 - p if t.negative else p)
        correction -= (1 << t.weight) if t.negative else 0
    correction %= 1 << width
    for w in range(width):
        if (correction >> w) & 1:
            cols.setdefault(w, []).append(np.ones(shape, dtype=np.int64))
    total = np.zeros(shape, dtype=np.int64)
    for w, bits in cols.items():
        if w < k:
            total |= np.bitwise_or.reduce(np.broadcast_arrays(*bits), axis=0) << w
        else:
            total += sum(bits) << w
    return wrap(total, width, signed=signed)


# --------------------------------------------------------------------------------------------------
# gate-level helpers for the log / dynamic-range families


def leading_one(lg: Logic, x: Sequence[int]) -> tuple[list[int], list[int], int]:
    """(one-hot leading-one position, its binary code, ``x != 0``) of a bus."""
    hot: list[int] = [lg.zero] * len(x)
    above = lg.zero
    for i in reversed(range(len(x))):
        hot[i] = lg.and_(x[i], lg.not_(above))
        above = lg.or_(above, x[i])
    code_bits = max(1, (len(x) - 1).bit_length())
    code = [lg.or_(*(hot[i] for i in range(len(x)) if (i >> t) & 1)) for t in range(code_bits)]
    return hot, code, above


def ripple_add(lg: Logic, x: Sequence[int], y: Sequence[int], width: int) -> list[int]:
    """``x + y`` (unsigned, LSB first) on ``width`` bits."""
    out: list[int] = []
    carry = lg.zero
    for w in range(width):
        p = x[w] if w < len(x) else lg.zero
        q = y[w] if w < len(y) else lg.zero
        s, carry = lg.full_adder(p, q, carry)
        out.append(s)
    return out


def shift_left(lg: Logic, x: Sequence[int], amount: Sequence[int], width: int) -> list[int]:
    """Barrel shifter: ``x << amount`` on ``width`` bits (one MUX layer per bit of ``amount``)."""
    vec = [x[i] if i < len(x) else lg.zero for i in range(width)]
    for t, sel in enumerate(amount):
        step = 1 << t
        vec = [lg.mux(sel, vec[i], vec[i - step] if i >= step else lg.zero) for i in range(width)]
    return vec


def conditional_negate(lg: Logic, x: Sequence[int], neg: int) -> list[int]:
    """``neg ? -x : x`` in two's complement on ``len(x)`` bits (invert, then add ``neg``)."""
    out: list[int] = []
    carry = neg
    for bit in x:
        s, carry = lg.half_adder(lg.xor_(bit, neg), carry)
        out.append(s)
    return out


def _sign_magnitude(
    lg: Logic,
    a: Sequence[int],
    b: Sequence[int],
    signed: bool,
    core: Callable[[Logic, Sequence[int], Sequence[int]], list[int]],
) -> list[int]:
    """Apply an unsigned core to ``|a|``, ``|b|`` and negate when the signs differ."""
    if not signed:
        return core(lg, a, b)
    mag_a = conditional_negate(lg, a, a[-1])
    mag_b = conditional_negate(lg, b, b[-1])
    return conditional_negate(lg, core(lg, mag_a, mag_b), lg.xor_(a[-1], b[-1]))


def _sign_magnitude_formula(
    a: np.ndarray, b: np.ndarray, signed: bool, core: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if not signed:
        return core(a, b)
    return np.sign(a) * np.sign(b) * core(np.abs(a), np.abs(b))


def _bit_length(x: np.ndarray, bits: int) -> np.ndarray:
    """Position of the leading one (``-1`` for zero)."""
    t = np.full(np.shape(x), -1, dtype=np.int64)
    for i in range(bits):
        t = np.where((x >> i) & 1, i, t)
    return t


# --------------------------------------------------------------------------------------------------
# Mitchell


def _mitchell_core(lg: Logic, a: Sequence[int], b: Sequence[int]) -> list[int]:
    width = len(a) + len(b)
    frac_bits = max(len(a), len(b)) - 1
    logs = []
    nonzero = []
    for x in (a, b):
        hot, code, nz = leading_one(lg, x)
        # fraction: the bits below the leading one, moved up to the top of frac_bits
        frac = [
            lg.or_(*(lg.and_(hot[p], x[t - frac_bits + p]) for p in range(len(x)) if 0 <= t - frac_bits + p < p))
            for t in range(frac_bits)
        ]
        logs.append(frac + code)
        nonzero.append(nz)
    log_width = max(len(logs[0]), len(logs[1])) + 1
    total = ripple_add(lg, logs[0], logs[1], log_width)
    mantissa = [*total[:frac_bits], lg.one]
    shifted = shift_left(lg, mantissa, total[frac_bits:], frac_bits + width)
    nz = lg.and_(*nonzero)
    return [lg.and_(bit, nz) for bit in shifted[frac_bits:]]


def mitchell(bits_a: int, bits_b: int, *, signed: bool, name: str | None = None) -> Netlist:
    """Mitchell's logarithmic multiplier (sign-magnitude when signed)."""
    check_widths(bits_a, bits_b, signed=signed)
    lg, a, b = new_logic(name or f"mitchell{_width_tag(bits_a, bits_b)}{_tag(signed)}", bits_a, bits_b)
    return lg.build(_sign_magnitude(lg, a, b, signed, _mitchell_core))


def _mitchell_unsigned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits = 64
    ka, kb = _bit_length(a, bits), _bit_length(b, bits)
    ka0, kb0 = np.maximum(ka, 0), np.maximum(kb, 0)
    fa, fb = a - (1 << ka0), b - (1 << kb0)
    s = (fa << kb0) + (fb << ka0)
    base = np.int64(1) << (ka0 + kb0)
    product = np.where(s < base, base + s, 2 * s)
    return np.where((a == 0) | (b == 0), 0, product)


def mitchell_formula(a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool) -> np.ndarray:
    """What :func:`mitchell` computes: with ``a = 2^k1 + f1``, ``b = 2^k2 + f2`` and
    ``s = f1·2^k2 + f2·2^k1``, the product is ``2^(k1+k2) + s`` if ``s < 2^(k1+k2)`` else ``2s``."""
    return wrap(_sign_magnitude_formula(a, b, signed, _mitchell_unsigned), bits_a + bits_b, signed=signed)


# --------------------------------------------------------------------------------------------------
# DRUM


def _drum_segment(lg: Logic, x: Sequence[int], k: int) -> tuple[list[int], list[int]]:
    """(k-bit segment, binary shift amount) of one operand."""
    n = len(x)
    if n <= k:
        return list(x), []
    hot, _, _ = leading_one(lg, x)
    small = lg.not_(lg.or_(*x[k:]))  # x < 2^k: no shift
    select = [small] + [hot[s + k - 1] for s in range(1, n - k + 1)]
    seg = [lg.or_(*(lg.and_(select[s], x[i + s]) for s in range(n - k + 1))) for i in range(k)]
    seg[0] = lg.or_(seg[0], lg.not_(small))
    shift_bits = max(1, (n - k).bit_length())
    amount = [lg.or_(*(select[s] for s in range(1, n - k + 1) if (s >> t) & 1)) for t in range(shift_bits)]
    return seg, amount


def _drum_core(k: int) -> Callable[[Logic, Sequence[int], Sequence[int]], list[int]]:
    def core(lg: Logic, a: Sequence[int], b: Sequence[int]) -> list[int]:
        width = len(a) + len(b)
        seg_a, sh_a = _drum_segment(lg, a, k)
        seg_b, sh_b = _drum_segment(lg, b, k)
        product = multiply(lg, seg_a, seg_b, signed=False)
        amount = ripple_add(lg, sh_a, sh_b, max(len(sh_a), len(sh_b)) + 1) if sh_a or sh_b else []
        return shift_left(lg, product, amount, width)

    return core


def drum(bits_a: int, bits_b: int, *, signed: bool, k: int, name: str | None = None) -> Netlist:
    """DRUM-style dynamic-range multiplier with ``k``-bit segments (sign-magnitude when signed)."""
    check_widths(bits_a, bits_b, signed=signed)
    _check_range("k", k, 2, max(bits_a, bits_b))
    lg, a, b = new_logic(name or f"drum{_width_tag(bits_a, bits_b)}{_tag(signed)}_k{k}", bits_a, bits_b)
    return lg.build(_sign_magnitude(lg, a, b, signed, _drum_core(k)))


def drum_formula(a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, k: int) -> np.ndarray:
    """What :func:`drum` computes: ``seg(x) = x`` if ``x < 2^k`` else ``(x >> s) | 1`` with
    ``s = t - k + 1`` (``t`` the leading one); product ``seg(a)·seg(b) << (s_a + s_b)``."""

    def core(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = np.ones(np.broadcast(x, y).shape, dtype=np.int64)
        shift = np.zeros_like(result)
        for v in (x, y):
            s = np.maximum(_bit_length(v, 64) - k + 1, 0)
            seg = np.where(s > 0, (v >> s) | 1, v)
            result = result * seg
            shift = shift + s
        return result << shift

    return wrap(_sign_magnitude_formula(a, b, signed, core), bits_a + bits_b, signed=signed)


# --------------------------------------------------------------------------------------------------
# operand rounding


def _round_operand(lg: Logic, x: Sequence[int], k: int, signed: bool, mode: str) -> list[int]:
    high = list(x[k:])
    if mode == "truncate" or k == 0:
        return high
    out: list[int] = []
    carry = x[k - 1]
    for bit in high:
        s, carry = lg.half_adder(bit, carry)
        out.append(s)
    if signed:  # overflow: a non-negative value became negative
        overflow = lg.and_(lg.not_(high[-1]), out[-1])
        return [lg.or_(bit, overflow) for bit in out[:-1]] + [lg.and_(out[-1], lg.not_(overflow))]
    return [lg.or_(bit, carry) for bit in out]


def rounding(
    bits_a: int,
    bits_b: int,
    *,
    signed: bool,
    k: int,
    mode: str = "round",
    method: str = "array",
    name: str | None = None,
) -> Netlist:
    """Operand rounding: both operands lose their ``k`` low bits (rounded or truncated) before an
    exact ``(bits_a-k) x (bits_b-k)`` multiplier; the product is shifted back by ``2k``."""
    check_widths(bits_a, bits_b, signed=signed)
    if mode not in ("round", "truncate"):
        raise ConfigError(f"rounding mode must be 'round' or 'truncate', not {mode!r}")
    _check_range("k", k, 0, min(bits_a, bits_b) - (2 if signed else 1))
    tag = "round" if mode == "round" else "otrunc"
    lg, a, b = new_logic(name or f"{tag}{_width_tag(bits_a, bits_b)}{_tag(signed)}_k{k}", bits_a, bits_b)
    ra, rb = _round_operand(lg, a, k, signed, mode), _round_operand(lg, b, k, signed, mode)
    product = multiply(lg, ra, rb, signed=signed, method=method)
    return lg.build([lg.zero] * (2 * k) + product)


def rounding_formula(
    a: np.ndarray, b: np.ndarray, bits_a: int, bits_b: int, *, signed: bool, k: int, mode: str = "round"
) -> np.ndarray:
    """What :func:`rounding` computes: ``x' = min(floor(x / 2^k + 1/2), max code) · 2^k`` (round)
    or ``floor(x / 2^k) · 2^k`` (truncate); the product ``a'·b'``."""
    out = np.ones(np.broadcast(a, b).shape, dtype=np.int64)
    for v, bits in ((a, bits_a), (b, bits_b)):
        v = np.asarray(v, dtype=np.int64)
        if mode == "round" and k > 0:
            top = (1 << (bits - k - 1)) - 1 if signed else (1 << (bits - k)) - 1
            q = np.minimum((v + (1 << (k - 1))) >> k, top)
        else:
            q = v >> k
        out = out * (q << k)
    return wrap(out, bits_a + bits_b, signed=signed)


# --------------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class Family:
    """An approximation family: its builder, formula and integer parameters (in name order)."""

    name: str
    build: Callable[..., Netlist]
    formula: Callable[..., np.ndarray]
    params: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("truncated", truncated, truncated_formula, ("k", "compensate")),
        Family("broken_array", broken_array, broken_array_formula, ("hbl", "vbl")),
        Family("perforated", perforated, perforated_formula, ("rows", "start")),
        Family("lower_or", lower_or, lower_or_formula, ("k",)),
        Family("mitchell", mitchell, mitchell_formula, ()),
        Family("drum", drum, drum_formula, ("k",)),
        Family("rounding", rounding, rounding_formula, ("k", "mode")),
    )
}


def family(name: str) -> Family:
    """The family called ``name`` (:class:`ConfigError` naming the choices otherwise)."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown approximation family '{name}' (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


def formula_table(fam: Family, bits_a: int, bits_b: int, *, signed: bool, **params: Any) -> np.ndarray:
    """The formula over every operand code pair: an int64 ``[2^bits_a, 2^bits_b]`` table."""
    from ..lutgen.lut import code_values

    a = code_values(bits_a, signed)[:, None]
    b = code_values(bits_b, signed)[None, :]
    return np.broadcast_to(fam.formula(a, b, bits_a, bits_b, signed=signed, **params), (1 << bits_a, 1 << bits_b))


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
