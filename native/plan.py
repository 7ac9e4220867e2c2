"""Table plans: how the register-table CPU kernels hold a LUT for one layer, and what runs beside them.

For the stored codes ``s_a`` of operand a (the rows a layer reaches: ``s_a < rows``) and ``s_b`` of operand b,
a plan writes the table as

    T = x[s_a]·y[s_b] + r[s_a] + c[s_b] + bias + scale·Q[s_a, s_b],    0 <= Q < 2^(8·planes)

The kernels look up only ``Q``: one unsigned byte plane when it spans at most 256 values, else two (a look-up
per plane, so one plane halves the work), none when nothing is left (an exact multiplier: the exact product
alone). ``x·y`` (the *exact product*) runs on a native GEMM, the offsets
``r`` and ``c`` are chosen to make ``Q`` span as few values as possible, and ``scale`` is the gcd of the
entries. For an approximate multiplier, ``Q`` is what is left of its error after the exact product and the
offsets: 32 of the 68 EvoApprox 8x8 multipliers fit one plane that way, against 26 whose plain error
``T - a·b`` does.

*Folded* plans: where the rows of ``Q`` whose stored code has bit ``j`` set are the rows with it clear plus
terms of ``s_a`` alone and of ``s_b`` alone, each plane holds the rows with the bit clear and one byte
``F[s_b]`` per column, ``Q[s_a, s_b] = P[s_a without bit j, s_b] + bit_j(s_a) F[s_b]``, and the row offsets
take up the rest. The kernels look up one bit fewer and add ``F`` under the mask of bit ``j``: on VBMI (8-bit
codes, any bit; bit 7 is moved into place ``j`` first) one two-register permute instead of two and a blend; on
AVX2 (the top bit of the codes) a blend tree of half the sub-tables. With the int8 exact product, bit 7 and
``F`` fitting int8, the fold's term joins that GEMM instead (the code panel's bit 7 as extra rows of k) and the
kernel adds nothing. Most unsigned EvoApprox 8x8 tables fold (``lutgen bench --corpus`` names the bit).

*Narrow* plans: where every row of ``Q`` is the row of its stored code's low ``L`` bits plus a constant (the
error of many truncating multipliers depends only on the low bits of a), the table holds those ``2^L`` rows
(repeated up to the kernels' 64 or 16) and the row offsets take up the higher bits: the kernels look up ``L``
bits, with no extra pass (most unsigned EvoApprox 8x8 tables: 2 to 7 of their 8 bits).

*High plane by fewer bits* (two planes of 8-bit codes): where each group of ``2^L`` consecutive rows of ``Q``
spans at most a byte per column, the high plane holds one byte per group (``Q``'s group minimum, shifted) and
is looked up on ``s_a >> L``: on VBMI a 7- or 6-bit permute instead of an 8-bit one (L = 1, 2), on AVX2 a
blend tree of ``16 >> L`` sub-tables instead of 16 (L = 1..4); the low plane holds the rest. The high byte
of a product-like table changes slowly down a column: most unstructured two-plane EvoApprox tables take it.

Plans are chosen by an estimated cost per 64 look-ups: on VBMI from the prices of the kernels' parts measured
on the machine (:mod:`.costs`), on AVX2 from a count of issue slots.

Stored codes are the operand codes, XOR ``flip`` where the packing applied it (see :func:`int8_flip`), so that
a stored code read as int8 equals the operand value up to an additive constant, which the offsets absorb:
int8 GEMMs then run the exact product on the same code panels the kernels read.

Exact kinds: ``None`` (x = y = 0: the table itself), ``"int8"`` (x = int8(stored code); ``torch._int_mm``,
exact on CPUs with VNNI or AMX, see :func:`int8_gemm_is_exact`) and ``"values"`` (x, y = operand values; a
native float GEMM or convolution kept exact by slicing, see :mod:`.decompose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .costs import kernel_costs
from .cpu_features import detect
from .prepared import PreparedLut, code_values

EXACT_KINDS = (None, "int8", "values")
GROUPS_LOW = (8, 2, 1)
"""Byte-sum groups of a one-plane kernel, VBMI or AVX2 (4 is no faster than 2 on the Intel Xeon it was measured
on)."""
GROUPS_HIGH = (16, 8, 4, 1)
"""Byte-sum groups of the high plane of a two-plane VBMI kernel."""
GROUPS_LOW_TWO = (8, 1)
"""Byte-sum groups of the low plane of a two-plane VBMI kernel."""
_FIT_ROUNDS = 24


@dataclass(frozen=True, eq=False)
class TablePlan:
    """One layout of a LUT for the byte-plane kernels (see the module docstring).

    Attributes:
        exact: the exact product's kind (``None``, ``"int8"`` or ``"values"``).
        rows: stored codes of a covered (``2^bits_eff``).
        flip_a: XOR between the codes of a and the stored codes (0: none).
        flip_b: the same for b.
        table: uint8 ``[2^bits_b, max(1, planes), max(64, rows)]``: column ``s_b``, plane, row ``s_a``; folded,
            ``[2^bits_b, 2 * planes, max(64, rows / 2)]`` (the planes, then their fold registers; see ``fold``),
            or ``[2^bits_b, 1, 128]`` with ``fold_weights``.
        planes: 0 (nothing to look up: ``Q`` is 0, the exact product and the offsets are the table), 1 or 2.
        span: number of values ``Q`` spans.
        group_lo: byte-sum group of the low plane (its entries are at most ``255 / group_lo``).
        group_hi: the same for the high plane.
        scale: factor of ``Q``.
        bias: constant per product.
        row_offset: int64 ``[rows]`` by stored code, or ``None`` when zero.
        row_table: the row offsets minus ``row_bias`` as a one-column table of one byte plane where they span
            at most 256 values, else two (uint8 ``[256, planes, max(64, rows)]``, column 0): a LUT-GEMM with
            one column of code 0 sums them per row.
        row_bias: see ``row_table``.
        col_offset: int64 ``[256]`` by stored code (zero beyond ``2^bits_b``), or ``None`` when zero.
        cost: estimated work per 64 look-ups (comparable between plans of one ISA path only).
        lookup_bits: the code width the kernels are run for: ``log2(rows)``; 7 with ``fold_weights``; fewer
            for a *narrow* plan, whose table holds only the rows of the low ``lookup_bits`` bits of the
            stored codes (``table [2^bits_b, planes, max(64, 2^lookup_bits)]``) because every other row is
            one of those plus its row offset (the kernels ignore the higher bits of the codes).
        shift: two planes: ``Q = low + (high << shift)``: below 8 where both planes then group better (VBMI)
            or where a folded plan's sums then stay bytes, else 8.
        fold: each plane holds the ``rows / 2`` rows of codes whose bit ``fold_bit`` is clear (in the order of
            :func:`fold_order`), and ``table[:, planes + i, :]`` holds plane i's ``F[s_b] mod 256`` in every
            entry, added to the looked-up byte where the bit is set (see the module docstring).
        fold_bit: the bit of the stored codes of a that a folded plan folds on.
        fold_weights: int8 ``[256]`` by stored code of b, or ``None``: a plan folded on bit 7 with an int8 exact
            product whose fold bytes fit int8 (times ``scale``) adds ``bit7(s_a) * fold_weights[s_b]`` in that
            GEMM instead (the plane then has no fold register, and the kernel runs as for 7-bit codes).
        exact_shift: for a coarse table (codes ``a >> L``, see :meth:`PreparedLut.coarse`): the int8 exact
            product reads each stored code of a as ``int8(((s_a << L) & 0xFF) ^ exact_flip)``, the value
            ``a & ~(2^L - 1)`` it stands for (up to a constant), so that the error left is the full table's.
        exact_flip: see ``exact_shift`` (0x80 for unsigned codes, else 0).
        hi_drop: two planes, 8-bit codes, neither folded nor narrow: the high plane is looked up on ``s_a >>
            hi_drop`` (its ``256 >> hi_drop`` rows by that code), ``Q = low[s_a] + (high[s_a >>
            hi_drop] << shift)``: where each group of ``2^hi_drop`` consecutive rows spans at most a byte per
            column, the high plane takes a cheaper look-up (VBMI: a permute of 7 bits, ``hi_drop`` 1, or 6,
            ``hi_drop`` 2, instead of two two-register permutes and a blend; AVX2: ``16 >> hi_drop``
            sub-tables, ``hi_drop`` 1..4). 0: the high plane is looked up on ``s_a``.
    """

    exact: str | None
    rows: int
    flip_a: int
    flip_b: int
    table: torch.Tensor
    planes: int
    span: int
    group_lo: int
    group_hi: int
    scale: int
    bias: int
    row_offset: torch.Tensor | None
    row_table: torch.Tensor | None
    row_bias: int
    col_offset: torch.Tensor | None
    cost: float
    lookup_bits: int
    fold: bool = False
    shift: int = 8
    fold_bit: int = 7
    fold_weights: torch.Tensor | None = None
    exact_shift: int = 0
    exact_flip: int = 0
    hi_drop: int = 0

    @property
    def narrow(self) -> bool:
        """Whether the table holds only the rows of the low ``lookup_bits`` code bits (see ``lookup_bits``)."""
        return not self.fold and 1 << self.lookup_bits < self.rows

    @property
    def sum_bound(self) -> int:
        """Largest magnitude per product of a part summed in int32 (Q, the int8 product with a fold's term, the
        row offsets): a reduction over K steps is safe while ``K * sum_bound`` fits int32."""
        bound = self.span
        if self.exact == "int8":  # |int8 x int8| <= 2^14, plus |bit 7 x fold weight| <= 128 in the same sum
            bound = max(bound, (1 << 14) + (128 if self.fold_weights is not None else 0))
        if self.row_offset is not None:
            bound = max(bound, int(self.row_offset.abs().max()) + 1)
        return bound

    @property
    def code(self) -> str:
        """Short class of the plan for tables: ``E1``/``E2`` (exact product + one/two planes of the error),
        ``T1``/``T2`` (planes of the table)."""
        return f"{'E' if self.exact else 'T'}{self.planes}"

    def describe(self) -> str:
        """A few words for the path string, e.g. ``"exact int8 + 1 plane"``."""
        parts = []
        if self.exact is not None:
            parts.append(f"exact {self.exact}" + (f" (a << {self.exact_shift})" if self.exact_shift else ""))
        plural = "" if self.planes == 1 else "s"
        where = " into the int8 product" if self.fold_weights is not None else ""
        folded = f", folded on bit {self.fold_bit}{where}" if self.fold else ""
        if self.narrow:
            folded = f", {self.lookup_bits} of {(self.rows - 1).bit_length()} code bits"
        if self.hi_drop:
            folded = f", high plane on a >> {self.hi_drop}"
        parts.append(f"{self.planes} plane{plural} of {'E' if self.exact else 'T'} ({self.span} values{folded})")
        return " + ".join(parts)


def int8_flip(bits: int, signed: bool) -> int:
    """The XOR that makes int8(stored code) the operand value plus a constant, for codes at or above it.

    Unsigned 8-bit codes ``c >= 128`` read as int8 are ``c - 256``: XOR 0x80 makes them ``c - 128`` (all codes).
    Signed codes narrower than 8 bits read as int8 are the code, not the value, once negative: XOR
    ``2^(bits-1)`` makes them ``value + 2^(bits-1)``. 0 where int8(code) is the value already. Codes below the
    flip read correctly without it, so packers apply it only when a code reaches it.
    """
    if bits == 8:
        return 0 if signed else 0x80
    return 1 << (bits - 1) if signed else 0


@lru_cache(maxsize=1)
def int8_gemm_is_exact() -> bool:
    """Whether ``torch._int_mm`` computes exact int32 sums on this machine.

    oneDNN's int8 GEMM is exact with VNNI or AMX; without them (e.g. under ``ONEDNN_MAX_CPU_ISA=AVX2``) it
    multiplies through saturating 16-bit pair sums and gets large products wrong. The CPU must have the
    instructions and a probe at the saturating edge values must come out exact.
    """
    features = detect()
    if not any(features.has(flag) for flag in ("avx512_vnni", "avx_vnni", "amx_int8")):
        return False
    try:
        for value_a, value_b in ((-128, -128), (127, -128), (-128, 127), (127, 127)):
            for rows, depth, cols in ((16, 64, 64), (64, 256, 48)):
                a = torch.full((rows, depth), value_a, dtype=torch.int8)
                b = torch.full((depth, cols), value_b, dtype=torch.int8)
                if not bool((torch._int_mm(a, b) == depth * value_a * value_b).all()):
                    return False
    except RuntimeError:
        return False
    return True


def _widen_groups(maximum: int, choices: tuple[int, ...]) -> int:
    """The largest group whose byte sums stay below 256."""
    return next(g for g in choices if g * maximum <= 255)


def _fit_offsets(d: np.ndarray, *, rows: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer offsets ``(r, c, span)`` that make ``d - r[:, None] - c[None, :]`` span few values.

    Column offsets alone: each column's minimum (optimal). With ``rows``: alternating midrange fits of rows
    and columns in real numbers (until they stop changing); each round is made integral twice (floored
    midranges; rounded row offsets with column minima) and the best of all (and of no row offsets) is kept.
    """

    def columns_for(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        x = d - r[:, None]
        low = x.min(axis=0)
        return r, low, int((x.max(axis=0) - low).max()) + 1

    def span_of(r: np.ndarray, c: np.ndarray) -> int:
        residual = d - r[:, None] - c[None, :]
        return int(residual.max() - residual.min()) + 1

    best = columns_for(np.zeros(d.shape[0], dtype=np.int64))
    if not rows:
        return best
    real = d.astype(np.float64)
    r = np.zeros(d.shape[0])
    for _ in range(_FIT_ROUNDS):
        x = real - r[:, None]
        c = (x.max(axis=0) + x.min(axis=0)) / 2
        x = real - c[None, :]
        previous, r = r, (x.max(axis=1) + x.min(axis=1)) / 2
        candidate = columns_for(np.round(r).astype(np.int64))
        if candidate[2] < best[2]:
            best = candidate
        ri, ci = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
        span = span_of(ri, ci)
        if span < best[2]:
            best = (ri, ci, span)
        if np.array_equal(r, previous):  # a fixed point: every later round repeats this one's (r, c)
            break
    return best


@lru_cache(maxsize=16)
def fold_order(bit: int, rows: int = 256) -> np.ndarray:
    """The stored codes of a below ``rows`` in the order a plan folded on ``bit`` holds them: row
    ``r < rows / 2`` is the code with ``bit`` clear whose other bits are those of ``r``, the top bit of ``r``
    (bit ``log2(rows) - 2``) moved to place ``bit``; row ``rows / 2 + r`` is that code with ``bit`` set. (Code
    order where ``bit`` is the top bit of the codes.)"""
    top = rows.bit_length() - 2
    r = np.arange(rows // 2)
    lower = r if bit == top else (r & ~(1 << bit)) | (((r >> bit) & 1) << top)
    order = np.concatenate([lower, lower | (1 << bit)])
    order.setflags(write=False)
    return order


def _fold_offsets(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Offsets ``(r, c, span)`` of a folded plan for the rows of ``d`` (in :func:`fold_order`: the rows with the
    fold bit clear, then those with it set), or ``None`` when the upper half is not the lower half plus a term
    of the row and a term of the column.

    With ``h = rows / 2``, ``d[h + s, b] - d[s, b] = u[s] + v[b]``: the lower half gets its own fit (with or
    without row offsets, whichever lays out better), the upper rows the same column offsets and row offsets
    that leave ``F[b] = v[b] - min(v)`` (so ``F >= 0``), shifted to keep the union of both halves' values
    narrow where that fits one plane (whose sums wrap mod 256, so ``F`` may then be stored mod 256), else not
    shifted (two planes need ``F >= 0``: no carries between them).
    """
    low, high = d[: d.shape[0] // 2], d[d.shape[0] // 2 :]
    diff = high - low
    if np.any(diff - diff[:, :1] - diff[:1, :] + diff[0, 0]):
        return None
    fits = [_fit_offsets(low, rows=False), _fit_offsets(low, rows=True)]
    r_lo, c, _ = max(fits, key=lambda fit: _layout(fit[2]))
    q_lo = low - r_lo[:, None] - c[None, :]
    v = diff[0, :] - diff[0, 0]
    folded = q_lo + (v - v.min())[None, :]
    best: tuple[np.ndarray, np.ndarray, int] | None = None
    # Shifts of the upper half: lining up the halves' minima or maxima narrows one plane (whose sums wrap mod
    # 256); none keeps every F >= 0, which two planes need (no carries between them).
    for shift in (int(folded.min() - q_lo.min()), int(folded.max() - q_lo.max()), 0):
        r_hi = r_lo + diff[:, 0] + v.min() + shift
        residual = d - np.concatenate([r_lo, r_hi])[:, None] - c[None, :]
        span = int(residual.max() - residual.min()) + 1
        if best is None or (span < best[2] and span <= 256) or (shift == 0 and best[2] > 256):
            best = (np.concatenate([r_lo, r_hi]), c, span)
    return best


def _best_fit(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Offsets ``(r, c, span)`` of an unfolded plan: column offsets alone, or with row offsets where those lay
    out better (they cost one more, one-column, LUT-GEMM: kept when they save a plane or widening)."""
    r, c, span = _fit_offsets(d, rows=False)
    r2, c2, span2 = _fit_offsets(d, rows=True)
    return (r2, c2, span2) if _layout(span2) > _layout(span) else (r, c, span)


def _rows_looked_up(d: np.ndarray) -> int:
    """The fewest low rows (a power of two) such that every row of ``d`` is the low row of its index (the index
    modulo that many) plus a constant: the code bits above them are row offsets alone."""
    kept = d.shape[0]
    while kept > 1:
        half = kept // 2
        low_of = np.arange(d.shape[0]) % half
        step = d - d[low_of]
        if np.any(step - step[:, :1]):
            break
        kept = half
    return kept


def _layout(span: int) -> tuple[int, int]:
    """How good a span is for the kernels: fewer planes first, then larger byte-sum groups."""
    if span > 256:
        return (-2, _widen_groups((span - 1) >> 8, GROUPS_HIGH) if span <= 1 << 16 else 0)
    return (-1, _widen_groups(span - 1, GROUPS_LOW))


def _store(
    q: np.ndarray, planes: int, fold: bool, isa: str, bits_eff: int, padded: int, rows_order: bool
) -> tuple[np.ndarray, int, int, int, float] | None:
    """``(table, shift, group_lo, group_hi, cost)``: ``0 <= Q`` (rows x columns) as the kernels read it, uint8
    ``[columns, planes (+ planes folded), padded]``, or ``None`` when it does not fit.

    Two planes hold ``Q mod 2^shift`` and ``Q >> shift`` with the cheapest shift that fits (8 on a tie): on VBMI
    a narrower low plane sums more bytes before widening, the high one fewer; folded, a low plane below 2^7
    leaves room for the fold bytes without carries. Folded,
    the planes hold the lower 128 rows, and after them one register per plane of the column's fold bytes,
    which the kernel adds to the looked-up bytes of rows ``>= 128``; every such sum must be the byte the
    plane holds for that row (one plane: mod 256, the sums lie in 0..255; two: each plane's sum within
    0..255, no carries).
    """
    cols = q.shape[1]
    half = q.shape[0] // 2
    lower = q[:half] if fold else q
    delta = q[half] - q[0] if fold else np.zeros(cols, dtype=np.int64)
    vbmi = isa == "avx512vbmi"
    best: tuple[float, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int] | None = None
    for shift in range(1, 9) if planes == 2 and (vbmi or fold) else (8,):  # (AVX2 unfolded: every split ties)
        low, high = (lower, np.zeros_like(lower)) if planes < 2 else (lower & ((1 << shift) - 1), lower >> shift)
        if int(high.max()) > 255:
            continue
        if planes < 2:
            fold_lo, fold_hi = delta & 0xFF, np.zeros_like(delta)
            low_max, high_max = int(q.max()), 0
        else:  # each column's delta as low + (high << shift): two ways, kept where every sum stays a byte
            fold_lo, fold_hi = delta & ((1 << shift) - 1), delta >> shift
            ok = _bytes(low + fold_lo) & _bytes(high + fold_hi)
            fold_lo = np.where(ok, fold_lo, fold_lo - (1 << shift))
            fold_hi = np.where(ok, fold_hi, fold_hi + 1)
            if not np.all(_bytes(low + fold_lo) & _bytes(high + fold_hi)):
                continue
            low_max = max(int(low.max()), int((low + fold_lo).max()) if fold else 0)
            high_max = max(int(high.max()), int((high + fold_hi).max()) if fold else 0)
        one = planes == 1
        group_lo = _widen_groups(low_max, GROUPS_LOW if one else GROUPS_LOW_TWO) if one or (vbmi and planes) else 1
        group_hi = _widen_groups(high_max, GROUPS_HIGH) if vbmi and planes == 2 else 1
        cost = sum(plane_cost(isa, bits_eff, group, rows_order) for group in (group_lo, group_hi)[:planes])
        cost += fold_cost(isa) * planes * fold
        if best is None or cost < best[0] or (cost == best[0] and shift == 8):
            best = (cost, shift, low, high, fold_lo, fold_hi, group_lo, group_hi)
    if best is None:
        return None
    cost, shift, low, high, fold_lo, fold_hi, group_lo, group_hi = best
    stored = np.zeros((cols, max(1, planes) * (1 + fold), padded), dtype=np.uint8)
    stored[:, 0, : lower.shape[0]] = low.T.astype(np.uint8)
    if planes == 2:
        stored[:, 1, : lower.shape[0]] = high.T.astype(np.uint8)
    if fold:  # a whole register of each column's fold byte per plane
        stored[:, planes, :] = (fold_lo & 0xFF).astype(np.uint8)[:, None]
        if planes == 2:
            stored[:, 3, :] = (fold_hi & 0xFF).astype(np.uint8)[:, None]
    return stored, shift, group_lo, group_hi, cost


def _store_coarse_high(
    q: np.ndarray, isa: str, rows_order: bool
) -> tuple[np.ndarray, int, int, int, float, int] | None:
    """``(table, shift, group_lo, group_hi, cost, hi_drop)`` of two planes of ``Q`` (256 rows of 8-bit codes x
    columns) whose high plane is looked up on ``s_a >> hi_drop`` (see :attr:`TablePlan.hi_drop`), the cheapest
    over ``hi_drop`` and ``shift``; ``None`` where no split fits.

    Per group of ``2^hi_drop`` rows and column, the high byte is the group's minimum ``>> shift`` (the largest
    that keeps the low plane non-negative), and the low plane holds the rest, which must stay below 256.
    """
    if q.shape[0] != 256:
        return None
    vbmi = isa == "avx512vbmi"
    best: tuple[float, int, int, np.ndarray, int, int] | None = None
    # (VBMI: 7 and 6 bits, below which a look-up costs no less; AVX2: down to one sub-table of 16)
    for drop in (1, 2) if vbmi else (1, 2, 3, 4):
        groups = q.reshape(256 >> drop, 1 << drop, q.shape[1])
        lowest, highest = groups.min(axis=1), groups.max(axis=1)
        for shift in range(1, 9):
            high = lowest >> shift
            low_max = int((highest - (high << shift)).max())
            if int(high.max()) > 255 or low_max > 255:
                continue
            # (AVX2's two planes widen every step)
            group_lo = _widen_groups(low_max, GROUPS_LOW_TWO) if vbmi else 1
            group_hi = _widen_groups(int(high.max()), GROUPS_HIGH) if vbmi else 1
            # The high plane's codes: a 16-bit shift per looked-up vector, a third of a widening (VBMI); a
            # shift and a mask per vector of 32, shared by two columns (AVX2).
            extra = kernel_costs().widen / 3 if vbmi else 2.0
            cost = plane_cost(isa, 8, group_lo, rows_order) + plane_cost(isa, 8 - drop, group_hi, rows_order) + extra
            if best is None or cost < best[0]:
                best = (cost, drop, shift, high, group_lo, group_hi)
    if best is None:
        return None
    cost, drop, shift, high, group_lo, group_hi = best
    by_row = high[np.arange(256) >> drop]  # rows x columns: each row's group high byte
    stored = np.zeros((q.shape[1], 2, 256), dtype=np.uint8)
    stored[:, 0, :] = (q - (by_row << shift)).T.astype(np.uint8)
    stored[:, 1, : 256 >> drop] = high.T.astype(np.uint8)
    return stored, shift, group_lo, group_hi, cost, drop


def _bytes(x: np.ndarray) -> np.ndarray:
    """Per column: whether every entry is a byte (0..255)."""
    return np.all((x >= 0) & (x <= 255), axis=0)


def plane_cost(isa: str, bits_eff: int, group: int, rows_order: bool = False) -> float:
    """Estimated work per 64 look-ups of one byte plane (``group``: its byte-sum group): on VBMI in the units of
    this machine's :func:`~approxlut.native.costs.kernel_costs`, on AVX2 in issue slots, for calls of enough
    rows to run in the AVX2 rows order where ``rows_order``."""
    if isa == "avx512vbmi":
        costs = kernel_costs()
        return costs.lookup_cost(bits_eff) + costs.widen / group
    # AVX2, per vector of 32: a vpshufb per 16 entries and a tree of blends, then 3 widening instructions per
    # step, or a byte add per step and those 3 per group; from 6 bits the rows order where it runs and costs less
    subtables = 1 << max(0, bits_eff - 4)
    nibble = 2 * (2 * subtables - 1) + (6 if group == 1 else 2 + 6 / group)
    return min(nibble, AVX2_ROWS_COST) if rows_order and bits_eff >= 6 else nibble


AVX2_ROWS_COST = 12.0
"""Estimated cost per 64 look-ups of one byte plane in the AVX2 rows order (see ``rows_order_pays``) at any
code width: a load and four vector instructions per 32, and the per-k transposes over thousands of rows
(measured on AMD Zen 5: 5.4x below the 8-bit blend tree, 1.6x below the 6-bit one)."""
AVX2_EXACT_COST = {"int8": 3.0, "values": 18.0}
"""Estimated cost of the exact product per 64 products on AVX2, in the units of :func:`plane_cost`. The float32
product (two or more exact float convolutions or GEMMs, summed in float64) costs about one and a half planes in
the rows order: over the corpus on AMD Zen 5's AVX2 path, the exact product plus one plane in the rows order ran
3.6-6.1x native against 2.9-3.2x for two planes of the table (and about as much as a 5-bit plane on the Zen 3
before, half of the bench table's convs)."""
AVX2_FOLD_COST = 2.0
"""Estimated cost of the AVX2 fold's blend and byte add per 64 look-ups and plane."""


def exact_cost(isa: str, kind: str) -> float:
    """Estimated cost of the exact product of ``kind`` per 64 products, in the units of :func:`plane_cost`."""
    if isa == "avx512vbmi":
        costs = kernel_costs()
        return costs.exact_int8 if kind == "int8" else costs.exact_values
    return AVX2_EXACT_COST[kind]


def fold_cost(isa: str) -> float:
    """Estimated cost of a folded plan's masked byte add per 64 look-ups and plane."""
    return kernel_costs().fold if isa == "avx512vbmi" else AVX2_FOLD_COST


@dataclass(frozen=True)
class _Reduced:
    """What every plan of one exact kind starts from: the table less its exact product, as
    ``base_r[:, None] + base_c[None, :] + scale * reduced`` (rows: stored codes of a; columns: of b)."""

    exact: str | None
    exact_shift: int
    exact_flip: int
    reduced: np.ndarray
    scale: int
    base_r: np.ndarray
    base_c: np.ndarray


def _reduce(lut: PreparedLut, rows: int, flip_a: int, flip_b: int, exact: str | None, exact_shift: int = 0) -> _Reduced:
    """The table of stored codes less the exact product of kind ``exact``, reduced by its scale."""
    cols = 1 << lut.bits_b
    codes_a = np.arange(rows) ^ flip_a
    codes_b = np.arange(cols) ^ flip_b
    table = lut.forward.cpu().numpy().astype(np.int64)[np.ix_(codes_a, codes_b)]
    exact_flip = 0x80 if exact_shift and not lut.signed else 0
    if exact == "int8":
        stored_a, stored_b = ((np.arange(rows) << exact_shift) & 0xFF) ^ exact_flip, np.arange(cols)
        table = table - np.outer(
            np.where(stored_a >= 128, stored_a - 256, stored_a), stored_b - 256 * (stored_b >= 128)
        )
    elif exact == "values":
        va = code_values(lut.bits_a, lut.signed).numpy()[codes_a]
        vb = code_values(lut.bits_b, lut.signed).numpy()[codes_b]
        table = table - np.outer(va, vb)
    # Scale: the gcd of the table's second differences (what row and column offsets cannot change); offsets
    # by residues modulo it make every entry a multiple of it.
    second = table - table[:, :1] - table[:1, :] + table[0, 0]
    scale = int(np.gcd.reduce(np.abs(second).ravel())) or 1
    base_r = (table[:, 0] - table[0, 0]) % scale
    base_c = table[0, :] % scale
    reduced = (table - base_r[:, None] - base_c[None, :]) // scale
    for shared in (reduced, base_r, base_c):  # (every variant reads them; none may write)
        shared.setflags(write=False)
    return _Reduced(exact, exact_shift, exact_flip, reduced, scale, base_r, base_c)


def _build(
    lut: PreparedLut,
    isa: str,
    rows: int,
    flip_a: int,
    flip_b: int,
    start: _Reduced,
    *,
    fold_bit: int | None = None,
    narrow: bool = False,
    rows_order: bool = False,
) -> TablePlan | None:
    """The plan of one exact kind (``start``; folded on ``fold_bit`` where given; narrow where ``narrow``), or
    ``None`` when ``Q`` would span more than 2^16 values, when a folded table does not fold (or folds to nothing
    to look up), when its planes cannot hold the fold's sums as bytes, or when a narrow plan would hold every
    row."""
    exact, exact_shift, exact_flip = start.exact, start.exact_shift, start.exact_flip
    reduced, scale, base_r, base_c = start.reduced, start.scale, start.base_r, start.base_c
    cols = 1 << lut.bits_b
    fold = fold_bit is not None
    order = fold_order(rows.bit_length() - 2 if fold_bit is None else fold_bit, rows)
    kept = rows // 2 if fold else _rows_looked_up(reduced) if narrow else rows
    if narrow and kept == rows:
        return None
    if narrow:  # the low rows get the fit; each other row is the low row of its code plus a row offset
        low_of = np.arange(rows) % kept
        r_low, c, span = _best_fit(reduced[:kept])
        r = r_low[low_of] + reduced[:, 0] - reduced[low_of, 0]
    elif fold:
        offsets = _fold_offsets(reduced[order])
        if offsets is None or offsets[2] == 1:
            return None
        r, c, span = np.empty_like(offsets[0]), offsets[1], offsets[2]
        r[order] = offsets[0]
    else:
        r, c, span = _best_fit(reduced)
    if span > 1 << 16:
        return None
    residual = reduced - r[:, None] - c[None, :]
    qmin = int(residual.min())
    q = residual - qmin
    planes = 0 if span == 1 else 1 if span <= 256 else 2
    bits_eff = max(1, (kept - 1).bit_length())
    # (a narrow plan's rows repeat up to the padded height: kernels look up at least 6 (VBMI) or 4 (AVX2) bits)
    stored_q = q[order] if fold else q[np.arange(max(64, kept)) % kept] if narrow else q
    layout = _store(stored_q, planes, fold, isa, bits_eff, max(64, kept), rows_order)
    if layout is None:
        return None
    stored, shift, group_lo, group_hi, cost = layout
    hi_drop = 0
    coarse_high = _store_coarse_high(q, isa, rows_order) if planes == 2 and not fold and not narrow else None
    if coarse_high is not None and coarse_high[4] < cost:
        stored, shift, group_lo, group_hi, cost, hi_drop = coarse_high
    if fold_bit is not None and fold_bit != rows.bit_length() - 2:
        cost += kernel_costs().fold_move
    if exact is not None:
        cost += exact_cost(isa, exact)
    rows_total, cols_total = base_r + scale * r, base_c + scale * c
    lookup_bits = max(1, (rows - 1).bit_length()) if fold else bits_eff
    fold_weights = None
    # The fold's term in the int8 GEMM (its k doubled) where that costs less than the kernel's masked add.
    into_int8 = exact == "int8" and exact_cost(isa, "int8") < fold_cost(isa)
    if fold_bit == 7 and rows == 256 and planes == 1 and into_int8:
        terms = scale * (q[order][128] - q[order][0])  # by stored code of b: rows >= 128 minus rows < 128
        centre = int(terms.min()) + 128
        # (a term alike in every column is a row offset: the narrow plan runs that table without this GEMM)
        if 0 < int(terms.max()) - int(terms.min()) <= 255:
            fold_weights = torch.zeros(256, dtype=torch.int8)
            fold_weights[:cols] = torch.from_numpy(terms - centre)
            rows_total = rows_total + centre * (np.arange(rows) >> 7)
            stored = stored[:, :1].copy()
            cost += exact_cost(isa, "int8") - fold_cost(isa)
            lookup_bits = 7
    row_offset = row_table = None
    row_bias = 0
    if np.any(rows_total):
        row_offset = torch.from_numpy(rows_total)
        row_bias = int(row_offset.min())
        shifted = row_offset - row_bias
        if int(shifted.max()) >= 1 << 16:
            return None  # (multipliers' rows differ by far less)
        row_table = torch.zeros((256, 1 if int(shifted.max()) < 256 else 2, max(64, rows)), dtype=torch.uint8)
        row_table[0, 0, :rows] = (shifted & 0xFF).to(torch.uint8)
        if row_table.shape[1] == 2:
            row_table[0, 1, :rows] = (shifted >> 8).to(torch.uint8)
    col_offset = None
    if np.any(cols_total):
        col_offset = torch.zeros(256, dtype=torch.int64)
        col_offset[:cols] = torch.from_numpy(cols_total)
    return TablePlan(
        exact=exact,
        rows=rows,
        flip_a=flip_a,
        flip_b=flip_b,
        table=torch.from_numpy(stored),
        planes=planes,
        span=span,
        group_lo=group_lo,
        group_hi=group_hi,
        scale=scale,
        bias=scale * qmin,
        row_offset=row_offset,
        row_table=row_table,
        row_bias=row_bias,
        col_offset=col_offset,
        cost=cost,
        lookup_bits=lookup_bits,
        exact_shift=exact_shift,
        exact_flip=exact_flip,
        fold=fold,
        shift=shift,
        fold_bit=7 if fold_bit is None else fold_bit,
        fold_weights=fold_weights,
        hi_drop=hi_drop,
    )


def plan_for(
    lut: PreparedLut, isa: str, rows: int, flip_a: int, flip_b: int, exact: str | None, *, rows_order: bool = False
) -> TablePlan | None:
    """The cheapest plan of ``lut`` on ``isa`` (``"avx2"`` or ``"avx512vbmi"``) for stored codes of a below
    ``rows``, with the exact product of kind ``exact`` allowed (or not, ``None``), priced for the AVX2 rows order
    where ``rows_order`` (calls of many rows of a); ``None`` when no plan fits two byte planes. Cached per LUT.

    Flips other than 0 mean the int8 reading of the codes (only ``exact="int8"`` plans may have them).
    """
    rows_order = rows_order and isa == "avx2"  # (VBMI plans are priced for its kernels alone)

    def build() -> TablePlan | None:
        kinds: list[str | None] = [None] if exact is None else [None, exact]
        folds: list[int | None] = [None]
        if isa == "avx512vbmi" and rows == 256:
            folds += [7, 6, 5, 4, 3, 2, 1, 0]
        elif isa == "avx2" and rows >= 32:  # the top bit: a blend tree of half the sub-tables
            folds.append(rows.bit_length() - 2)
        starts = [_reduce(lut, rows, flip_a, flip_b, kind) for kind in kinds]
        built = [
            _build(lut, isa, rows, flip_a, flip_b, start, fold_bit=bit, rows_order=rows_order)
            for start in starts
            for bit in folds
        ]
        built += [_build(lut, isa, rows, flip_a, flip_b, start, narrow=True, rows_order=rows_order) for start in starts]
        if exact == "int8" and lut.coarse_shift and flip_a == 0:  # a coarse table's codes as the values they stand for
            shifted = _reduce(lut, rows, 0, flip_b, "int8", lut.coarse_shift)
            built += [
                _build(lut, isa, rows, 0, flip_b, shifted, narrow=n, rows_order=rows_order) for n in (False, True)
            ]
        plans = [p for p in built if p is not None]
        return min(plans, key=lambda p: p.cost) if plans else None

    return lut.cached(f"plan:{isa}:{rows}:{flip_a}:{flip_b}:{exact}:{'rows' if rows_order else 'tree'}", build)
