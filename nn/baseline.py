"""No-retraining baselines: bias correction and ALWANN-style weight tuning.

They show what a multiplier costs before any retraining, and what retraining adds on top.

* **Bias correction**: the mean error an approximate multiplier adds to each output channel is folded
  into that channel's bias (``set_bias_correction``). ``"measured"``: one pass over calibration data
  compares each layer's LUT accumulator with the exact one on the same quantised inputs;
  ``"predicted"``: the closed form of :mod:`approxlut.nn.predict` from the layer's activation code
  histograms and weight codes.
* **Weight tuning** (ALWANN, Mrazek et al. 2019): each weight code ``w`` is replaced by
  ``argmin_w2 Σ_a p(a) |a·w − T[a, w2]|`` over the layer's activation code histogram ``p``. For the
  affine scheme the cross term the layer computes exactly moves with the code, so the cost is
  ``Σ_a p(a) |T[a, w2] − a·w − z_a (w2 − w)|`` (``z_a = 0`` for symmetric). ``w2 = w`` is always a
  candidate, so no weight's expected error grows. Candidates are limited to codes that keep the weight
  quantiser's range (and so its scale): the elements that set the range stay as they are.

Both work on the layers :func:`approxlut.nn.predict.predictable` accepts (Linear, Conv1d, Conv2d).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut
from .layers import ApproxModule
from .modes import work_mode
from .predict import LayerOperands, normalise, predict_errors, predictable, record_operands
from .swap import approx_layers, to_float

METHODS = ("measured", "predicted")


def _lut_layers(model: nn.Module) -> dict[str, ApproxModule]:
    return {n: m for n, m in approx_layers(model).items() if predictable(m) and m.resolved.lut is not None}


def _channel_means(values: torch.Tensor, layer: nn.Module) -> tuple[torch.Tensor, int]:
    """Per-output-channel sums of ``values`` (an output-shaped tensor) and the count per channel."""
    if isinstance(layer, nn.Linear):
        flat = values.reshape(-1, values.shape[-1])
        return flat.sum(0), flat.shape[0]
    per_channel = values.transpose(0, 1).reshape(values.shape[1], -1)
    return per_channel.sum(1), per_channel.shape[1]


@torch.no_grad()
def measure_mean_errors(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean output error per channel of every LUT layer: LUT accumulator minus exact, times the scales.

    Measured at each layer's actual inputs in ``model`` (eval mode, corrections excluded).
    """
    layers = _lut_layers(model)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(layers, 0)
    handles = []
    for name, layer in layers.items():

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any, name: str = name) -> None:
            layer: Any = module
            x = inputs[0]
            approx_acc, scale = layer.accumulate(x)
            resolved = layer.resolved
            layer.resolved = replace(resolved, lut=None)  # the exact path on the same codes
            try:
                exact_acc, _ = layer.accumulate(x)
            finally:
                layer.resolved = resolved
            view = (-1,) if isinstance(module, nn.Linear) else (1, -1) + (1,) * (x.dim() - 2)
            error = (approx_acc - exact_acc) * scale.double().reshape(view)
            total, count = _channel_means(error, module)
            sums[name] = sums[name] + total if name in sums else total
            counts[name] += count

        handles.append(layer.register_forward_hook(hook))
    try:
        with work_mode(model):
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (sums[name] / max(1, counts[name])).float() for name in sums}


