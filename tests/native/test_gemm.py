"""LUT-GEMM engines: the reference against plain loops and matmul, every native CPU path against the reference.

Native paths are compared bit-exactly (``torch.equal``) on random and edge inputs, every operand width 2..8,
signed and unsigned, odd and non-contiguous shapes, int16-range and wider tables. Correctness only.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from approxlut.errors import ConfigError, LutgenError, NativeUnavailableError
from approxlut.native import (
    PreparedLut,
    cpu_features,
    engines,
    last_path,
    lut_bmm,
    lut_bmm_backward,
    resolve_engine,
)
from approxlut.native.prepared import code_values

WIDTHS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (8, 4), (3, 8)]
SHAPES = [(1, 1, 1, 1), (2, 37, 19, 5), (1, 300, 261, 3), (3, 64, 2, 17), (1, 70, 1100, 3)]


def value_bounds(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def random_table(bits_a: int, bits_b: int, low: int, high: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(low, high + 1, (1 << bits_a, 1 << bits_b), generator=gen, dtype=torch.int64)
    table[0, 0], table[-1, -1] = low, high  # the extremes of the range are always present
    return table.to(torch.int32)


def random_lut(bits_a: int, bits_b: int, signed: bool, *, span: int = 3000, seed: int = 0) -> PreparedLut:
    gen = torch.Generator().manual_seed(seed + 1)
    grads = torch.randn((2, 1 << bits_a, 1 << bits_b), generator=gen)
    table = random_table(bits_a, bits_b, -span, span, seed)
    return PreparedLut(table, bits_a, bits_b, signed, grad_a=grads[0], grad_b=grads[1], name="rand")


def random_values(shape: tuple[int, ...], bits: int, signed: bool, seed: int, *, edges: bool = True) -> torch.Tensor:
    """Random operand values; with ``edges`` the first entries are 0, max and min (e.g. -2^(n-1))."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = value_bounds(bits, signed)
    values = torch.randint(lo, hi + 1, shape, generator=gen)
    if edges:
        flat = values.view(-1)
        flat[: min(3, flat.numel())] = torch.tensor([0, hi, lo])[: min(3, flat.numel())]
    return values


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


# --- the reference -----------------------------------------------------------------------------------------


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
    lut = PreparedLut(torch.full((4, 4), 2**30, dtype=torch.int32), 2, 2, signed=False)
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
    with pytest.raises(ConfigError, match="do not chain"):
        lut_bmm(b, b, lut, engine="reference")
    with pytest.raises(ConfigError, match="unknown"):
        lut_bmm(b.transpose(1, 2), b, lut, engine="nonesuch")
    with pytest.raises(ConfigError, match="shape"):
        PreparedLut(torch.zeros((4, 8), dtype=torch.int32), 2, 2, signed=False)


def test_group_broadcast_and_its_gradient() -> None:
    lut = random_lut(4, 4, False)
    a = random_values((3, 5, 6), 4, False, 5)
    b = random_values((1, 6, 2), 4, False, 6)
    out = lut_bmm(a, b, lut, engine="reference")
    assert torch.equal(out, loop_bmm(a, b.expand(3, -1, -1), lut))
    grad_c = torch.randn(3, 5, 2)
    ga, gb = lut_bmm_backward(a, b, grad_c, lut, ste=True, engine="reference")
    assert ga.shape == (3, 5, 6) and gb.shape == (1, 6, 2)
    torch.testing.assert_close(gb[0], (a.float().transpose(1, 2) @ grad_c).sum(0), rtol=1e-5, atol=1e-3)


def test_missing_gradient_tables_refused() -> None:
    lut = PreparedLut(random_table(3, 3, -9, 9, 0), 3, 3, signed=True)
    a = torch.zeros((1, 2, 2), dtype=torch.int64)
    with pytest.raises(ConfigError, match="no gradient tables"):
        lut_bmm_backward(a, a, torch.zeros(1, 2, 2), lut, engine="reference")


