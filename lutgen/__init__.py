"""The LUT generator: bit-parallel simulation, :class:`Lut` tables, error metrics, gradient LUTs.

Never parses files (see ``circuits``) and never imports torch.
"""

from .gradients import gradient_luts
from .lut import Lut, code_values
from .metrics import ErrorStats, Metrics, compute_metrics
from .simulate import simulate_lut, simulate_metrics, simulate_nets

__all__ = [
    "ErrorStats",
    "Lut",
    "Metrics",
    "code_values",
    "compute_metrics",
    "gradient_luts",
    "simulate_lut",
    "simulate_metrics",
    "simulate_nets",
]
