"""Quantisers, observers and calibration.

Two schemes (DESIGN.md):

- ``"symmetric"``: signed codes ``-2^(n-1) .. 2^(n-1)-1``, zero point 0, ``scale = t / (2^(n-1)-1)`` for a
  clipping threshold ``t`` (weights per output channel, activations per tensor);
- ``"affine"``: unsigned codes ``0 .. 2^n-1`` with a zero point, ``scale = (hi - lo) / (2^n - 1)`` over a
  range ``[lo, hi]`` widened to contain 0 (so that real 0, e.g. padding, is exactly a code).

``x ≈ scale · (q − zero_point)``. :func:`quantize` rounds with a straight-through gradient (``1/scale``
inside the clamp range, 0 outside). Activation ranges come from a :class:`HistogramObserver` filled during
calibration (:func:`calibrate` or the :func:`calibration` context) and then frozen into buffers, so a
calibrated forward pass has no observer cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .modes import work_mode

SCHEMES = ("symmetric", "affine")


def qrange(bits: int, scheme: str) -> tuple[int, int]:
    """The smallest and largest code of an ``bits``-wide operand under ``scheme``."""
    if scheme == "symmetric":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if scheme == "affine":
        return 0, (1 << bits) - 1
    raise ConfigError(f"unknown quantisation scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int, scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, zero_point)`` (float32, same shape as ``lo``) that cover ``[lo, hi]``.

    An empty range (all zeros) gets scale 1 so that every code stays finite.
    """
    lo = torch.as_tensor(lo, dtype=torch.float32)
    hi = torch.as_tensor(hi, dtype=torch.float32, device=lo.device)
    qmin, qmax = qrange(bits, scheme)
    if scheme == "symmetric":
        threshold = torch.maximum(lo.abs(), hi.abs())
        scale = threshold / qmax
        zero = torch.zeros_like(scale)
    else:
        lo = torch.clamp(lo, max=0.0)
        hi = torch.clamp(hi, min=0.0)
        scale = (hi - lo) / (qmax - qmin)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(torch.round(-lo / safe), qmin, qmax)
    ok = torch.isfinite(scale) & (scale > 0)
    return torch.where(ok, scale, torch.ones_like(scale)), torch.where(ok, zero, torch.zeros_like(zero))


class _RoundClamp(torch.autograd.Function):
    """``clamp(round(q), qmin, qmax)`` with a straight-through gradient inside the clamp range."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return torch.clamp(torch.round(q), qmin, qmax)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Codes ``clamp(round(x / scale + zero_point), qmin, qmax)`` as a float tensor of integer values.

    The gradient is straight-through: ``1 / scale`` where ``x`` maps inside ``[qmin, qmax]``, 0 outside.
    ``scale`` and ``zero_point`` broadcast against ``x``.
    """
    q = x / scale
    if torch.is_grad_enabled() and q.requires_grad:
        return _RoundClamp.apply(q + zero_point, qmin, qmax)
    return q.add_(zero_point).round_().clamp_(qmin, qmax)  # in place on the fresh quotient: no extra copies


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``scale · (q − zero_point)``."""
    return (q - zero_point) * scale


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``dequantize(quantize(x))``: the value ``x`` takes after quantisation (STE gradient)."""
    return dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)


def _expected_sq_error(
    centers: torch.Tensor, counts: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int, scheme: str
) -> torch.Tensor:
    """Expected squared quantisation error of histogram ``counts`` for each candidate range ``[lo, hi]``."""
    scale, zero = qparams_from_range(lo, hi, bits, scheme)
    qmin, qmax = qrange(bits, scheme)
    low = ((qmin - zero) * scale)[:, None]
    high = ((qmax - zero) * scale)[:, None]
    c = centers[None, :]
    clipped = torch.clamp(c, low, high)
    inside = (c >= low) & (c <= high)
    err = torch.where(inside, (scale**2 / 12.0)[:, None].expand_as(clipped), (c - clipped) ** 2)
    return (err * counts[None, :]).sum(dim=1)


