"""Closed-form error prediction against errors measured by sampling operands from the same histograms.

Tolerance: with ``N`` sampled outputs the empirical mean has standard error ``sqrt(var / N)`` and the
empirical variance ``sqrt((m4 - var² (N-3)/(N-1)) / N)`` (``m4`` the fourth central moment, estimated
from the same samples). Both are checked within 5 standard errors per output channel; for 12 channels
and two statistics a correct predictor fails with probability below 1e-5 (and the seed is fixed).
"""

from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn.predict import LayerOperands, predict_error, predict_errors


def _approx_lut(bits: int, signed: bool, seed: int) -> Lut:
    """Exact product with its low 5 bits truncated and a small random perturbation."""
    values = code_values(bits, signed)
    exact = np.multiply.outer(values, values)
    rng = np.random.default_rng(seed)
    forward = (exact >> 5 << 5) + rng.integers(-3, 4, size=exact.shape)
    return Lut(forward.astype(np.int32), bits, bits, signed, name=f"trunc{bits}{'s' if signed else 'u'}")


def _random_operands(rng: np.random.Generator, bits: int, groups: int, outputs: int, fan_in: int) -> LayerOperands:
    codes = 1 << bits
    # skewed, sparse histograms like post-ReLU activations: a Dirichlet with many near-empty codes
    hist = rng.dirichlet(np.full(codes, 0.05), size=groups) * 1000
    hist[:, 0] += rng.uniform(100, 2000, size=groups)
    weights = rng.integers(0, codes, size=(outputs, fan_in))
    group = rng.integers(0, groups, size=(outputs, fan_in))
    return LayerOperands(hist, weights, group)


def _measure(lut: Lut, operands: LayerOperands, rng: np.random.Generator, samples: int):
    """Draw activations per group from the histograms, sum LUT products minus exact products."""
    prob = operands.act_hist / operands.act_hist.sum(axis=1, keepdims=True)
    outputs, fan_in = operands.weight_codes.shape
    acts = np.empty((samples, outputs, fan_in), dtype=np.int64)
    for o in range(outputs):
        for k in range(fan_in):
            acts[:, o, k] = rng.choice(prob.shape[1], size=samples, p=prob[operands.act_group[o, k]])
    w = np.broadcast_to(operands.weight_codes, acts.shape)
    approx = lut.forward[acts, w].astype(np.int64).sum(-1)
    exact = (lut.values_a[acts] * lut.values_b[w]).sum(-1)
    return (approx - exact).astype(np.float64)


@pytest.mark.parametrize(("bits", "signed"), [(4, True), (6, False), (8, True), (8, False)])
def test_prediction_matches_sampled_errors(bits: int, signed: bool) -> None:
    rng = np.random.default_rng(bits * 2 + signed)
    lut = _approx_lut(bits, signed, seed=bits)
    operands = _random_operands(rng, bits, groups=5, outputs=12, fan_in=9)
    samples = 20000
    err = _measure(lut, operands, rng, samples)
    pred = predict_error(lut, operands)
    mean, var = err.mean(0), err.var(0, ddof=1)
    m4 = ((err - mean) ** 4).mean(0)
    se_mean = np.sqrt(pred.var / samples)
    se_var = np.sqrt(np.maximum(m4 - var**2 * (samples - 3) / (samples - 1), 0) / samples)
    assert np.all(np.abs(mean - pred.mean) <= 5 * se_mean + 1e-9)
    assert np.all(np.abs(var - pred.var) <= 5 * se_var + 1e-9)
    assert np.all(pred.var > 0)  # the check above is not vacuous


def test_exact_and_constant_error_multipliers() -> None:
    rng = np.random.default_rng(0)
    operands = _random_operands(rng, 8, groups=3, outputs=4, fan_in=7)
    exact = Lut(np.multiply.outer(code_values(8, True), code_values(8, True)).astype(np.int32), 8, 8, True)
    pred = predict_error(exact, operands)
    assert np.array_equal(pred.mean, np.zeros(4)) and np.array_equal(pred.var, np.zeros(4))
    shifted = Lut(exact.forward + 3, 8, 8, True)
    pred = predict_error(shifted, operands)
    assert np.allclose(pred.mean, 3 * 7) and np.allclose(pred.var, 0)


def test_weight_dependent_error_uses_each_channels_weights() -> None:
    """e(a, b) = b for odd b only: the mean is (number of odd weights) x b, per channel, exactly."""
    values = code_values(4, False)
    forward = np.multiply.outer(values, values) + np.where(values % 2 == 1, values, 0)[None, :]
    lut = Lut(forward.astype(np.int32), 4, 4, False)
    weights = np.array([[1, 3, 2], [0, 2, 4], [5, 5, 5]])
    operands = LayerOperands(np.ones((1, 16)), weights, np.zeros(3, dtype=np.int64))
    pred = predict_error(lut, operands)
    assert np.allclose(pred.mean, [4, 0, 15]) and np.allclose(pred.var, 0)


def test_batch_prediction_equals_single_and_validates() -> None:
    rng = np.random.default_rng(3)
    operands = _random_operands(rng, 6, groups=2, outputs=3, fan_in=5)
    luts = [_approx_lut(6, False, seed=s) for s in range(3)]
    for lut, pred in zip(luts, predict_errors(luts, operands), strict=True):
        single = predict_error(lut, operands)
        assert np.array_equal(single.mean, pred.mean) and np.array_equal(single.var, pred.var)
    with pytest.raises(ConfigError, match="activation histogram has 64 codes"):
        predict_error(_approx_lut(8, False, 0), operands)
    with pytest.raises(ConfigError, match="act_group indices"):
        LayerOperands(np.ones((2, 16)), np.zeros((1, 2), dtype=np.int64), np.array([0, 2]))


def test_low_rank_split_is_exact_and_small() -> None:
    from approxlut.nn.predict import LowRankError

    lut = _approx_lut(8, True, seed=1)
    low = LowRankError.of(lut, energy=0.9, max_rank=6)
    assert 1 <= low.u.shape[0] <= 6 and low.u.shape[1] == 256 and low.v.shape == (low.u.shape[0], 256)
    assert np.allclose(low.u.T @ low.v + low.residual, lut.error())
    total = (lut.error().astype(float) ** 2).sum()
    kept = ((low.u.T @ low.v) ** 2).sum()
    assert kept + (low.residual**2).sum() == pytest.approx(total)  # truncated SVD: orthogonal split
    assert low.u.shape[0] == 6 or kept >= 0.9 * total
    assert kept >= 0.85 * total  # truncation plus ±3 noise: a few terms hold nearly all the error
    exact = Lut(np.multiply.outer(code_values(4, False), code_values(4, False)).astype(np.int32), 4, 4, False)
    assert LowRankError.of(exact).u.shape[0] == 0
