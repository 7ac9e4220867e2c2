"""The :class:`PreparedLut`: a multiplier's tables as torch tensors plus what engines derive from them.

A ``PreparedLut`` is built once per multiplier and shared by every layer that uses it. It holds the
forward table (int32 ``[2^bits_a, 2^bits_b]``, indexed by operand codes), the optional gradient tables
(float32, same shape) and a per-LUT cache in which engines keep their derived forms (value range,
column planes, decompositions), computed on first use and keyed by a string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..lutgen.lut import Lut

T = TypeVar("T")

MIN_BITS = 2
MAX_BITS = 8


def code_values(bits: int, signed: bool, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """The operand value of each code ``0..2^bits-1`` (two's complement when ``signed``), int64."""
    codes = torch.arange(1 << bits, dtype=torch.int64, device=device)
    if signed:
        codes = torch.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest operand value of a ``bits``-wide operand."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class PreparedLut:
    """Tables of one multiplier, ready for the LUT-GEMM engines.

    Args:
        forward: int32 ``[2^bits_a, 2^bits_b]``; ``forward[ia, ib]`` is the product of the operands with
            codes (bit patterns) ``ia`` and ``ib``.
        bits_a: width of operand ``a`` (activation), 2..8.
        bits_b: width of operand ``b`` (weight), 2..8.
        signed: whether codes are two's complement.
        grad_a: float32 ``d f / d a`` table of the same shape, or ``None``.
        grad_b: float32 ``d f / d b`` table, or ``None``.
        name: a human name for messages.

    Example:
        >>> t = torch.randint(-100, 100, (16, 16), dtype=torch.int32)
        >>> PreparedLut(t, 4, 4, signed=True).max_abs <= 100
        True
    """

    def __init__(
        self,
        forward: torch.Tensor,
        bits_a: int,
        bits_b: int,
        signed: bool,
        grad_a: torch.Tensor | None = None,
        grad_b: torch.Tensor | None = None,
        name: str = "",
    ) -> None:
        for label, bits in (("bits_a", bits_a), ("bits_b", bits_b)):
            if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
                raise ConfigError(
                    f"LUT '{name}': {label}={bits} is outside the LUT engines' range {MIN_BITS}..{MAX_BITS}"
                )
        shape = (1 << bits_a, 1 << bits_b)
        if not isinstance(forward, torch.Tensor) or tuple(forward.shape) != shape:
            got = tuple(forward.shape) if isinstance(forward, torch.Tensor) else type(forward).__name__
            raise ConfigError(f"LUT '{name}': forward table has shape {got}, expected {shape}")
        if forward.dtype.is_floating_point or forward.dtype.is_complex or forward.dtype == torch.bool:
            raise ConfigError(f"LUT '{name}': forward table must hold integers, got {forward.dtype}")
        if forward.dtype == torch.int64 and forward.numel():
            lo, hi = int(forward.min()), int(forward.max())
            if lo < -(2**31) or hi >= 2**31:
                raise ConfigError(f"LUT '{name}': forward values {lo}..{hi} do not fit int32")
        self.forward = forward.to(torch.int32).contiguous()
        self.bits_a = bits_a
        self.bits_b = bits_b
        self.signed = bool(signed)
        self.name = name
        self.grad_a = self._grad(grad_a, "grad_a", shape)
        self.grad_b = self._grad(grad_b, "grad_b", shape)
        self.min_value = int(self.forward.min())
        self.max_value = int(self.forward.max())
        self.max_abs = max(abs(self.min_value), abs(self.max_value))
        self.zero_row = bool((self.forward[0] == 0).all())
        self.coarse_shift = 0
        """For a table made by :meth:`coarse`: the low bits of a it stands for (its codes are ``a >> coarse_shift``)."""
        self._cache: dict[str, Any] = {}

    def _grad(self, grad: torch.Tensor | None, label: str, shape: tuple[int, int]) -> torch.Tensor | None:
        if grad is None:
            return None
        if tuple(grad.shape) != shape:
            raise ConfigError(f"LUT '{self.name}': {label} has shape {tuple(grad.shape)}, expected {shape}")
        return grad.to(device=self.forward.device, dtype=torch.float32).contiguous()

    @classmethod
    def from_lut(cls, lut: Lut, *, device: torch.device | str = "cpu") -> PreparedLut:
        """Tables of a :class:`~approxlut.lutgen.lut.Lut` as tensors on ``device``."""

        def tensor(array: Any) -> torch.Tensor | None:
            return None if array is None else torch.from_numpy(array.copy()).to(device)

        forward = tensor(lut.forward)
        assert forward is not None
        return cls(
            forward,
            lut.bits_a,
            lut.bits_b,
            lut.signed,
            grad_a=tensor(lut.grad_a),
            grad_b=tensor(lut.grad_b),
            name=lut.name,
        )

    @property
    def device(self) -> torch.device:
        """Where the tables live."""
        return self.forward.device

    @property
    def shape(self) -> tuple[int, int]:
        """``(2^bits_a, 2^bits_b)``."""
        return (1 << self.bits_a, 1 << self.bits_b)

    @property
    def fits_int16(self) -> bool:
        """Whether every forward value fits a signed 16-bit integer (the fast register-table paths)."""
        return self.min_value >= -(1 << 15) and self.max_value < 1 << 15

    @property
    def fits_16bit_span(self) -> bool:
        """Whether ``forward - min_value`` fits 16 unsigned bits (e.g. any 8x8 multiplier, signed or not):
        the CPU register-table paths store the table so, and add ``min_value`` back per product."""
        return self.max_value - self.min_value < 1 << 16

    @property
    def fits_8bit_span(self) -> bool:
        """Whether ``forward - min_value`` fits 8 unsigned bits: one byte plane in the register-table paths."""
        return self.max_value - self.min_value < 1 << 8

    def error_table(self) -> torch.Tensor:
        """``E = T - a·b`` (int64, by codes): what an approximate multiplier adds to the exact product."""

        def build() -> torch.Tensor:
            exact = self.values_a(self.device)[:, None] * self.values_b(self.device)[None, :]
            return self.forward.to(torch.int64) - exact

        return self.cached("error_table", build)

    @property
    def has_gradients(self) -> bool:
        """Whether both gradient tables are present."""
        return self.grad_a is not None and self.grad_b is not None

    def values_a(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Operand ``a`` value of each row code (int64)."""
        return code_values(self.bits_a, self.signed, device=device or self.device)

    def values_b(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Operand ``b`` value of each column code (int64)."""
        return code_values(self.bits_b, self.signed, device=device or self.device)

    def ste_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through gradient tables: ``Ga[a, b] = value(b)``, ``Gb[a, b] = value(a)`` (float32)."""

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            va = self.values_a().to(torch.float32)
            vb = self.values_b().to(torch.float32)
            ga = vb.expand(self.shape[0], -1).contiguous()
            gb = va[:, None].expand(-1, self.shape[1]).contiguous()
            return ga, gb

        return self.cached("ste_tables", build)

    def gradient_tables(self, *, ste: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Ga, Gb)``: the gradient LUTs, or the straight-through ones when ``ste``."""
        if ste:
            return self.ste_tables()
        if self.grad_a is None or self.grad_b is None:
            raise ConfigError(
                f"LUT '{self.name}' has no gradient tables: build it from a Lut with gradients "
                "(Lut.with_gradients()) or use straight-through gradients (grad='ste')"
            )
        return self.grad_a, self.grad_b

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """A derived form of this LUT, built by ``build()`` on first request and kept (per-LUT cache)."""
        if key not in self._cache:
            self._cache[key] = build()
        value: T = self._cache[key]
        return value

    @property
    def coarse_bits(self) -> int:
        """How many low bits of operand a's codes the table ignores: the largest ``L`` (leaving at least
        :data:`MIN_BITS`) with ``T[a] == T[a with its low L bits cleared]`` for every a (a multiplier that
        truncates its input). ``a >> L`` then indexes :meth:`coarse` exactly."""

        def count() -> int:
            codes = torch.arange(1 << self.bits_a, device=self.device)
            bits = 0
            for low in range(1, self.bits_a - MIN_BITS + 1):
                if not torch.equal(self.forward, self.forward[codes & ~((1 << low) - 1)]):
                    break
                bits = low
            return bits

        return self.cached("coarse_bits", count)

    def coarse(self) -> PreparedLut:
        """The table over the codes of ``a >> coarse_bits`` (arithmetic shift: for signed codes the high bits
        of a two's complement code are the two's complement code of the shifted value); ``self`` when no
        low bit is ignored. Forward only (no gradient tables)."""
        bits = self.coarse_bits
        if bits == 0:
            return self

        def build() -> PreparedLut:
            name = f"{self.name} (a >> {bits})"
            coarse = PreparedLut(self.forward[:: 1 << bits], self.bits_a - bits, self.bits_b, self.signed, name=name)
            coarse.coarse_shift = bits
            return coarse

        return self.cached("coarse", build)

    def transposed(self) -> PreparedLut:
        """The same multiplier with its operands swapped: ``T'[b, a] = T[a, b]`` (cached)."""

        def build() -> PreparedLut:
            return PreparedLut(
                self.forward.t(),
                self.bits_b,
                self.bits_a,
                self.signed,
                grad_a=None if self.grad_b is None else self.grad_b.t(),
                grad_b=None if self.grad_a is None else self.grad_a.t(),
                name=f"{self.name} (operands swapped)",
            )

        return self.cached("transposed", build)

    def to(self, device: torch.device | str) -> PreparedLut:
        """This LUT's tables on ``device`` (``self`` when already there; copies are cached)."""
        device = torch.device(device)
        if device == self.device or (device.type == self.device.type and device.index is None):
            return self

        def build() -> PreparedLut:
            return PreparedLut(
                self.forward.to(device),
                self.bits_a,
                self.bits_b,
                self.signed,
                grad_a=None if self.grad_a is None else self.grad_a.to(device),
                grad_b=None if self.grad_b is None else self.grad_b.to(device),
                name=self.name,
            )

        return self.cached(f"device:{device}", build)

    def __repr__(self) -> str:
        sign = "signed" if self.signed else "unsigned"
        values = f"{self.min_value}..{self.max_value}"
        return f"PreparedLut({self.name!r}, {self.bits_a}x{self.bits_b} {sign}, values {values})"
