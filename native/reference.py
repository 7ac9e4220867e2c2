"""Pure-torch LUT-GEMM: the oracle for every native path and the fallback where nothing compiles.

``C[g, m, n] = sum_k T[A[g, m, k], B[g, k, n]]`` by gather and sum, chunked over ``G``, ``M`` and ``K``
so that the gathered block stays below :data:`CHUNK_ELEMENTS` elements whatever the shapes, and the two
gradient GEMMs of DESIGN.md. Runs on any device torch runs on. Inputs are assumed validated (see
:func:`approxlut.native.engines.check_operands`): same group count, integer operand values.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .prepared import PreparedLut

CHUNK_ELEMENTS = 1 << 22
"""Gathered elements per step (int64 indices + values + products: about 100 MB at most)."""

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def codes(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Bit-pattern codes (int64) of operand values: two's complement masked to ``bits``."""
    return values.to(torch.int64) & ((1 << bits) - 1)


def _chunks(g: int, m: int, k: int, n: int) -> tuple[int, int, int]:
    """Chunk sizes over (G, M, K) keeping ``gc * mc * kc * n`` near :data:`CHUNK_ELEMENTS`."""
    n = max(n, 1)
    kc = max(1, min(k, CHUNK_ELEMENTS // n))
    mc = max(1, min(m, CHUNK_ELEMENTS // (kc * n)))
    gc = max(1, min(g, CHUNK_ELEMENTS // (mc * kc * n)))
    return gc, mc, kc


def _flat_index(ca: torch.Tensor, cb: torch.Tensor, bits_b: int) -> torch.Tensor:
    """``[gc, mc, kc, n]`` row-major indices into the flattened table for code blocks ca, cb."""
    return (ca[..., None] << bits_b) + cb[:, None, :, :]


def check_int32(out: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
    """``out`` (int64) as int32, or an :class:`InputError` (exit code 2) when a sum does not fit int32."""
    if out.numel():
        lo, hi = int(out.min()), int(out.max())
        if lo < INT32_MIN or hi > INT32_MAX:
            raise InputError(
                f"LUT '{lut.name}': LUT-GEMM sums reach {lo}..{hi}, beyond int32; "
                "use a shorter reduction (smaller K) or a table with smaller values"
            )
    return out.to(torch.int32)


def lut_bmm(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
    """``C[g, m, n] = sum_k T[a[g, m, k], b[g, k, n]]`` as int32 ``[G, M, N]`` (exact, int64 inside).

    Raises :class:`InputError` when a result does not fit int32 (never wraps).
    """
    g_count, m_count, k_count = a.shape
    n_count = b.shape[2]
    table = lut.forward.to(a.device).reshape(-1)
    ca = codes(a, lut.bits_a)
    cb = codes(b, lut.bits_b)
    out = torch.zeros((g_count, m_count, n_count), dtype=torch.int64, device=a.device)
    gc, mc, kc = _chunks(g_count, m_count, k_count, n_count)
    for g0 in range(0, g_count, gc):
        for m0 in range(0, m_count, mc):
            for k0 in range(0, k_count, kc):
                block_a = ca[g0 : g0 + gc, m0 : m0 + mc, k0 : k0 + kc]
                index = _flat_index(block_a, cb[g0 : g0 + gc, k0 : k0 + kc], lut.bits_b)
                out[g0 : g0 + gc, m0 : m0 + mc] += table[index].sum(dim=2, dtype=torch.int64)
    return check_int32(out, lut)


def lut_bmm_backward(
    a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`lut_bmm` through the gradient LUTs (float32, summed in float64).

    ``gA[g, m, k] = sum_n gC[g, m, n] * Ga[a, b]`` and ``gB[g, k, n] = sum_m gC[g, m, n] * Gb[a, b]``;
    with ``ste`` the tables are ``Ga[a, b] = value(b)``, ``Gb[a, b] = value(a)``.
    """
    ga_table, gb_table = lut.gradient_tables(ste=ste)
    ga_flat = ga_table.to(device=a.device, dtype=torch.float64).reshape(-1)
    gb_flat = gb_table.to(device=a.device, dtype=torch.float64).reshape(-1)
    g_count, m_count, k_count = a.shape
    n_count = b.shape[2]
    ca = codes(a, lut.bits_a)
    cb = codes(b, lut.bits_b)
    gc64 = grad_c.to(torch.float64)
    grad_a = torch.zeros((g_count, m_count, k_count), dtype=torch.float64, device=a.device)
    grad_b = torch.zeros((g_count, k_count, n_count), dtype=torch.float64, device=a.device)
    gc, mc, kc = _chunks(g_count, m_count, k_count, n_count)
    for g0 in range(0, g_count, gc):
        for m0 in range(0, m_count, mc):
            upstream = gc64[g0 : g0 + gc, m0 : m0 + mc, None, :]
            for k0 in range(0, k_count, kc):
                block_a = ca[g0 : g0 + gc, m0 : m0 + mc, k0 : k0 + kc]
                index = _flat_index(block_a, cb[g0 : g0 + gc, k0 : k0 + kc], lut.bits_b)
                grad_a[g0 : g0 + gc, m0 : m0 + mc, k0 : k0 + kc] = (upstream * ga_flat[index]).sum(dim=3)
                grad_b[g0 : g0 + gc, k0 : k0 + kc] += (upstream * gb_flat[index]).sum(dim=1)
    return grad_a.to(torch.float32), grad_b.to(torch.float32)
