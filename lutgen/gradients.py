"""Gradient LUTs: the DATE'25 difference-based approximation, and the straight-through estimator.

For the forward table ``f`` and half window ``w``, along one operand axis (``N`` entries):
the smoothed table ``S[i] = mean(f[max(0, i-w) : min(N, i+w+1)])``; in the interior
``w+1 <= i <= N-2-w`` the gradient is ``(S[i+1] - S[i-1]) / 2``; at the borders it is the average
slope of the whole line, ``(max f - min f) / N``. Axes are walked in operand *value* order, so a
signed table (codes wrap from ``2^(n-1)-1`` to ``-2^(n-1)``) is smoothed across its real neighbours;
there the border slope keeps the paper's magnitude and takes the sign of ``f[last] - f[first]``
(for unsigned multipliers this is the paper's definition unchanged).
STE is ``g_a[a, b] = b`` and ``g_b[a, b] = a`` (values).

``compat=True`` reproduces the published reference script, which takes the ``g_a`` border term at
``(a, b)`` from *row* ``b`` of ``f`` instead of column ``b`` (identical for symmetric multipliers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from .lut import Lut

METHODS = ("difference", "ste")


def _value_order(bits: int, signed: bool) -> np.ndarray:
    """Codes sorted by their operand value."""
    codes = np.arange(1 << bits)
    if not signed:
        return codes
    half = 1 << (bits - 1)
    return np.concatenate([codes[half:], codes[:half]])


def _border_slope(lines: np.ndarray, signed: bool) -> np.ndarray:
    """Average slope of each row of ``lines`` (already in value order): ``(max - min) / N``."""
    n = lines.shape[1]
    slope = (lines.max(axis=1) - lines.min(axis=1)) / n
    if signed:
        slope = slope * np.sign(lines[:, -1] - lines[:, 0])
    return slope


def difference_along_rows(f: np.ndarray, half_window: int, signed: bool) -> np.ndarray:
    """Difference-based gradient of each row of ``f`` (value-ordered, float64) along its columns."""
    rows, n = f.shape
    w = half_window
    out = np.empty((rows, n), dtype=np.float64)
    out[:] = _border_slope(f, signed)[:, None]
    lo, hi = w + 1, n - 2 - w
    if lo <= hi:
        csum = np.concatenate([np.zeros((rows, 1)), np.cumsum(f, axis=1)], axis=1)
        idx = np.arange(n)
        start = np.maximum(0, idx - w)
        stop = np.minimum(n, idx + w + 1)
        smooth = (csum[:, stop] - csum[:, start]) / (stop - start)
        out[:, lo : hi + 1] = (smooth[:, lo + 1 : hi + 2] - smooth[:, lo - 1 : hi]) / 2
    return out


def gradient_luts(
    lut: Lut, half_window: int = 8, method: str = "difference", *, compat: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_a, grad_b)`` float32 tables in the LUT's code indexing.

    Example:
        >>> ga, gb = gradient_luts(lut, half_window=4)  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ConfigError(f"unknown gradient method '{method}'; choose one of {', '.join(METHODS)}")
    shape = lut.shape
    if method == "ste":
        grad_a = np.broadcast_to(lut.values_b[None, :], shape).astype(np.float32)
        grad_b = np.broadcast_to(lut.values_a[:, None], shape).astype(np.float32)
        return grad_a, grad_b
    if half_window < 0:
        raise ConfigError(f"half window must be >= 0, got {half_window}")
    order_a = _value_order(lut.bits_a, lut.signed)
    order_b = _value_order(lut.bits_b, lut.signed)
    f = lut.forward.astype(np.float64)[np.ix_(order_a, order_b)]
    g_b = difference_along_rows(f, half_window, lut.signed)
    g_a = difference_along_rows(f.T, half_window, lut.signed).T
    if compat:
        if lut.bits_a != lut.bits_b:
            raise ConfigError("the compatibility border term needs a square table (bits_a == bits_b)")
        border_a = _border_slope(f, lut.signed)  # per row of f, used for column index b
        n = f.shape[0]
        w = half_window
        interior = np.zeros(n, dtype=bool)
        interior[w + 1 : n - 1 - w] = True
        g_a[~interior, :] = border_a[None, :]
    inv_a = np.argsort(order_a)
    inv_b = np.argsort(order_b)
    grad_a = g_a[np.ix_(inv_a, inv_b)].astype(np.float32)
    grad_b = g_b[np.ix_(inv_a, inv_b)].astype(np.float32)
    return grad_a, grad_b
