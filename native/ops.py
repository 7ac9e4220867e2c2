"""Public approximate ops with autograd: matmul, linear, conv1d, conv2d through a LUT.

Inputs are float tensors holding integer operand *values* (activations are operand ``a``, weights
operand ``b``); each op returns the sums of LUT products as float32 (no scales, no bias) and
differentiates through the gradient LUTs (``grad="difference"``) or exact products (``grad="ste"``),
in value units: ``d/dx Σ T[x, w]``.

Which engine runs: ``engine`` if given, else ``$LUTGEN_ENGINE``, else the ``decomp`` path when the LUT
decomposes into an exact product plus at most :data:`AUTO_DECOMP_TERMS` integer correction terms (unless the
best engine runs table plans with the exact product on the int8 GEMM: an exact multiplier is then that GEMM
alone), else the best available engine for the device. :func:`path_for` says which, in words.

Example:
    >>> import torch
    >>> t = torch.outer(torch.arange(16), torch.arange(16)).to(torch.int32)
    >>> lut = PreparedLut(t, 4, 4, signed=False)
    >>> x = torch.tensor([[1.0, 2.0, 3.0]]); w = torch.tensor([[4.0, 5.0, 6.0]])
    >>> approx_linear(x, w, lut, grad="ste")
    tensor([[32.]])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import cuda as _cuda  # noqa: F401  (registers the "cuda" engine where torch has CUDA)
from . import engines
from .autograd import LoweredOp, LutOpFunction, operand_values
from .conv import (
    Conv1dLowering,
    Conv2dLowering,
    Conv2dSpec,
    LinearLowering,
    MatmulLowering,
    batch_chunk,
    conv2d_spec,
    output_size,
)
from .cpu_features import cpu_isa
from .decompose import analyse, describe, require_decomposition
from .engines import ENGINE_ENV, INT32_MAX, PLAN_PATHS, CpuEngine, Engine, Epilogue, get_engine, resolve_engine
from .prepared import PreparedLut

AUTO_DECOMP_TERMS = 0
"""Largest number of correction terms for which the ``decomp`` path is chosen implicitly (0: exact
multipliers only; every term costs about one more native GEMM)."""

GRAD_MODES = ("difference", "ste")


def choose_engine(lut: PreparedLut, engine: str | None, device: torch.device | str) -> Engine:
    """The engine an op runs for ``lut`` on ``device`` (see the module docstring).

    Raises:
        NativeUnavailableError: the requested engine cannot run here.
        ConfigError: the requested engine does not apply to ``lut`` (``decomp`` on a table it cannot split).
    """
    requested = engine or os.environ.get(ENGINE_ENV) or None
    if requested is None:
        best = resolve_engine(None, device)
        found = analyse(lut)
        if found is not None and found.terms <= AUTO_DECOMP_TERMS and not _int8_plans(best):
            return get_engine("decomp")
        return best
    impl = resolve_engine(requested, device)
    if impl.name == "decomp":
        require_decomposition(lut)
    return impl


def _int8_plans(engine: Engine) -> bool:
    """Whether ``engine`` runs table plans with the exact product on the int8 GEMM (VNNI/AMX): an exact
    multiplier is then that GEMM alone, faster than the float convolutions of ``decomp``."""
    return isinstance(engine, CpuEngine) and cpu_isa() in PLAN_PATHS and engines.exact_kind() == "int8"


def path_for(lut: PreparedLut, engine: str | None = None, device: torch.device | str = "cpu") -> str:
    """In words, the path the ops take for ``lut`` (engine, ISA path or decomposition)."""
    impl = choose_engine(lut, engine, device)
    if impl.name == "decomp":
        return describe(lut)
    return impl.describe_for(lut)


def _prepare(lut: PreparedLut, grad: str, op: str) -> bool:
    """Validate ``lut`` and ``grad``; return whether gradients are straight-through."""
    if not isinstance(lut, PreparedLut):
        raise ConfigError(f"{op}: lut must be a PreparedLut (use PreparedLut.from_lut(lut)), got {type(lut).__name__}")
    if grad not in GRAD_MODES:
        raise ConfigError(f"{op}: grad={grad!r} must be one of {', '.join(GRAD_MODES)}")
    if grad == "difference" and not lut.has_gradients:
        raise ConfigError(
            f"{op}: LUT '{lut.name}' has no gradient tables for grad='difference': build it from a Lut with "
            "gradients (Lut.with_gradients()) or pass grad='ste'"
        )
    return grad == "ste"


def _run(op: LoweredOp, x: torch.Tensor, w: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
    return LutOpFunction.apply(x, w, op, lut.to(x.device))


def _empty(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether an operand has no elements: no products to look up, so torch's own op gives the result (sums of
    nothing are 0), its shape and its graph."""
    return x.numel() == 0 or w.numel() == 0


