"""Native LUT-GEMM engines: the pure-torch reference, the CPU kernels (AVX2/AVX-512) and their loader.

``lut_bmm`` and ``lut_bmm_backward`` dispatch through the engine registry (see :mod:`.engines`).
"""

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
