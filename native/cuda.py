"""The CUDA LUT-GEMM engine: kernels in ``csrc/cuda/lut_gemm.cu``, JIT-built on first use.

The kernels are plain CUDA behind an ``extern "C"`` launcher API (``lut_gemm_cuda.h``), so they
compile with nvcc alone (:func:`compile_check`); ``torch_binding.cu`` wraps them for torch and is
built with ``torch.utils.cpp_extension`` only where torch has CUDA. The engine registers itself as
``"cuda"`` only when ``torch.cuda.is_available()``.

Forward uses the shared-memory kernel (transposed int16 table in shared memory, a warp sharing one
weight code, 4x4 register blocks) when every table value fits int16, else the global-memory kernel;
``K`` is split so that no int32 accumulator can wrap (partial sums are added in int64 and checked).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..errors import NativeUnavailableError
from .build import cache_root
from .engines import Engine, register_engine
from .prepared import PreparedLut
from .reference import check_int32

KERNEL_SOURCE = "lut_gemm.cu"
BINDING_SOURCE = "torch_binding.cu"
HEADER = "lut_gemm_cuda.h"
CUDA_FLAGS = ("-O3", "-std=c++17")
_INT32_MAX = (1 << 31) - 1


def source_dir() -> Path:
    """The folder holding the CUDA sources."""
    return Path(__file__).resolve().parent / "csrc" / "cuda"


def nvcc() -> str | None:
    """Path of nvcc (``$CUDA_HOME/bin/nvcc`` or on ``PATH``), or ``None``."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and (Path(home) / "bin" / "nvcc").is_file():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def compile_check(output: Path, *, arch: str = "sm_90") -> subprocess.CompletedProcess[str]:
    """Compile the kernels (no torch headers) into the object file ``output`` with nvcc.

    Raises:
        NativeUnavailableError: nvcc is not installed.
    """
    compiler = nvcc()
    if compiler is None:
        raise NativeUnavailableError("nvcc not found (install the CUDA toolkit or set CUDA_HOME)")
    command = [compiler, "-c", f"-arch={arch}", *CUDA_FLAGS, str(source_dir() / KERNEL_SOURCE), "-o", str(output)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _source_hash() -> str:
    h = hashlib.sha256(f"{torch.__version__}|{torch.version.cuda}|{' '.join(CUDA_FLAGS)}".encode())
    for name in (HEADER, KERNEL_SOURCE, BINDING_SOURCE):
        h.update((source_dir() / name).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class _State:
    module: ModuleType | None = None
    error: str | None = None


_STATE = _State()


def load() -> Any:
    """The compiled CUDA extension, building it on first use.

    Raises:
        NativeUnavailableError: torch has no CUDA, nvcc is missing, or the build failed.
    """
    if _STATE.module is not None:
        return _STATE.module
    if _STATE.error is None:
        try:
            _STATE.module = _build()
            return _STATE.module
        except NativeUnavailableError as error:
            _STATE.error = str(error)
    raise NativeUnavailableError(_STATE.error)


def _build() -> ModuleType:
    if not torch.cuda.is_available():
        raise NativeUnavailableError("torch has no CUDA device here")
    if nvcc() is None:
        raise NativeUnavailableError("nvcc not found (install the CUDA toolkit or set CUDA_HOME)")
    from torch.utils import cpp_extension

    digest = _source_hash()
    directory = cache_root() / f"cuda-{torch.__version__}-{digest}"
    directory.mkdir(parents=True, exist_ok=True)
    print(f"lutgen: loading/building the CUDA kernels in {directory}", file=sys.stderr)
    try:
        return cpp_extension.load(
            name=f"lutgen_cuda_{digest}",
            sources=[str(source_dir() / BINDING_SOURCE), str(source_dir() / KERNEL_SOURCE)],
            extra_cuda_cflags=list(CUDA_FLAGS),
            extra_include_paths=[str(source_dir())],
            build_directory=str(directory),
        )
    except (RuntimeError, OSError, ImportError, SystemExit) as error:
        last = str(error).strip().splitlines()
        raise NativeUnavailableError(
            f"building the CUDA kernels failed ({last[-1] if last else type(error).__name__})"
        ) from error


def _codes(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Contiguous uint8 codes of operand values (two's complement masked to ``bits``)."""
    return (values.to(torch.int16) & ((1 << bits) - 1)).to(torch.uint8).contiguous()


def _tables(lut: PreparedLut) -> dict[str, torch.Tensor]:
    """Device tables: transposed int16 forward (when it fits), int32 forward."""

    def build() -> dict[str, torch.Tensor]:
        tables = {"forward32": lut.forward.contiguous()}
        if lut.fits_int16:
            tables["forward16_t"] = lut.forward.t().contiguous().to(torch.int16)
        return tables

    return lut.cached("cuda_tables", build)


def _k_slices(k: int, lut: PreparedLut) -> list[tuple[int, int]]:
    """Slices of K short enough that ``len * max|T|`` cannot wrap an int32 accumulator."""
    step = max(1, _INT32_MAX // max(1, lut.max_abs))
    return [(s, min(k, s + step)) for s in range(0, max(k, 1), step)]


def smem_bytes(bits_a: int, bits_b: int) -> int:
    """Dynamic shared memory of the fast forward kernel (mirrors ``lutgemm_smem_bytes``)."""
    return (2 << (bits_a + bits_b)) + 32 * 128 + 32 * 64


def _fits_shared_memory(lut: PreparedLut, device: torch.device) -> bool:
    props = torch.cuda.get_device_properties(device)
    limit = getattr(props, "shared_memory_per_block_optin", 48 * 1024)
    return smem_bytes(lut.bits_a, lut.bits_b) <= limit


def lut_bmm_cuda(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut, *, naive: bool = False) -> torch.Tensor:
    """``lut_bmm`` on the GPU; ``naive=True`` runs the public-tool-style kernel (for the benchmark).

    The shared-memory kernel runs when the table fits int16 and the device's shared memory; otherwise
    the global-memory kernel does (slower, same results).
    """
    module = load()
    tables = _tables(lut)
    fast = not naive and "forward16_t" in tables and _fits_shared_memory(lut, a.device)
    table = tables["forward16_t"] if fast else tables["forward32"]
    ca, cb = _codes(a, lut.bits_a), _codes(b, lut.bits_b)
    slices = _k_slices(ca.shape[2], lut)
    if len(slices) == 1:
        return module.forward(ca, cb, table, lut.bits_a, lut.bits_b, not fast)
    total = torch.zeros((ca.shape[0], ca.shape[1], cb.shape[2]), dtype=torch.int64, device=a.device)
    for start, stop in slices:
        part = module.forward(
            ca[:, :, start:stop].contiguous(), cb[:, start:stop].contiguous(), table, lut.bits_a, lut.bits_b, not fast
        )
        total += part
    return check_int32(total, lut)


class CudaEngine(Engine):
    """LUT-GEMM CUDA kernels: shared-memory forward, gradient-table backward."""

    name = "cuda"
    priority = 20
    devices = ("cuda",)

    def unavailable_reason(self) -> str | None:
        try:
            load()
        except NativeUnavailableError as error:
            return str(error)
        return None

    def describe(self) -> str:
        return "cuda (shared-memory LUT kernel)"

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        return lut_bmm_cuda(a, b, lut)

    def lut_bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ga, gb = lut.gradient_tables(ste=ste)
        gb_t = lut.cached(f"cuda_gb_t:{ste}", lambda: gb.t().contiguous())
        grad_a, grad_b = load().backward(
            _codes(a, lut.bits_a),
            _codes(b, lut.bits_b),
            grad_c.to(torch.float32).contiguous(),
            ga.contiguous(),
            gb_t,
            lut.bits_a,
            lut.bits_b,
        )
        return grad_a, grad_b


if torch.cuda.is_available():
    register_engine("cuda", CudaEngine())
