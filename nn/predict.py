"""Closed-form prediction of a layer's output error under an approximate multiplier.

One product's error is ``e(a, b) = T[a, b] - a·b`` (``Lut.error()``, indexed by operand codes). An
output of a linear or convolutional layer sums ``K`` products of activation codes and the output
channel's *fixed* weight codes. With the activations of input group ``g`` (an input channel) drawn
independently from that group's code histogram ``p_g``, the output's error has

* mean      ``Σ_k m_g(k)[w_k]``  with ``m_g[b] = Σ_a p_g(a) e(a, b)``,
* variance  ``Σ_k v_g(k)[w_k]``  with ``v_g[b] = Σ_a p_g(a) e(a, b)² - m_g[b]²``,

where ``g(k)`` is the input group of the ``k``-th product of that output. Because weights are fixed,
this is exact for the joint weight distribution of each output channel, and only assumes the
activations to be independent across ``k``. A product of two activations (attention's ``Q·Kᵀ`` and
``A·V``) has no fixed operand: with ``a ~ p_a`` and ``b ~ p_b`` independent, an output's error has mean
``K·E[e]`` and variance ``K·Var[e]`` (:class:`ProductOperands`). The prediction costs one ``[G, Na] @ [Na, Nb]`` product
per multiplier and a gather over the layer's weight codes, so every (layer, multiplier) pair of a
large network is predicted in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut
from .layers import ApproxConv1d, ApproxConv2d, ApproxLinear, ApproxModule
from .modes import work_mode
from .products import ApproxProduct
from .swap import approx_layers


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
class ProductOperands:
    """What a product of two activations multiplies: the code histograms of both operands.

    Attributes:
        a_hist: ``[G, 2^bits_a]`` counts of operand a's codes per group (one group, or one per head).
        b_hist: ``[G, 2^bits_b]`` counts of operand b's codes per group.
        fan_in: ``K``, the number of products summed per output.
    """

    a_hist: np.ndarray
    b_hist: np.ndarray
    fan_in: int

    def __post_init__(self) -> None:
        if self.a_hist.ndim != 2 or self.b_hist.ndim != 2 or self.a_hist.shape[0] != self.b_hist.shape[0]:
            raise ConfigError("a_hist and b_hist must be [groups, codes] with the same groups")

    def predict(self, error: np.ndarray) -> ErrorPrediction:
        """Mean and variance per group of an output's error for the error table ``error [Na, Nb]``."""
        if error.shape != (self.a_hist.shape[1], self.b_hist.shape[1]):
            raise ConfigError(
                f"error table {error.shape} does not fit operand codes {self.a_hist.shape[1]}x{self.b_hist.shape[1]}"
            )
        prob_a, prob_b = normalise(self.a_hist), normalise(self.b_hist)
        mean = np.einsum("ga,ab,gb->g", prob_a, error, prob_b)
        second = np.einsum("ga,ab,gb->g", prob_a, error * error, prob_b)
        return ErrorPrediction(self.fan_in * mean, self.fan_in * np.maximum(second - mean * mean, 0.0))


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
    return error_moments(lut.error().astype(np.float64), act_prob)