def _check_dims(x: torch.Tensor, w: torch.Tensor, op: str, x_dims: int | None, w_dims: int) -> None:
    for label, t in (("input", x), ("weight", w)):
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"{op}: {label} must be a tensor, got {type(t).__name__}")
    if x_dims is not None and x.dim() != x_dims:
        raise ConfigError(f"{op}: input must be {x_dims}-D, got shape {tuple(x.shape)}")
    if w.dim() != w_dims:
        raise ConfigError(f"{op}: weight must be {w_dims}-D, got shape {tuple(w.shape)}")
    if x.device != w.device:
        raise ConfigError(f"{op}: input and weight are on different devices ({x.device}, {w.device})")


def approx_matmul(
    a: torch.Tensor, b: torch.Tensor, lut: PreparedLut, *, grad: str = "difference", engine: str | None = None
) -> torch.Tensor:
    """``a @ b`` through the LUT: ``out[..., m, n] = Σ_k T[a[..., m, k], b[..., k, n]]`` (float32).

    Args:
        a: operand a values ``[..., M, K]``.
        b: operand b values ``[K, N]`` (shared by all batches) or ``[..., K, N]`` (batch dims broadcast
            with ``a``'s, e.g. attention scores or context).
        lut: the prepared multiplier.
        grad: ``"difference"`` (gradient LUTs) or ``"ste"`` (exact-product gradients).
        engine: engine name, ``None`` for automatic.
    """
    op = "approx_matmul"
    ste = _prepare(lut, grad, op)
    _check_dims(a, b, op, None, b.dim() if isinstance(b, torch.Tensor) else 2)
    if a.dim() < 2 or b.dim() < 2:
        raise ConfigError(f"{op}: a and b need at least 2 dims, got shapes {tuple(a.shape)}, {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise ConfigError(f"{op}: shapes do not chain: a {tuple(a.shape)}, b {tuple(b.shape)}")
    if b.dim() > 2:
        try:
            torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise ConfigError(
                f"{op}: batch dims of a {tuple(a.shape)} and b {tuple(b.shape)} do not broadcast"
            ) from None
    if _empty(a, b):
        return torch.matmul(a.float(), b.float())
    impl = choose_engine(lut, engine, a.device)
    return _run(MatmulLowering(lut, impl, ste=ste), a, b, lut)


def approx_linear(
    x: torch.Tensor, w: torch.Tensor, lut: PreparedLut, *, grad: str = "difference", engine: str | None = None
) -> torch.Tensor:
    """``x @ w.T`` through the LUT for ``x [..., in]`` and ``w [out, in]``: float32 ``[..., out]``."""
    op = "approx_linear"
    ste = _prepare(lut, grad, op)
    _check_dims(x, w, op, None, 2)
    if x.dim() < 1 or x.shape[-1] != w.shape[1]:
        raise ConfigError(f"{op}: input {tuple(x.shape)} does not match weight {tuple(w.shape)} (in features)")
    if _empty(x, w):
        return F.linear(x.float(), w.float())
    impl = choose_engine(lut, engine, x.device)
    return _run(LinearLowering(lut, impl, ste=ste), x, w, lut)


def _check_groups(x: torch.Tensor, w: torch.Tensor, groups: int, op: str) -> None:
    if not isinstance(groups, int) or groups < 1:
        raise ConfigError(f"{op}: groups={groups!r} must be a positive int")
    if w.shape[0] == 0:
        raise ConfigError(f"{op}: weight {tuple(w.shape)} has no output channels")
    if x.shape[1] % groups or w.shape[0] % groups or x.shape[1] // groups != w.shape[1]:
        raise ConfigError(f"{op}: input channels {x.shape[1]} and weight {tuple(w.shape)} do not match groups={groups}")


def approx_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    lut: PreparedLut,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    grad: str = "difference",
    engine: str | None = None,
) -> torch.Tensor:
    """2-D convolution through the LUT, torch's argument conventions (zero padding = value 0).

    Args:
        x: operand a values ``[N, C, H, W]``.
        w: operand b values ``[O, C/groups, kh, kw]``.
        lut: the prepared multiplier.
        stride, padding, dilation, groups: as :func:`torch.nn.functional.conv2d` (padding may be
            ``"valid"`` or ``"same"``).
        grad: ``"difference"`` or ``"ste"``.
        engine: engine name, ``None`` for automatic.

    Returns:
        float32 ``[N, O, OH, OW]``: per output, the sum of ``T[x, w]`` over the receptive field.
    """
    op = "approx_conv2d"
    ste = _prepare(lut, grad, op)
    _check_dims(x, w, op, 4, 4)
    _check_groups(x, w, groups, op)
    spec = conv2d_spec(w.shape, stride, padding, dilation, groups, op=op)
    _check_output(spec, x.shape[2], x.shape[3], w.shape[2], w.shape[3], op)
    if x.shape[0] == 0:  # (no rows to tile: torch's conv gives the empty result, its shape and its graph)
        return F.conv2d(x.float(), w.float(), None, stride, padding, dilation, groups)
    impl = choose_engine(lut, engine, x.device)
    return _run(Conv2dLowering(lut, impl, ste=ste, spec=spec), x, w, lut)


