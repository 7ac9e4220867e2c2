"""The one ``torch.autograd.Function`` behind every approximate op, and operand validation.

Every op (matmul, linear, conv1d/conv2d) is a :class:`LoweredOp` from :mod:`.conv`: it turns integer
operand tensors into ``lut_bmm`` calls and back. :class:`LutOpFunction` converts the float inputs
(holding integer operand values, e.g. from a quantiser with a straight-through estimator) to integer
tensors once, runs the lowered forward, saves the integer operands and runs the lowered backward,
which goes through the gradient LUTs (or exact products with ``ste``).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import ConfigError
from .build import loaded
from .cpu_features import cpu_isa
from .prepared import PreparedLut, value_range


class LoweredOp(Protocol):
    """An op lowered onto ``lut_bmm``: integer operands in, float32 results and gradients out."""

    name: str

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The op's result (float32) for integer operand tensors ``x`` (operand a) and ``w`` (operand b)."""
        ...

    def backward(self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients (float32, shapes of ``x`` and ``w``) for the upstream gradient ``grad_out``."""
        ...


def operand_dtype(bits: int, signed: bool) -> torch.dtype:
    """The integer dtype that carries operand values of a ``bits``-wide (<= 8) operand."""
    assert bits <= 8, "LUT engines take operands of at most 8 bits"
    return torch.int8 if signed else torch.uint8


def operand_values(x: torch.Tensor, bits: int, signed: bool, *, what: str, op: str) -> torch.Tensor:
    """``x`` (float tensor of integer operand values) as an integer tensor, validated.

    Raises:
        ConfigError: ``x`` is not a tensor, holds values outside the operand range, or non-integers.
    """
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{op}: {what} must be a tensor, got {type(x).__name__}")
    dtype = operand_dtype(bits, signed)
    vmin, vmax = value_range(bits, signed)
    ext = loaded()
    if ext is not None and x.dtype == torch.float32 and x.device.type == "cpu":
        # (a strided view, e.g. attention's transposed keys, is copied first: one pass, then one in C++)
        converted, ok = ext.float_to_values(x.detach().contiguous(), vmin, vmax, cpu_isa())
        if ok:
            return converted  # else the checks below say what is wrong
    if x.dtype == dtype and bits == 8:
        return x.detach()  # every int8/uint8 value is an 8-bit operand value
    if not x.dtype.is_floating_point:
        if x.dtype.is_complex or x.dtype == torch.bool:
            raise ConfigError(f"{op}: {what} must hold real operand values, got {x.dtype}")
        values = x
    else:
        values = x.detach()
    if values.numel():
        lo, hi = (float(v) for v in torch.aminmax(values))
        if not (vmin <= lo and hi <= vmax):
            kind = "signed" if signed else "unsigned"
            raise ConfigError(
                f"{op}: {what} values span {lo:g}..{hi:g}, outside {vmin}..{vmax} of the {bits}-bit {kind} "
                "operand; quantise them first"
            )
    converted = values.to(dtype)
    if values.dtype.is_floating_point and bool((converted != values).any()):
        raise ConfigError(f"{op}: {what} must hold integer operand values (quantise and round first)")
    return converted


class LutOpFunction(torch.autograd.Function):
    """``y = op(x, w)`` through the LUT; gradients in value units via the op's lowered backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, op: LoweredOp, lut: PreparedLut) -> torch.Tensor:
        xi = operand_values(x, lut.bits_a, lut.signed, what="input (operand a)", op=op.name)
        wi = operand_values(w, lut.bits_b, lut.signed, what="weight (operand b)", op=op.name)
        ctx.op = op
        ctx.dtypes = (x.dtype, w.dtype)
        ctx.save_for_backward(xi, wi)
        return op.forward(xi, wi)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xi, wi = ctx.saved_tensors
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return None, None, None, None
        grad_x, grad_w = ctx.op.backward(xi, wi, grad_out.to(torch.float32))
        x_dtype, w_dtype = ctx.dtypes
        grad_x = grad_x.to(x_dtype) if ctx.needs_input_grad[0] and x_dtype.is_floating_point else None
        grad_w = grad_w.to(w_dtype) if ctx.needs_input_grad[1] and w_dtype.is_floating_point else None
        return grad_x, grad_w, None, None
