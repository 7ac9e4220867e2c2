"""What the VBMI kernels' building blocks cost on this machine: the table plans' cost model, measured once.

A plan's cost (:mod:`.plan`) adds up look-ups of byte planes by code width, the widening of byte sums, a
folded plan's masked adds, and the exact product beside the planes. Their relative prices differ between
machines: on the Intel Xeon of issue 14 a two-register byte permute (7-bit codes) costs half again a
one-register one (6-bit codes) and oneDNN's int8 GEMM runs on AMX; on an AMD Zen 4 both permutes cost about
the same and the int8 GEMM (VNNI) costs twice as much per product. So the prices are measured: a few
milliseconds of the compiled kernels on synthetic operands, one thread, the best of several runs, the first
time a process plans a table, and kept as JSON beside the compiled kernels, named by the CPU (model and
flags), so that later processes read them. A file that does not parse or holds values out of range is
measured again and replaced; one that is not a regular file is left alone (the measurement is then kept in
memory only).

``LUTGEN_KERNEL_COSTS=default`` skips the measurement and uses :data:`DEFAULT_COSTS` (the Intel Xeon's, in
its cycles): plan choices are then the same on every machine (the tests use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import ConfigError, LutgenError
from ..fileio import atomic_write_text, read_json
from ..threads import torch_threads
from .cpu_features import detect

COSTS_ENV = "LUTGEN_KERNEL_COSTS"
WIDTHS = (6, 7, 8)
"""Code widths the VBMI kernels price apart (narrower codes cost what 6 bits cost: one permute)."""
_LIMITS = (1e-3, 1e3)
"""Accepted range of every stored cost (ratios to the 6-bit look-up)."""


@dataclass(frozen=True)
class KernelCosts:
    """Prices of the VBMI kernels' parts per 64 look-ups or products, in units of the 6-bit look-up (so that
    ``lookup[6] == 1``); ``source`` says where they came from (``"measured"``, ``"cached"``, ``"default"``).

    Attributes:
        lookup: one byte plane's look-up with its byte sum, by code width 6, 7 and 8.
        widen: widening 64 byte sums to words (a plane pays ``widen / group`` per look-up).
        fold: a folded plan's masked byte add, per plane.
        fold_move: moving a fold bit other than 7 into place.
        exact_int8: the int8 exact product (``torch._int_mm``: VNNI or AMX through oneDNN).
        exact_values: the float32 exact product (sliced GEMMs on the values).
        column: what a column costs per block of lanes and k step beside its look-ups (its table registers and
            code's address), which a block of one or two vectors of 64 lanes pays over fewer look-ups.
    """

    lookup: dict[int, float]
    widen: float
    fold: float
    fold_move: float
    exact_int8: float
    exact_values: float
    column: float
    source: str

    def lookup_cost(self, bits: int) -> float:
        """One plane's look-up at code width ``bits`` (6 bits or fewer: one single-register permute)."""
        return self.lookup[min(8, max(6, bits))]

    def as_dict(self) -> dict[str, object]:
        """JSON-able form (what the cache file holds, with ``cpu``): an int8 product that is not exact is ``None``."""
        data = asdict(self)
        data["lookup"] = {str(bits): value for bits, value in self.lookup.items()}
        if math.isinf(self.exact_int8):  # (an int8 product that is not exact here)
            data["exact_int8"] = None
        return data


DEFAULT_COSTS = KernelCosts(
    lookup={6: 1.0, 7: 1.92 / 1.27, 8: 3.61 / 1.27},
    widen=0.63 / 1.27,
    fold=0.6 / 1.27,
    fold_move=0.5 / 1.27,
    exact_int8=0.5 / 1.27,
    exact_values=2.5 / 1.27,
    column=1.5,
    source="default",
)
"""The prices measured on the Intel Xeon of issue 14 (AVX-512 VBMI, VNNI, AMX; two-register permutes on port 5),
but for ``column``, first measured on an AMD Zen 5 (6-bit codes: 0.52 ns per column and block against 0.20 per
further vector of 64 lanes)."""


def cpu_key() -> str:
    """What names this machine's costs: a hash of the CPU model, its flags and the torch version."""
    features = detect()
    text = f"{features.model}|{' '.join(sorted(features.flags))}|{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def costs_path() -> Path:
    """The cache file of this machine's measured costs (beside the compiled kernels)."""
    from .build import build_dir

    return build_dir() / f"kernel-costs-{cpu_key()}.json"


def _best(fn: Callable[[], object], runs: int) -> float:
    fn()
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(*, runs: int = 5) -> KernelCosts:
    """Time the VBMI kernels, the int8 GEMM and the float exact product on synthetic operands (one thread)."""
    from . import build
    from .decompose import exact_bmm
    from .plan import int8_gemm_is_exact

    ext = build.load()
    gen = torch.Generator().manual_seed(0)
    k, lanes, cols = 512, 512, 128
    at = torch.randint(0, 256, (1, k, lanes), dtype=torch.uint8, generator=gen)
    bc = torch.randint(0, 256, (1, cols, k), dtype=torch.uint8, generator=gen).transpose(1, 2)
    units = k * lanes * cols / 64

    def kernel(name: str, bits: int, group: int, *, fold_bit: int = 7, rows: int = lanes) -> float:
        folded = name.endswith("fold")
        height = 128 if folded else max(64, 1 << bits)
        registers = 2 if folded else 1
        table = torch.randint(0, 4, (256, registers, height), dtype=torch.uint8, generator=gen)
        args = (table, registers * height, height, 0, bits, 1, group, 1, 8, fold_bit, 0, False)
        return _best(lambda: ext.lut_gemm(name, at, bc, rows, *args), runs) / (units * rows / lanes)

    a8 = torch.randint(-128, 128, (256, k), dtype=torch.int8, generator=gen)
    b8 = torch.randint(-128, 128, (k, lanes), dtype=torch.int8, generator=gen)
    values = (a8.float()[None], b8.float()[None])
    products = 256 * k * lanes / 64
    exact = int8_gemm_is_exact()

    def timings() -> dict[str, float]:
        times = {f"grouped{bits}": kernel("avx512vbmi/planes", bits, 8) for bits in WIDTHS}
        times.update({f"single{bits}": kernel("avx512vbmi/planes", bits, 1) for bits in WIDTHS})
        times["fold"] = kernel("avx512vbmi/fold", 8, 8)
        times["fold_moved"] = kernel("avx512vbmi/fold", 8, 8, fold_bit=3)
        times["one_vector"] = kernel("avx512vbmi/planes", 6, 8, rows=64)  # (a block of one vector of 64 lanes)
        times["four_vectors"] = kernel("avx512vbmi/planes", 6, 8, rows=256)
        times["int8"] = _best(lambda: torch._int_mm(a8, b8), runs) / products if exact else math.inf
        times["values"] = _best(lambda: exact_bmm(*values), runs) / products
        return times

    with torch_threads(1):  # two rounds, the best of each (the first may pay for a cold machine)
        first, second = timings(), timings()
    t = {name: min(first[name], second[name]) for name in first}
    widen = max(0.0, sum(t[f"single{b}"] - t[f"grouped{b}"] for b in WIDTHS) / len(WIDTHS) * 8 / 7)
    lookup = {bits: t[f"grouped{bits}"] - widen / 8 for bits in WIDTHS}
    fold = max(0.0, t["fold"] - t["grouped7"])
    fold_move = max(0.0, t["fold_moved"] - t["fold"])
    exact_int8, exact_values = t["int8"], t["values"]
    # per block, column and k step: one vector costs column + look-up, four cost column + 4 look-ups
    further = max(0.0, (4 * t["four_vectors"] - t["one_vector"]) / 3)
    column = max(0.0, t["one_vector"] - further)
    unit = lookup[6]
    return KernelCosts(
        lookup={bits: value / unit for bits, value in lookup.items()},
        widen=widen / unit,
        fold=fold / unit,
        fold_move=fold_move / unit,
        exact_int8=exact_int8 / unit,
        exact_values=exact_values / unit,
        column=column / unit,
        source="measured",
    )


def _parse(data: object) -> KernelCosts | None:
    """The costs a cache file holds, or ``None`` when it is not exactly what :func:`_store` writes for this CPU."""
    if not isinstance(data, dict) or data.get("cpu") != cpu_key():
        return None
    lookup = data.get("lookup")
    if not isinstance(lookup, dict) or sorted(lookup) != sorted(str(b) for b in WIDTHS):
        return None
    low, high = _LIMITS

    def number(value: object, *, zero: bool = False, absent: bool = False) -> float | None:
        if value is None and absent:  # (an int8 product that is not exact on this machine)
            return math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if low <= value <= high or (zero and value == 0) else None

    prices = [number(lookup[str(b)]) for b in WIDTHS]
    rest = [number(data.get(name), zero=True) for name in ("widen", "fold", "fold_move")]
    rest += [number(data.get("exact_int8"), absent=True), number(data.get("exact_values"))]
    rest += [number(data.get("column"), zero=True)]
    if any(value is None for value in prices + rest):
        return None
    widen, fold, fold_move, exact_int8, exact_values, column = (float(v) for v in rest if v is not None)
    return KernelCosts(
        lookup={b: float(v) for b, v in zip(WIDTHS, prices, strict=True) if v is not None},
        widen=widen,
        fold=fold,
        fold_move=fold_move,
        exact_int8=exact_int8,
        exact_values=exact_values,
        column=column,
        source="cached",
    )


def _store(costs: KernelCosts, path: Path) -> None:
    data = {**costs.as_dict(), "cpu": cpu_key(), "cpu_model": detect().model}
    data.pop("source")
    atomic_write_text(path, json.dumps(data, indent=2) + "\n", make_parents=True)


def read_cached(path: Path) -> KernelCosts | None:
    """The costs cached at ``path`` when it is a regular file holding this CPU's (never measures)."""
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return _parse(read_json(path, what="kernel costs"))
    except LutgenError:
        return None


def load_or_measure(path: Path) -> KernelCosts:
    """The costs cached at ``path``, else measured now and cached there (where ``path`` is absent or a regular
    file: anything else is left alone)."""
    cached = read_cached(path)
    if cached is not None:
        return cached
    costs = measure()
    if not os.path.lexists(path) or (path.is_file() and not path.is_symlink()):
        with contextlib.suppress(LutgenError):  # (a cache that cannot be written costs a measurement per process)
            _store(costs, path)
    return costs


@lru_cache(maxsize=1)
def kernel_costs() -> KernelCosts:
    """This machine's costs: :data:`DEFAULT_COSTS` under ``LUTGEN_KERNEL_COSTS=default`` (or, with a warning,
    where the measurement fails), else measured once and cached (see the module docstring)."""
    mode = os.environ.get(COSTS_ENV, "")
    if mode not in ("", "measure", "default"):
        raise ConfigError(f"{COSTS_ENV}={mode!r} must be 'measure' or 'default'")
    if mode == "default" or not detect().has("avx512vbmi"):
        return DEFAULT_COSTS
    try:
        costs = load_or_measure(costs_path())
    except (LutgenError, RuntimeError) as error:  # (a plan's cost is an estimate: never worth a failed run)
        warnings.warn(f"lutgen: kernel costs not measured ({error}); using the defaults", RuntimeWarning, stacklevel=2)
        return DEFAULT_COSTS
    # (widening and folds are never free: a measurement lost in noise keeps a floor)
    return replace(costs, widen=max(costs.widen, 0.05), fold=max(costs.fold, 0.05))