# --- engine registry and CPU features -------------------------------------------------------------------------


def test_engine_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NativeUnavailableError):
        resolve_engine("cpu", "meta")
    monkeypatch.setenv(engines.ENGINE_ENV, "reference")
    assert resolve_engine(None, "cpu").name == "reference"
    monkeypatch.setenv(engines.ENGINE_ENV, "nonesuch")
    with pytest.raises(ConfigError):
        resolve_engine(None, "cpu")


def test_implicit_fallback_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(engines.Engine):
        priority = 99

        def unavailable_reason(self) -> str | None:
            return "broken on purpose"

    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    monkeypatch.setitem(engines._REGISTRY.engines, "broken", Broken())
    monkeypatch.setattr(engines._REGISTRY, "warned", set())
    monkeypatch.setitem(engines._REGISTRY.engines, "cpu", Broken())
    with pytest.warns(RuntimeWarning, match="broken on purpose"):
        assert resolve_engine(None, "cpu").name == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_engine(None, "cpu").name == "reference"
    with pytest.raises(NativeUnavailableError, match="broken on purpose"):
        resolve_engine("broken", "cpu")


def test_cpu_path_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "model name\t: Some CPU\nflags\t\t: fpu sse2 avx2 fma bmi2 avx512f\n"
    model, flags = cpu_features._from_cpuinfo(text)
    features = cpu_features.CpuFeatures("x86_64", model, flags)
    assert model == "Some CPU" and features.paths() == ["scalar", "avx2"]
    monkeypatch.delenv(cpu_features.ISA_ENV, raising=False)
    assert cpu_features.choose_path(features=features) == "avx2"
    assert cpu_features.choose_path("scalar", features) == "scalar"
    with pytest.raises(NativeUnavailableError, match="avx512bw"):
        cpu_features.choose_path("avx512vbmi", features)
    monkeypatch.setenv(cpu_features.ISA_ENV, "sse9")
    with pytest.raises(ConfigError, match="sse9"):
        cpu_features.choose_path(features=features)
    arm = cpu_features.CpuFeatures("aarch64", "", frozenset())
    with pytest.raises(NativeUnavailableError, match="x86-64"):
        cpu_features.choose_path(features=arm)


# --- native CPU kernels --------------------------------------------------------------------------------------

ISA_PATHS = cpu_features.detect().paths()


def check_native(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut, isa: str) -> str:
    expected = lut_bmm(a, b, lut, engine="reference")
    got = lut_bmm(a, b, lut, engine="cpu")
    path = last_path() or ""
    assert got.dtype == torch.int32 and got.shape == expected.shape
    assert torch.equal(got, expected), path
    assert path.startswith("cpu: " + ("avx512" if isa.startswith("avx512") else isa)), path
    return path


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize(("bits_a", "bits_b"), WIDTHS, ids=[f"{a}x{b}" for a, b in WIDTHS])
def test_native_matches_reference(isa: str, bits_a: int, bits_b: int, signed: bool) -> None:
    span = 32767 if bits_a >= 6 else 1 << (bits_a + bits_b)
    lut = PreparedLut(random_table(bits_a, bits_b, -span - 1, span, bits_a * 10 + bits_b), bits_a, bits_b, signed)
    for i, (g, m, k, n) in enumerate(SHAPES):
        a = random_values((g, m, k), bits_a, signed, 100 + i)
        b = random_values((g, k, n), bits_b, signed, 200 + i)
        check_native(a, b, lut, isa)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
def test_native_narrow_activations_use_smaller_tables(isa: str, signed: bool) -> None:
    """Activations after ReLU (non-negative) or all zero select smaller register tables; same results."""
    lut = PreparedLut(random_table(8, 8, -32768, 32767, 7), 8, 8, signed)
    b = random_values((2, 300, 7), 8, signed, 8)
    for top in (0, 1, 15, 63, 127):
        gen = torch.Generator().manual_seed(top)
        a = torch.randint(0, top + 1, (2, 70, 300), generator=gen)
        path = check_native(a, b, lut, isa)
        assert re.search(rf" a{max(1, top.bit_length())}(:|$)", path), path


