"""Quantisers, observers and calibration (approxlut.nn.quant)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from approxlut.errors import ConfigError
from approxlut.nn import (
    ApproxLinear,
    HistogramObserver,
    LayerConfig,
    approximate,
    calibrate,
    calibration,
    fake_quantize,
    qparams_from_range,
    qrange,
    quantize,
    weight_qparams,
)


@pytest.mark.parametrize("bits", range(2, 9))
def test_qrange(bits: int) -> None:
    assert qrange(bits, "symmetric") == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert qrange(bits, "affine") == (0, 2**bits - 1)
    with pytest.raises(ConfigError):
        qrange(bits, "nonsense")


@pytest.mark.parametrize("bits", range(2, 9))
def test_symmetric_qparams_cover_threshold(bits: int) -> None:
    scale, zero = qparams_from_range(torch.tensor([-3.0, -1.0]), torch.tensor([2.0, 0.5]), bits, "symmetric")
    qmax = 2 ** (bits - 1) - 1
    assert torch.equal(zero, torch.zeros(2))
    assert torch.allclose(scale, torch.tensor([3.0, 1.0]) / qmax)


@pytest.mark.parametrize("bits", range(2, 9))
def test_affine_qparams_represent_zero_exactly(bits: int) -> None:
    lo, hi = torch.tensor([-0.7, 0.3, -5.0]), torch.tensor([2.1, 4.0, -1.0])
    scale, zero = qparams_from_range(lo, hi, bits, "affine")
    qmin, qmax = qrange(bits, "affine")
    assert bool(((zero >= qmin) & (zero <= qmax)).all())
    assert torch.equal(zero, torch.round(zero))
    # real 0 is a code, so padding with zeros is exact
    assert torch.equal(fake_quantize(torch.zeros(3), scale, zero, qmin, qmax), torch.zeros(3))
    # ranges are widened to contain 0: a positive-only range has zero point 0
    assert zero[1] == 0 and zero[2] == qmax


def test_empty_range_gets_unit_scale() -> None:
    scale, zero = qparams_from_range(torch.tensor(0.0), torch.tensor(0.0), 8, "symmetric")
    assert float(scale) == 1.0 and float(zero) == 0.0
    scale, zero = qparams_from_range(torch.tensor(0.0), torch.tensor(0.0), 8, "affine")
    assert float(scale) == 1.0 and float(zero) == 0.0


def test_quantize_rounds_and_clamps_with_ste_gradient() -> None:
    x = torch.tensor([-10.0, -1.26, -0.2, 0.0, 0.74, 1.26, 10.0], requires_grad=True)
    scale, zero = torch.tensor(0.5), torch.tensor(0.0)
    q = quantize(x, scale, zero, -4, 3)
    assert q.tolist() == [-4.0, -3.0, -0.0, 0.0, 1.0, 3.0, 3.0]
    q.sum().backward()
    assert x.grad is not None
    # 1/scale inside the clamp range, 0 outside it
    assert x.grad.tolist() == [0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0]


def test_quantize_without_grad_matches_grad_path() -> None:
    x = torch.randn(100) * 3
    scale, zero = torch.tensor(0.05), torch.tensor(7.0)
    with torch.no_grad():
        a = quantize(x, scale, zero, 0, 255)
    b = quantize(x.clone().requires_grad_(True), scale, zero, 0, 255)
    assert torch.equal(a, b.detach())


def test_histogram_keeps_every_count_while_growing() -> None:
    torch.manual_seed(0)
    parts = [torch.randn(1000) * 0.01, torch.randn(1000), torch.randn(1000) * 37.0]
    obs = HistogramObserver(bins=256)
    for p in parts:
        obs.observe(p)
    assert obs.hist is not None
    everything = torch.cat(parts)
    assert float(obs.hist.sum()) == everything.numel()
    assert obs.min == float(everything.min()) and obs.max == float(everything.max())
    direct = torch.histc(everything, bins=256, min=-obs.radius, max=obs.radius).double()
    # merged bins are the bins of the final range (up to float rounding of a value on a bin edge)
    assert float((obs.hist - direct).abs().sum()) <= 2.0


def test_observer_ignores_non_finite_and_requires_data() -> None:
    obs = HistogramObserver()
    with pytest.raises(ConfigError):
        obs.range("max", "symmetric", 8)
    obs.observe(torch.tensor([float("nan"), float("inf"), 1.0, -2.0]))
    assert obs.range("max", "symmetric", 8) == (-2.0, 2.0)
    assert obs.range("max", "affine", 8) == (-2.0, 1.0)
    with pytest.raises(ConfigError):
        obs.range("median", "symmetric", 8)


def test_percentile_range() -> None:
    torch.manual_seed(1)
    x = torch.rand(200_000)
    obs = HistogramObserver()
    obs.observe(x)
    lo, hi = obs.range("percentile", "symmetric", 8, 99.0)
    assert hi == -lo and abs(hi - 0.99) < 0.005
    lo, hi = obs.range("percentile", "affine", 8, 99.0)
    assert lo == 0.0 and abs(hi - 0.99) < 0.005
    y = torch.randn(200_000)
    obs = HistogramObserver()
    obs.observe(y)
    lo, hi = obs.range("percentile", "affine", 8, 99.0)
    assert abs(lo - torch.quantile(y, 0.01).item()) < 0.01
    assert abs(hi - torch.quantile(y, 0.99).item()) < 0.01
    # 100 % is the max
    lo, hi = obs.range("percentile", "symmetric", 8, 100.0)
    assert hi == pytest.approx(y.abs().max().item())


def test_mse_range_clips_outliers_and_beats_max() -> None:
    torch.manual_seed(2)
    x = torch.cat([torch.randn(50_000), torch.tensor([40.0, -35.0])])
    obs = HistogramObserver()
    obs.observe(x)
    bits = 4
    qmin, qmax = qrange(bits, "symmetric")

    def mse(lo: float, hi: float) -> float:
        scale, zero = qparams_from_range(torch.tensor(lo), torch.tensor(hi), bits, "symmetric")
        return float(((fake_quantize(x, scale, zero, qmin, qmax) - x) ** 2).mean())

    lo_m, hi_m = obs.range("max", "symmetric", bits)
    lo_e, hi_e = obs.range("mse", "symmetric", bits)
    assert hi_e < hi_m / 4
    assert mse(lo_e, hi_e) < mse(lo_m, hi_m) / 10


@pytest.mark.parametrize("scheme", ["symmetric", "affine"])
@pytest.mark.parametrize("method", ["max", "percentile", "mse"])
def test_weight_qparams_per_channel(scheme: str, method: str) -> None:
    torch.manual_seed(3)
    w = torch.randn(6, 4000) * (2.0 ** torch.arange(6).float())[:, None]
    scale, zero = weight_qparams(w, 8, scheme, method=method, per_channel=True)
    assert scale.shape == (6,) and zero.shape == (6,)
    assert bool((scale[1:] > scale[:-1]).all())  # wider rows get larger scales
    qmin, qmax = qrange(8, scheme)
    err = (fake_quantize(w, scale[:, None], zero[:, None], qmin, qmax) - w).abs().amax(dim=1)
    if method == "max":
        if scheme == "symmetric":
            assert torch.allclose(scale, w.abs().amax(dim=1) / 127)
        assert bool((err <= scale / 2 + 1e-6).all())
    scale_t, zero_t = weight_qparams(w, 8, scheme, method=method, per_channel=False)
    assert scale_t.shape == (6,) and bool((scale_t == scale_t[0]).all()) and bool((zero_t == zero_t[0]).all())


def test_calibration_freezes_and_observers_cost_nothing_after() -> None:
    torch.manual_seed(4)
    layer = ApproxLinear(8, 4, config=LayerConfig("exact"))
    data = [torch.randn(16, 8) for _ in range(3)]
    calibrate(layer, data)
    assert layer.calibrated and not layer.observing
    scale = layer.input_quant.scale.clone()
    observer = layer.input_quant.observer
    assert observer is not None

    def boom(_x: torch.Tensor) -> None:
        raise AssertionError("observer called after calibration")

    observer.observe = boom  # type: ignore[method-assign]
    layer(torch.randn(5, 8) * 100)  # far outside the calibrated range: parameters must stay frozen
    assert torch.equal(layer.input_quant.scale, scale)


def test_uncalibrated_layer_quantises_per_batch() -> None:
    layer = ApproxLinear(4, 2, config=LayerConfig("exact"))
    assert not layer.calibrated
    x = torch.randn(3, 4)
    y = layer(x)
    assert y.shape == (3, 2) and not layer.calibrated


def test_calibration_restores_modes_and_leaves_batchnorm_alone() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    approx = approximate(model, "exact")
    approx.train()
    before = approx[1].running_mean.clone()
    calibrate(approx, [(torch.randn(8, 4) * 5 + 3, torch.zeros(8))])
    assert approx.training and all(m.training for m in approx.modules())
    assert torch.equal(approx[1].running_mean, before)
    with pytest.raises(ConfigError):
        calibrate(approx, [])


def test_calibration_context_manager() -> None:
    layer = ApproxLinear(3, 3, config=LayerConfig("exact", calibration="max"))
    x = torch.tensor([[1.0, -4.0, 2.0]])
    with calibration(layer):
        assert layer.observing
        y = layer(x)
        assert torch.equal(y, nn.functional.linear(x, layer.weight, layer.bias))  # float while observing
    assert float(layer.input_quant.scale) == pytest.approx(4.0 / 127)


def test_running_range_follows_a_moving_average_in_training_mode_only() -> None:
    layer = approximate(nn.Linear(4, 3), LayerConfig("exact", bits=8, scheme="affine"))
    quant = layer.input_quant
    quant.track_running_range(0.1)
    layer.train()
    layer(torch.tensor([[-1.0, 0.0, 2.0, 3.0]]))  # the first batch sets the range outright
    assert (float(quant.running_min), float(quant.running_max)) == (-1.0, 3.0)
    scale, zero = qparams_from_range(torch.tensor(-1.0), torch.tensor(3.0), 8, "affine")
    assert torch.equal(quant.scale, scale) and torch.equal(quant.zero_point, zero)
    layer(torch.tensor([[-11.0, 0.0, 0.0, 13.0]]))  # later ones move it by the momentum
    assert float(quant.running_min) == pytest.approx(0.9 * -1.0 + 0.1 * -11.0)
    assert float(quant.running_max) == pytest.approx(0.9 * 3.0 + 0.1 * 13.0)
    kept = (quant.scale.clone(), quant.running_max.clone())
    layer.eval()
    layer(torch.tensor([[-100.0, 0.0, 0.0, 100.0]]))  # evaluation leaves the range alone
    assert torch.equal(quant.scale, kept[0]) and torch.equal(quant.running_max, kept[1])
    with pytest.raises(ConfigError):
        quant.track_running_range(0.0)


def test_a_running_range_in_a_state_dict_loads_into_layers_with_or_without_one() -> None:
    config = LayerConfig("exact", bits=8, scheme="affine")
    source = approximate(nn.Linear(4, 3), config)
    source.input_quant.track_running_range(0.1)
    source.train()
    source(torch.randn(5, 4))
    state = source.state_dict()
    assert "input_quant.running_min" in state
    plain = approximate(nn.Linear(4, 3), config)
    plain.load_state_dict(state)  # strict: the running range is dropped, the frozen parameters load
    assert torch.equal(plain.input_quant.scale, source.input_quant.scale)
    tracking = approximate(nn.Linear(4, 3), config)
    tracking.input_quant.track_running_range(0.1)
    tracking.load_state_dict(state)
    assert torch.equal(tracking.input_quant.running_max, source.input_quant.running_max)
    tracking.load_state_dict(plain.state_dict())  # and a state without one loads into a tracking layer
