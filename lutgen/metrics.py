"""Error metrics of approximate multipliers, with EvoApproxLib's definitions (DESIGN.md).

Over all input pairs, error ``e = f - a·b``:
``MAE% = 100·mean|e| / 2^(na+nb)``, ``WCE% = 100·max|e| / 2^(na+nb)``, ``EP% = 100·P(e != 0)``,
``MSE = mean e²``, ``MRE% = 100·mean(|e|/|O|)`` and ``WCRE% = 100·max(|e|/|O|)``, ``MED = mean|e|``,
``WCE = max|e|``, ``bias = mean e``. The relative errors follow one of :data:`MRE_CONVENTIONS`:
``nonzero`` (EvoApproxLib 2019+, the default) averages over inputs whose exact product ``O`` is not 0;
``max1`` (EvoApprox8b, DATE 2017) takes ``|e|/max(1,|O|)`` over all inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from .lut import Lut


#: Relative-error conventions (MRE, WCRE) and what each means.
MRE_CONVENTIONS = {
    "nonzero": "|e|/|exact| over inputs whose exact product is not 0 (EvoApproxLib 2019+)",
    "max1": "|e|/max(1, |exact|) over all inputs (EvoApprox8b)",
}
DEFAULT_MRE_CONVENTION = "nonzero"
#: Source libraries (cell profiles) whose published MRE/WCRE follow another convention than the default.
LIBRARY_MRE_CONVENTIONS = {"evoapprox8b": "max1"}


def check_mre_convention(name: str) -> str:
    """``name`` when it is one of :data:`MRE_CONVENTIONS`, else ConfigError."""
    if name not in MRE_CONVENTIONS:
        raise ConfigError(f"unknown MRE convention '{name}'; choose one of {', '.join(MRE_CONVENTIONS)}")
    return name


#: The error metrics by name, in display order (library columns and ``--json`` keys alike).
METRIC_KEYS = ("mae_pct", "wce_pct", "mre_pct", "wcre_pct", "ep_pct", "mse", "med", "wce", "bias")


@dataclass(frozen=True)
class Metrics:
    """Error figures of one multiplier; ``*_pct`` are percentages as EvoApproxLib prints them."""

    mae_pct: float
    wce_pct: float
    mre_pct: float
    wcre_pct: float
    ep_pct: float
    mse: float
    med: float
    wce: int
    bias: float
    n: int
    method: str = "exhaustive"
    #: How ``mre_pct`` and ``wcre_pct`` treat inputs whose exact product is 0 (:data:`MRE_CONVENTIONS`).
    mre_convention: str = DEFAULT_MRE_CONVENTION

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return asdict(self)


class ErrorStats:
    """Streaming accumulator of error statistics: feed chunks with :meth:`update`."""

    def __init__(self, bits_a: int, bits_b: int, *, mre_convention: str = DEFAULT_MRE_CONVENTION):
        self.scale = float(1 << (bits_a + bits_b))
        self.mre_convention = check_mre_convention(mre_convention)
        self.n = 0
        self.sum_abs = 0
        self.sum_err = 0
        self.sum_sq = 0.0
        self.max_abs = 0
        self.wrong = 0
        self.sum_rel = 0.0
        self.max_rel = 0.0
        self.n_rel = 0

    def update(self, got: np.ndarray, exact: np.ndarray) -> None:
        """Add one chunk of outputs and the exact products for the same inputs.

        Integer arrays of at most 62 bits and a sign, or object arrays of Python integers for wider values
        (:func:`~approxlut.lutgen.simulate.decode_outputs`); either way every sum is exact.
        """
        if got.dtype == object or exact.dtype == object:
            err = got.astype(object) - exact.astype(object)
            mag = np.abs(exact.astype(object))
        else:
            err = got.astype(np.int64) - exact.astype(np.int64)
            mag = np.abs(exact.astype(np.int64))
        abs_err = np.abs(err)
        self.n += int(err.size)
        self.sum_abs += _exact_sum(abs_err)
        self.sum_err += _exact_sum(err)
        self.sum_sq += float(np.square(err.astype(np.float64)).sum())
        if err.size:
            self.max_abs = max(self.max_abs, int(abs_err.max()))
        self.wrong += int(np.count_nonzero(err))
        if self.mre_convention == "max1":
            rel = abs_err / np.maximum(1, mag)
        else:
            keep = mag != 0
            rel = abs_err[keep] / mag[keep]
        rel = rel.astype(np.float64)
        self.n_rel += int(rel.size)
        self.sum_rel += float(rel.sum())
        if rel.size:
            self.max_rel = max(self.max_rel, float(rel.max()))

    def result(self, method: str = "exhaustive") -> Metrics:
        """The metrics of everything fed so far."""
        n = max(1, self.n)
        return Metrics(
            mae_pct=100.0 * self.sum_abs / n / self.scale,
            wce_pct=100.0 * self.max_abs / self.scale,
            mre_pct=100.0 * self.sum_rel / max(1, self.n_rel),
            wcre_pct=100.0 * self.max_rel,
            ep_pct=100.0 * self.wrong / n,
            mse=self.sum_sq / n,
            med=self.sum_abs / n,
            wce=self.max_abs,
            bias=self.sum_err / n,
            n=self.n,
            method=method,
            mre_convention=self.mre_convention,
        )


def _exact_sum(values: np.ndarray) -> int:
    """The sum of an int64 (or object) array as a Python integer: no wrap-around however large the values."""
    if values.dtype == object:
        return int(values.sum())
    high = values >> 31  # (arithmetic shift: values = high·2^31 + low, 0 <= low < 2^31, |high| <= 2^32)
    return (int(high.sum()) << 31) + int((values & ((1 << 31) - 1)).sum())


def compute_metrics(lut: Lut, *, mre_convention: str = DEFAULT_MRE_CONVENTION) -> Metrics:
    """Exhaustive metrics of a table."""
    stats = ErrorStats(lut.bits_a, lut.bits_b, mre_convention=mre_convention)
    values_b = lut.values_b
    rows = max(1, (1 << 18) >> lut.bits_b)  # ~256k entries per block keeps temporaries in cache
    for start in range(0, 1 << lut.bits_a, rows):
        block = lut.forward[start : start + rows]
        exact = np.multiply.outer(lut.values_a[start : start + rows], values_b)
        stats.update(block.ravel(), exact.ravel())
    return stats.result()


def published_round(value: float) -> str:
    """Format as EvoApproxLib does: 2 decimals when >= 1, else 2 significant digits."""
    if value == 0:
        return "0.00"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def matches_published(value: float, published: str) -> bool:
    """Whether ``value`` agrees with a published (rounded) figure within half a unit of its last digit."""
    text = published.strip()
    if "e" in text.lower():
        mantissa, exponent = text.lower().split("e")
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        unit = 10.0 ** (int(exponent) - decimals)
    else:
        decimals = len(text.split(".")[1]) if "." in text else 0
        unit = 10.0**-decimals
    return abs(value - float(text)) <= unit / 2 * (1 + 1e-9) + 1e-12
