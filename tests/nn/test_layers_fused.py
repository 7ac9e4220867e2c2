"""The fused inference paths of ApproxConv2d, ApproxConv1d and ApproxLinear (native quantiser, LUT op, rescale
and bias; for unsigned multipliers also the affine scheme's zero-point terms) against the step-by-step path
(torch quantiser, op, zero-point terms and rescale in torch), bit for bit: rounding ties, clamped and edge codes,
zero points at the ends of the code range, padding by the zero point, every geometry, leading dims, bias
correction, calibrated and dynamic scales, every CPU path and way of computing a plan's exact product."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.native import engines
from approxlut.native import plan as plans
from approxlut.native.ops import approx_conv2d, approx_linear
from approxlut.native.plan import int8_gemm_is_exact
from approxlut.nn import ApproxConv1d, ApproxConv2d, ApproxLinear, LayerConfig, approximate, calibrate
from approxlut.nn.multipliers import clear_caches


def approximate_lut(bits: int, seed: int, *, signed: bool = True) -> Lut:
    """A multiplier: the product plus an error spanning a few hundred values."""
    rng = np.random.default_rng(seed)
    values = code_values(bits, signed)
    table = np.multiply.outer(values, values) + rng.integers(-150, 150, size=(1 << bits, 1 << bits))
    sign = "s" if signed else "u"
    return Lut(forward=table.astype(np.int32), bits_a=bits, bits_b=bits, signed=signed, name=f"approx{bits}{sign}")


def random_lut(bits: int, seed: int) -> Lut:
    """An unsigned table of uniformly random entries over the products' range (no structure to plan on)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 1 << (2 * bits), size=(1 << bits, 1 << bits))
    return Lut(forward=table.astype(np.int32), bits_a=bits, bits_b=bits, signed=False, name=f"random{bits}u")


def coarse_lut(seed: int) -> Lut:
    """An unsigned 8x8 multiplier that ignores the two low bits of operand a (the engine runs it on ``a >> 2``)."""
    rng = np.random.default_rng(seed)
    values = code_values(8, False)
    table = np.multiply.outer(values & ~3, values) + rng.integers(0, 300, size=(64, 256)).repeat(4, axis=0)
    return Lut(forward=table.astype(np.int32), bits_a=8, bits_b=8, signed=False, name="coarse8u")


def unsigned_multiplier(name: str) -> Lut | str:
    """An unsigned multiplier by test name: a built-in one (``bam8u_h3v8``), ``approx8u``/``approx6u``,
    ``random8u``/``random6u`` or ``coarse8u``."""
    if name.startswith("approx"):
        return approximate_lut(int(name[6]), seed=20, signed=False)
    if name.startswith("random"):
        return random_lut(int(name[6]), seed=21)
    if name == "coarse8u":
        return coarse_lut(seed=22)
    return name


UNSIGNED = ["bam8u_h3v8", "approx8u", "random8u", "coarse8u", "approx6u", "random6u"]


def twins(lut: Lut | str, kind: type[Any] = ApproxConv2d, **conv: object) -> tuple[Any, Any]:
    """Two layers sharing weights: one on the best engine (fused), one on the reference engine (step by step)."""
    fused = kind(**conv, config=LayerConfig(multiplier=lut))
    stepwise = kind(**conv, config=LayerConfig(multiplier=lut, engine="reference"))
    stepwise.load_state_dict(fused.state_dict())
    return fused, stepwise


def affine_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Inputs of both signs, the batch's extremes far out (dynamic ranges put them at codes 0 and 255, and a
    range calibrated on ``0.7 x`` clamps them)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    flat = x.view(-1)
    flat[:2] = torch.tensor([-4.0, 5.0])
    return x


def tie_heavy_input(shape: tuple[int, ...], scale: float, seed: int) -> torch.Tensor:
    """Inputs on rounding ties (k + 0.5 codes), beyond the clamp range, and at the extreme codes."""
    gen = torch.Generator().manual_seed(seed)
    halves = (torch.randint(-300, 300, shape, generator=gen) + 0.5) * scale
    plain = torch.randn(shape, generator=gen) * 60 * scale
    pick = torch.rand(shape, generator=gen) < 0.5
    x = torch.where(pick, halves, plain).to(torch.float32)
    flat = x.view(-1)
    flat[:4] = torch.tensor([-128.5 * scale, 127.5 * scale, -129 * scale, 1e9])
    return x


