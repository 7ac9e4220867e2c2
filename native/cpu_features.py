"""Run-time CPU feature detection and the choice of the CPU kernels' instruction-set path.

Paths, best last: ``scalar`` (portable), ``avx2``, ``avx512bw`` (AVX-512 F/BW/VL/DQ), ``avx512vbmi``
(adds VBMI). The environment variable ``LUTGEN_CPU_ISA`` forces one (refused when the CPU
lacks it).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError, NativeUnavailableError

ISA_ENV = "LUTGEN_CPU_ISA"
ISA_PATHS = ("scalar", "avx2", "avx512bw", "avx512vbmi")
REQUIRED_FLAGS: dict[str, tuple[str, ...]] = {
    "scalar": (),
    "avx2": ("avx2", "fma", "bmi2"),
    "avx512bw": ("avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "avx512vbmi": ("avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vbmi"),
}
SHOWN_FLAGS = ("avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vbmi", "avx512_vnni")


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU (and the OS, which hides AVX-512 it does not save) offers."""

    machine: str
    model: str
    flags: frozenset[str]

    def has(self, flag: str) -> bool:
        """Whether ``flag`` (a /proc/cpuinfo name such as ``avx512bw``) is present."""
        return flag in self.flags

    @property
    def x86_64(self) -> bool:
        """Whether this is an x86-64 CPU (the only one the CPU kernels are written for)."""
        return self.machine.lower() in ("x86_64", "amd64")

    def paths(self) -> list[str]:
        """The ISA paths this CPU can run, worst first."""
        return list(_paths(self))


@lru_cache(maxsize=8)
def _paths(features: CpuFeatures) -> tuple[str, ...]:
    """:meth:`CpuFeatures.paths`, worked out once per set of features (every LUT-GEMM call asks)."""
    if not features.x86_64:
        return ()
    return tuple(path for path in ISA_PATHS if all(features.has(f) for f in REQUIRED_FLAGS[path]))


def _from_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def _from_torch() -> frozenset[str]:
    """A coarse fallback where /proc/cpuinfo is absent: torch's own capability probe."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    flags = set()
    if capability in ("AVX2", "AVX512"):
        flags |= {"avx2", "fma", "bmi2"}
    if capability == "AVX512":
        flags |= {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
    return frozenset(flags)


@lru_cache(maxsize=1)
def detect() -> CpuFeatures:
    """The features of the CPU this process runs on (read once)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model, flags = _from_cpuinfo(cpuinfo.read_text(errors="replace"))
    else:
        model, flags = platform.processor(), _from_torch()
    return CpuFeatures(machine=platform.machine(), model=model, flags=flags)


def choose_path(requested: str | None = None, features: CpuFeatures | None = None) -> str:
    """The ISA path to run: ``requested``, else ``$LUTGEN_CPU_ISA``, else the best this CPU has.

    Raises:
        ConfigError: unknown path name.
        NativeUnavailableError: the CPU lacks the requested path (or is not x86-64).
    """
    features = features or detect()
    available = features.paths()
    if not available:
        raise NativeUnavailableError(f"the CPU kernels need an x86-64 CPU, this is {features.machine}")
    name = requested or os.environ.get(ISA_ENV) or None
    if name is None:
        return available[-1]
    if name not in ISA_PATHS:
        raise ConfigError(f"{ISA_ENV}={name!r} is not a CPU path (choose from {', '.join(ISA_PATHS)})")
    if name not in available:
        missing = [f for f in REQUIRED_FLAGS[name] if not features.has(f)]
        raise NativeUnavailableError(f"CPU path '{name}' needs {', '.join(missing)}, which this CPU lacks")
    return name


def cpu_isa() -> str:
    """The ISA path in force (as :func:`choose_path`), or ``""`` where none applies (not x86-64, or a path
    forced by ``LUTGEN_CPU_ISA`` that this CPU lacks: callers then take their portable loops)."""
    try:
        return choose_path()
    except (ConfigError, NativeUnavailableError):
        return ""
