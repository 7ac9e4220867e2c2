"""CUDA engine: nvcc compile-check everywhere nvcc exists; bit-exact tests where torch has CUDA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from approxlut.native import PreparedLut, lut_bmm, lut_bmm_backward
from approxlut.native.cuda import compile_check, lut_bmm_cuda, nvcc, smem_bytes, source_dir
from approxlut.native.ops import approx_conv2d

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch has no CUDA device here")


@pytest.mark.slow
@pytest.mark.skipif(nvcc() is None, reason="nvcc not installed")
def test_kernels_compile_with_nvcc_alone(tmp_path: Path) -> None:
    result = compile_check(tmp_path / "lut_gemm.o")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lut_gemm.o").stat().st_size > 0
    # The host side of the launcher API runs without a GPU: shared-memory sizes and argument checks.
    main = tmp_path / "main.cpp"
    main.write_text(
        '#include <cstdio>\n#include "lut_gemm_cuda.h"\n'
        "int main() {\n"
        '  std::printf("%zu %zu %zu\\n", lutgemm_smem_bytes(8, 8), lutgemm_smem_bytes(4, 4),\n'
        "              lutgemm_smem_bytes(2, 3));\n"
        '  std::printf("%d %d\\n", lutgemm_forward_naive(0, 0, 0, 0, 1, 1, 1, 1, 9, 8, 0),\n'
        "              lutgemm_backward_a(0, 0, 0, 0, 0, 0, 5, 5, 5, 8, 8, 0));\n"
        "  return 0;\n}\n"
    )
    exe = tmp_path / "host_check"
    compiler = nvcc()
    assert compiler is not None
    build = subprocess.run(
        [compiler, "-arch=sm_90", f"-I{source_dir()}", str(main), str(tmp_path / "lut_gemm.o"), "-o", str(exe)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split("\n")
    assert [int(v) for v in lines[0].split()] == [smem_bytes(8, 8), smem_bytes(4, 4), smem_bytes(2, 3)]
    invalid_value, nothing_to_do = (int(v) for v in lines[1].split())
    assert invalid_value != 0  # bits_a = 9 refused before touching the device
    assert nothing_to_do == 0  # zero groups: no launch at all


def random_lut(bits_a: int, bits_b: int, signed: bool, *, span: int, seed: int, device: str) -> PreparedLut:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(-span, span + 1, (1 << bits_a, 1 << bits_b), generator=gen, dtype=torch.int32)
    grads = torch.randn((2, 1 << bits_a, 1 << bits_b), generator=gen)
    return PreparedLut(table, bits_a, bits_b, signed, grad_a=grads[0], grad_b=grads[1], name="rand").to(device)


def operands(shape_a: tuple, shape_b: tuple, bits_a: int, bits_b: int, signed: bool, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    lo_a = -(1 << (bits_a - 1)) if signed else 0
    lo_b = -(1 << (bits_b - 1)) if signed else 0
    a = torch.randint(lo_a, lo_a + (1 << bits_a), shape_a, generator=gen)
    b = torch.randint(lo_b, lo_b + (1 << bits_b), shape_b, generator=gen)
    a.view(-1)[:3] = torch.tensor([lo_a, lo_a + (1 << bits_a) - 1, 0])
    b.view(-1)[:3] = torch.tensor([lo_b + (1 << bits_b) - 1, lo_b, 0])
    return a.cuda(), b.cuda()


SHAPES = [((1, 1, 1), (1, 1, 1)), ((2, 130, 37), (2, 37, 65)), ((3, 7, 300), (3, 300, 129)), ((1, 257, 64), (1, 64, 1))]


@needs_cuda
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize(("bits_a", "bits_b"), [(2, 2), (4, 3), (8, 4), (8, 8), (5, 7)])
@pytest.mark.parametrize("signed", [False, True])
def test_forward_bit_exact(bits_a: int, bits_b: int, signed: bool, naive: bool) -> None:
    lut = random_lut(bits_a, bits_b, signed, span=30000, seed=bits_a * 10 + bits_b, device="cuda")
    for i, (sa, sb) in enumerate(SHAPES):
        a, b = operands(sa, sb, bits_a, bits_b, signed, i)
        want = lut_bmm(a.cpu(), b.cpu(), lut.to("cpu"), engine="reference")
        assert torch.equal(lut_bmm_cuda(a, b, lut, naive=naive).cpu(), want)


@needs_cuda
def test_wide_values_and_k_splitting() -> None:
    lut = random_lut(8, 8, True, span=1 << 26, seed=3, device="cuda")  # beyond int16: global-memory kernel
    a, b = operands((1, 9, 70), (1, 70, 5), 8, 8, True, 4)
    want = lut_bmm(a.cpu(), b.cpu(), lut.to("cpu"), engine="reference")
    assert torch.equal(lut_bmm(a, b, lut, engine="cuda").cpu(), want)


@needs_cuda
@pytest.mark.parametrize("ste", [False, True])
def test_backward_matches_reference(ste: bool) -> None:
    lut = random_lut(8, 6, True, span=3000, seed=5, device="cuda")
    a, b = operands((2, 70, 45), (2, 45, 33), 8, 6, True, 6)
    grad_c = torch.randn(2, 70, 33, generator=torch.Generator().manual_seed(7))
    got = lut_bmm_backward(a, b, grad_c.cuda(), lut, ste=ste, engine="cuda")
    want = lut_bmm_backward(a.cpu(), b.cpu(), grad_c, lut.to("cpu"), ste=ste, engine="reference")
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g.cpu(), r, rtol=1e-4, atol=1e-3)


@needs_cuda
def test_conv_on_cuda_matches_reference() -> None:
    lut = random_lut(8, 8, False, span=3000, seed=8, device="cpu")
    a, b = operands((2, 6, 9, 9), (6, 3, 3, 3), 8, 8, False, 9)
    x, w = a.float().requires_grad_(), b.float().requires_grad_()
    out = approx_conv2d(x, w, lut, 2, 1, 1, 2, engine="cuda")
    xr, wr = a.cpu().float().requires_grad_(), b.cpu().float().requires_grad_()
    ref = approx_conv2d(xr, wr, lut, 2, 1, 1, 2, engine="reference")
    assert torch.equal(out.cpu(), ref)
    out.sum().backward()
    ref.sum().backward()
    assert x.grad is not None and w.grad is not None
    torch.testing.assert_close(x.grad.cpu(), xr.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(w.grad.cpu(), wr.grad, rtol=1e-4, atol=1e-3)


def test_gpu_check_script_is_valid_bash() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"
    assert script.stat().st_mode & 0o111, "scripts/gpu_check.sh must be executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