CONVS = [
    {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "padding": 1},
    {"in_channels": 4, "out_channels": 6, "kernel_size": 4, "padding": "same", "dilation": 2},
    {"in_channels": 6, "out_channels": 6, "kernel_size": 3, "stride": 2, "groups": 3, "bias": False},
    {"in_channels": 3, "out_channels": 5, "kernel_size": (2, 3), "stride": (1, 2), "padding": (2, 0)},
]


@pytest.fixture
def fused_runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per call of a layer's fused path (conv, linear or a recurrent gate), whether it ran (returned a
    result)."""
    from approxlut.nn import layers, rnn

    runs: list[bool] = []
    for module, name in ((layers, "quantised_conv2d"), (layers, "quantised_linear"), (rnn, "quantised_linear")):
        original = getattr(module, name)

        def spy(*args: object, original: object = original, **kwargs: object) -> torch.Tensor | None:
            out = original(*args, **kwargs)  # type: ignore[operator]
            runs.append(out is not None)
            return out  # type: ignore[no-any-return]

        monkeypatch.setattr(module, name, spy)
    return runs


@pytest.mark.parametrize("conv", CONVS, ids=["3x3", "same-dilated", "grouped-s2", "rect"])
@pytest.mark.parametrize("bits", [8, 6])
def test_fused_conv_equals_step_by_step(isa: str, conv: dict[str, object], bits: int, fused_runs: list[bool]) -> None:
    lut = approximate_lut(bits, seed=bits)
    fused, stepwise = twins(lut, **conv)
    x = tie_heavy_input((3, int(conv["in_channels"]), 9, 10), 0.05, seed=1)  # type: ignore[call-overload]
    with torch.no_grad():
        dynamic = fused(x), stepwise(x)  # uncalibrated: the batch's own range
        assert torch.equal(*dynamic)
        calibrate(fused, [x * 0.7])
        calibrate(stepwise, [x * 0.7])
        fused.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        stepwise.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        got, want = fused(x), stepwise(x)
    assert torch.equal(got, want)
    assert fused_runs == [True, False, True, False]  # the reference twin never runs it


def test_fused_path_taken_only_for_inference(native: object, fused_runs: list[bool]) -> None:
    """With autograd the step-by-step path runs (its quantiser carries the straight-through gradient)."""
    lut = approximate_lut(8, seed=3)
    fused, stepwise = twins(lut, in_channels=2, out_channels=3, kernel_size=3, padding=1)
    x = tie_heavy_input((2, 2, 6, 6), 0.1, seed=4)
    calibrate(fused, [x])
    calibrate(stepwise, [x])
    y = fused(x.requires_grad_())
    y.sum().backward()
    assert x.grad is not None and fused_runs == []
    with torch.no_grad():
        assert torch.equal(fused(x), stepwise(x))
    assert fused_runs == [True, False]


def test_fused_path_refuses_nan(native: object) -> None:
    lut = approximate_lut(8, seed=5)
    layer = ApproxConv2d(2, 3, 3, config=LayerConfig(multiplier=lut))
    x = torch.zeros((1, 2, 5, 5))
    calibrate(layer, [x + 1])
    x[0, 1, 2, 2] = float("nan")
    with torch.no_grad(), pytest.raises(ConfigError, match="NaN"):
        layer(x)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_float64_layers_take_the_step_by_step_path(native: object, signed: bool, fused_runs: list[bool]) -> None:
    """A float64 layer (``model.double()``) given float32 inputs gives what the reference engine gives, the same
    dtype and values, whichever engine runs it: the fused path (float32 weights only) steps aside."""
    lut = approximate_lut(8, seed=7, signed=signed)
    x = tie_heavy_input((2, 3, 7, 7), 0.05, seed=8)
    for kind, conv, inputs in (
        (ApproxConv2d, {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}, x),
        (ApproxLinear, {"in_features": 7, "out_features": 5}, x[:, 0]),
    ):
        fused, stepwise = twins(lut, kind, **conv)
        fused.double()
        stepwise.double()
        with torch.no_grad():
            got, want = fused(inputs), stepwise(inputs)
        assert got.dtype == want.dtype == torch.float64
        assert torch.equal(got, want)
    assert fused_runs == []


@pytest.mark.parametrize(("shape", "bias"), [((7, 20), True), ((2, 5, 20), False), ((20,), True)])
@pytest.mark.parametrize("bits", [8, 6])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_fused_linear_equals_step_by_step(
    isa: str, shape: tuple[int, ...], bias: bool, bits: int, signed: bool, fused_runs: list[bool]
) -> None:
    lut = approximate_lut(bits, seed=10 + bits, signed=signed)
    fused = ApproxLinear(20, 9, bias, config=LayerConfig(multiplier=lut))
    stepwise = ApproxLinear(20, 9, bias, config=LayerConfig(multiplier=lut, engine="reference"))
    stepwise.load_state_dict(fused.state_dict())
    x = tie_heavy_input(shape, 0.05, seed=2)
    with torch.no_grad():
        dynamic = fused(x), stepwise(x)  # uncalibrated: the batch's own range
        assert torch.equal(*dynamic) and dynamic[0].shape == (*shape[:-1], 9)
        calibrate(fused, [x * 0.7])
        calibrate(stepwise, [x * 0.7])
        fused.set_bias_correction(torch.linspace(-1, 1, 9))
        stepwise.set_bias_correction(torch.linspace(-1, 1, 9))
        got, want = fused(x), stepwise(x)
    assert torch.equal(got, want)
    assert fused_runs == [True, False, True, False]


def test_fused_linear_refuses_nan_and_runs_only_for_inference(native: object, fused_runs: list[bool]) -> None:
    lut = approximate_lut(8, seed=6)
    layer = ApproxLinear(4, 3, config=LayerConfig(multiplier=lut))
    x = torch.ones((2, 4))
    calibrate(layer, [x])
    layer(x.clone().requires_grad_()).sum().backward()  # (autograd: the step-by-step path)
    assert fused_runs == []
    x[1, 2] = float("nan")
    with torch.no_grad(), pytest.raises(ConfigError, match="NaN"):
        layer(x)


@pytest.mark.parametrize("kind", [torch.nn.LSTM, torch.nn.GRU])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_fused_recurrent_gates_equal_step_by_step(
    native: object, kind: type, signed: bool, fused_runs: list[bool]
) -> None:
    """Every gate projection of an approximate LSTM/GRU (two layers, both directions) runs fused in inference
    and the outputs equal the step-by-step path's (the reference engine) bit for bit."""
    torch.manual_seed(8)
    model = kind(6, 5, num_layers=2, batch_first=True, bidirectional=True).eval()
    x = tie_heavy_input((3, 4, 6), 0.02, seed=9).clamp(-3, 3)
    lut = approximate_lut(8, seed=9, signed=signed)
    fused = approximate(model, LayerConfig(multiplier=lut), [x]).eval()
    stepwise = approximate(model, LayerConfig(multiplier=lut, engine="reference"), [x]).eval()
    fused_runs.clear()
    with torch.no_grad():
        got, want = fused(x), stepwise(x)
    assert torch.equal(got[0], want[0]) and all(torch.equal(g, w) for g, w in zip(got[1], want[1], strict=False))
    # per layer and direction, the input projection of the whole sequence and the hidden one of each of 4 steps
    assert fused_runs.count(True) == 2 * 2 * (1 + 4) and fused_runs.count(False) == fused_runs.count(True)