def approx_conv1d(
    x: torch.Tensor,
    w: torch.Tensor,
    lut: PreparedLut,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    grad: str = "difference",
    engine: str | None = None,
) -> torch.Tensor:
    """1-D convolution through the LUT (``x [N, C, L]``, ``w [O, C/groups, k]``), float32 ``[N, O, OL]``."""
    op = "approx_conv1d"
    ste = _prepare(lut, grad, op)
    _check_dims(x, w, op, 3, 3)
    _check_groups(x, w, groups, op)

    def one(value: int | Sequence[int], name: str) -> int:
        items = [value] if isinstance(value, int) else list(value)
        if len(items) != 1 or not isinstance(items[0], int):
            raise ConfigError(f"{op}: {name}={value!r} must be an int")
        return items[0]

    pad: int | tuple[int, int] | str = padding if isinstance(padding, str) else (0, one(padding, "padding"))
    spec = conv2d_spec(
        (w.shape[0], w.shape[1], 1, w.shape[2]),
        (1, one(stride, "stride")),
        pad,
        (1, one(dilation, "dilation")),
        groups,
        op=op,
    )
    _check_output(spec, 1, x.shape[2], 1, w.shape[2], op)
    if x.shape[0] == 0:  # (as approx_conv2d)
        return F.conv1d(x.float(), w.float(), None, stride, padding, dilation, groups)
    impl = choose_engine(lut, engine, x.device)
    return _run(Conv1dLowering(lut, impl, ste=ste, spec=spec), x, w, lut)


def _check_output(spec: Conv2dSpec, h: int, w: int, kh: int, kw: int, op: str) -> None:
    oh, ow = output_size(spec, h, w, kh, kw)
    if oh < 1 or ow < 1:
        raise ConfigError(f"{op}: the kernel ({kh}x{kw}, dilated) does not fit the padded input ({h}x{w})")


