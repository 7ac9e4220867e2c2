"""No-retraining baselines: bias correction (measured, predicted) and ALWANN weight tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import LayerConfig, approximate
from approxlut.nn.baseline import bias_correction, tune_codes, tune_layer, tune_weights, weight_cost
from approxlut.nn.predict import record_operands
from approxlut.nn.swap import to_float


def biased_lut(bits: int, signed: bool, seed: int = 0) -> Lut:
    """Exact products with the low 3 bits dropped plus noise: a clear negative mean error."""
    rng = np.random.default_rng(seed)
    exact = np.multiply.outer(code_values(bits, signed), code_values(bits, signed))
    forward = (exact & ~7) + rng.integers(-3, 4, size=exact.shape)
    return Lut(forward=forward.astype(np.int32), bits_a=bits, bits_b=bits, signed=signed, name=f"biased{bits}")


def broken_columns_lut(bits: int, signed: bool, seed: int = 0) -> Lut:
    """:func:`biased_lut` with a few weight values multiplied badly: the case weight tuning is for."""
    lut = biased_lut(bits, signed, seed)
    forward = lut.forward.copy()
    for value in (3, 5, 9, 17, 30):
        forward[:, value] += 150  # codes equal values for these small positive operands
    return Lut(forward=forward, bits_a=bits, bits_b=bits, signed=signed, name=f"broken{bits}")


def models(lut: Lut) -> tuple[nn.Module, nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 6))
    batches = [torch.randn(8, 3, 5, 5) for _ in range(3)]
    scheme = "symmetric" if lut.signed else "affine"
    approx = approximate(model, LayerConfig(lut), calibration_data=batches)
    exact = approximate(model, LayerConfig("exact", bits=lut.bits_a, scheme=scheme), calibration_data=batches)
    return approx, exact, batches


def first_layer_mean_error(approx: nn.Module, exact: nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        errors = [(approx[0](x) - exact[0](x)).transpose(0, 1).reshape(4, -1) for x in batches]
    return torch.cat(errors, dim=1).mean(dim=1)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("method", ["measured", "predicted"])
def test_bias_correction_reduces_the_mean_output_error(signed: bool, method: str) -> None:
    approx, exact, batches = models(biased_lut(6, signed))
    before = first_layer_mean_error(approx, exact, batches)
    corrections = bias_correction(approx, batches, method=method)
    assert set(corrections) == {"0", "3"}
    after = first_layer_mean_error(approx, exact, batches)
    assert before.abs().min() > 0.01
    if method == "measured":  # measured on these very batches: the first layer's mean error vanishes
        torch.testing.assert_close(after, torch.zeros(4), atol=1e-4, rtol=0)
    else:
        assert after.abs().sum() < 0.35 * before.abs().sum()
    assert approx[0].bias_correction is not None and approx[3].bias_correction.shape == (6,)


def test_bias_correction_rejects_bad_arguments() -> None:
    approx, _, batches = models(biased_lut(5, True))
    with pytest.raises(ConfigError, match="method"):
        bias_correction(approx, batches, method="guess")
    with pytest.raises(ConfigError, match="at least one batch"):
        bias_correction(approx, [])


def test_weight_cost_matches_brute_force() -> None:
    lut = biased_lut(4, False, seed=3)
    prob = np.random.default_rng(1).random(16)
    prob /= prob.sum()
    za = 3.0
    cost = weight_cost(lut, prob, za)
    a, b = lut.values_a, lut.values_b
    for j in (0, 5, 15):
        for k in (0, 7, 15):
            expected = sum(prob[i] * abs(lut.forward[i, k] - a[i] * b[j] - za * (b[k] - b[j])) for i in range(16))
            assert cost[j, k] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("signed", [True, False])
def test_tuned_codes_never_increase_the_expected_error(signed: bool) -> None:
    lut = broken_columns_lut(6, signed, seed=4)
    rng = np.random.default_rng(2)
    prob = rng.random(64) ** 3
    prob /= prob.sum()
    cost = weight_cost(lut, prob, 0.0 if signed else 5.0)
    lo, hi = (-20, 31) if signed else (3, 50)
    values = rng.integers(lo, hi + 1, size=200)
    tuned = tune_codes(values, cost, lut, symmetric=signed)
    codes, new = values & 63, tuned & 63
    assert np.all(cost[codes, new] <= cost[codes, codes])
    assert np.any(tuned != values)
    if signed:
        assert np.abs(tuned).max() == np.abs(values).max()
        assert np.all(tuned[np.abs(values) == np.abs(values).max()] == values[np.abs(values) == np.abs(values).max()])
    else:
        assert tuned.min() >= values.min() and tuned.max() <= values.max()


@pytest.mark.parametrize("signed", [True, False])
def test_tune_weights_keeps_the_quantiser_and_lowers_the_expected_error(signed: bool) -> None:
    approx, _, batches = models(broken_columns_lut(6, signed, seed=5))
    scales = {n: approx[int(n)].quantize_weight()[1].clone() for n in ("0", "3")}
    codes_before = {n: approx[int(n)].quantize_weight()[0].clone() for n in ("0", "3")}
    reports = tune_weights(approx, batches)
    assert set(reports) == {"0", "3"}
    stats = record_operands(to_float(approx), approx, batches)
    for name, report in reports.items():
        layer = approx[int(name)]
        codes, scale, _ = layer.quantize_weight()
        assert torch.equal(scale, scales[name])  # the weight range, and so the scale, is unchanged
        assert report.changed == int((codes != codes_before[name]).sum()) > 0
        assert report.error_after <= report.error_before
        lut = layer.resolved.lut
        za = 0.0 if signed else float(layer.input_quant.zero_point)
        hist = stats[name].operands.act_hist.sum(axis=0)
        cost = weight_cost(lut, hist / hist.sum(), za)
        old = codes_before[name].long().numpy() & 63
        new = codes.long().numpy() & 63
        assert np.all(cost[old, new] <= cost[old, old])


def test_tune_layer_requires_max_weight_calibration() -> None:
    lut = biased_lut(5, True)
    layer = approximate(nn.Linear(4, 3), LayerConfig(lut, weight_calibration="percentile"))
    with pytest.raises(ConfigError, match="weight_calibration"):
        tune_layer(layer, np.ones(32))