AFFINE_CONVS = [
    *CONVS,
    {"in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 2, "dilation": 2, "groups": 6},
    {"in_channels": 3, "out_channels": 4, "kernel_size": (3, 4), "padding": "same"},
    {"in_channels": 4, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1, "groups": 2},
]
AFFINE_CONV_IDS = ["3x3", "same-dilated", "grouped-s2", "rect", "depthwise", "same-asymmetric", "grouped-2"]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # (torch's, calibrating)
@pytest.mark.parametrize("table", UNSIGNED)
@pytest.mark.parametrize("conv", AFFINE_CONVS, ids=AFFINE_CONV_IDS)
def test_fused_affine_conv_equals_step_by_step(
    isa: str, conv: dict[str, object], table: str, fused_runs: list[bool]
) -> None:
    """Unsigned multipliers: the zero-point terms in the epilogue (padding by the activation zero point) equal the
    step-by-step path's float64 terms and rescale, bit for bit, dynamic (codes 0 and 255 taken) and calibrated
    (inputs clamped), with a bias correction."""
    fused, stepwise = twins(unsigned_multiplier(table), **conv)
    x = affine_input((3, int(conv["in_channels"]), 9, 10), seed=1)  # type: ignore[call-overload]
    with torch.no_grad():
        dynamic = fused(x), stepwise(x)
        assert torch.equal(*dynamic)
        calibrate(fused, [x * 0.7])
        calibrate(stepwise, [x * 0.7])
        assert 0 < float(fused.input_quant.zero_point) < 255  # (padding takes a code other than 0)
        fused.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        stepwise.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        got, want = fused(x), stepwise(x)
    assert torch.equal(got, want)
    assert fused_runs == [True, False, True, False]


def signed_like(x: torch.Tensor, sign: str) -> torch.Tensor:
    """``x`` made non-negative, non-positive, or left mixed."""
    return x.abs() if sign == "non-negative" else -x.abs() if sign == "non-positive" else x


@pytest.mark.parametrize(
    ("inputs", "weights"),
    [
        ("non-negative", "mixed"),
        ("non-positive", "mixed"),
        ("mixed", "non-negative"),
        ("mixed", "non-positive"),
        ("non-positive", "non-positive"),
    ],
)
def test_fused_affine_zero_points_at_the_ends(isa: str, inputs: str, weights: str, fused_runs: list[bool]) -> None:
    """Activation and weight zero points at codes 0 and 255 (non-negative or non-positive operands), conv (padded,
    grouped) and linear alike."""
    ends = {"non-negative": 0.0, "non-positive": 255.0}
    conv = twins("bam8u_h3v8", in_channels=4, out_channels=6, kernel_size=3, padding=2, groups=2)
    linear = twins("bam8u_h3v8", ApproxLinear, in_features=12, out_features=5)
    for (fused, stepwise), shape in ((conv, (2, 4, 7, 8)), (linear, (2, 3, 12))):
        with torch.no_grad():
            fused.weight.copy_(signed_like(fused.weight, weights))
            stepwise.weight.copy_(fused.weight)
            x = signed_like(affine_input(shape, seed=3), inputs)
            got, want = fused(x), stepwise(x)
            assert torch.equal(got, want)
            if inputs in ends:
                _, zero_a = fused.input_quant.qparams(x, 8, "affine")
                assert float(zero_a) == ends[inputs]
            if weights in ends:
                assert float(fused.quantize_weight()[2][0]) == ends[weights]
    assert fused_runs == [True, False] * 2


@pytest.mark.parametrize("table", ["approx8u", "coarse8u"])
def test_fused_affine_padding_above_every_code(isa: str, table: str, fused_runs: list[bool]) -> None:
    """Inputs all below the zero point: the padding's code (the zero point) lies above every code of the input,
    and the kernels must look it up too (also on a table run on ``a >> 2``)."""
    fused, stepwise = twins(unsigned_multiplier(table), in_channels=3, out_channels=5, kernel_size=3, padding=1)
    calibration = torch.linspace(-1, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)
    calibrate(fused, [calibration])
    calibrate(stepwise, [calibration])
    x = -0.6 - 0.4 * torch.rand((2, 3, 8, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        codes, _, zero_a = fused.quantize_input(x)
        assert int(codes.max()) < 64 < int(zero_a)
        assert torch.equal(fused(x), stepwise(x))
    assert fused_runs == [True, False]


@pytest.fixture(params=["int8", "values"])
def exact_kind(request: pytest.FixtureRequest, isa: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """On the planned paths, each way of computing a plan's exact product (int8 only where the machine's int8 GEMM
    is exact), preferred by the cost model whenever a plan with it fits."""
    if isa not in engines.PLAN_PATHS:
        pytest.skip(f"{isa} runs no table plans")
    if request.param == "int8" and not int8_gemm_is_exact():
        pytest.skip("torch's int8 GEMM is not exact here (no VNNI/AMX)")
    clear_caches()  # (the shared tables' cached plans were chosen at the usual costs)
    monkeypatch.setattr(engines, "exact_kind", lambda: request.param)
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)
    yield str(request.param)
    clear_caches()  # (nor should later tests run the plans chosen here)


@pytest.mark.parametrize("table", ["bam8u_h3v8", "approx8u", "coarse8u"])
def test_fused_affine_exact_products(exact_kind: str, table: str, fused_runs: list[bool]) -> None:
    """A plan's exact product as an int8 GEMM on the code panel or as float convolutions of the values (padded by
    the zero point), under the zero-point terms."""
    cpu = engines.get_engine("cpu")
    conv = twins(unsigned_multiplier(table), in_channels=4, out_channels=6, kernel_size=3, padding=(1, 2), groups=2)
    linear = twins(unsigned_multiplier(table), ApproxLinear, in_features=30, out_features=7)
    for (fused, stepwise), shape in ((conv, (2, 4, 7, 8)), (linear, (9, 30))):
        x = affine_input(shape, seed=5)
        with torch.no_grad():
            assert torch.equal(fused(x), stepwise(x))
        assert isinstance(cpu, engines.CpuEngine) and cpu.last_plan is not None
        assert cpu.last_plan.exact == exact_kind
    assert fused_runs == [True, False] * 2


def test_fused_affine_rows_order_swap_and_k_split(isa: str, fused_runs: list[bool]) -> None:
    """The calls that run otherwise: a conv of many positions (the AVX2 rows order), a linear of few rows and many
    outputs (operands swapped: the epilogue per lane, the sums of codes per column) and one whose sums need the
    int64 split (written, then the epilogue applied, by torch)."""
    cpu = engines.get_engine("cpu")
    lut = unsigned_multiplier("approx8u")
    cases = [  # (the rows order is AVX2's, the planned paths alone swap operands)
        (twins(lut, in_channels=8, out_channels=32, kernel_size=3, padding=1), (2, 8, 16, 16), "rows order"),
        (twins(lut, ApproxLinear, in_features=64, out_features=300), (2, 64), "operands swapped"),
        (twins(lut, ApproxLinear, in_features=33100, out_features=2), (3, 33100), "k-split"),
    ]
    runs = {"rows order": isa == "avx2", "operands swapped": isa in engines.PLAN_PATHS, "k-split": True}
    for (fused, stepwise), shape, path in cases:
        x = affine_input(shape, seed=6)
        with torch.no_grad():
            assert torch.equal(fused(x), stepwise(x))
        assert (path in str(cpu.last_path)) == runs[path], cpu.last_path
    assert fused_runs == [True, False] * 3


@pytest.mark.parametrize(
    ("kind", "features", "shape", "out"),
    [
        (ApproxConv2d, 80, (2, 80, 3, 4), 3),
        (ApproxConv2d, 1840, (2, 1840, 3, 4), 3),
        (ApproxLinear, 600, (40, 600), 3),
        (ApproxLinear, 600, (2, 600), 300),
        (ApproxLinear, 17000, (3, 17000), 2),
    ],
    ids=["conv", "conv-wide", "linear", "linear-swapped", "linear-wide"],
)
def test_fused_affine_large_sums(
    isa: str, kind: type[Any], features: int, shape: tuple[int, ...], out: int, fused_runs: list[bool]
) -> None:
    """Sums beyond 2^24 (the step-by-step path rounds them to float32 before it takes off the zero-point terms in
    float64) and, from 1840 channels of 3x3 or 17000 features, zero-point terms beyond 2^30."""
    lut = random_lut(8, seed=9)
    conv = {"in_channels": features, "out_channels": out, "kernel_size": 3, "padding": 1}
    linear = {"in_features": features, "out_features": out}
    fused, stepwise = twins(lut, kind, **(conv if kind is ApproxConv2d else linear))
    x = affine_input(shape, seed=9)
    with torch.no_grad():
        codes, _, zero_a = stepwise.quantize_input(x)
        weights, prepared = stepwise.quantize_weight()[0], stepwise.resolved.prepared("cpu")
        if kind is ApproxConv2d:
            padded = torch.nn.functional.pad(codes, (1, 1, 1, 1), value=float(zero_a))
            lut_sums = approx_conv2d(padded, weights, prepared, grad="ste")
        else:
            lut_sums = approx_linear(codes, weights, prepared, grad="ste")
        assert float(lut_sums.max()) > 1 << 24
        assert torch.equal(fused(x), stepwise(x))
    assert fused_runs == [True, False]


@pytest.mark.parametrize("groups", [1, 8])
def test_fused_affine_small_planes(isa: str, groups: int, fused_runs: list[bool]) -> None:
    """Many small output planes: a block of lanes spans several samples (its sums of codes read several planes,
    each from its padded border), and the last one ends inside a plane."""
    fused, stepwise = twins("bam8u_h3v8", in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=groups)
    x = affine_input((41, 8, 3, 5), seed=8)
    with torch.no_grad():
        assert torch.equal(fused(x), stepwise(x))
    assert fused_runs == [True, False]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize(
    "conv",
    [
        {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "padding": 2, "dilation": 2},
        {"in_channels": 6, "out_channels": 6, "kernel_size": 4, "padding": "same", "groups": 3},
        {"in_channels": 3, "out_channels": 5, "kernel_size": 3, "stride": 2, "bias": False},
    ],
    ids=["dilated", "same-grouped", "strided"],
)
def test_fused_conv1d_equals_step_by_step(
    isa: str, conv: dict[str, object], signed: bool, fused_runs: list[bool]
) -> None:
    """Conv1d runs fused as the 2-D conv of height 1 it is lowered to."""
    lut = approximate_lut(8, seed=7, signed=signed)
    fused, stepwise = twins(lut, ApproxConv1d, **conv)
    x = affine_input((3, int(conv["in_channels"]), 15), seed=7)  # type: ignore[call-overload]
    with torch.no_grad():
        dynamic = fused(x), stepwise(x)
        assert torch.equal(*dynamic) and dynamic[0].dim() == 3
        calibrate(fused, [x * 0.7])
        calibrate(stepwise, [x * 0.7])
        fused.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        stepwise.set_bias_correction(torch.linspace(-1, 1, fused.out_channels))
        assert torch.equal(fused(x), stepwise(x))
    assert fused_runs == [True, False, True, False]


def test_affine_epilogue_needs_its_sums_of_codes(native: object) -> None:
    """An affine epilogue without the sums of activation codes is refused, as is one given only half its terms."""
    a = torch.randint(0, 256, (1, 4, 6), dtype=torch.uint8)
    b = torch.randint(0, 256, (1, 6, 3), dtype=torch.uint8)
    lut = unsigned_multiplier("approx8u")
    assert isinstance(lut, Lut)
    from approxlut.native import PreparedLut

    prepared = PreparedLut.from_lut(lut)
    epilogue = engines.Epilogue(torch.ones(3), zero=torch.zeros(3), offset=torch.zeros(3))
    cpu = engines.get_engine("cpu")
    assert isinstance(cpu, engines.CpuEngine)
    with pytest.raises(ConfigError, match="sum of activation codes"):
        cpu.lut_bmm_into(torch.empty((1, 4, 3)), a, b, prepared, epilogue)
    with pytest.raises(ConfigError, match="both"):
        engines.Epilogue(torch.ones(3), zero=torch.zeros(3))
