"""Native LUT-GEMM engines: the pure-torch reference, the CPU kernels (AVX2/AVX-512) and their loader.

``lut_bmm`` and ``lut_bmm_backward`` dispatch through the engine registry (see :mod:`.engines`); importing
this package registers every engine ("reference", "cpu", "decomp", and "cuda" where torch has CUDA).
"""

from . import cuda as _cuda  # noqa: F401  (registers "cuda" where torch has CUDA)
from . import decompose as _decompose  # noqa: F401  (registers "decomp")
from .engines import (
    Engine,
    available_engines,
    last_path,
    lut_bmm,
    lut_bmm_backward,
    register_engine,
    resolve_engine,
)
from .prepared import PreparedLut

__all__ = [
    "Engine",
    "PreparedLut",
    "available_engines",
    "last_path",
    "lut_bmm",
    "lut_bmm_backward",
    "register_engine",
    "resolve_engine",
]
