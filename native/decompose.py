"""The exact decomposition path: ``T = a·b + Σ_r u_r[a] v_r[b]`` computed with native GEMMs, bit-exact.

Many approximate multipliers are an exact product plus a structured error ``E = T - a·b`` (values).
At prepare time :func:`decompose` looks for an exact *integer* factorisation of ``E`` into at most
``max_terms`` rank-1 terms: either ``E`` is zero (an exact multiplier), or it is non-zero in only a
few rows (columns) of the table (one indicator term per row), or a greedy integer elimination peels
rank-1 terms ``u v^T`` off ``E`` while every step stays integral (truncation-style circuits, whose
error depends on a few low bits only, have small rank). The layer is then
``C = A @ B + Σ_r U_r(A) @ V_r(B)`` with ``U_r(A)[m,k] = u_r[code(A[m,k])]``.

Every GEMM is exact: products and partial sums are integers, and a float32 GEMM is used only over
slices of ``K`` short enough that ``Σ_k |x_k y_k| < 2^24`` (float64 otherwise, exact below ``2^53``);
slices are summed in float64. Results are checked against the int32 range, never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from .engines import Engine, available_engines, get_engine, register_engine

if TYPE_CHECKING:
    from .prepared import PreparedLut

DEFAULT_MAX_TERMS = 4
_FP32_EXACT = 1 << 24
_FP64_EXACT = 1 << 53
_INT32_MAX = (1 << 31) - 1
_GIVE_UP_MAGNITUDE = 1 << 40


@dataclass(frozen=True, eq=False)
class Decomposition:
    """``T[ia, ib] = value_a[ia]·value_b[ib] + Σ_r u[r, ia]·v[r, ib]`` exactly (codes index u and v).

    Attributes:
        u: int64 ``[R, 2^bits_a]`` (R may be 0 for an exact multiplier).
        v: int64 ``[R, 2^bits_b]``.
        kind: ``"exact"``, ``"rows"``, ``"columns"`` or ``"low-rank"``.
    """

    u: np.ndarray
    v: np.ndarray
    kind: str

    @property
    def terms(self) -> int:
        """Number of rank-1 correction terms."""
        return int(self.u.shape[0])

    def describe(self) -> str:
        """One line: which decomposition was found."""
        if self.kind == "exact":
            return "decomp: exact product (E = 0), one native GEMM"
        plural = "s" if self.terms != 1 else ""
        return f"decomp: exact product + {self.terms} {self.kind} correction term{plural}"


def _code_values(bits: int, signed: bool) -> np.ndarray:
    codes = np.arange(1 << bits, dtype=np.int64)
    if signed:
        codes = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes


def _sparse_lines(error: np.ndarray, max_terms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Indicator terms for the non-zero rows of ``error``, when there are at most ``max_terms``."""
    rows = np.flatnonzero(np.any(error != 0, axis=1))
    if len(rows) > max_terms:
        return None
    u = np.zeros((len(rows), error.shape[0]), dtype=np.int64)
    u[np.arange(len(rows)), rows] = 1
    return u, error[rows].copy()


