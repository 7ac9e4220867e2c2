"""The exact decomposition path: detection of structured errors and bit-exact results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from approxlut.errors import ConfigError
from approxlut.native import PreparedLut, lut_bmm, lut_bmm_backward
from approxlut.native.decompose import decompose, describe
from approxlut.native.ops import approx_conv2d, approx_linear, approx_matmul, path_for
from approxlut.native.prepared import code_values


def exact_table(bits: int, signed: bool) -> np.ndarray:
    v = code_values(bits, signed).numpy()
    return np.multiply.outer(v, v)


def truncated_operand(bits: int, signed: bool, k: int) -> np.ndarray:
    """Product with the low ``k`` bits of operand b zeroed."""
    v = code_values(bits, signed).numpy()
    return np.multiply.outer(v, v & ~((1 << k) - 1))


def truncated_result(bits: int, signed: bool, k: int) -> np.ndarray:
    """Product with the low ``k`` result bits cut (two's complement floor to a multiple of 2^k)."""
    return exact_table(bits, signed) & ~((1 << k) - 1)


def broken_row(bits: int, signed: bool) -> np.ndarray:
    """The exact product except in row code ``2^(n-1)`` (``-2^(n-1)`` read as ``+2^(n-1)`` when signed, as a
    known emulator does; an arbitrary row error when unsigned)."""
    t = exact_table(bits, signed)
    code = 1 << (bits - 1)
    if signed:
        t[code] = (1 << (bits - 1)) * code_values(bits, signed).numpy()
    else:
        t[code] += np.arange(1 << bits) % 7 - 3
    return t


STRUCTURED = [
    ("exact", lambda bits, signed: exact_table(bits, signed), "exact", 0),
    ("operand_b_low1", lambda bits, signed: truncated_operand(bits, signed, 1), "low-rank", 1),
    ("operand_b_low3", lambda bits, signed: truncated_operand(bits, signed, 3), "low-rank", 1),
    ("result_low1", lambda bits, signed: truncated_result(bits, signed, 1), "low-rank", 1),
    ("result_low2", lambda bits, signed: truncated_result(bits, signed, 2), "low-rank", 3),
    ("broken_row", broken_row, None, 1),
]


def prepared(table: np.ndarray, bits: int, signed: bool, name: str) -> PreparedLut:
    grads = torch.randn((2, 1 << bits, 1 << bits), generator=torch.Generator().manual_seed(1))
    return PreparedLut(torch.from_numpy(table.astype(np.int32)), bits, bits, signed, grads[0], grads[1], name=name)


def operands(bits: int, signed: bool, shape_a: tuple, shape_b: tuple, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lo = -(1 << (bits - 1)) if signed else 0
    a = torch.randint(lo, lo + (1 << bits), shape_a, generator=gen)
    b = torch.randint(lo, lo + (1 << bits), shape_b, generator=gen)
    a.view(-1)[:3] = torch.tensor([lo, lo + (1 << bits) - 1, 0])
    b.view(-1)[:3] = torch.tensor([lo + (1 << bits) - 1, lo, 0])
    return a, b


@pytest.mark.parametrize(("name", "make", "kind", "terms"), STRUCTURED)
@pytest.mark.parametrize(("bits", "signed"), [(8, False), (8, True), (4, True), (5, False)])
def test_structured_luts_detected_and_bit_exact(
    name: str, make, kind: str | None, terms: int, bits: int, signed: bool
) -> None:
    table = make(bits, signed)
    found = decompose(table, bits, bits, signed)
    assert found is not None
    assert found.terms == terms
    if kind is not None:
        assert found.kind == kind
    err = table - exact_table(bits, signed)
    assert np.array_equal(found.u.T @ found.v, err)
    lut = prepared(table, bits, signed, name)
    a, b = operands(bits, signed, (3, 33, 41), (3, 41, 9), seed=bits)
    assert torch.equal(lut_bmm(a, b, lut, engine="decomp"), lut_bmm(a, b, lut, engine="reference"))
    assert describe(lut).startswith("decomp:")


@pytest.mark.parametrize(("bits", "signed"), [(8, False), (8, True), (3, True)])
def test_random_luts_not_detected(bits: int, signed: bool) -> None:
    rng = np.random.default_rng(bits)
    noisy = exact_table(bits, signed) + rng.integers(-2, 3, size=(1 << bits, 1 << bits))
    assert decompose(noisy, bits, bits, signed) is None
    assert decompose(rng.integers(-1000, 1000, size=(1 << bits, 1 << bits)), bits, bits, signed) is None
    lut = prepared(noisy, bits, signed, "noisy")
    assert "not applicable" in describe(lut)
    a, b = operands(bits, signed, (1, 2, 3), (1, 3, 2), seed=0)
    with pytest.raises(ConfigError, match="does not apply"):
        lut_bmm(a, b, lut, engine="decomp")
    with pytest.raises(ConfigError, match="does not apply"):
        approx_linear(a[0].float(), b[0].t().float(), lut, grad="ste", engine="decomp")


def test_result_low3_needs_more_terms_than_allowed() -> None:
    table = truncated_result(8, False, 3)
    assert decompose(table, 8, 8, False) is None
    found = decompose(table, 8, 8, False, max_terms=8)
    assert found is not None and np.array_equal(found.u.T @ found.v, table - exact_table(8, False))


@pytest.mark.parametrize(("name", "make", "kind", "terms"), STRUCTURED)
def test_decomposed_conv_matches_reference(name: str, make, kind: str | None, terms: int) -> None:
    bits, signed = 8, True
    lut = prepared(make(bits, signed), bits, signed, name)
    x, w = operands(bits, signed, (2, 6, 7, 7), (6, 3, 3, 3), seed=3)
    args = (x.float(), w.float(), lut, (2, 1), 1, (1, 2), 2)
    got = approx_conv2d(*args, grad="ste", engine="decomp")
    want = approx_conv2d(*args, grad="ste", engine="reference")
    assert torch.equal(got, want)


def test_large_reduction_stays_exact() -> None:
    # K * max|a*b| far above 2^24: the exact part must split K (or use float64), never round.
    bits, signed = 8, False
    lut = prepared(truncated_operand(bits, signed, 2), bits, signed, "trunc")
    a = torch.full((1, 4, 3000), 255, dtype=torch.int64)
    b = torch.full((1, 3000, 2), 255, dtype=torch.int64)
    a[0, 1, ::7] = 254
    b[0, ::5, 1] = 253
    assert torch.equal(lut_bmm(a, b, lut, engine="decomp"), lut_bmm(a, b, lut, engine="reference"))


def test_decomp_backward_ste_and_difference_match_reference() -> None:
    bits, signed = 6, True
    lut = prepared(truncated_result(bits, signed, 2), bits, signed, "trunc")
    a, b = operands(bits, signed, (2, 9, 13), (2, 13, 5), seed=4)
    grad_c = torch.randn(2, 9, 5, generator=torch.Generator().manual_seed(5))
    for ste in (True, False):
        got = lut_bmm_backward(a, b, grad_c, lut, ste=ste, engine="decomp")
        want = lut_bmm_backward(a, b, grad_c, lut, ste=ste, engine="reference")
        for g, r in zip(got, want, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)


def test_auto_path_picks_decomp_for_exact_luts_only() -> None:
    """Unless the CPU engine runs an exact table as the int8 GEMM alone (VNNI/AMX plans), faster than decomp."""
    from approxlut.native import engines
    from approxlut.native.cpu_features import cpu_isa

    exact = prepared(exact_table(8, True), 8, True, "exact")
    trunc = prepared(truncated_operand(8, True, 2), 8, True, "trunc")
    best = engines.resolve_engine(None, "cpu")
    int8_plans = best.name == "cpu" and cpu_isa() in engines.PLAN_PATHS and engines.exact_kind() == "int8"
    assert path_for(exact).startswith("cpu" if int8_plans else "decomp: exact product")
    assert not path_for(trunc).startswith("decomp")
    assert path_for(trunc, "decomp").startswith("decomp: exact product + 1")


@pytest.mark.parametrize("make", [exact_table, lambda bits, signed: truncated_operand(bits, signed, 1)])
@pytest.mark.parametrize("padding", [1, "same"])
def test_decomposed_conv_splits_channels_and_pads_asymmetrically(make, padding: int | str) -> None:
    # K * max|x·w| = 256 * 65025 is far above 2^24: the exact convolution must be split over channels.
    lut = prepared(make(8, False), 8, False, "big")
    gen = torch.Generator().manual_seed(11)
    x = 255 - torch.randint(0, 3, (2, 64, 5, 6), generator=gen)
    w = 255 - torch.randint(0, 3, (3, 64, 2, 2), generator=gen)
    args = (x.float(), w.float(), lut, 1, padding)
    got = approx_conv2d(*args, grad="ste", engine="decomp")
    want = approx_conv2d(*args, grad="ste", engine="reference")
    assert torch.equal(got, want)


def test_reduced_float32_precision_falls_back_to_float64() -> None:
    lut = prepared(truncated_operand(8, True, 2), 8, True, "trunc")
    a, b = operands(8, True, (2, 40, 70), (2, 70, 9), seed=12)
    want = lut_bmm(a, b, lut, engine="reference")
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        got = lut_bmm(a, b, lut, engine="decomp")
        conv = approx_conv2d(a[:1, None].float(), b[:1, None, :3, :3].float(), lut, grad="ste", engine="decomp")
    finally:
        torch.set_float32_matmul_precision(previous)
    assert torch.equal(got, want)
    ref_conv = approx_conv2d(a[:1, None].float(), b[:1, None, :3, :3].float(), lut, grad="ste", engine="reference")
    assert torch.equal(conv, ref_conv)


def test_exact_lut_linear_and_batched_matmul_equal_torch() -> None:
    lut = prepared(exact_table(8, True), 8, True, "exact")
    a, b = operands(8, True, (2, 3, 5, 40), (3, 40, 6), seed=13)
    got = approx_matmul(a.float(), b.float(), lut, grad="ste")
    assert torch.equal(got.double(), torch.matmul(a.double(), b.double()))
    x, w = operands(8, True, (4, 7, 40), (9, 40), seed=14)
    assert torch.equal(approx_linear(x.float(), w.float(), lut, grad="ste").double(), x.double() @ w.double().t())