def test_native_wide_tables_and_dtypes(isa: str) -> None:
    """Tables beyond int16 take the int32 path; operand dtypes and non-contiguous views are accepted."""
    lut = PreparedLut(random_table(8, 6, -(1 << 22), 1 << 22, 3), 8, 6, signed=True)
    base_a = random_values((2, 90, 2 * 33), 8, True, 9)
    base_b = random_values((2, 5, 33), 6, True, 10)
    a = base_a[:, :, ::2]  # strided
    b = base_b.transpose(1, 2)  # [2, 33, 5], non-contiguous
    for dtype in (torch.int8, torch.int16, torch.int32, torch.int64):
        path = check_native(a.to(dtype), b.to(dtype), lut, isa)
        assert "gather" in path or "scalar" in path, path
    narrow = PreparedLut(random_table(5, 5, -600, 600, 4), 5, 5, signed=False)
    a = random_values((1, 40, 12), 5, False, 11).to(torch.uint8).transpose(1, 2).contiguous().transpose(1, 2)
    check_native(a, random_values((1, 12, 4), 5, False, 12), narrow, isa)


def test_native_widens_or_refuses_overflow(isa: str) -> None:
    big = 1 << 28
    table = torch.zeros((4, 4), dtype=torch.int32)
    table[1, :], table[2, :] = big, -big
    lut = PreparedLut(table, 2, 2, signed=False)
    # Bound 40 * 2^28 exceeds int32 but the true sums (alternating signs) fit: computed exactly.
    a = torch.tensor([1, 2] * 20).view(1, 1, 40).expand(1, 3, 40).contiguous()
    b = torch.ones((1, 40, 2), dtype=torch.int64)
    path = check_native(a, b, lut, isa)
    assert "k-split" in path
    # Sums that really exceed int32 are refused, never wrapped.
    with pytest.raises(LutgenError, match="beyond int32"):
        lut_bmm(torch.ones((1, 2, 40), dtype=torch.int64), b, lut, engine="cpu")


