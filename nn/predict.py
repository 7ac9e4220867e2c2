"""Closed-form prediction of a layer's output error under an approximate multiplier.

One product's error is ``e(a, b) = T[a, b] - a·b`` (``Lut.error()``, indexed by operand codes). An
output of a linear or convolutional layer sums ``K`` products of activation codes and the output
channel's *fixed* weight codes. With the activations of input group ``g`` (an input channel) drawn
independently from that group's code histogram ``p_g``, the output's error has

* mean      ``Σ_k m_g(k)[w_k]``  with ``m_g[b] = Σ_a p_g(a) e(a, b)``,
* variance  ``Σ_k v_g(k)[w_k]``  with ``v_g[b] = Σ_a p_g(a) e(a, b)² - m_g[b]²``,

where ``g(k)`` is the input group of the ``k``-th product of that output. Because weights are fixed,
this is exact for the joint weight distribution of each output channel, and only assumes the
activations to be independent across ``k``. The prediction costs one ``[G, Na] @ [Na, Nb]`` product
per multiplier and a gather over the layer's weight codes, so every (layer, multiplier) pair of a
large network is predicted in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..lutgen.lut import Lut


@dataclass(frozen=True)
class LayerOperands:
    """What a layer multiplies, as codes.

    Attributes:
        act_hist: ``[G, 2^bits_a]`` counts of activation codes per input group (e.g. input channel);
            zero padding must be counted in (as the code of value 0).
        weight_codes: int ``[O, K]``, the weight code of each product of output channel ``o``.
        act_group: int ``[O, K]`` (or ``[K]``, shared by all outputs), the input group feeding product ``k``.
    """

    act_hist: np.ndarray
    weight_codes: np.ndarray
    act_group: np.ndarray

    def __post_init__(self) -> None:
        if self.act_hist.ndim != 2 or self.weight_codes.ndim != 2:
            raise ConfigError("act_hist must be [groups, codes] and weight_codes [outputs, K]")
        group = np.broadcast_to(self.act_group, self.weight_codes.shape)
        if group.size and (group.min() < 0 or group.max() >= self.act_hist.shape[0]):
            raise ConfigError(f"act_group indices must lie in 0..{self.act_hist.shape[0] - 1}")
        object.__setattr__(self, "act_group", group)

    @property
    def fan_in(self) -> int:
        """``K``, the number of products summed per output."""
        return int(self.weight_codes.shape[1])

    def flat_index(self, codes_b: int) -> np.ndarray:
        """``group * 2^bits_b + weight_code`` per product, for gathers in ``[G * Nb]`` tables."""
        return self.act_group.astype(np.int64) * codes_b + self.weight_codes.astype(np.int64)


@dataclass(frozen=True)
class ErrorPrediction:
    """Predicted output error per output channel, in integer (code product) units."""

    mean: np.ndarray
    var: np.ndarray

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.var, 0.0))


def conditional_moments(lut: Lut, act_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``m[g, b]`` and ``v[g, b]``: mean and variance of ``e(a, b)`` with ``a ~ act_prob[g]``."""
    if act_prob.shape[-1] != 1 << lut.bits_a:
        raise ConfigError(
            f"activation histogram has {act_prob.shape[-1]} codes, LUT '{lut.name}' takes {1 << lut.bits_a}"
        )
    error = lut.error().astype(np.float64)
    mean = act_prob @ error
    second = act_prob @ (error * error)
    return mean, np.maximum(second - mean * mean, 0.0)


def normalise(hist: np.ndarray) -> np.ndarray:
    """Rows of counts to probabilities (an empty row becomes all mass on code 0)."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum(axis=-1, keepdims=True)
    prob = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
    prob[..., 0] += (total[..., 0] == 0).astype(np.float64)
    return prob


def predict_error(lut: Lut, operands: LayerOperands) -> ErrorPrediction:
    """Mean and variance of each output channel's error ``Σ_k e(a_k, w_k)`` (see the module doc)."""
    return predict_errors([lut], operands)[0]


def predict_errors(luts: list[Lut], operands: LayerOperands) -> list[ErrorPrediction]:
    """:func:`predict_error` for several multipliers, sharing the normalised histograms and gather index."""
    prob = normalise(operands.act_hist)
    results = []
    index_by_width: dict[int, np.ndarray] = {}
    for lut in luts:
        codes_b = 1 << lut.bits_b
        if operands.weight_codes.size and operands.weight_codes.max() >= codes_b:
            raise ConfigError(f"weight codes exceed the {lut.bits_b}-bit operand of LUT '{lut.name}'")
        if codes_b not in index_by_width:
            index_by_width[codes_b] = operands.flat_index(codes_b)
        index = index_by_width[codes_b]
        mean, var = conditional_moments(lut, prob)
        results.append(ErrorPrediction(mean.reshape(-1)[index].sum(axis=1), var.reshape(-1)[index].sum(axis=1)))
    return results
