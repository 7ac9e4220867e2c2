"""Block sizes of the CPU engine, derived from the cache sizes of the machine it runs on.

The direct convolution packs the codes of each block of 256 output positions into a panel that the
LUT-GEMM kernel (once per column), the int8 exact product and the row offsets then read; a panel that fits
the core's L2 cache is read from there instead of memory (on the Intel Xeon this was tuned on, a 64-channel
32x32 layer's int8 product took 18 ms per batch of 64 from a memory-sized panel, 6 ms block by block).
Reductions longer than the budget are packed a slice of k at a time. Cache sizes come from sysfs (Linux),
with conservative defaults elsewhere; ``LUTGEN_PANEL_BYTES`` overrides the panel budget (tests, experiments).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError

PANEL_ENV = "LUTGEN_PANEL_BYTES"
SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
DEFAULT_L1D = 32 << 10
DEFAULT_L2 = 1 << 20
_SIZE = re.compile(r"(\d+)\s*([KMG]?)")


@dataclass(frozen=True)
class CacheSizes:
    """Per-core data cache sizes in bytes, and where they came from (``"sysfs"`` or ``"default"``)."""

    l1d: int
    l2: int
    source: str


def _parse_size(text: str) -> int | None:
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]


def read_cache_sizes(root: Path = SYSFS_CACHE) -> CacheSizes:
    """L1d and L2 of CPU 0 from ``root`` (sysfs layout: ``index*/level``, ``type``, ``size``); defaults for
    what is missing or unreadable."""
    found: dict[tuple[int, str], int] = {}
    try:
        entries = sorted(root.glob("index*"))
    except OSError:
        entries = []
    for entry in entries:
        try:
            level = int((entry / "level").read_text())
            kind = (entry / "type").read_text().strip()
            size = _parse_size((entry / "size").read_text())
        except (OSError, ValueError):
            continue
        if size:
            found[(level, kind)] = size
    l1d = found.get((1, "Data"))
    l2 = found.get((2, "Unified")) or found.get((2, "Data"))
    if l1d is None or l2 is None:
        return CacheSizes(l1d or DEFAULT_L1D, l2 or DEFAULT_L2, "default")
    return CacheSizes(l1d, l2, "sysfs")


@lru_cache(maxsize=1)
def cache_sizes() -> CacheSizes:
    """This machine's cache sizes (read once)."""
    return read_cache_sizes()


def panel_bytes() -> int:
    """Budget of one code panel: half the L2 size (the other half holds tables and sums), or
    ``$LUTGEN_PANEL_BYTES``."""
    value = os.environ.get(PANEL_ENV)
    if value:
        try:
            budget = int(value)
        except ValueError:
            budget = 0
        if budget < 1:
            raise ConfigError(f"{PANEL_ENV}={value!r} must be a positive number of bytes")
        return budget
    return cache_sizes().l2 // 2


def k_slice(lanes: int = 256) -> int:
    """Rows of k per panel of ``lanes`` output positions (at least one): 4096 with a 2 MiB L2, 2048 with
    1 MiB."""
    return max(1, panel_bytes() // lanes)
