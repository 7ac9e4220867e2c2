"""LUT-GEMM engines against the pure-torch reference and against plain loops / matmul."""

from __future__ import annotations

import pytest
import torch

from approxlut.errors import ConfigError, LutgenError
from approxlut.native import PreparedLut, lut_bmm, lut_bmm_backward


def random_lut(bits_a: int, bits_b: int, signed: bool, *, span: int = 3000, seed: int = 0) -> PreparedLut:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(-span, span + 1, (1 << bits_a, 1 << bits_b), generator=gen, dtype=torch.int32)
    grads = torch.randn((2, 1 << bits_a, 1 << bits_b), generator=gen)
    return PreparedLut(table, bits_a, bits_b, signed, grad_a=grads[0], grad_b=grads[1], name="rand")


def random_values(shape: tuple[int, ...], bits: int, signed: bool, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    lo = -(1 << (bits - 1)) if signed else 0
    return torch.randint(lo, lo + (1 << bits), shape, generator=gen)


def loop_bmm(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
    ma, mb = (1 << lut.bits_a) - 1, (1 << lut.bits_b) - 1
    g_count, m_count, k_count = a.shape
    out = torch.zeros((g_count, m_count, b.shape[2]), dtype=torch.int64)
    t = lut.forward.tolist()
    for g in range(g_count):
        for m in range(m_count):
            for n in range(b.shape[2]):
                out[g, m, n] = sum(t[int(a[g, m, k]) & ma][int(b[g, k, n]) & mb] for k in range(k_count))
    return out.to(torch.int32)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("bits_a", "bits_b"), [(2, 2), (4, 3), (8, 4), (8, 8)])
def test_reference_matches_loops(bits_a: int, bits_b: int, signed: bool) -> None:
    lut = random_lut(bits_a, bits_b, signed)
    a = random_values((2, 7, 9), bits_a, signed, 1)
    b = random_values((2, 9, 5), bits_b, signed, 2)
    assert torch.equal(lut_bmm(a, b, lut, engine="reference"), loop_bmm(a, b, lut))


def test_reference_backward_ste_is_matmul() -> None:
    lut = random_lut(8, 8, True)
    a = random_values((3, 17, 11), 8, True, 3)
    b = random_values((3, 11, 6), 8, True, 4)
    grad_c = torch.randn(3, 17, 6)
    ga, gb = lut_bmm_backward(a, b, grad_c, lut, ste=True, engine="reference")
    torch.testing.assert_close(ga, grad_c @ b.float().transpose(1, 2), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(gb, a.float().transpose(1, 2) @ grad_c, rtol=1e-5, atol=1e-3)


def test_reference_overflow_refused() -> None:
    table = torch.full((4, 4), 2**30, dtype=torch.int32)
    lut = PreparedLut(table, 2, 2, signed=False)
    a = torch.ones((1, 1, 3), dtype=torch.int64)
    b = torch.ones((1, 3, 1), dtype=torch.int64)
    with pytest.raises(LutgenError, match="beyond int32"):
        lut_bmm(a, b, lut, engine="reference")


def test_bad_operands_refused() -> None:
    lut = random_lut(4, 4, True)
    a = torch.full((1, 2, 3), 8)
    b = torch.zeros((1, 3, 2), dtype=torch.int64)
    with pytest.raises(ConfigError, match="outside"):
        lut_bmm(a, b, lut)
    with pytest.raises(ConfigError, match="integer"):
        lut_bmm(a.float(), b, lut)
    with pytest.raises(ConfigError, match="unknown"):
        lut_bmm(b.transpose(1, 2), b, lut, engine="nonesuch")
