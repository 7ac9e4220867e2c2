"""The CPU engine's direct conv path (implicit im2col in C++, NCHW output) and the fused operand check,
bit-exact against the reference engine on the explicit im2col lowering."""

from __future__ import annotations

import itertools

import pytest
import torch

from approxlut.errors import ConfigError, LutgenError
from approxlut.native import PreparedLut, tuning
from approxlut.native.autograd import operand_values
from approxlut.native.conv import Conv2dLowering, MatmulLowering, conv2d_spec
from approxlut.native.engines import CpuEngine, get_engine
from approxlut.native.ops import approx_conv2d

# (n, c, h, w, o, kh, kw, stride, padding, dilation, groups)
CASES = [
    (2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1),
    (1, 4, 9, 11, 6, 3, 2, (2, 1), (0, 2), (1, 2), 2),
    (3, 6, 5, 6, 6, 3, 3, 2, 1, 1, 6),  # depthwise
    (2, 4, 6, 6, 8, 1, 1, 2, 0, 1, 1),  # 1x1 shortcut, stride 2
    (1, 2, 4, 13, 4, 2, 5, (1, 3), (3, 2), (2, 1), 1),  # padding beyond the kernel reach
    (5, 8, 3, 3, 4, 3, 3, 1, 1, 1, 2),
]


def random_values(shape: tuple[int, ...], bits: int, signed: bool, seed: int) -> torch.Tensor:
    """Integer values with the edge values (min, max, 0) planted at the start."""
    gen = torch.Generator().manual_seed(seed)
    lo = -(1 << (bits - 1)) if signed else 0
    hi = lo + (1 << bits) - 1
    out = torch.randint(lo, hi + 1, shape, generator=gen).flatten()
    edges = torch.tensor([lo, hi, 0, lo, hi])[: out.numel()]
    out[: len(edges)] = edges
    return out.reshape(shape).to(torch.int8 if signed else torch.uint8)


def random_lut(bits_a: int, bits_b: int, signed: bool, seed: int, span: int = 30000) -> PreparedLut:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(-span, span + 1, (1 << bits_a, 1 << bits_b), generator=gen, dtype=torch.int32)
    return PreparedLut(table, bits_a, bits_b, signed, name="rand")


def lowered(engine: str, lut: PreparedLut, w_shape: torch.Size, stride, padding, dilation, groups) -> Conv2dLowering:
    spec = conv2d_spec(w_shape, stride, padding, dilation, groups)
    return Conv2dLowering(lut, get_engine(engine), ste=True, spec=spec)