@pytest.mark.parametrize(("bits_a", "bits_b", "rows"), [(8, 4, 45), (8, 8, 300), (4, 3, 45)])
def test_native_backward_matches_reference(native: object, bits_a: int, bits_b: int, rows: int) -> None:
    """Few rows take the direct (gather) form, at least 2^bits_a rows the table forms."""
    lut = random_lut(bits_a, bits_b, True)
    a = random_values((2, rows, 13), bits_a, True, 13)
    b = random_values((2, 13, 9), bits_b, True, 14)
    grad_c = torch.randn(2, rows, 9, generator=torch.Generator().manual_seed(15))
    for ste in (False, True):
        expected = lut_bmm_backward(a, b, grad_c, lut, ste=ste, engine="reference")
        got = lut_bmm_backward(a, b[:, :, :], grad_c, lut, ste=ste, engine="cpu")
        for x, y in zip(got, expected, strict=True):
            assert x.dtype == torch.float32
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-3)  # float32 sums in another order
    ga, gb = lut_bmm_backward(a, b, grad_c, lut, ste=True, engine="cpu")
    torch.testing.assert_close(ga, grad_c @ b.float().transpose(1, 2), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(gb, a.float().transpose(1, 2) @ grad_c, rtol=1e-4, atol=1e-3)


def test_cli_native_info_json(monkeypatch: pytest.MonkeyPatch, json_output) -> None:

    from click.testing import CliRunner

    from approxlut.cli import main

    monkeypatch.setenv(cpu_features.ISA_ENV, "scalar")
    result = CliRunner().invoke(main, ["native", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json_output(result.output, "native info")
    assert info["chosen_path"] == ("scalar" if ISA_PATHS else info["chosen_path"])
    assert set(info["flags"]) >= {"avx2", "avx512bw", "avx512vbmi"} and "cache_dir" in info
    # (the tests plan with the default kernel costs: see tests/conftest.py)
    assert info["kernel_costs"]["source"] == "default" and info["kernel_costs"]["lookup"]["6"] == 1.0
    assert info["kernel_costs_file"].endswith(".json")


def test_native_empty_dimensions(isa: str) -> None:
    lut = random_lut(4, 4, True)
    for g, m, k, n in [(1, 0, 3, 2), (1, 3, 0, 2), (1, 3, 2, 0), (0, 3, 2, 2)]:
        a = torch.zeros((g, m, k), dtype=torch.int64)
        b = torch.ones((g, k, n), dtype=torch.int64)
        got = lut_bmm(a, b, lut, engine="cpu")
        assert torch.equal(got, lut_bmm(a, b, lut, engine="reference"))
        assert got.shape == (g, m, n)


def test_forced_isa_the_cpu_lacks_is_an_error(native: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    monkeypatch.setenv(cpu_features.ISA_ENV, "sse9")
    lut = random_lut(2, 2, False)
    a = torch.zeros((1, 2, 2), dtype=torch.int64)
    with pytest.raises(ConfigError, match="sse9"):
        lut_bmm(a, a, lut)


@pytest.mark.parametrize(
    ("low", "high"), [(0, 65025), (-30000, 35535), (1_000_000, 1_000_300), (-(2**20), -(2**20) + 65535)]
)
def test_native_16bit_span_tables_take_register_paths(isa: str, low: int, high: int) -> None:
    """Tables whose value span fits 16 bits (e.g. unsigned 8x8 products up to 65025) are stored minus their
    minimum and still take the register-table paths, bit-exactly."""
    for bits_a, bits_b, signed in [(8, 8, False), (7, 5, True)]:
        lut = PreparedLut(random_table(bits_a, bits_b, low, high, 21), bits_a, bits_b, signed)
        a = random_values((2, 80, 300), bits_a, signed, 22)
        b = random_values((2, 300, 5), bits_b, signed, 23)
        path = check_native(a, b, lut, isa)
        assert "gather" not in path, path


def product_plus_error(bits: int, signed: bool, low: int, high: int, seed: int) -> PreparedLut:
    """An approximate multiplier of the shape the split path targets: the exact product plus an error table
    with values in ``[low, high]`` (both present)."""
    values = code_values(bits, signed)
    exact = (values[:, None] * values[None, :]).to(torch.int32)
    return PreparedLut(exact + random_table(bits, bits, low, high, seed), bits, bits, signed, name="product+E")


def checkerboard_table(bits_a: int, bits_b: int, low: int, high: int, seed: int) -> torch.Tensor:
    """A random table with ``low, high / high, low`` in its top-left 2x2 corner: no row and column offsets
    can narrow its span (the four corners' alternating sum is fixed)."""
    table = random_table(bits_a, bits_b, low, high, seed)
    table[0, 0] = table[1, 1] = low
    table[0, 1] = table[1, 0] = high
    return table


@pytest.mark.parametrize(("low", "high", "planes"), [(-50, 205, 1), (7, 262, 1), (-50, 206, 2)])
def test_native_8bit_span_tables_take_one_plane(isa: str, low: int, high: int, planes: int) -> None:
    """Tables spanning at most 256 values run on one byte plane (AVX2, VBMI); 257 values need two."""
    lut = PreparedLut(checkerboard_table(8, 8, low, high, 31), 8, 8, signed=True)
    a = random_values((2, 70, 300), 8, True, 32)
    b = random_values((2, 300, 6), 8, True, 33)
    path = check_native(a, b, lut, isa)
    if isa in engines.PLAN_PATHS:
        assert f"{planes} plane" in path and "exact" not in path, path


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize(("low", "high"), [(-31, 0), (-120, 135), (1000, 1255)])
def test_native_exact_product_plus_error_plane(isa: str, signed: bool, low: int, high: int) -> None:
    """A table whose error E = T - a·b spans at most 256 values runs as an exact GEMM plus one byte plane of E
    (AVX2, VBMI); bit-exact, edge codes included, also where the exact GEMM needs float64 (long K)."""
    lut = product_plus_error(8, signed, low, high, 41)
    for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3), (1, 65, 2100, 4)]):
        a = random_values((g, m, k), 8, signed, 300 + i)
        b = random_values((g, k, n), 8, signed, 400 + i)
        path = check_native(a, b, lut, isa)
        assert ("exact" in path and "1 plane" in path) == (isa in engines.PLAN_PATHS), path


def test_build_lock_clears_a_stale_torch_lock(tmp_path) -> None:
    """A build killed mid-way leaves cpp_extension's ``lock`` file; the next build must not hang on it."""
    import subprocess
    import sys

    from approxlut.native.build import build_lock

    probe = (
        "import fcntl, sys\n"
        f"handle = open({str(tmp_path / 'build.flock')!r}, 'w')\n"
        "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    (tmp_path / "lock").write_text("")
    with build_lock(tmp_path):
        assert not (tmp_path / "lock").exists()
        assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 3  # held
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0  # released


def test_kernel_binding_checks_the_table_it_reads(native: object) -> None:
    """The binding refuses arguments under which a kernel would read outside its table: a code of b past the
    last column, strides below what a column or plane spans, a fold bit the AVX2 fold kernel does not take, a
    high plane by fewer code bits where the kernel has none; arguments that fit run (the scalar kernel, on any
    CPU)."""
    ext = native
    at = torch.zeros((1, 3, 256), dtype=torch.uint8)
    bc = torch.tensor([[[1], [4], [0]]], dtype=torch.uint8)

    def run(
        kernel: str,
        table: torch.Tensor,
        col_stride: int,
        plane_stride: int,
        bits: int,
        planes: int,
        shift: int = 8,
        fold_bit: int = 7,
        rows: int = 256,
        hi_drop: int = 0,
    ) -> torch.Tensor:
        args = (table, col_stride, plane_stride, 0, bits, planes, 1, 1, shift, fold_bit, hi_drop, False)
        return ext.lut_gemm(kernel, at, bc, rows, *args)  # type: ignore[attr-defined]

    cases = [
        ("avx512vbmi/planes", torch.zeros((4, 1, 256), dtype=torch.uint8), 256, 256, 8, 1, 8, 7, "column 4"),
        ("avx512vbmi/planes", torch.zeros((256, 2, 256), dtype=torch.uint8), 256, 256, 8, 2, 8, 7, "col_stride"),
        ("avx512vbmi/planes", torch.zeros((256, 2, 256), dtype=torch.uint8), 512, 64, 8, 2, 8, 7, "plane_stride"),
        ("avx512vbmi/fold", torch.zeros((256, 2, 128), dtype=torch.uint8), 128, 128, 8, 1, 8, 3, "col_stride"),
        ("avx2/fold", torch.zeros((256, 2, 128), dtype=torch.uint8), 256, 128, 8, 1, 8, 6, "folds on bit"),
        ("avx2/nibble", torch.zeros((256, 2, 64), dtype=torch.uint8), 128, 64, 8, 2, 8, 7, "plane_stride"),
        ("scalar/i32", torch.zeros((256, 255), dtype=torch.int32), 1020, 0, 8, 1, 8, 7, "col_stride"),
        ("scalar/i32", torch.zeros((256, 256), dtype=torch.int32), 1024, 0, 8, 1, 3, 7, "plane_shift"),
    ]
    for kernel, table, col_stride, plane_stride, bits, planes, shift, fold_bit, message in cases:
        with pytest.raises(RuntimeError, match=message):
            run(kernel, table, col_stride, plane_stride, bits, planes, shift, fold_bit)
    two = torch.zeros((256, 2, 256), dtype=torch.uint8)
    for kernel, table, bits, planes, hi_drop in [
        ("avx512vbmi/planes", two, 8, 2, 3),  # (1 or 2 bits)
        ("avx512vbmi/planes", two, 7, 2, 1),  # (8-bit codes only)
        ("avx512vbmi/planes", two, 8, 1, 2),  # (two planes only)
        ("avx2/nibble", two, 8, 2, 5),  # (1..4 bits)
        ("avx512vbmi/fold", torch.zeros((256, 4, 128), dtype=torch.uint8), 8, 2, 1),
    ]:
        stride = table.shape[2]
        with pytest.raises(RuntimeError, match="hi_drop"):
            run(kernel, table, table.shape[1] * stride, stride, bits, planes, hi_drop=hi_drop)
    table = torch.arange(256 * 16, dtype=torch.int32).reshape(256, 16)  # T[a][b] at column b, row a
    for rows in (-1, 257):  # the valid rows lie within the padded panel
        with pytest.raises(RuntimeError, match="rows"):
            run("scalar/i32", table[:5].contiguous(), 64, 0, 4, 1, rows=rows)
    ct = run("scalar/i32", table[:5].contiguous(), 64, 0, 4, 1)
    assert torch.equal(ct, torch.full((1, 1, 256), int(table[1, 0] + table[4, 0] + table[0, 0]), dtype=torch.int32))


def _has_avx2() -> bool:
    from approxlut.native import cpu_features

    return "avx2" in cpu_features.detect().paths()


def _byte_plane_columns(
    planes: int, height: int, *, fold: bool, hi_drop: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random AVX2 byte-plane table (the avx2/nibble or avx2/fold layout, 256 columns) and the per-plane
    entries ``[256 columns, planes, height]`` its kernels read for each code."""
    gen = torch.Generator().manual_seed(seed)
    stored = height // 2 if fold else height
    padded = max(64, stored)
    registers = 2 * planes if fold else planes
    table = torch.randint(0, 256, (256, registers, padded), dtype=torch.uint8, generator=gen)
    entries = table[:, :planes, :stored].to(torch.int64)
    if fold:  # a fold register per plane: its byte, broadcast
        folds = table[:, planes:, :1].to(torch.int64)
        table[:, planes:, :] = table[:, planes:, :1]
        entries = torch.cat([entries, (entries + folds) % 256], dim=2)
    if hi_drop:  # the high plane by code >> hi_drop
        entries[:, 1, :] = entries[:, 1, torch.arange(height) >> hi_drop]
    return table.contiguous(), entries


@pytest.mark.skipif(not _has_avx2(), reason="the CPU lacks AVX2")
@pytest.mark.parametrize(
    ("kernel", "bits", "planes", "hi_drop", "shift"),
    [
        ("avx2/nibble", 8, 1, 0, 8),
        ("avx2/nibble", 8, 2, 0, 8),
        ("avx2/nibble", 8, 2, 0, 3),
        ("avx2/nibble", 8, 2, 1, 8),
        ("avx2/nibble", 8, 2, 4, 5),
        ("avx2/nibble", 7, 1, 0, 8),
        ("avx2/nibble", 6, 2, 0, 8),
        ("avx2/nibble", 5, 1, 0, 8),
        ("avx2/fold", 8, 1, 0, 8),
        ("avx2/fold", 8, 2, 0, 6),
        ("avx2/fold", 6, 2, 0, 8),
    ],
)
def test_rows_order_equals_reference_and_blend_tree(
    native: object, kernel: str, bits: int, planes: int, hi_drop: int, shift: int
) -> None:
    """The AVX2 rows order (lanes over 32 columns, rows of codes transposed per k step) sums what the table's
    entries give, bit-exactly, and what the blend-tree kernel of the same layout does: odd shapes (rows, k
    across the 256-step chunks, columns past a block of 32, two groups), edge codes and code bits above the
    looked-up width (ignored)."""
    ext = native
    height = 1 << bits
    table, entries = _byte_plane_columns(planes, height, fold=kernel == "avx2/fold", hi_drop=hi_drop, seed=bits)
    padded = table.shape[2]
    gen = torch.Generator().manual_seed(planes)
    bias = -12345
    for groups, rows, k, n in [(2, 300, 601, 70), (1, 2500, 5, 33), (1, 1, 1, 1), (1, 37, 256, 32)]:
        mp = (rows + 255) // 256 * 256
        at = torch.randint(0, 256, (groups, k, mp), dtype=torch.uint8, generator=gen)
        edges = torch.tensor([0, height - 1, height // 2, 255, height % 256], dtype=torch.uint8)
        at[:, :, : min(rows, 5)] = edges[: min(rows, 5)]
        bc = torch.randint(0, 256, (groups, n, k), dtype=torch.uint8, generator=gen).transpose(1, 2)
        bc[:, 0, :] = 255
        args = (table, table.shape[1] * padded, padded, bias, bits, planes, 1, 1, shift, bits - 1, hi_drop)
        got = ext.lut_gemm(kernel, at, bc, rows, *args, True)[:, :, :rows]  # type: ignore[attr-defined]
        tree = ext.lut_gemm(kernel, at, bc, rows, *args, False)[:, :, :rows]  # type: ignore[attr-defined]
        codes = at[:, :, :rows].long() & (height - 1)  # [G, K, M]
        cols = bc.long()  # [G, K, N]
        value = entries[:, 0, :] + (entries[:, 1, :] << shift if planes == 2 else 0) + bias  # [256 cols, height]
        want = value[cols[:, :, :, None], codes[:, :, None, :]].sum(dim=1)  # [G, N, M]
        assert torch.equal(got.long(), want), (groups, rows, k, n)
        assert torch.equal(got, tree), (groups, rows, k, n)


@pytest.mark.skipif(not _has_avx2(), reason="the CPU lacks AVX2")
def test_rows_order_refused_where_no_kernel_has_it(native: object) -> None:
    """Only the AVX2 byte-plane layouts of 5..8-bit codes have a rows order: elsewhere the binding says so."""
    ext = native
    at = torch.zeros((1, 3, 256), dtype=torch.uint8)
    bc = torch.zeros((1, 3, 1), dtype=torch.uint8)
    for kernel, bits in [("avx2/nibble", 4), ("avx512vbmi/planes", 8), ("scalar/i32", 8)]:
        table = torch.zeros((256, 1, 256), dtype=torch.uint8 if kernel != "scalar/i32" else torch.int32)
        col = table.shape[1] * table.shape[2] * table.element_size()
        args = (table.contiguous(), col, 256, 0, bits, 1, 1, 1, 8, 7, 0, True)
        with pytest.raises(RuntimeError, match="no rows-order kernel"):
            ext.lut_gemm(kernel, at, bc, 256, *args)  # type: ignore[attr-defined]


def _has_vbmi() -> bool:
    from approxlut.native import cpu_features

    return "avx512vbmi" in cpu_features.detect().paths()


@pytest.mark.skipif(not _has_vbmi(), reason="the CPU lacks AVX-512 VBMI")
@pytest.mark.parametrize(
    ("kernel", "bits", "planes", "groups", "hi_drop", "fold_bit"),
    [
        ("avx512vbmi/planes", 8, 1, (1, 1), 0, 7),
        ("avx512vbmi/planes", 8, 1, (2, 1), 0, 7),
        ("avx512vbmi/planes", 8, 1, (8, 1), 0, 7),
        ("avx512vbmi/planes", 7, 1, (8, 1), 0, 7),
        ("avx512vbmi/planes", 6, 1, (1, 1), 0, 7),
        ("avx512vbmi/planes", 8, 2, (1, 1), 0, 7),
        ("avx512vbmi/planes", 8, 2, (8, 8), 0, 7),
        ("avx512vbmi/planes", 8, 2, (1, 4), 0, 7),
        ("avx512vbmi/planes", 7, 2, (1, 1), 0, 7),
        ("avx512vbmi/planes", 7, 2, (8, 16), 0, 7),
        ("avx512vbmi/planes", 6, 2, (8, 16), 0, 7),
        ("avx512vbmi/planes", 8, 2, (8, 16), 1, 7),
        ("avx512vbmi/planes", 8, 2, (1, 16), 2, 7),
        ("avx512vbmi/fold", 8, 1, (1, 1), 0, 7),
        ("avx512vbmi/fold", 8, 1, (8, 1), 0, 3),
        ("avx512vbmi/fold", 8, 2, (1, 1), 0, 7),
        ("avx512vbmi/fold", 8, 2, (8, 16), 0, 1),
    ],
)
def test_vbmi_kernels_equal_the_table_entries(
    native: object, kernel: str, bits: int, planes: int, groups: tuple[int, int], hi_drop: int, fold_bit: int
) -> None:
    """The VBMI permute kernels sum what the table's entries give, bit-exactly, for every column count they
    take per k step (two, and one for a last odd column), every block width (one, two or four vectors of 64
    lanes), byte sums grouped over k (a tail shorter than the group, 256-step chunks), folds on bit 7 and below
    it, a high plane by fewer code bits, edge codes and code bits above the looked-up width (ignored)."""
    ext = native
    height = 1 << bits
    fold = kernel.endswith("fold")
    gen = torch.Generator().manual_seed(bits * 10 + planes)
    stored = height // 2 if fold else height
    table = torch.zeros((256, 2 * planes if fold else planes, max(64, stored)), dtype=torch.uint8)
    for plane, group in enumerate(groups[:planes]):
        top = 255 // group // (2 if fold else 1)  # a group's byte sum stays within a byte, fold byte included
        table[:, plane, :stored] = torch.randint(0, top + 1, (256, stored), dtype=torch.uint8, generator=gen)
        if fold:  # the column's fold byte, broadcast over its register
            table[:, planes + plane, :] = torch.randint(0, top + 1, (256, 1), dtype=torch.uint8, generator=gen)
    codes_all = torch.arange(height)
    if fold:  # the row of code c: c with bit fold_bit replaced by bit 7 (mod 128); plus the fold byte where set
        index = ((codes_all & ~(1 << fold_bit)) | (((codes_all >> 7) & 1) << fold_bit)) & 127
        top = (codes_all >> fold_bit) & 1
        entries = (table[:, :planes, index].long() + top * table[:, planes:, :1].long()) % 256  # (a byte add)
    else:
        entries = table[:, :planes, :height].long()
        if hi_drop:
            entries[:, 1, :] = table[:, 1, codes_all >> hi_drop].long()
    padded = table.shape[2]
    bias = -4321
    for g_count, rows, k, n in [(2, 300, 601, 7), (1, 64, 300, 5), (1, 100, 17, 3), (1, 1, 1, 1), (1, 128, 513, 4)]:
        mp = (rows + 255) // 256 * 256
        at = torch.randint(0, 256, (g_count, k, mp), dtype=torch.uint8, generator=gen)
        edges = torch.tensor([0, height - 1, height // 2, 255, 1 << fold_bit], dtype=torch.uint8)
        at[:, :, : min(rows, 5)] = edges[: min(rows, 5)]
        bc = torch.randint(0, 256, (g_count, n, k), dtype=torch.uint8, generator=gen).transpose(1, 2)
        bc[:, 0, :] = 255
        args = (table.contiguous(), table.shape[1] * padded, padded, bias, bits, planes, *groups, 8, fold_bit, hi_drop)
        got = ext.lut_gemm(kernel, at, bc, rows, *args, False)[:, :, :rows]  # type: ignore[attr-defined]
        codes = at[:, :, :rows].long() & (height - 1)  # [G, K, M]
        value = entries[:, 0, :] + (entries[:, 1, :] << 8 if planes == 2 else 0) + bias  # [256 cols, height]
        want = value[bc.long()[:, :, :, None], codes[:, :, None, :]].sum(dim=1)  # [G, N, M]
        assert torch.equal(got.long(), want), (g_count, rows, k, n)
