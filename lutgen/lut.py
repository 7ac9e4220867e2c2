"""The :class:`Lut`: a multiplier's forward table, its gradient tables and its identity.

``forward[ia, ib]`` is indexed by the operands' bit patterns (unsigned codes ``0..2^n-1``). For a
signed multiplier code ``c`` stands for ``c - 2^n`` when ``c >= 2^(n-1)`` and the stored value is
the output read as a signed number. Forward tables are int32; gradient tables float32.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics import Metrics, compute_metrics


def code_values(bits: int, signed: bool) -> np.ndarray:
    """The operand value of every code ``0..2^bits-1`` (two's complement when ``signed``), int64."""
    codes = np.arange(1 << bits, dtype=np.int64)
    if signed:
        codes = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes


@dataclass(frozen=True, eq=False)
class Lut:
    """A multiplier as tables.

    Attributes:
        forward: int32 ``[2^bits_a, 2^bits_b]``, the circuit's output per pair of operand codes.
        bits_a: width of operand ``a`` (the activation in a DNN).
        bits_b: width of operand ``b`` (the weight).
        signed: whether operands and output are two's complement.
        name: a human name (circuits are identified by :attr:`hash`, never by name alone).
        grad_a: float32 ``d f / d a`` table of the same shape, or ``None``.
        grad_b: float32 ``d f / d b`` table, or ``None``.
        meta: free-form JSON-able metadata (source file, gate count, gradient settings, ...).
    """

    forward: np.ndarray
    bits_a: int
    bits_b: int
    signed: bool
    name: str = "lut"
    grad_a: np.ndarray | None = None
    grad_b: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bits_a < 1 or self.bits_b < 1:  # (the catalogue would keep a row it then reads as damaged)
            raise ConfigError(f"LUT '{self.name}': {self.bits_a}x{self.bits_b} bits; each operand has 1 bit or more")
        shape = (1 << self.bits_a, 1 << self.bits_b)
        if self.forward.shape != shape:
            raise ConfigError(
                f"LUT '{self.name}': forward table has shape {self.forward.shape}, expected {shape} for "
                f"{self.bits_a}x{self.bits_b} bits"
            )
        object.__setattr__(self, "forward", np.ascontiguousarray(self.forward, dtype=np.int32))
        for attr in ("grad_a", "grad_b"):
            grad = getattr(self, attr)
            if grad is not None:
                if grad.shape != shape:
                    raise ConfigError(f"LUT '{self.name}': {attr} has shape {grad.shape}, expected {shape}")
                object.__setattr__(self, attr, np.ascontiguousarray(grad, dtype=np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        """``(2^bits_a, 2^bits_b)``."""
        return (1 << self.bits_a, 1 << self.bits_b)

    @property
    def values_a(self) -> np.ndarray:
        """Operand ``a`` value of each row code."""
        return code_values(self.bits_a, self.signed)

    @property
    def values_b(self) -> np.ndarray:
        """Operand ``b`` value of each column code."""
        return code_values(self.bits_b, self.signed)

    def exact(self) -> np.ndarray:
        """The exact product table ``a·b`` (int64) in the same indexing."""
        return np.multiply.outer(self.values_a, self.values_b)

    def error(self) -> np.ndarray:
        """``forward - a·b`` (int64)."""
        return self.forward.astype(np.int64) - self.exact()

    @property
    def hash(self) -> str:
        """Content hash: SHA-256 over widths, signedness and the forward table (not the name)."""
        h = hashlib.sha256()
        h.update(f"lut:{self.bits_a}x{self.bits_b}:{'s' if self.signed else 'u'}:".encode())
        h.update(np.ascontiguousarray(self.forward, dtype="<i4").tobytes())
        return h.hexdigest()

    def is_exact(self) -> bool:
        """Whether the table equals the exact product everywhere."""
        return bool(np.array_equal(self.forward.astype(np.int64), self.exact()))

    def metrics(self, *, mre_convention: str = "nonzero") -> Metrics:
        """Exhaustive error metrics (see :mod:`approxlut.lutgen.metrics`)."""
        return compute_metrics(self, mre_convention=mre_convention)

    def with_gradients(self, half_window: int = 8, method: str = "difference", *, compat: bool = False) -> Lut:
        """A copy carrying gradient tables (see :func:`approxlut.lutgen.gradients.gradient_luts`)."""
        from .gradients import gradient_luts

        grad_a, grad_b = gradient_luts(self, half_window=half_window, method=method, compat=compat)
        meta = dict(self.meta, grad_method=method, half_window=half_window, grad_compat=compat)
        return replace(self, grad_a=grad_a, grad_b=grad_b, meta=meta)

    def __repr__(self) -> str:
        sign = "signed" if self.signed else "unsigned"
        return f"Lut({self.name!r}, {self.bits_a}x{self.bits_b} {sign}, hash={self.hash[:12]})"