def check(x: torch.Tensor, w: torch.Tensor, lut: PreparedLut, stride, padding, dilation, groups) -> None:
    want = lowered("reference", lut, w.shape, stride, padding, dilation, groups).forward(x, w)
    got = lowered("cpu", lut, w.shape, stride, padding, dilation, groups).forward(x, w)
    assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_direct_conv_matches_reference_every_width(isa: str, bits: int, signed: bool) -> None:
    lut = random_lut(bits, bits, signed, seed=bits)
    for i, (n, c, h, w_, o, kh, kw, stride, pad, dil, groups) in enumerate(CASES):
        x = random_values((n, c, h, w_), bits, signed, 10 * bits + i)
        w = random_values((o, c // groups, kh, kw), bits, signed, 100 * bits + i)
        check(x, w, lut, stride, pad, dil, groups)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
def test_direct_conv_relu_activations_and_mixed_widths(isa: str, signed: bool) -> None:
    """Non-negative (after-ReLU) and all-zero activations pick narrower tables; a 8x4 LUT."""
    lut = random_lut(8, 4, signed, seed=3)
    x = random_values((4, 8, 10, 10), 8, signed, 4)
    w = random_values((8, 8, 3, 3), 4, signed, 5)
    check(x.clamp(min=0) if signed else x >> 1, w, lut, 1, 1, 1, 1)
    check(torch.zeros_like(x), w, lut, 1, "same", 1, 1)
    check(x, w, lut, 1, "same", 2, 1)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
def test_direct_conv_exact_product_plus_error_plane(isa: str, signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multiplier whose error E = T - a·b spans <= 256 values (AVX2, VBMI: exact product + one byte plane of
    E), every conv geometry, and a reduction long enough for a float exact conv to need float64 slices."""
    from approxlut.native.engines import PLAN_PATHS
    from approxlut.native.prepared import code_values

    values = code_values(8, signed)
    gen = torch.Generator().manual_seed(51)
    error = torch.randint(-100, 156, (256, 256), generator=gen, dtype=torch.int64)
    table = (values[:, None] * values[None, :] + error).to(torch.int32)
    lut = PreparedLut(table, 8, 8, signed, name="product+E")
    for i, (n, c, h, w_, o, kh, kw, stride, pad, dil, groups) in enumerate(CASES):
        x = random_values((n, c, h, w_), 8, signed, 60 + i)
        w = random_values((o, c // groups, kh, kw), 8, signed, 70 + i)
        check(x, w, lut, stride, pad, dil, groups)
        assert ("exact" in (get_engine("cpu").last_path or "")) == (isa in PLAN_PATHS)
    x = random_values((2, 300, 5, 5), 8, signed, 80)  # K = 2700: |a·b| sums beyond 2^24
    w = random_values((3, 300, 3, 3), 8, signed, 81)
    check(x, w, lut, 1, (1, 2), 1, 1)
    check(x, w, lut, 1, 1, 1, 1)
    # Panels of 1 and 7 rows of k: the int8 product summed over slices, by the plain loop for few products per
    # lane (a depthwise conv; 4 columns) and by the library GEMM for many (40 columns x 7 rows)
    x = random_values((2, 40, 6, 5), 8, signed, 82)
    for rows, (o, groups) in itertools.product((1, 7), ((40, 40), (4, 1), (40, 1))):
        monkeypatch.setenv(tuning.PANEL_ENV, str(256 * rows))
        w = random_values((o, 40 // groups, 3, 3), 8, signed, 83)
        check(x, w, lut, 1, 1, 1, groups)


def test_direct_conv_noncontiguous_and_chunked(isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from approxlut.native import conv

    lut = random_lut(8, 8, True, seed=6)
    x = random_values((6, 5, 3, 7), 8, True, 7).permute(2, 1, 0, 3)  # [3, 5, 6, 7], non-contiguous
    w = random_values((4, 3, 3, 5), 8, True, 8).permute(0, 3, 1, 2)  # [4, 5, 3, 3], non-contiguous
    assert not x.is_contiguous() and not w.is_contiguous()
    check(x, w, lut, 1, 1, 1, 1)
    monkeypatch.setattr(conv, "CHUNK_ELEMENTS", 400)  # one sample per chunk (im2col lowering)
    monkeypatch.setenv(tuning.PANEL_ENV, "256")  # one row of k per panel (direct conv)
    check(x, w, lut, (2, 1), (1, 0), 1, 1)
    monkeypatch.setenv(tuning.PANEL_ENV, "1792")  # seven rows of k: a partial last slice
    check(x, w, lut, (2, 1), (1, 0), 1, 1)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
def test_direct_conv_rows_order_matches_reference(isa: str, signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AVX2 rows order, forced on every call of 5..8-bit codes: every geometry of CASES with two-plane
    tables, and an exact product plus one plane of error (its int8 or float exact product and row offsets added
    by the blocks after the rows order's sums), bit-exact."""
    from approxlut.native import engines
    from approxlut.native.prepared import code_values

    if isa != "avx2":
        pytest.skip("the rows order is the AVX2 kernels'")
    monkeypatch.setattr(
        engines, "rows_order_pays", lambda kernel, bits, planes, rows, columns: kernel != "avx2/gather" and bits >= 5
    )
    luts = [random_lut(bits, bits, signed, seed=bits) for bits in (5, 6, 7, 8)]
    values = code_values(8, signed)
    error = torch.randint(-100, 156, (256, 256), generator=torch.Generator().manual_seed(52), dtype=torch.int64)
    luts.append(PreparedLut((values[:, None] * values[None, :] + error).to(torch.int32), 8, 8, signed, name="E"))
    for lut in luts:
        for i, (n, c, h, w_, o, kh, kw, stride, pad, dil, groups) in enumerate(CASES):
            x = random_values((n, c, h, w_), lut.bits_a, signed, 10 * lut.bits_a + i)
            w = random_values((o, c // groups, kh, kw), lut.bits_b, signed, 100 * lut.bits_a + i)
            check(x, w, lut, stride, pad, dil, groups)
            path = get_engine("cpu").last_path or ""
            assert "(rows order)" in path or "a4" in path, path  # (codes of 4 bits: the blend tree)


def test_direct_conv_rows_order_over_spans_of_codes(isa: str) -> None:
    """A conv whose codes fill more than one span of the rows order (32 MiB of codes: 7168 positions at 4608
    k steps), past a 32-column block of outputs: equal to the blend tree's, bit for bit."""
    from approxlut.native import engines

    if isa != "avx2":
        pytest.skip("the rows order is the AVX2 kernels'")
    lut = random_lut(8, 8, True, seed=9)
    x = random_values((9, 512, 30, 30), 8, True, 90)
    w = random_values((40, 512, 3, 3), 8, True, 91)
    layer = lowered("cpu", lut, w.shape, 1, 1, 1, 1)
    got = layer.forward(x, w)
    assert "(rows order)" in (get_engine("cpu").last_path or "")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engines, "rows_order_pays", lambda kernel, bits, planes, rows, columns: False)
        want = layer.forward(x, w)
        assert "(rows order)" not in (get_engine("cpu").last_path or "")
    assert torch.equal(got, want)


def test_direct_conv_wide_sums_fall_back_exactly(native: object) -> None:
    """Sums that could pass int32 leave the direct path (int64 split) and stay exact or are refused."""
    table = torch.full((16, 16), 1 << 27, dtype=torch.int32)
    lut = PreparedLut(table, 4, 4, signed=False, name="wide")
    x = torch.full((1, 4, 3, 3), 15, dtype=torch.uint8)
    w = torch.ones((1, 4, 3, 3), dtype=torch.uint8)
    engine = get_engine("cpu")
    assert isinstance(engine, CpuEngine)
    out = torch.empty((1, 1, 1, 1))
    assert not engine.conv2d_into(out, x, w, lut, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1)
    with pytest.raises(LutgenError, match="beyond int32"):
        lowered("cpu", lut, w.shape, 1, 0, 1, 1).forward(x, w)
    small = PreparedLut(torch.full((16, 16), 1 << 25, dtype=torch.int32), 4, 4, signed=False, name="wide")
    got = lowered("cpu", small, w.shape, 1, 0, 1, 1).forward(x, w)
    assert got.item() == 36 * (1 << 25)


def direct_conv_tables(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tables the CPU engine's direct conv is called with, from now on (a transposed table,
    lanes over N, is named "... (operands swapped)")."""
    tables: list[str] = []
    direct = CpuEngine.conv2d_into

    def spy(self: CpuEngine, out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, table: PreparedLut, **kw):  # type: ignore[no-untyped-def]
        tables.append(table.name)
        return direct(self, out, x, w, table, **kw)

    monkeypatch.setattr(CpuEngine, "conv2d_into", spy)
    return tables


# (G, M, K, N, lanes on VBMI, lanes on AVX2): the lanes run over N where its looked-up lanes times M cost no
# more than M's times N, each at the price of a look-up of its operand's codes on the planned paths (a's 8 bits
# here, b's 6: on AVX2 an 8-bit look-up costs three times a 6-bit one, so 257 rows of a go over N there)
MATMUL_CASES = [
    (3, 5, 9, 300, "n", "n"),
    (2, 300, 7, 5, "m", "m"),
    (4, 6, 11, 6, "n", "n"),
    (2, 257, 3, 20, "m", "n"),
    (1, 1, 4, 1, "n", "n"),
]


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
def test_batched_matmul_runs_as_grouped_direct_conv(isa: str, signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GEMM with a b per batch (attention) runs as a 1x1 conv of G groups with its lanes over N (the table
    transposed) or M; bit-exact against the reference engine at edge codes, with operands of different widths
    and a table that is not symmetric, so that a transposition slip shows; b also as a transposed view."""
    lut = random_lut(8, 6, signed, seed=90)
    runs = direct_conv_tables(monkeypatch)
    for i, (g, m, k, n, on_vbmi, on_avx2) in enumerate(MATMUL_CASES):
        lanes = on_avx2 if isa == "avx2" else on_vbmi  # (the unplanned paths count lanes alone: as VBMI here)
        a = random_values((g, m, k), 8, signed, 91 + i)
        for b in (
            random_values((g, k, n), 6, signed, 96 + i),
            random_values((g, n, k), 6, signed, 96 + i).transpose(1, 2),
        ):
            want = MatmulLowering(lut, get_engine("reference"), ste=True).forward(a, b)
            runs.clear()
            got = MatmulLowering(lut, get_engine("cpu"), ste=True).forward(a, b)
            assert got.dtype == torch.float32 and got.shape == (g, m, n)
            assert torch.equal(got, want)
            assert runs == ["rand (operands swapped)" if lanes == "n" else "rand"]
    # Groups in several calls: each call's lanes operand (padded to 256) and columns within CHUNK_ELEMENTS
    from approxlut.native import conv

    monkeypatch.setattr(conv, "CHUNK_ELEMENTS", 256 * (11 + 6) * 2)  # two groups of K = 11 and 6 columns a call
    a, b = random_values((5, 6, 11), 8, signed, 99), random_values((5, 11, 6), 6, signed, 100)
    runs.clear()
    got = MatmulLowering(lut, get_engine("cpu"), ste=True).forward(a, b)
    assert len(runs) == 3
    assert torch.equal(got, MatmulLowering(lut, get_engine("reference"), ste=True).forward(a, b))


def test_batched_matmul_looks_up_the_narrower_operand(isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attention's A·V: softmax weights of 7 bits against signed values (8-bit codes). With as many lanes
    either way (128 rows, 64 columns: half a block each), the lanes run over the rows of A, whose codes cost
    less to look up; bit-exact against the reference engine."""
    if isa not in ("avx512vbmi", "avx2"):
        pytest.skip("the planned kernels price look-ups by code width")
    lut = random_lut(8, 8, True, seed=93)
    tables = direct_conv_tables(monkeypatch)
    weights = random_values((2, 128, 16), 7, False, 94).to(torch.int8)  # 0..127
    values = random_values((2, 16, 64), 8, True, 95)
    got = MatmulLowering(lut, get_engine("cpu"), ste=True).forward(weights, values)
    assert torch.equal(got, MatmulLowering(lut, get_engine("reference"), ste=True).forward(weights, values))
    assert tables == ["rand"]  # (lanes over N would look up the transposed table: "rand (operands swapped)")


def test_batched_matmul_wide_sums_leave_the_direct_conv(native: object) -> None:
    """Partial sums that could pass int32 (K = 20 products of +-2^27): the direct conv declines, and lut_bmm's
    int64 split gives the exact sums, which fit."""
    table = torch.where(torch.arange(16) % 2 == 1, 1 << 27, -(1 << 27)).to(torch.int32).expand(16, 16)
    lut = PreparedLut(table.contiguous(), 4, 4, signed=False, name="wide")
    a = torch.full((2, 3, 20), 15, dtype=torch.uint8)
    b = (torch.arange(20) < 11).to(torch.uint8)[None, :, None].expand(2, 20, 4)  # 11 odd codes, 9 even
    out = torch.empty((1, 4, 1, 3))
    x4, w4 = a[:1].transpose(1, 2)[..., None, :].contiguous(), b[0].t().reshape(4, 20, 1, 1)
    engine = get_engine("cpu")
    assert isinstance(engine, CpuEngine)
    geometry = {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1), "groups": 1}
    assert not engine.conv2d_into(out, x4, w4, lut, **geometry)
    got = MatmulLowering(lut, get_engine("cpu"), ste=True).forward(a, b)
    assert torch.equal(got, torch.full((2, 3, 4), 2.0 * (1 << 27)))


def test_approx_conv2d_float_inputs_take_direct_path(isa: str) -> None:
    lut = random_lut(8, 8, True, seed=9)
    x = random_values((2, 4, 6, 6), 8, True, 10).float()
    w = random_values((4, 4, 3, 3), 8, True, 11).float()
    got = approx_conv2d(x, w, lut, 1, 1, grad="ste", engine="cpu")
    want = approx_conv2d(x, w, lut, 1, 1, grad="ste", engine="reference")
    assert torch.equal(got, want)


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (2, True), (5, False)])
def test_fused_operand_check_equals_torch_conversion(native: object, bits: int, signed: bool) -> None:
    lo = -(1 << (bits - 1)) if signed else 0
    hi = lo + (1 << bits) - 1
    x = torch.arange(lo, hi + 1, dtype=torch.float32).repeat(3000)  # spans several parallel chunks
    x[7] = -0.0
    got = operand_values(x, bits, signed, what="x", op="t")
    assert got.dtype == (torch.int8 if signed else torch.uint8)
    assert torch.equal(got.to(torch.int64), x.to(torch.int64))
    for bad, message in [
        (hi + 1.0, "outside"),
        (lo - 1.0, "outside"),
        (float("inf"), "outside"),
        (float("nan"), "outside|integer"),
        (hi - 0.5, "integer"),
        (lo + 1e-3, "integer"),
    ]:
        for tail in (0, 3):  # the bad value in the 16-wide vector loop, then in the scalar tail
            y = x[: x.numel() - tail].clone()
            y[-5] = bad
            with pytest.raises(ConfigError, match=message):
                operand_values(y, bits, signed, what="x", op="t")
    # A strided view (attention's transposed keys): the same values, in its shape; a bad value still refused.
    view = x[: 64 * 48].reshape(48, 64).t()
    assert not view.is_contiguous()
    assert torch.equal(operand_values(view, bits, signed, what="x", op="t").to(torch.int64), view.to(torch.int64))
    bad_view = view.clone().t().contiguous().t()
    bad_view[3, 5] = hi + 1.0
    with pytest.raises(ConfigError, match="outside"):
        operand_values(bad_view, bits, signed, what="x", op="t")


def test_package_import_registers_every_engine() -> None:
    """Importing only approxlut.native makes lut_bmm(engine="decomp") work (fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import torch, approxlut.native as n\n"
        "t = torch.outer(torch.arange(16), torch.arange(16)).to(torch.int32)\n"
        "lut = n.PreparedLut(t, 4, 4, signed=False)\n"
        "a = torch.randint(0, 16, (1, 3, 5)); b = torch.randint(0, 16, (1, 5, 2))\n"
        "assert torch.equal(n.lut_bmm(a, b, lut, engine='decomp'), (a @ b).to(torch.int32))\n"
        "assert 'decomp' in n.available_engines('cpu')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