class HistogramObserver:
    """Running histogram of a tensor's values over ``[-R, R]``, ``R`` a power of two that grows as needed.

    When ``R`` doubles, pairs of bins merge exactly, so the histogram never loses counts. Exact ``min`` and
    ``max`` are tracked too. :meth:`range` turns the statistics into a clipping range.
    """

    def __init__(self, bins: int = 16384) -> None:
        if bins < 8 or bins % 4:
            raise ConfigError(f"histogram bins={bins} must be a multiple of 4, at least 8")
        self.bins = bins
        self.hist: torch.Tensor | None = None
        self.radius = 0.0
        self.min = math.inf
        self.max = -math.inf

    @property
    def empty(self) -> bool:
        """Whether nothing has been observed."""
        return self.hist is None

    def observe(self, x: torch.Tensor) -> None:
        """Add the finite values of ``x`` to the statistics."""
        values = x.detach().reshape(-1).float()
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            return
        lo, hi = (float(v) for v in torch.aminmax(values))
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        need = max(abs(lo), abs(hi), 1e-30)
        radius = 2.0 ** math.ceil(math.log2(need))
        if self.hist is None:
            self.hist = torch.zeros(self.bins, dtype=torch.float64, device=values.device)
            self.radius = radius
        while self.radius < radius:
            merged = self.hist.view(self.bins // 2, 2).sum(dim=1)
            self.hist = torch.zeros_like(self.hist)
            self.hist[self.bins // 4 : 3 * self.bins // 4] = merged
            self.radius *= 2.0
        counts = torch.histc(values, bins=self.bins, min=-self.radius, max=self.radius)
        self.hist += counts.to(device=self.hist.device, dtype=torch.float64)

    def _centers(self) -> torch.Tensor:
        assert self.hist is not None
        width = 2.0 * self.radius / self.bins
        return -self.radius + width * (torch.arange(self.bins, dtype=torch.float64, device=self.hist.device) + 0.5)

    def _quantile(self, counts: torch.Tensor, edges_lo: float, width: float, fraction: float) -> float:
        """The value below which ``fraction`` of ``counts`` (bins from ``edges_lo``, ``width`` each) lie."""
        cum = torch.cumsum(counts, dim=0)
        total = float(cum[-1])
        if total <= 0:
            return edges_lo
        target = fraction * total
        index = int(torch.searchsorted(cum, torch.tensor([target], dtype=cum.dtype, device=cum.device)))
        index = min(index, counts.numel() - 1)
        before = float(cum[index - 1]) if index > 0 else 0.0
        inside = float(counts[index])
        part = (target - before) / inside if inside > 0 else 1.0
        return edges_lo + width * (index + min(max(part, 0.0), 1.0))

    def range(self, method: str, scheme: str, bits: int, percentile: float = 99.9) -> tuple[float, float]:
        """A clipping range ``(lo, hi)`` by ``"max"``, ``"percentile"`` or ``"mse"`` for ``scheme``/``bits``.

        Symmetric ranges are ``(-t, t)``; affine ones contain 0.
        """
        if self.hist is None:
            raise ConfigError("observer has seen no data; run calibration batches first")
        max_abs = max(abs(self.min), abs(self.max))
        if method == "max":
            if scheme == "symmetric":
                return -max_abs, max_abs
            return min(self.min, 0.0), max(self.max, 0.0)
        width = 2.0 * self.radius / self.bins
        if method == "percentile":
            fraction = percentile / 100.0
            if scheme == "symmetric":
                half = self.bins // 2
                folded = self.hist[half:] + torch.flip(self.hist[:half], dims=[0])
                t = min(self._quantile(folded, 0.0, width, fraction), max_abs)
                return -t, t
            lo = max(self._quantile(self.hist, -self.radius, width, 1.0 - fraction), self.min)
            hi = min(self._quantile(self.hist, -self.radius, width, fraction), self.max)
            return min(lo, 0.0), max(hi, 0.0)
        if method == "mse":
            alphas = torch.linspace(0.01, 1.0, 100, dtype=torch.float64, device=self.hist.device)
            if scheme == "symmetric":
                lo_c, hi_c = -max_abs * alphas, max_abs * alphas
            else:
                lo_c, hi_c = min(self.min, 0.0) * alphas, max(self.max, 0.0) * alphas
            err = _expected_sq_error(self._centers(), self.hist, lo_c.float(), hi_c.float(), bits, scheme)
            best = int(torch.argmin(err))
            return float(lo_c[best]), float(hi_c[best])
        raise ConfigError(f"unknown calibration method {method!r}; expected percentile, max or mse")


def weight_qparams(
    weight_rows: torch.Tensor,
    bits: int,
    scheme: str,
    *,
    method: str = "max",
    percentile: float = 99.9,
    per_channel: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale [C], zero_point [C])`` for a weight laid out as ``[C, -1]`` rows (one per output channel).

    Per tensor (``per_channel=False``), every row gets the same parameters.
    """
    w = weight_rows.detach().float()
    rows = w if per_channel else w.reshape(1, -1)
    if method == "max":
        lo, hi = rows.amin(dim=1), rows.amax(dim=1)
    elif method == "percentile":
        lo, hi = _row_percentile_range(rows, scheme, percentile / 100.0)
    elif method == "mse":
        lo, hi = _row_mse_range(rows, bits, scheme)
    else:
        raise ConfigError(f"unknown calibration method {method!r}; expected percentile, max or mse")
    scale, zero = qparams_from_range(lo, hi, bits, scheme)
    if not per_channel:
        scale, zero = scale.expand(w.shape[0]).contiguous(), zero.expand(w.shape[0]).contiguous()
    return scale, zero


def _sorted_quantile(sorted_rows: torch.Tensor, fraction: float) -> torch.Tensor:
    n = sorted_rows.shape[1]
    pos = fraction * (n - 1)
    i0 = min(math.floor(pos), n - 1)
    i1 = min(i0 + 1, n - 1)
    t = pos - i0
    return sorted_rows[:, i0] * (1 - t) + sorted_rows[:, i1] * t


def _row_percentile_range(rows: torch.Tensor, scheme: str, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    if scheme == "symmetric":
        t = _sorted_quantile(torch.sort(rows.abs(), dim=1).values, fraction)
        return -t, t
    ordered = torch.sort(rows, dim=1).values
    return _sorted_quantile(ordered, 1.0 - fraction), _sorted_quantile(ordered, fraction)


def _row_mse_range(rows: torch.Tensor, bits: int, scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
    qmin, qmax = qrange(bits, scheme)
    if scheme == "symmetric":
        full = rows.abs().amax(dim=1)
        base_lo, base_hi = -full, full
    else:
        base_lo, base_hi = rows.amin(dim=1).clamp(max=0.0), rows.amax(dim=1).clamp(min=0.0)
    best_err = torch.full_like(base_lo, math.inf)
    best_lo, best_hi = base_lo.clone(), base_hi.clone()
    for alpha in torch.linspace(0.05, 1.0, 64).tolist():
        lo, hi = base_lo * alpha, base_hi * alpha
        scale, zero = qparams_from_range(lo, hi, bits, scheme)
        err = ((fake_quantize(rows, scale[:, None], zero[:, None], qmin, qmax) - rows) ** 2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_lo, best_hi = torch.where(better, lo, best_lo), torch.where(better, hi, best_hi)
    return best_lo, best_hi


class ActivationQuantizer(nn.Module):
    """Per-tensor activation quantisation parameters (buffers ``scale``, ``zero_point``) and their observer.

    ``scale`` is NaN until calibrated; an uncalibrated quantiser uses the current batch's max range
    (dynamic quantisation). The observer is kept after :meth:`freeze` (it costs nothing in forward) so that
    the layer can be re-frozen for another width or scheme without new calibration data.

    With :meth:`track_running_range` the range instead follows a moving average of each batch's min
    and max while the module is in training mode (buffers ``running_min``, ``running_max``), as the
    DATE'25 reference retrains; in eval mode the last parameters stay fixed.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    running_min: torch.Tensor
    running_max: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(float("nan")))
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.observer: HistogramObserver | None = None
        self.observing = False
        self.range_momentum: float | None = None

    def track_running_range(self, momentum: float) -> None:
        """From now on, in training mode, move the range towards each batch's ``[min, max]`` by ``momentum``.

        The first batch sets the range outright; each later one gives
        ``range = (1 - momentum) · range + momentum · [min, max]``, and ``scale``/``zero_point`` follow.
        """
        if not 0.0 < momentum <= 1.0:
            raise ConfigError(f"range momentum {momentum!r} must be in (0, 1]")
        self.range_momentum = float(momentum)
        if not hasattr(self, "running_min"):
            self.register_buffer("running_min", torch.full((), float("nan"), device=self.scale.device))
            self.register_buffer("running_max", torch.full((), float("nan"), device=self.scale.device))

    @torch.no_grad()
    def _update_running(self, x: torch.Tensor, bits: int, scheme: str) -> None:
        lo, hi = torch.aminmax(x.detach().float())
        first = ~torch.isfinite(self.running_min)  # no host sync: the first batch is picked on the device
        m = self.range_momentum
        assert m is not None
        self.running_min.copy_(torch.where(first, lo, (1 - m) * self.running_min + m * lo))
        self.running_max.copy_(torch.where(first, hi, (1 - m) * self.running_max + m * hi))
        scale, zero = qparams_from_range(self.running_min, self.running_max, bits, scheme)
        # new tensors, not copies into the old: a quantisation earlier in this forward pass (a recurrent layer's
        # previous step) saved the old scale for its backward pass
        self.scale = scale.to(self.scale)
        self.zero_point = zero.to(self.zero_point)

    @property
    def calibrated(self) -> bool:
        """Whether frozen parameters are set."""
        return bool(torch.isfinite(self.scale))

    def start(self, *, reset: bool = True) -> None:
        """Begin collecting statistics (afresh, or adding to the kept ones with ``reset=False``)."""
        if self.observer is None or reset:
            self.observer = HistogramObserver()
        self.observing = True

    def observe(self, x: torch.Tensor) -> None:
        """Record ``x`` while observing."""
        assert self.observer is not None
        self.observer.observe(x)

    def freeze(self, bits: int, scheme: str, method: str, percentile: float) -> None:
        """Stop observing and set ``scale``/``zero_point`` from the statistics (no-op if none were seen)."""
        self.observing = False
        if self.observer is None or self.observer.empty:
            return
        lo, hi = self.observer.range(method, scheme, bits, percentile)
        scale, zero = qparams_from_range(torch.tensor(lo), torch.tensor(hi), bits, scheme)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero)

    def requantize(self, old_bits: int, old_scheme: str, bits: int, scheme: str) -> None:
        """Re-express the frozen range, set for ``old_bits``/``old_scheme``, for ``bits``/``scheme``."""
        if not self.calibrated or (old_bits, old_scheme) == (bits, scheme):
            return
        qmin, qmax = qrange(old_bits, old_scheme)
        if old_scheme == "symmetric":
            lo, hi = -self.scale * qmax, self.scale * qmax
        else:
            lo, hi = (qmin - self.zero_point) * self.scale, (qmax - self.zero_point) * self.scale
        scale, zero = qparams_from_range(lo, hi, bits, scheme)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero)

    def qparams(self, x: torch.Tensor, bits: int, scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen ``(scale, zero_point)``, or the max range of ``x`` when uncalibrated.

        While tracking a running range in training mode, ``x`` first updates the range.
        """
        if self.range_momentum is not None and self.training:
            self._update_running(x, bits, scheme)
            return self.scale, self.zero_point
        if self.calibrated:
            return self.scale, self.zero_point
        lo, hi = torch.aminmax(x.detach().float())
        return qparams_from_range(lo, hi, bits, scheme)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Calibration buffers are optional in a state dict: a float model's weights load as they are.
        # A running range saved by a run that tracked one is dropped by a quantiser that does not track one.
        if not hasattr(self, "running_min"):
            for name in ("running_min", "running_max"):
                state_dict.pop(prefix + name, None)
        own_missing: list[str] = []
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, own_missing, unexpected_keys, error_msgs
        )
        optional = ("scale", "zero_point", "running_min", "running_max")
        missing_keys.extend(k for k in own_missing if k[len(prefix) :] not in optional)


def affine_weight_terms(codes: torch.Tensor, zero_point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(zb, Σqb − K·zb)`` per output channel as float64 ``[C]``: the weight's part of the affine scheme's
    zero-point terms ``− zb·Σqa − za·(Σqb − K·zb)``, for weight ``codes`` (output channels first, ``K`` codes each)
    and their ``zero_point`` (integers: exact in float64 in any order)."""
    zb64 = zero_point.double()
    sums = codes.reshape(codes.shape[0], -1).sum(1, dtype=torch.float64)
    return zb64, sums - codes[0].numel() * zb64


class WeightQuantizer(nn.Module):
    """Weight quantisation parameters per output channel (buffers ``scale``, ``zero_point`` of shape ``[C]``).

    They are derived from the weight and recomputed whenever the weight changes (its storage, or its
    in-place version counter: optimiser steps, ``load_state_dict``, ``p.add_()`` under ``no_grad``) or the
    settings change; the buffers show the values last used. Writes through ``p.data`` bypass the version
    counter: call :meth:`reset` after those.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.empty(0))
        self.register_buffer("zero_point", torch.empty(0))
        self._key: tuple[Any, ...] | None = None
        self._codes: torch.Tensor | None = None
        self._codes_key: tuple[Any, ...] | None = None
        self._integer: tuple[torch.Tensor, torch.Tensor] | None = None
        self._terms: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]] | None = None

    def reset(self) -> None:
        """Forget the cached parameters and codes (they are recomputed on the next use)."""
        self._key = None
        self._codes, self._codes_key = None, None
        self._integer = None
        self._terms = None

    def qparams(
        self,
        weight: torch.Tensor,
        rows: Callable[[torch.Tensor], torch.Tensor],
        bits: int,
        scheme: str,
        *,
        method: str,
        percentile: float,
        per_channel: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale [C], zero_point [C])`` of ``weight`` (``rows(weight)`` is its ``[C, -1]`` layout)."""
        key = (weight.data_ptr(), weight._version, weight.device, bits, scheme, method, percentile, per_channel)
        if key != self._key or self.scale.device != weight.device:
            scale, zero = weight_qparams(
                rows(weight.detach()), bits, scheme, method=method, percentile=percentile, per_channel=per_channel
            )
            self.scale = scale.to(weight.device)
            self.zero_point = zero.to(weight.device)
            self._key = key
        return self.scale, self.zero_point

    def codes(
        self,
        weight: torch.Tensor,
        rows: Callable[[torch.Tensor], torch.Tensor],
        view: Callable[[torch.Tensor], torch.Tensor],
        bits: int,
        scheme: str,
        *,
        method: str,
        percentile: float,
        per_channel: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, scale [C], zero_point [C])`` of ``weight``; ``view`` shapes ``[C]`` to broadcast.

        Outside autograd the codes are cached until the weight or the settings change.
        """
        scale, zero = self.qparams(
            weight, rows, bits, scheme, method=method, percentile=percentile, per_channel=per_channel
        )
        tracked = torch.is_grad_enabled() and weight.requires_grad
        if not tracked and self._codes is not None and self._codes_key == self._key:
            return self._codes, scale, zero
        qmin, qmax = qrange(bits, scheme)
        codes = quantize(weight, view(scale), view(zero), qmin, qmax)
        if tracked:
            self._codes, self._codes_key = None, None
        else:
            self._codes, self._codes_key = codes, self._key
        return codes, scale, zero

    def integer_codes(self, codes: torch.Tensor, signed: bool) -> torch.Tensor:
        """``codes`` (as :meth:`codes` returned them) as int8 (``signed``) or uint8, kept while they are the
        cached codes."""
        if self._integer is not None and self._integer[0] is codes:
            return self._integer[1]
        integer = codes.detach().to(torch.int8 if signed else torch.uint8)
        if codes is self._codes:
            self._integer = (codes, integer)
        return integer

    def affine_terms(self, codes: torch.Tensor, zero_point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(zb, Σqb − K·zb)`` per output channel as float64 ``[C]`` (exact): the weight's part of the affine
        scheme's zero-point terms, for ``codes`` (as :meth:`codes` returned them, output channels first, ``K``
        codes each) and their ``zero_point``, kept while they are the cached codes."""
        if self._terms is not None and self._terms[0] is codes:
            return self._terms[1]
        terms = affine_weight_terms(codes.detach(), zero_point.detach())
        if codes is self._codes:
            self._terms = (codes, terms)
        return terms

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Derived from the weight: accept and ignore stored values (shapes may differ before first use).
        for name in ("scale", "zero_point"):
            state_dict.pop(prefix + name, None)
        self.reset()


class Calibratable:
    """Mixin of modules that observe activations during calibration and then freeze their parameters."""

    def start_observing(self, *, reset: bool = True) -> None:
        """Begin collecting activation statistics (forward runs in float meanwhile)."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Stop observing; set the activation quantisation parameters from the statistics."""
        raise NotImplementedError


def _batch_input(batch: Any) -> Any:
    """The model input of one calibration batch: a tensor, the first item of a tuple/list, or a dict."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ConfigError("empty calibration batch")
        return batch[0]
    return batch


def _to_device(item: Any, device: torch.device | None) -> Any:
    if device is None:
        return item
    if isinstance(item, torch.Tensor):
        return item.to(device)
    if isinstance(item, dict):
        return {k: _to_device(v, device) for k, v in item.items()}
    if isinstance(item, (tuple, list)):
        return type(item)(_to_device(v, device) for v in item)
    return item


@contextmanager
def calibration(model: nn.Module, *, reset: bool = True) -> Iterator[nn.Module]:
    """Observe activations of every approximate layer of ``model`` inside the block, then freeze.

    Statistics start afresh unless ``reset=False`` (then they add to those of earlier calibrations).
    The model runs in eval mode inside the block (BatchNorm statistics stay untouched); each module's
    training flag is restored afterwards. Calibratable objects held as plain attributes of the root (the
    capture of products, which creates new products while observing) take part too.
    """
    layers: list[Any] = [m for m in model.modules() if isinstance(m, Calibratable)]
    layers += [v for v in vars(model).values() if isinstance(v, Calibratable) and not isinstance(v, nn.Module)]
    with work_mode(model):
        for layer in layers:
            layer.start_observing(reset=reset)
        try:
            yield model
        finally:
            for layer in layers:
                layer.freeze()


def calibrate(
    model: nn.Module,
    data: Iterable[Any],
    *,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
    reset: bool = True,
) -> nn.Module:
    """Run ``data`` (an iterable of input batches) through ``model`` to calibrate its approximate layers.

    A batch is a tensor, a ``(inputs, targets, ...)`` tuple/list (the first item is fed) or a dict of
    keyword arguments. Batches are moved to the model's device. ``progress(n)`` is called after each batch.
    ``reset=False`` adds to the statistics of an earlier calibration. Returns ``model``.
    """
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else None
    seen = 0
    with calibration(model, reset=reset), torch.no_grad():
        for batch in data:
            if max_batches is not None and seen >= max_batches:
                break
            item = _to_device(_batch_input(batch), device)
            if isinstance(item, dict):
                model(**item)
            else:
                model(item)
            seen += 1
            if progress is not None:
                progress(seen)
    if seen == 0:
        raise ConfigError("calibration data yielded no batches")
    return model


def track_running_ranges(model: nn.Module, momentum: float) -> nn.Module:
    """Make every activation quantiser of ``model`` track a running range (see ``track_running_range``)."""
    for module in model.modules():
        if isinstance(module, ActivationQuantizer):
            module.track_running_range(momentum)
    return model
