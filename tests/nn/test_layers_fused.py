"""The fused inference paths of ApproxConv2d and ApproxLinear (native quantiser, LUT op, rescale and bias)
against the step-by-step path (torch quantiser, op, torch rescale), bit for bit: rounding ties, clamped and
edge codes, every geometry, leading dims, bias correction, calibrated and dynamic scales, every CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import ApproxConv2d, ApproxLinear, LayerConfig, approximate, calibrate


def approximate_lut(bits: int, seed: int) -> Lut:
    """A signed multiplier: the product plus an error spanning a few hundred values."""
    rng = np.random.default_rng(seed)
    values = code_values(bits, True)
    table = np.multiply.outer(values, values) + rng.integers(-150, 150, size=(1 << bits, 1 << bits))
    return Lut(forward=table.astype(np.int32), bits_a=bits, bits_b=bits, signed=True, name=f"approx{bits}s")


def twins(lut: Lut, **conv: object) -> tuple[ApproxConv2d, ApproxConv2d]:
    """Two layers sharing weights: one on the best engine (fused), one on the reference engine (step by step)."""
    fused = ApproxConv2d(**conv, config=LayerConfig(multiplier=lut))  # type: ignore[arg-type]
    stepwise = ApproxConv2d(**conv, config=LayerConfig(multiplier=lut, engine="reference"))  # type: ignore[arg-type]
    stepwise.load_state_dict(fused.state_dict())
    return fused, stepwise


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


@pytest.mark.parametrize(("shape", "bias"), [((7, 20), True), ((2, 5, 20), False), ((20,), True)])
@pytest.mark.parametrize("bits", [8, 6])
def test_fused_linear_equals_step_by_step(
    isa: str, shape: tuple[int, ...], bias: bool, bits: int, fused_runs: list[bool]
) -> None:
    lut = approximate_lut(bits, seed=10 + bits)
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
def test_fused_recurrent_gates_equal_step_by_step(native: object, kind: type, fused_runs: list[bool]) -> None:
    """Every gate projection of an approximate LSTM/GRU (two layers, both directions) runs fused in inference
    and the outputs equal the step-by-step path's (the reference engine) bit for bit."""
    torch.manual_seed(8)
    model = kind(6, 5, num_layers=2, batch_first=True, bidirectional=True).eval()
    x = tie_heavy_input((3, 4, 6), 0.02, seed=9).clamp(-3, 3)
    lut = approximate_lut(8, seed=9)
    fused = approximate(model, LayerConfig(multiplier=lut), [x]).eval()
    stepwise = approximate(model, LayerConfig(multiplier=lut, engine="reference"), [x]).eval()
    fused_runs.clear()
    with torch.no_grad():
        got, want = fused(x), stepwise(x)
    assert torch.equal(got[0], want[0]) and all(torch.equal(g, w) for g, w in zip(got[1], want[1], strict=False))
    # per layer and direction, the input projection of the whole sequence and the hidden one of each of 4 steps
    assert fused_runs.count(True) == 2 * 2 * (1 + 4) and fused_runs.count(False) == fused_runs.count(True)