def _integer_peel(error: np.ndarray, max_terms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy integer rank-1 elimination: ``error = Σ u_r v_r^T`` with integer vectors, or ``None``.

    Each step picks a pivot ``p = R[i, j]`` that divides its whole column (or row), so the rank-1
    term ``(R[:, j] / p) R[i, :]`` is integral and the residual keeps integer entries; each step lowers
    the rank by exactly one.
    """
    residual = error.copy()
    us: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    while np.any(residual != 0):
        if len(us) == max_terms or np.abs(residual).max() > _GIVE_UP_MAGNITUDE:
            return None
        pivot = _divisible_pivot(residual)
        if pivot is None:
            transposed = _divisible_pivot(residual.T)
            if transposed is None:
                return None
            j, i = transposed
            p = residual[i, j]
            u, v = residual[:, j].copy(), residual[i, :] // p
        else:
            i, j = pivot
            p = residual[i, j]
            u, v = residual[:, j] // p, residual[i, :].copy()
        residual = residual - np.outer(u, v)
        us.append(u)
        vs.append(v)
    return np.array(us, dtype=np.int64).reshape(len(us), -1), np.array(vs, dtype=np.int64).reshape(len(vs), -1)


def _divisible_pivot(residual: np.ndarray) -> tuple[int, int] | None:
    """A position ``(i, j)`` whose entry is ``±gcd`` of its column, preferring the smallest magnitude."""
    gcds = np.gcd.reduce(np.abs(residual), axis=0)
    best: tuple[int, int] | None = None
    best_mag = 0
    for j in np.flatnonzero(gcds):
        hits = np.flatnonzero(np.abs(residual[:, j]) == gcds[j])
        if len(hits) and (best is None or gcds[j] < best_mag):
            best, best_mag = (int(hits[0]), int(j)), int(gcds[j])
            if best_mag == 1:
                break
    return best


def decompose(
    forward: np.ndarray, bits_a: int, bits_b: int, signed: bool, *, max_terms: int = DEFAULT_MAX_TERMS
) -> Decomposition | None:
    """Find an exact integer decomposition of ``forward - a·b`` with at most ``max_terms`` terms.

    Args:
        forward: int table ``[2^bits_a, 2^bits_b]`` indexed by codes.
        bits_a: width of operand ``a``.
        bits_b: width of operand ``b``.
        signed: two's complement operands.
        max_terms: largest number of rank-1 correction terms accepted.

    Returns:
        The decomposition with the fewest terms, or ``None`` when there is none within ``max_terms``.
    """
    table = np.asarray(forward, dtype=np.int64)
    error = table - np.multiply.outer(_code_values(bits_a, signed), _code_values(bits_b, signed))
    if not np.any(error):
        empty_a = np.zeros((0, 1 << bits_a), dtype=np.int64)
        return Decomposition(empty_a, np.zeros((0, 1 << bits_b), dtype=np.int64), "exact")
    found: list[tuple[np.ndarray, np.ndarray, str]] = []
    rows = _sparse_lines(error, max_terms)
    if rows is not None:
        found.append((*rows, "rows"))
    cols = _sparse_lines(error.T, max_terms)
    if cols is not None:
        found.append((cols[1], cols[0], "columns"))
    peeled = _integer_peel(error, max_terms)
    if peeled is not None:
        found.append((*peeled, "low-rank"))
    if not found:
        return None
    u, v, kind = min(found, key=lambda item: item[0].shape[0])
    assert np.array_equal(error, u.T @ v), "decomposition must reproduce E exactly"
    return Decomposition(u, v, kind)


def analyse(lut: PreparedLut) -> Decomposition | None:
    """The decomposition of a prepared LUT (computed once, kept in the LUT's cache)."""

    def build() -> Decomposition | None:
        forward = lut.forward.detach().cpu().numpy()
        return decompose(forward, lut.bits_a, lut.bits_b, lut.signed)

    return lut.cached("decomposition", build)


def describe(lut: PreparedLut) -> str:
    """Which path the decomposition analysis chose for ``lut`` (one line)."""
    found = analyse(lut)
    if found is None:
        return f"decomp: not applicable (E = T - a·b has no integer factorisation with <= {DEFAULT_MAX_TERMS} terms)"
    return found.describe()


# ---------------------------------------------------------------------------------------------------
# Exact GEMM / convolution building blocks


def _fp32_is_ieee(device: torch.device) -> bool:
    """Whether float32 GEMMs/convolutions on ``device`` provably run in IEEE float32 arithmetic.

    Only on the CPU with torch's default precision settings (no TF32/bf16 shortcuts); on GPUs cuBLAS and
    cuDNN may use TF32 or transform-based algorithms, so the exact path stays in float64 there.
    """
    if device.type != "cpu" or torch.get_float32_matmul_precision() != "highest":
        return False
    mkldnn = torch.backends.mkldnn
    settings = [
        getattr(torch.backends, "fp32_precision", "none"),
        getattr(mkldnn, "fp32_precision", "none"),
        getattr(getattr(mkldnn, "conv", None), "fp32_precision", "none"),
        getattr(getattr(mkldnn, "matmul", None), "fp32_precision", "none"),
    ]
    return all(setting in ("none", "ieee") for setting in settings)


def _max_abs(t: torch.Tensor) -> int:
    if t.numel() == 0:
        return 0
    lo, hi = torch.aminmax(t)
    return int(max(abs(lo.item()), abs(hi.item())))


def exact_bmm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x @ y`` exactly for integer-valued float tensors ``[G, M, K] @ [G, K, N]``.

    float32 when one float32 GEMM is provably exact (every partial sum below ``2^24``), else float64:
    float32 GEMMs over slices of ``K`` short enough to be exact, summed in float64 (or one float64 GEMM
    when the slices would be too short to pay off).
    """
    k = x.shape[-1]
    per_term = _max_abs(x) * _max_abs(y)
    if per_term == 0:
        return torch.bmm(x.float(), y.float())
    if k * per_term >= _FP64_EXACT:
        raise InputError(f"exact GEMM would exceed 2^53 (K={k}, max |term|={per_term}); use another engine")
    chunk = _FP32_EXACT // per_term if _fp32_is_ieee(x.device) else 0
    if chunk >= k:
        return torch.bmm(x.float(), y.float())
    if chunk < 16:
        return torch.bmm(x.double(), y.double())
    x32, y32 = x.float(), y.float()
    out = torch.zeros(x.shape[0], x.shape[1], y.shape[2], dtype=torch.float64, device=x.device)
    step = -(-k // -(-k // chunk))  # as few slices as `chunk` allows, of equal size
    for start in range(0, k, step):
        out += torch.bmm(x32[:, :, start : start + step], y32[:, start : start + step, :])
    return out


def exact_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    bounds: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``conv2d(x, w)`` (symmetric zero padding) exactly for integer-valued float tensors.

    ``bounds`` (largest possible ``|x|`` and ``|w|``) saves the passes over the data when they already
    prove that one float32 convolution is exact.

    float32 when one float32 convolution is provably exact, else float64: the input channels of every
    group are split into slices whose partial sums stay below ``2^24`` (float32 convolutions summed in
    float64), or one float64 convolution when a slice would be too small to pay off.
    """
    _, cg, kh, kw = w.shape
    window = kh * kw
    ieee = _fp32_is_ieee(x.device)
    fits = bounds is not None and cg * window * bounds[0] * bounds[1] < _FP32_EXACT and ieee
    per_term = 1 if fits else _max_abs(x) * _max_abs(w)

    def conv(inp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(inp, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)

    if per_term == 0:
        return conv(x.float(), w.float())
    if cg * window * per_term >= _FP64_EXACT:
        raise InputError(f"exact convolution would exceed 2^53 (K={cg * window}); use another engine")
    chunk = _FP32_EXACT // (per_term * window) if ieee else 0
    if fits or chunk >= cg:
        return conv(x.float(), w.float())
    if chunk * window < 16:
        return conv(x.double(), w.double())
    n, _, h, wd = x.shape
    xg = x.float().reshape(n, groups, cg, h, wd)
    w32 = w.float()
    out: torch.Tensor | None = None
    step = -(-cg // -(-cg // chunk))  # as few slices as `chunk` allows, of equal size (faster than a remainder)
    for start in range(0, cg, step):
        stop = min(cg, start + step)
        part = conv(xg[:, :, start:stop].reshape(n, groups * (stop - start), h, wd), w32[:, start:stop].contiguous())
        out = part.double() if out is None else out + part
    assert out is not None
    return out


def _checked(acc: torch.Tensor, what: str) -> torch.Tensor:
    """``acc`` (exact integers) after checking the int32 range (float32 sums are below 2^24 already)."""
    if acc.dtype == torch.float64 and acc.numel() and _max_abs(acc) > _INT32_MAX:
        raise InputError(f"{what}: the result exceeds the int32 range; split the reduction (smaller K)")
    return acc


# ---------------------------------------------------------------------------------------------------
# Decomposed LUT-GEMM and convolution


def _term_tables(lut: PreparedLut, found: Decomposition) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, v)`` as float32 tensors ``[R, 2^bits]`` on the LUT's device (cached per LUT)."""

    def build() -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.from_numpy(found.u).to(device=lut.device, dtype=torch.float32)
        v = torch.from_numpy(found.v).to(device=lut.device, dtype=torch.float32)
        return u, v

    return lut.cached("decomposition_tables", build)


def require_decomposition(lut: PreparedLut) -> Decomposition:
    """The decomposition of ``lut``; :class:`ConfigError` where it has none (``decomp`` asked for a table it
    cannot split: the user's choice, not a fault of the machine)."""
    found = analyse(lut)
    if found is None:
        raise ConfigError(f"engine 'decomp' does not apply to LUT '{lut.name}': {describe(lut)}")
    return found


def _largest_value(bits: int, signed: bool) -> int:
    """Largest ``|value|`` of a ``bits``-wide operand."""
    return 1 << (bits - 1) if signed else (1 << bits) - 1


def _codes(values: torch.Tensor, bits: int) -> torch.Tensor:
    return values.to(torch.int64) & ((1 << bits) - 1)


def decomposed_bmm(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
    """``lut_bmm`` through the decomposition: int32 ``[G, M, N]``, bit-exact with the reference.

    Raises:
        ConfigError: the LUT has no decomposition.
    """
    found = require_decomposition(lut)
    acc = exact_bmm(a.to(torch.float32), b.to(torch.float32))
    if found.terms:
        u, v = _term_tables(lut, found)
        ca, cb = _codes(a, lut.bits_a), _codes(b, lut.bits_b)
        acc = acc.double()
        for r in range(found.terms):
            acc += exact_bmm(u[r][ca], v[r][cb])
    return _checked(acc, f"LUT '{lut.name}'").to(torch.int32)


def exact_product_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    lut: PreparedLut,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
    pad_value: int = 0,
) -> torch.Tensor:
    """The exact products' convolution ``Σ a·b`` of integer values ``x`` and ``w`` (padding ``(top, bottom, left,
    right)`` by value ``pad_value``): exact integers as float32, or float64 when float32 cannot hold them exactly."""
    top, bottom, left, right = padding
    xv = x.to(torch.float32)
    symmetric = top == bottom and left == right and pad_value == 0  # (the conv's own padding is value 0)
    if not symmetric:
        xv = F.pad(xv, (left, right, top, bottom), value=float(pad_value))
    return exact_conv2d(
        xv,
        w.float(),
        stride=stride,
        padding=(top, left) if symmetric else (0, 0),
        dilation=dilation,
        groups=groups,
        bounds=(_largest_value(lut.bits_a, lut.signed), _largest_value(lut.bits_b, lut.signed)),
    )


def decomposed_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    lut: PreparedLut,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """LUT convolution of integer ``x`` with ``w`` (zero padding ``(top, bottom, left, right)``, value 0).

    Returns a float tensor of exact integer sums (float32, or float64 when wider), int32 range checked.
    The exact part is a native convolution of the values (its own zero padding is exact: value 0
    contributes 0); each correction term is a convolution of ``u_r[code(x)]``, explicitly padded with
    ``u_r[code 0]``, with ``v_r[code(w)]``.
    """
    found = require_decomposition(lut)
    top, bottom, left, right = padding
    exact_bounds = (_largest_value(lut.bits_a, lut.signed), _largest_value(lut.bits_b, lut.signed))
    term_bounds = [(int(np.abs(found.u[r]).max()), int(np.abs(found.v[r]).max())) for r in range(found.terms)]
    # Every partial sum of the whole layer is below K * (max|a·b| + Σ_r max|u_r| max|v_r|): when that
    # is below 2^24, all convolutions and the sum of the terms are exact in float32.
    reduction = w.shape[1] * w.shape[2] * w.shape[3]
    bound = reduction * (exact_bounds[0] * exact_bounds[1] + sum(bu * bv for bu, bv in term_bounds))
    single = bound < _FP32_EXACT and _fp32_is_ieee(x.device)
    acc = exact_product_conv2d(x, w, lut, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if found.terms:
        u, v = _term_tables(lut, found)
        cx = _codes(F.pad(x, (left, right, top, bottom)), lut.bits_a)
        cw = _codes(w, lut.bits_b)
        if not single:
            acc = acc.double()
        for r in range(found.terms):
            acc += exact_conv2d(
                u[r][cx],
                v[r][cw],
                stride=stride,
                padding=(0, 0),
                dilation=dilation,
                groups=groups,
                bounds=term_bounds[r],
            )
    return _checked(acc, f"LUT '{lut.name}'")


class DecompEngine(Engine):
    """LUT-GEMM as an exact GEMM plus low-rank integer corrections (only for decomposable LUTs).

    Its priority is below the reference, so it is never picked implicitly for a LUT it cannot run;
    :mod:`.ops` chooses it per LUT. Backward with gradient LUTs runs on the best other engine; the
    straight-through backward is two plain GEMMs.
    """

    name = "decomp"
    priority = -10
    devices = ("cpu", "cuda")

    def describe(self) -> str:
        return "decomp (exact GEMM + integer low-rank correction)"

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        return decomposed_bmm(a, b, lut)

    def lut_bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if ste:
            gc = grad_c.to(torch.float64)
            grad_a = torch.bmm(gc, b.to(torch.float64).transpose(1, 2))
            grad_b = torch.bmm(a.to(torch.float64).transpose(1, 2), gc)
            return grad_a.to(torch.float32), grad_b.to(torch.float32)
        return fallback_engine(a.device, exclude=self.name).lut_bmm_backward(a, b, grad_c, lut, ste=False)


def fallback_engine(device: torch.device, *, exclude: str) -> Engine:
    """The best available engine on ``device`` other than ``exclude`` (the reference at worst)."""
    for name in available_engines(device):
        if name != exclude:
            return get_engine(name)
    return get_engine("reference")


register_engine("decomp", DecompEngine())