def _quantised_codes(
    x: torch.Tensor, scale: float, zero_point: float, code_range: tuple[int, int], op: str
) -> torch.Tensor:
    """``clamp(round(x / scale + zero_point), *code_range)`` as int8/uint8 codes in one native pass (as
    :func:`approxlut.nn.quant.quantize`, bit for bit); a one-line error where ``x`` holds NaN."""
    from .build import load

    qmin, qmax = code_range
    codes, ok = load().quantize_codes(x.contiguous(), float(scale), float(zero_point), qmin, qmax, cpu_isa())
    if not ok:
        raise ConfigError(f"{op}: the input holds NaN")
    return codes


def _quantised_rows(
    x: torch.Tensor, scale: float, zero_point: float, code_range: tuple[int, int], op: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_quantised_codes` of unsigned codes with each row's (last dim's) sum of codes, int32, in the same
    native pass."""
    from .build import load

    qmin, qmax = code_range
    args = (float(scale), float(zero_point), qmin, qmax, x.shape[-1], cpu_isa())
    codes, sums, ok = load().quantize_code_rows(x.contiguous(), *args)
    if not ok:
        raise ConfigError(f"{op}: the input holds NaN")
    return codes, sums


def _zero_code(zero_point: float, code_range: tuple[int, int]) -> int:
    """The code of the real value 0 (the zero point, within the code range), which padding takes."""
    qmin, qmax = code_range
    return int(min(max(round(zero_point), qmin), qmax))


def _check_affine(epilogue: Epilogue | None, code_range: tuple[int, int], op: str) -> bool:
    """Whether ``epilogue`` is affine (its op then sums the activation codes, unsigned)."""
    if epilogue is None or not epilogue.affine:
        return False
    if code_range[0] < 0:
        raise ConfigError(f"{op}: an affine epilogue needs unsigned activation codes, got the range {code_range}")
    return True


def quantised_conv2d(
    x: torch.Tensor,
    weight_codes: torch.Tensor,
    lut: PreparedLut,
    *,
    scale: float,
    zero_point: float,
    code_range: tuple[int, int],
    padding: tuple[int, int, int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    epilogue: Epilogue | None = None,
    engine: str | None = None,
) -> torch.Tensor | None:
    """Inference of a quantised conv layer in one native pass: codes ``clamp(round(x / scale + zero_point),
    *code_range)`` (as :func:`approxlut.nn.quant.quantize`, bit for bit), the LUT convolution with the weight
    codes, then the ``epilogue`` (rescale and bias; for an affine one, after the zero-point terms, with each
    output's sum of activation codes over its receptive field) applied to the sums.

    No autograd. Returns ``None`` when this path does not apply (not the CPU engine, not a contiguous
    float32 CPU input, sums that need the int64 split): the caller then runs the ops step by step.

    Args:
        x: float32 input ``[N, C, H, W]``.
        weight_codes: int8 (signed LUT) or uint8 weight codes ``[O, C/groups, kh, kw]``.
        lut: the prepared multiplier.
        scale: the activation scale.
        zero_point: the activation zero point.
        code_range: ``(qmin, qmax)`` of the activation codes.
        padding: ``(top, bottom, left, right)`` padding by the real value 0: in code space the zero point (0 in
            the symmetric scheme).
        stride: as :func:`torch.nn.functional.conv2d`.
        dilation: as :func:`torch.nn.functional.conv2d`.
        groups: as :func:`torch.nn.functional.conv2d`.
        epilogue: per-output-channel rescale and bias (and zero-point terms).
        engine: engine name, ``None`` for automatic.

    Raises:
        ConfigError: ``x`` holds NaN.
    """
    op = "quantised_conv2d"
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or weight_codes.dim() != 4:
        return None
    impl = choose_engine(lut, engine, x.device)
    if not isinstance(impl, CpuEngine):
        return None
    _check_groups(x, weight_codes, groups, op)
    spec = Conv2dSpec(stride, padding, dilation, groups)
    kh, kw = weight_codes.shape[2], weight_codes.shape[3]
    _check_output(spec, x.shape[2], x.shape[3], kh, kw, op)
    affine = _check_affine(epilogue, code_range, op)
    if affine and weight_codes.shape[1] * kh * kw > INT32_MAX // 255:  # (sums of codes beyond int32)
        return None
    codes = _quantised_codes(x, scale, zero_point, code_range, op)
    oh, ow = output_size(spec, x.shape[2], x.shape[3], kh, kw)
    out = torch.empty((x.shape[0], weight_codes.shape[0], oh, ow), dtype=torch.float32)
    done = impl.conv2d_into(
        out,
        codes,
        weight_codes,
        lut,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        epilogue=epilogue,
        pad_value=_zero_code(zero_point, code_range),
    )
    return out if done else None


def quantised_linear(
    x: torch.Tensor,
    weight_codes: torch.Tensor,
    lut: PreparedLut,
    *,
    scale: float,
    zero_point: float,
    code_range: tuple[int, int],
    epilogue: Epilogue | None = None,
    engine: str | None = None,
) -> torch.Tensor | None:
    """Inference of a quantised linear layer: codes ``clamp(round(x / scale + zero_point), *code_range)`` in one
    native pass (as :func:`quantised_conv2d`), the LUT GEMM with the weight codes, then the ``epilogue`` in place
    (times its scale, plus its bias, plus its extra term: the order, and so the rounding, of the layer's
    step-by-step path; an affine one first takes off its zero-point terms, with each row's sum of codes).

    No autograd. Returns ``None`` when this path does not apply (not the CPU engine, not a float32 CPU input).

    Args:
        x: float32 input ``[..., in]``.
        weight_codes: int8 (signed LUT) or uint8 weight codes ``[out, in]``.
        lut: the prepared multiplier.
        scale: the activation scale.
        zero_point: the activation zero point.
        code_range: ``(qmin, qmax)`` of the activation codes.
        epilogue: per-output rescale and bias (and zero-point terms).
        engine: engine name, ``None`` for automatic.

    Raises:
        ConfigError: ``x`` holds NaN, or its last dim is not the weights' in features.
    """
    op = "quantised_linear"
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() < 1 or weight_codes.dim() != 2:
        return None
    impl = choose_engine(lut, engine, x.device)
    if not isinstance(impl, CpuEngine):
        return None
    if x.shape[-1] != weight_codes.shape[1]:
        shapes = f"input {tuple(x.shape)} does not match weight {tuple(weight_codes.shape)}"
        raise ConfigError(f"{op}: {shapes} (in features)")
    affine = _check_affine(epilogue, code_range, op)
    if affine and not 0 < x.shape[-1] <= INT32_MAX // 255:  # (no features, or sums of codes beyond int32)
        return None
    code_sums = None
    if affine:
        codes, code_sums = _quantised_rows(x, scale, zero_point, code_range, op)
    else:
        codes = _quantised_codes(x, scale, zero_point, code_range, op)
    # (as approx_linear checks its operands; free where they are 8-bit codes of the LUT's signedness)
    a = operand_values(codes, lut.bits_a, lut.signed, what="input codes", op=op)
    b = operand_values(weight_codes, lut.bits_b, lut.signed, what="weight codes", op=op)
    k, n = b.shape[1], b.shape[0]
    rows = math.prod(x.shape[:-1])
    a, weights, on_device = a.reshape(1, rows, k), b.t()[None], lut.to(x.device)
    out = torch.empty((rows, n), dtype=torch.float32)
    step = batch_chunk(1, k, rows)
    for s in range(0, rows, step):  # the sums, rescale and bias written once per chunk of rows
        sums = None if code_sums is None else code_sums[s : s + step]
        impl.lut_bmm_into(out[None, s : s + step], a[:, s : s + step], weights, on_device, epilogue, code_sums=sums)
    return out.reshape(*x.shape[:-1], n)