def error_moments(error: np.ndarray, act_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`conditional_moments` for any error table ``[Na, Nb]`` (e.g. a low-rank residual)."""
    mean = act_prob @ error
    second = act_prob @ (error * error)
    return mean, np.maximum(second - mean * mean, 0.0)


@dataclass(frozen=True)
class LowRankError:
    """``e(a, b) ≈ Σ_r u[r, a] · v[r, b] + residual[a, b]`` (truncated SVD of the error table).

    Error tables of approximate multipliers are nearly low rank (truncation, DRUM, BAM, Mitchell: ≥ 97 %
    of the error energy in 4 terms), so a layer's error under a multiplier is ``R`` ordinary float
    products of transformed operands, ``Σ_r conv(u_r[codes_a], v_r[codes_w])``: a faithful, spatially
    correct error simulation on native float kernels; the small residual is left to the closed form.
    """

    u: np.ndarray
    v: np.ndarray
    residual: np.ndarray

    @classmethod
    def of(cls, lut: Lut, *, energy: float = 0.99, max_rank: int = 6) -> LowRankError:
        error = lut.error().astype(np.float64)
        left, sigma, right = np.linalg.svd(error, full_matrices=False)
        total = float((sigma**2).sum())
        if total == 0:
            return cls(np.zeros((0, error.shape[0])), np.zeros((0, error.shape[1])), error)
        captured = np.cumsum(sigma**2) / total
        rank = min(int(np.searchsorted(captured, energy)) + 1, max_rank)
        u = (left[:, :rank] * sigma[:rank]).T
        v = right[:rank]
        return cls(u, v, error - u.T @ v)


def normalise(hist: np.ndarray) -> np.ndarray:
    """Rows of counts to probabilities (an empty row becomes all mass on code 0)."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum(axis=-1, keepdims=True)
    prob = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
    prob[..., 0] += (total[..., 0] == 0).astype(np.float64)
    return prob


def predict_error(lut: Lut, operands: LayerOperands | ProductOperands) -> ErrorPrediction:
    """Mean and variance of each output channel's error ``Σ_k e(a_k, w_k)`` (see the module doc)."""
    return predict_errors([lut], operands)[0]


def predict_errors(luts: list[Lut], operands: LayerOperands | ProductOperands) -> list[ErrorPrediction]:
    """:func:`predict_error` for several multipliers, sharing the normalised histograms and gather index."""
    if isinstance(operands, ProductOperands):
        return [operands.predict(lut.error().astype(np.float64)) for lut in luts]
    prob = normalise(operands.act_hist)
    results = []
    for lut in luts:
        codes_b = 1 << lut.bits_b
        if operands.weight_codes.size and operands.weight_codes.max() >= codes_b:
            raise ConfigError(f"weight codes exceed the {lut.bits_b}-bit operand of LUT '{lut.name}'")
        mean, var = conditional_moments(lut, prob)
        results.append(_gather(mean, var, operands))
    return results


def predict_from_error(error: np.ndarray, operands: LayerOperands | ProductOperands) -> ErrorPrediction:
    """:func:`predict_error` for an error table given directly (``[Na, Nb]``, any float values)."""
    if isinstance(operands, ProductOperands):
        return operands.predict(error)
    mean, var = error_moments(error, normalise(operands.act_hist))
    return _gather(mean, var, operands)


def _gather(mean: np.ndarray, var: np.ndarray, operands: LayerOperands) -> ErrorPrediction:
    index = operands.flat_index(mean.shape[1])
    return ErrorPrediction(mean.reshape(-1)[index].sum(axis=1), var.reshape(-1)[index].sum(axis=1))


# ------------------------------------------------------------------------------ recording the operands


@dataclass(frozen=True)
class LayerStats:
    """One layer's operands under its quantisation, and how integer errors map to its output.

    Attributes:
        operands: activation histograms (padding counted in), weight codes and input groups; for a
            product of two activations, both operands' histograms.
        out_scale: float64 ``[O]``, ``s_a · s_w[o]``: an accumulator error of 1 moves output ``o`` by this
            (``O`` is 1 for a per-tensor product, the heads for a per-head one).
        bits_a, bits_b, scheme: the quantisation the histograms were recorded under.
    """

    operands: LayerOperands | ProductOperands
    out_scale: np.ndarray
    bits_a: int
    bits_b: int
    scheme: str

    def output_moments(self, prediction: ErrorPrediction) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each output channel's error in output units."""
        return prediction.mean * self.out_scale, prediction.std * np.abs(self.out_scale)


def predictable(module: nn.Module) -> bool:
    """Whether :func:`record_operands` and bias correction handle this approximate layer (not a product)."""
    return isinstance(module, (ApproxLinear, ApproxConv1d, ApproxConv2d)) and not module.resolved.is_float


def searchable(module: nn.Module) -> bool:
    """Whether the search handles it: a :func:`predictable` layer or a product (``ApproxProduct``)."""
    return predictable(module) or (isinstance(module, ApproxProduct) and not module.resolved.is_float)


def channel_dim(module: nn.Module) -> int | None:
    """The output dim along which a layer's error statistics are kept: output channels (-1 for a
    ``Linear`` or a product with a weight, 1 for a convolution), heads (-3) or ``None`` (one set for the
    whole output: a per-tensor product of two activations)."""
    if isinstance(module, ApproxProduct):
        return module.channel_dim
    return -1 if isinstance(module, nn.Linear) else 1


def channel_sums(values: torch.Tensor, dim: int | None) -> torch.Tensor:
    """``values`` summed over every dim but ``dim`` (``[C]``; ``[1]`` for ``None``)."""
    if dim is None:
        return values.sum().reshape(1)
    return values.movedim(dim, 0).reshape(values.shape[dim], -1).sum(1)


def channel_view(out: torch.Tensor, values: torch.Tensor, dim: int | None) -> torch.Tensor:
    """``values [C]`` shaped to broadcast against ``out`` along ``dim`` (``None``: one value)."""
    shape = [1] * out.dim()
    if dim is not None:
        shape[dim] = -1
    return values.reshape(shape)


@torch.no_grad()
def record_operands(
    float_model: nn.Module, qmodel: nn.Module, batches: Iterable[torch.Tensor]
) -> dict[str, LayerStats]:
    """Histograms of every searchable layer's activation codes, recorded in one float pass.

    ``qmodel`` is ``float_model`` after :func:`approxlut.nn.approximate` and calibration (same layer
    names); each float layer's input is quantised with the calibrated quantiser of its approximate twin,
    so the float model runs at full speed while the codes are those the approximate layer would see.
    Products are recorded where the float model has them too (a float model with its products captured,
    ``approximate(model, "float", batches)``).
    """
    modules = dict(float_model.named_modules())
    layers = {
        name: m for name, m in approx_layers(qmodel).items() if predictable(m) or (searchable(m) and name in modules)
    }
    missing = sorted(set(layers) - set(modules))
    if missing:
        raise ConfigError(f"float model has no layers {missing[:3]} of the approximate model")
    products: dict[str, _ProductRecord] = {}
    hists: dict[str, torch.Tensor] = {}
    pad_code: dict[str, int] = {}
    pads: dict[str, float] = dict.fromkeys(layers, 0.0)
    taps: dict[str, float] = dict.fromkeys(layers, 0.0)
    handles = []
    for name, layer in layers.items():
        if isinstance(layer, ApproxProduct):
            products[name] = _ProductRecord(layer)
            handles.append(modules[name].register_forward_pre_hook(products[name].hook))
            continue

        def hook(module: nn.Module, inputs: tuple[Any, ...], name: str = name, layer: ApproxModule = layer) -> None:
            x = inputs[0]
            codes, _, zero = layer.quantize_input(x)
            size = 1 << layer.resolved.bits_a
            codes = codes.to(torch.int64) & (size - 1)
            if isinstance(layer, nn.Linear):
                groups = x.shape[-1]
                flat = codes.reshape(-1, groups)
            else:
                groups = x.shape[1]
                flat = codes.transpose(0, 1).reshape(groups, -1).t()
                real, total = _conv_taps(layer, x)
                pads[name] += (total - real) * x.shape[0]
                taps[name] += total * x.shape[0]
            index = (flat + torch.arange(groups, device=flat.device) * size).reshape(-1)
            counts = torch.bincount(index, minlength=groups * size).reshape(groups, size).double().cpu()
            hists[name] = hists[name] + counts if name in hists else counts
            pad_code[name] = int(zero) & (size - 1)

        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        with work_mode(float_model):
            for batch in batches:
                float_model(batch)
    finally:
        for handle in handles:
            handle.remove()
    stats = {}
    for name, layer in layers.items():
        if name in products:
            if products[name].calls:
                stats[name] = products[name].stats()
            continue
        if name not in hists:
            continue  # never called on this data
        hist = hists[name].numpy()
        if taps[name] > 0 and pads[name] > 0:
            fraction = pads[name] / taps[name]
            hist[:, pad_code[name]] += hist.sum(axis=1) * fraction / (1.0 - fraction)
        stats[name] = _layer_stats(layer, hist)
    return stats


def _conv_taps(layer: ApproxModule, x: torch.Tensor) -> tuple[float, float]:
    """Per input channel and sample: ``(real taps, all taps)`` of the layer's receptive fields."""
    from .layers import conv_pads

    m: Any = layer
    spatial = x.shape[2:]
    pads = conv_pads(m.padding, m.kernel_size, m.dilation)
    ones = torch.ones((1, 1, *spatial), dtype=torch.float32)
    flat_pad = [p for pair in reversed(pads) for p in pair]
    ones = F.pad(ones, flat_pad)
    if len(spatial) == 1:
        ones = ones.unsqueeze(2)
        kernel, stride, dilation = (1, m.kernel_size[0]), (1, m.stride[0]), (1, m.dilation[0])
    else:
        kernel, stride, dilation = m.kernel_size, m.stride, m.dilation
    cols = F.unfold(ones, kernel, dilation=dilation, stride=stride)
    return float(cols.sum()), float(cols.numel())


def _layer_stats(layer: ApproxModule, hist: np.ndarray) -> LayerStats:
    resolved = layer.resolved
    codes, scale_w, _ = layer.quantize_weight()
    mask = (1 << resolved.bits_b) - 1
    weight_codes = (codes.detach().to(torch.int64) & mask).reshape(codes.shape[0], -1).cpu().numpy()
    out_channels, fan_in = weight_codes.shape
    if isinstance(layer, nn.Linear):
        group = np.arange(fan_in, dtype=np.int64)
    else:
        m: Any = layer
        per_group_out = out_channels // m.groups
        taps = fan_in // (m.in_channels // m.groups)
        base = (np.arange(out_channels) // per_group_out) * (m.in_channels // m.groups)
        group = base[:, None] + (np.arange(fan_in) // taps)[None, :]
    scale_a = float(layer.input_quant.scale)
    out_scale = scale_a * scale_w.detach().double().cpu().numpy()
    return LayerStats(
        LayerOperands(hist, weight_codes, group), out_scale, resolved.bits_a, resolved.bits_b, resolved.scheme
    )


class _ProductRecord:
    """Operand histograms of one product, recorded by a forward pre-hook on its float twin."""

    def __init__(self, product: ApproxProduct) -> None:
        self.product = product
        self.calls = 0
        self.hist_a: torch.Tensor | None = None
        self.hist_b: torch.Tensor | None = None
        self.weight_codes: np.ndarray | None = None
        self.out_scale: np.ndarray | None = None
        self.fan_in = 0

    def hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        product = self.product
        a, b = inputs[0], inputs[1]
        codes_a, codes_b = product.operand_codes(a, b)
        (_, sa, _), (_, sb, _) = product.quantize_operands(a, b)
        size_a, size_b = 1 << product.resolved.bits_a, 1 << product.resolved.bits_b
        self.fan_in = int(a.shape[-1])
        if product.weight_operand:
            hist_a = _group_counts(codes_a.reshape(-1, self.fan_in).t(), size_a)  # per input feature
            self.weight_codes = codes_b.cpu().numpy()
            self.out_scale = (sa * sb).detach().double().reshape(-1).cpu().numpy()
        else:
            dim = product.channel_dim
            groups_a = codes_a.reshape(1, -1) if dim is None else codes_a.movedim(dim, 0).reshape(a.shape[dim], -1)
            groups_b = codes_b.reshape(1, -1) if dim is None else codes_b.movedim(dim, 0).reshape(b.shape[dim], -1)
            hist_a = _group_counts(groups_a, size_a)
            hist_b = _group_counts(groups_b, size_b)
            self.hist_b = hist_b if self.hist_b is None else self.hist_b + hist_b
            self.out_scale = (sa * sb).detach().double().reshape(-1).cpu().numpy()
        self.hist_a = hist_a if self.hist_a is None else self.hist_a + hist_a
        self.calls += 1

    def stats(self) -> LayerStats:
        product = self.product
        resolved = product.resolved
        assert self.hist_a is not None and self.out_scale is not None
        hist_a = self.hist_a.numpy()
        operands: LayerOperands | ProductOperands
        if product.weight_operand:
            assert self.weight_codes is not None
            operands = LayerOperands(hist_a, self.weight_codes, np.arange(self.fan_in, dtype=np.int64))
        else:
            assert self.hist_b is not None
            operands = ProductOperands(hist_a, self.hist_b.numpy(), self.fan_in)
        return LayerStats(operands, self.out_scale, resolved.bits_a, resolved.bits_b, resolved.scheme)


def _group_counts(codes: torch.Tensor, size: int) -> torch.Tensor:
    """``[G, size]`` counts of the codes in each row of ``codes [G, n]`` (float64, CPU)."""
    groups = codes.shape[0]
    index = (codes + torch.arange(groups, device=codes.device)[:, None] * size).reshape(-1)
    return torch.bincount(index, minlength=groups * size).reshape(groups, size).double().cpu()