def predict_mean_errors(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean output error per channel of every LUT layer, predicted in closed form from code histograms."""
    layers = _lut_layers(model)
    stats = record_operands(to_float(model), model, batches)
    out: dict[str, torch.Tensor] = {}
    for name, layer_stats in stats.items():
        if name not in layers:
            continue
        lut = layers[name].resolved.lut
        assert lut is not None
        (prediction,) = predict_errors([lut], layer_stats.operands)
        mean, _ = layer_stats.output_moments(prediction)
        out[name] = torch.as_tensor(mean, dtype=torch.float32)
    return out


def bias_correction(
    model: nn.Module, batches: Iterable[torch.Tensor], *, method: str = "measured"
) -> dict[str, torch.Tensor]:
    """Fold each LUT layer's mean output error into its bias (in place); return the corrections set.

    ``batches`` are model inputs (a few calibration batches suffice); ``method`` is ``"measured"`` or
    ``"predicted"``. Existing corrections are replaced.
    """
    if method not in METHODS:
        raise ConfigError(f"bias correction method {method!r}: expected one of {', '.join(METHODS)}")
    batches = list(batches)
    if not batches:
        raise ConfigError("bias correction needs at least one batch of calibration data")
    layers = _lut_layers(model)
    for layer in layers.values():
        layer.set_bias_correction(None)
    means = measure_mean_errors(model, batches) if method == "measured" else predict_mean_errors(model, batches)
    corrections = {}
    for name, mean in means.items():
        layers[name].set_bias_correction(-mean)
        corrections[name] = -mean
    return corrections


# ---------------------------------------------------------------------------------------- weight tuning


def weight_cost(lut: Lut, act_prob: np.ndarray, act_zero: float = 0.0) -> np.ndarray:
    """``C[j, k] = Σ_a p(a) |T[a, k] − a·w_j − z_a (w_k − w_j)|`` over code indices ``j`` (kept) and ``k``.

    ``a``, ``w`` are operand values of the codes; ``act_prob`` is the activation code distribution
    (``2^bits_a`` entries) and ``act_zero`` the activation zero point (0 for symmetric).
    """
    prob = np.asarray(act_prob, dtype=np.float64).reshape(-1)
    if prob.shape[0] != 1 << lut.bits_a:
        raise ConfigError(f"activation histogram has {prob.shape[0]} codes, LUT '{lut.name}' takes {1 << lut.bits_a}")
    a = lut.values_a.astype(np.float64)
    b = lut.values_b.astype(np.float64)
    table = lut.forward.astype(np.float64)
    used = np.nonzero(prob)[0]
    cost = np.empty((b.shape[0], b.shape[0]))
    for j, wj in enumerate(b):
        diff = table[used] - np.outer(a[used], np.full_like(b, wj)) - act_zero * (b - wj)[None, :]
        cost[j] = prob[used] @ np.abs(diff)
    return cost


def tune_codes(values: np.ndarray, cost: np.ndarray, lut: Lut, *, symmetric: bool) -> np.ndarray:
    """Tuned weight values for one quantisation group (a channel, or the whole tensor).

    ``values`` holds weight operand values; each moves to the cheapest code by ``cost`` among those
    that keep the group's range: ``|w2| <= max|w|`` (symmetric) or ``min w <= w2 <= max w`` (affine).
    Elements at the range's ends, and those no cheaper code exists for, keep their value.
    """
    b = lut.values_b
    mask = (1 << lut.bits_b) - 1
    flat = values.reshape(-1).astype(np.int64)
    if flat.size == 0:
        return values.copy()
    if symmetric:
        limit = np.abs(flat).max()
        allowed = np.abs(b) <= limit
        fixed = np.abs(flat) == limit
    else:
        lo, hi = flat.min(), flat.max()
        allowed = (b >= lo) & (b <= hi)
        fixed = (flat == lo) | (flat == hi)
    masked = np.where(allowed[None, :], cost, np.inf)
    best = masked.argmin(axis=1)
    codes = flat & mask
    keep = masked[codes, best[codes]] >= cost[codes, codes]
    out = np.where(fixed | keep, flat, b[best[codes]])
    return out.reshape(values.shape)


@dataclass(frozen=True)
class TuneReport:
    """What weight tuning did to one layer.

    Attributes:
        changed: weights whose code moved.
        total: weights in the layer.
        error_before: Σ over weights of the expected absolute product error (integer units), before.
        error_after: the same after tuning (never larger).
    """

    changed: int
    total: int
    error_before: float
    error_after: float


@torch.no_grad()
def tune_layer(layer: ApproxModule, act_hist: np.ndarray) -> TuneReport:
    """ALWANN weight tuning of one LUT layer in place, for activation code counts ``act_hist``."""
    lut = layer.resolved.lut
    if lut is None or not predictable(layer):
        raise ConfigError(f"weight tuning needs a Linear/Conv layer with a LUT multiplier, got {layer!r}")
    if layer.config.weight_calibration != "max":
        raise ConfigError("weight tuning keeps the weight range, so it needs weight_calibration='max'")
    symmetric = layer.resolved.scheme == "symmetric"
    per_channel = layer.config.per_channel if layer.config.per_channel is not None else symmetric
    weight: torch.Tensor = getattr(layer, "weight")  # noqa: B009
    codes, scale, zero = layer.quantize_weight()
    za = 0.0 if symmetric else float(layer.input_quant.zero_point)
    cost = weight_cost(lut, normalise(np.asarray(act_hist).reshape(1, -1))[0], za)
    rows = layer.weight_rows(codes).cpu().numpy().astype(np.int64)
    groups = [rows[i] for i in range(rows.shape[0])] if per_channel else [rows.reshape(-1)]
    tuned_groups = [tune_codes(g, cost, lut, symmetric=symmetric) for g in groups]
    tuned = np.stack(tuned_groups) if per_channel else tuned_groups[0].reshape(rows.shape)
    mask = (1 << lut.bits_b) - 1
    before = float(cost[rows & mask, rows & mask].sum())
    after = float(cost[rows & mask, tuned & mask].sum())

    target = torch.as_tensor(tuned, dtype=weight.dtype, device=weight.device).reshape(codes.shape)
    # the range the weight quantiser derives its scale from: [-max|w|, max|w|] or [min w, max w]
    old_rows = layer.weight_rows(weight.detach())
    if symmetric:
        old_rows = old_rows.abs()
    hi = old_rows.max(dim=1).values if per_channel else old_rows.max().expand(old_rows.shape[0])
    lo = -hi if symmetric else old_rows.min(dim=1).values if per_channel else old_rows.min().expand(hi.shape[0])
    new = (target - layer.channel_view(zero)) * layer.channel_view(scale)
    new = torch.clamp(new, layer.channel_view(lo), layer.channel_view(hi))
    new = torch.where(target == codes, weight, new)
    weight.copy_(new)
    check, _, _ = layer.quantize_weight()
    assert torch.equal(check, target), "weight tuning changed the weight quantiser's range"
    return TuneReport(int((tuned != rows).sum()), int(rows.size), before, after)


def tune_weights(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, TuneReport]:
    """ALWANN weight tuning of every LUT layer of ``model`` (in place) from one pass over ``batches``."""
    layers = _lut_layers(model)
    stats = record_operands(to_float(model), model, batches)
    reports = {}
    for name, layer_stats in stats.items():
        if name in layers and isinstance(layer_stats.operands, LayerOperands):
            reports[name] = tune_layer(layers[name], layer_stats.operands.act_hist.sum(axis=0))
    return reports
