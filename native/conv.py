"""Lowering of conv1d/conv2d, linear and batched matmul onto the batched LUT-GEMM ``lut_bmm``.

A convolution becomes ``C[g] = A[g] @ B[g]`` per group ``g`` (groups are the ``G`` dimension of
``lut_bmm``, so grouped and depthwise convolutions never loop over groups in Python):
``A[g, (n, oh, ow), (c, i, j)]`` is the im2col matrix of the group's input channels, built with
strided views on the integer operand tensor (zero padding in the value domain, i.e. value 0), and
``B[g, (c, i, j), o]`` the group's weights. The batch is processed in chunks so that the im2col block
stays below :data:`CHUNK_ELEMENTS`. Backward folds the gradient of ``A`` back onto the input
(col2im via ``torch.nn.functional.fold``). With the ``decomp`` engine a convolution skips im2col: it
is a few native convolutions on the CPU (see :func:`approxlut.native.decompose.decomposed_conv2d`).
The geometry helpers work on any tensors; the lowered ops at the end run an engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from ..errors import ConfigError
from .cpu_features import choose_path
from .decompose import DecompEngine, decomposed_conv2d
from .engines import PLAN_PATHS, CpuEngine, Engine, looked_up_lanes, padded_lanes
from .plan import plane_cost
from .prepared import PreparedLut

CHUNK_ELEMENTS = 1 << 24
"""Largest im2col block (elements of ``A``) materialised at once."""


@dataclass(frozen=True)
class Conv2dSpec:
    """Geometry of a 2-D convolution.

    Attributes:
        stride: ``(sh, sw)``.
        padding: ``(top, bottom, left, right)`` zero padding (value 0).
        dilation: ``(dh, dw)``.
        groups: number of channel groups.
    """

    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int


def _pair(value: int | Sequence[int], name: str, op: str, *, minimum: int) -> tuple[int, int]:
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, int) and v >= minimum for v in items):
        raise ConfigError(f"{op}: {name}={value!r} must be an int >= {minimum} or a pair of them")
    return int(items[0]), int(items[1])


def conv2d_spec(
    weight_shape: Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int] | str,
    dilation: int | Sequence[int],
    groups: int,
    *,
    op: str = "approx_conv2d",
) -> Conv2dSpec:
    """Validate torch-style conv2d arguments (``padding`` may be ``"valid"`` or ``"same"``)."""
    st = _pair(stride, "stride", op, minimum=1)
    dl = _pair(dilation, "dilation", op, minimum=1)
    if not isinstance(groups, int) or groups < 1:
        raise ConfigError(f"{op}: groups={groups!r} must be a positive int")
    kh, kw = int(weight_shape[2]), int(weight_shape[3])
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if st != (1, 1):
                raise ConfigError(f"{op}: padding='same' needs stride 1, got stride={stride!r}")
            total_h, total_w = dl[0] * (kh - 1), dl[1] * (kw - 1)
            pads = (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
        else:
            raise ConfigError(f"{op}: padding={padding!r} must be an int, a pair, 'valid' or 'same'")
    else:
        ph, pw = _pair(padding, "padding", op, minimum=0)
        pads = (ph, ph, pw, pw)
    return Conv2dSpec(st, pads, dl, groups)


def output_size(spec: Conv2dSpec, height: int, width: int, kh: int, kw: int) -> tuple[int, int]:
    """``(OH, OW)`` of the convolution (may be <= 0 when the kernel does not fit)."""
    top, bottom, left, right = spec.padding
    oh = (height + top + bottom - spec.dilation[0] * (kh - 1) - 1) // spec.stride[0] + 1
    ow = (width + left + right - spec.dilation[1] * (kw - 1) - 1) // spec.stride[1] + 1
    return oh, ow


def pad_values(x: torch.Tensor, spec: Conv2dSpec) -> torch.Tensor:
    """``x`` ``[N, C, H, W]`` with the zero padding of ``spec`` applied (value 0)."""
    top, bottom, left, right = spec.padding
    if not any(spec.padding):
        return x
    return F.pad(x, (left, right, top, bottom), mode="constant", value=0)


def im2col(xp: torch.Tensor, kh: int, kw: int, spec: Conv2dSpec) -> torch.Tensor:
    """``A [G, N·OH·OW, Cg·kh·kw]`` from the padded input ``xp [N, C, Hp, Wp]``.

    ``A`` is the transposed view of a contiguous ``[G, Cg·kh·kw, N·OH·OW]`` tensor: copying windows in
    that order moves whole output rows at a time (fast), and it is the K-major layout the CPU kernels
    read anyway.
    """
    n, c, _, _ = xp.shape
    g = spec.groups
    eff_h = spec.dilation[0] * (kh - 1) + 1
    eff_w = spec.dilation[1] * (kw - 1) + 1
    windows = xp.unfold(2, eff_h, spec.stride[0]).unfold(3, eff_w, spec.stride[1])
    windows = windows[..., :: spec.dilation[0], :: spec.dilation[1]]  # [N, C, OH, OW, kh, kw]
    oh, ow = windows.shape[2], windows.shape[3]
    windows = windows.reshape(n, g, c // g, oh, ow, kh, kw).permute(1, 2, 5, 6, 0, 3, 4)
    return windows.reshape(g, (c // g) * kh * kw, n * oh * ow).transpose(1, 2)


def weight_matrix(w: torch.Tensor, groups: int) -> torch.Tensor:
    """``B [G, Cg·kh·kw, O/G]`` from conv weights ``w [O, Cg, kh, kw]``."""
    out_ch = w.shape[0]
    return w.reshape(groups, out_ch // groups, -1).transpose(1, 2).contiguous()


def cols_to_output(c: torch.Tensor, n: int, oh: int, ow: int) -> torch.Tensor:
    """``[N, O, OH, OW]`` from the GEMM result ``c [G, N·OH·OW, O/G]``."""
    g, _, og = c.shape
    return c.reshape(g, n, oh, ow, og).permute(1, 0, 4, 2, 3).reshape(n, g * og, oh, ow)


def output_to_cols(grad_out: torch.Tensor, groups: int) -> torch.Tensor:
    """Inverse of :func:`cols_to_output`: ``[G, N·OH·OW, O/G]`` (contiguous)."""
    n, o, oh, ow = grad_out.shape
    return grad_out.reshape(n, groups, o // groups, oh, ow).permute(1, 0, 3, 4, 2).reshape(groups, n * oh * ow, -1)


def fold_input_grad(
    grad_a: torch.Tensor, input_shape: Sequence[int], kh: int, kw: int, spec: Conv2dSpec
) -> torch.Tensor:
    """col2im: the gradient of the (unpadded) input ``[N, C, H, W]`` from ``grad_a [G, N·OH·OW, Cg·kh·kw]``."""
    n, _, h, w = (int(s) for s in input_shape)
    top, bottom, left, right = spec.padding
    g, rows, kg = grad_a.shape
    cols = grad_a.reshape(g, n, rows // n, kg).permute(1, 0, 3, 2).reshape(n, g * kg, rows // n)
    padded = F.fold(
        cols,
        output_size=(h + top + bottom, w + left + right),
        kernel_size=(kh, kw),
        dilation=spec.dilation,
        stride=spec.stride,
    )
    return padded[:, :, top : top + h, left : left + w]


def weight_grad(grad_b: torch.Tensor, weight_shape: Sequence[int]) -> torch.Tensor:
    """Gradient of ``w [O, Cg, kh, kw]`` from ``grad_b [G, Cg·kh·kw, O/G]``."""
    return grad_b.transpose(1, 2).reshape(*weight_shape)


def batch_chunk(rows_per_sample: int, cols: int, batch: int) -> int:
    """How many samples to lower at once so the ``A`` block stays below :data:`CHUNK_ELEMENTS`."""
    per_sample = max(1, rows_per_sample * cols)
    return max(1, min(batch, CHUNK_ELEMENTS // per_sample))


# ---------------------------------------------------------------------------------------------------
# Lowered ops (see :class:`approxlut.native.autograd.LoweredOp`)


class _Lowered:
    """Common state of a lowered op: the LUT, the engine that runs ``lut_bmm`` and the gradient mode."""

    name = "op"

    def __init__(self, lut: PreparedLut, engine: Engine, *, ste: bool) -> None:
        self.lut = lut
        self.engine = engine
        self.ste = ste

    def _bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.engine.lut_bmm(a, b, self.lut)

    def _bmm_into(self, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """``out [G, M, N]`` (float32) = the GEMM's result: written once by the CPU engine, else copied."""
        if isinstance(self.engine, CpuEngine):
            self.engine.lut_bmm_into(out, a, b, self.lut)
        else:
            out.copy_(self._bmm(a, b))

    def _bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ste:  # the exact product's gradients: two native GEMMs on the operand values
            gc = grad_c.to(torch.float32)
            grad_a = torch.bmm(gc, b.to(torch.float32).transpose(1, 2))
            return grad_a, torch.bmm(a.to(torch.float32).transpose(1, 2), gc)
        return self.engine.lut_bmm_backward(a, b, grad_c.contiguous(), self.lut, ste=False)


class Conv2dLowering(_Lowered):
    """conv2d (conv1d as a height-1 conv2d) via chunked im2col + ``lut_bmm``, groups as ``G``."""

    def __init__(
        self, lut: PreparedLut, engine: Engine, *, ste: bool, spec: Conv2dSpec, name: str = "approx_conv2d"
    ) -> None:
        super().__init__(lut, engine, ste=ste)
        self.spec = spec
        self.name = name

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, c, h, wd = x.shape
        out_ch, _, kh, kw = w.shape
        oh, ow = output_size(self.spec, h, wd, kh, kw)
        if isinstance(self.engine, DecompEngine) and x.device.type == "cpu":
            out = decomposed_conv2d(
                x,
                w,
                self.lut,
                stride=self.spec.stride,
                padding=self.spec.padding,
                dilation=self.spec.dilation,
                groups=self.spec.groups,
            )
            return out.to(torch.float32)
        out = torch.empty((n, out_ch, oh, ow), dtype=torch.float32, device=x.device)
        step = batch_chunk(oh * ow, c * kh * kw, n)
        if isinstance(self.engine, CpuEngine) and x.device.type == "cpu" and self._direct(out, x, w):
            return out
        xp = pad_values(x, self.spec)
        b = weight_matrix(w, self.spec.groups)
        for s in range(0, n, step):
            e = min(n, s + step)
            cols = self._bmm(im2col(xp[s:e], kh, kw, self.spec), b)
            out[s:e] = cols_to_output(cols, e - s, oh, ow)
        return out

    def _direct(self, out: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> bool:
        """The CPU engine's direct conv (im2col inside C++, batch chunks sized by the engine) into ``out``;
        ``False`` when it does not apply (sums that need the int64 split of ``lut_bmm``)."""
        assert isinstance(self.engine, CpuEngine)
        spec = self.spec
        return self.engine.conv2d_into(
            out,
            x,
            w,
            self.lut,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            groups=spec.groups,
        )

    def backward(self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ste:
            return self._ste_backward(x, w, grad_out)
        n, c, h, wd = x.shape
        _, _, kh, kw = w.shape
        oh, ow = grad_out.shape[2], grad_out.shape[3]
        xp = pad_values(x, self.spec)
        b = weight_matrix(w, self.spec.groups)
        grad_x = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        grad_b = torch.zeros(b.shape, dtype=torch.float32, device=x.device)
        step = batch_chunk(oh * ow, c * kh * kw, n)
        for s in range(0, n, step):
            e = min(n, s + step)
            a = im2col(xp[s:e], kh, kw, self.spec)
            ga, gb = self._bmm_backward(a, b, output_to_cols(grad_out[s:e], self.spec.groups))
            grad_x[s:e] = fold_input_grad(ga, (e - s, c, h, wd), kh, kw, self.spec)
            grad_b += gb
        return grad_x, weight_grad(grad_b, w.shape)

    def _ste_backward(
        self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through gradients are those of the exact product: torch's own convolution backward on
        the operand values (the zero padding is value 0, as in the forward pass)."""
        spec = self.spec
        top, bottom, left, right = spec.padding
        xv, wv = x.to(torch.float32), w.to(torch.float32)
        symmetric = top == bottom and left == right
        padded = xv if symmetric else F.pad(xv, (left, right, top, bottom))
        pad = (top, left) if symmetric else (0, 0)
        conv = {"stride": spec.stride, "padding": pad, "dilation": spec.dilation, "groups": spec.groups}
        grad_x = conv2d_input(padded.shape, wv, grad_out, **conv)
        grad_w = conv2d_weight(padded, wv.shape, grad_out, **conv)
        if not symmetric:
            grad_x = grad_x[:, :, top : top + x.shape[2], left : left + x.shape[3]].contiguous()
        return grad_x, grad_w


class Conv1dLowering(Conv2dLowering):
    """conv1d as a conv2d of height 1 (``x [N, C, L]``, ``w [O, C/g, k]``)."""

    def __init__(self, lut: PreparedLut, engine: Engine, *, ste: bool, spec: Conv2dSpec) -> None:
        super().__init__(lut, engine, ste=ste, spec=spec, name="approx_conv1d")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unsqueeze(2), w.unsqueeze(2)).squeeze(2)

    def backward(self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_x, grad_w = super().backward(x.unsqueeze(2), w.unsqueeze(2), grad_out.unsqueeze(2))
        return grad_x.squeeze(2), grad_w.squeeze(2)


class MatmulLowering(_Lowered):
    """``x [..., M, K] @ w`` with ``w [K, N]`` (rows of all batches in one GEMM) or ``w [..., K, N]``
    (broadcast batch dimensions as ``G``, chunked over ``G``). ``linear`` is ``x @ w.T``."""

    def __init__(self, lut: PreparedLut, engine: Engine, *, ste: bool, name: str = "approx_matmul") -> None:
        super().__init__(lut, engine, ste=ste)
        self.name = name

    @staticmethod
    def _batched(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Size, torch.Tensor, torch.Tensor]:
        batch = torch.broadcast_shapes(x.shape[:-2], w.shape[:-2])
        a = x.expand(*batch, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
        b = w.expand(*batch, *w.shape[-2:]).reshape(-1, *w.shape[-2:])
        return batch, a, b

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        k, n = w.shape[-2], w.shape[-1]
        if w.dim() == 2:
            a = x.reshape(1, -1, k)
            rows = a.shape[1]
            out = torch.empty((rows, n), dtype=torch.float32, device=x.device)
            step = batch_chunk(1, k, rows)
            for s in range(0, rows, step):
                self._bmm_into(out[None, s : s + step], a[:, s : s + step], w[None])
            return out.reshape(*x.shape[:-1], n)
        batch, a, b = self._batched(x, w)
        direct = self._direct(a, b)
        if direct is not None:
            return direct.reshape(*batch, a.shape[1], n)
        out = torch.empty((a.shape[0], a.shape[1], n), dtype=torch.float32, device=x.device)
        step = batch_chunk(a.shape[1], k, a.shape[0])
        for s in range(0, a.shape[0], step):
            self._bmm_into(out[s : s + step], a[s : s + step], b[s : s + step])
        return out.reshape(*batch, a.shape[1], n)

    def _direct(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
        """``C [G, M, N]`` of a batched GEMM with a ``b`` per batch (attention) as the CPU engine's direct conv,
        which finishes the sums in C++ and writes them once, as float32: a 1x1 convolution with ``G`` groups
        whose "weights" are one operand and whose "input" (output positions as lanes) is the other. The lanes
        run over whichever of ``M`` and ``N`` costs less to look up: its looked-up lanes
        (:func:`looked_up_lanes`) times the other's count, on the planned paths times the price of a look-up at
        its operand's code width; over ``N`` (the multiplier's table transposed) the result needs no transpose.
        ``None`` where the direct conv does not apply (the engine falls back to ``lut_bmm``)."""
        codes = (torch.int8, torch.uint8)
        if not isinstance(self.engine, CpuEngine) or a.device.type != "cpu" or a.dtype not in codes:
            return None
        if b.dtype not in codes or not a.numel() or not b.numel():
            return None
        from .build import load

        g, m, k = a.shape
        n = b.shape[2]
        isa = choose_path()
        # Looked-up lanes times columns, on the planned paths times the price of a look-up at the looked-up
        # operand's code width (softmax weights of 7 bits against signed values of 8: the narrower is cheaper)
        over_m, over_n = float(looked_up_lanes(isa, m) * n), float(looked_up_lanes(isa, n) * m)
        if isa in PLAN_PATHS:
            over_m *= plane_cost(isa, max(1, load().max_code(a, (1 << self.lut.bits_a) - 1).bit_length()), 1)
            over_n *= plane_cost(isa, max(1, load().max_code(b, (1 << self.lut.bits_b) - 1).bit_length()), 1)
        lanes_over_n = over_n <= over_m
        if lanes_over_n:
            lanes, weights, lut = b.transpose(1, 2), a, self.lut.transposed()
        else:
            lanes, weights, lut = a, b.transpose(1, 2), self.lut
        count, cols = lanes.shape[1], weights.shape[1]
        out = torch.empty((g, cols, count), dtype=torch.float32)
        step = max(1, CHUNK_ELEMENTS // (padded_lanes(count) * (k + cols)))  # groups per call
        for s in range(0, g, step):
            e = min(g, s + step)
            # The lanes' operand K-major (the C++ transpose, which pads to whole blocks; mask 0xFF keeps every
            # value's byte), and the other as [groups * columns, K] "weights".
            packed, _, _ = load().pack_transposed(lanes[s:e], 0xFF, 0)
            x4 = packed[:, :, :count].contiguous().view(lanes.dtype).reshape(1, (e - s) * k, 1, count)
            w4 = weights[s:e].contiguous().reshape(-1, k, 1, 1)
            part = out[s:e].view(1, (e - s) * cols, 1, count)
            one = (1, 1)
            if not self.engine.conv2d_into(part, x4, w4, lut, stride=one, padding=(0,) * 4, dilation=one, groups=e - s):
                return None
        return out if lanes_over_n else out.transpose(1, 2)

    def backward(self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, n = w.shape[-2], w.shape[-1]
        if w.dim() == 2:
            a = x.reshape(1, -1, k)
            gc = grad_out.reshape(1, -1, n)
            rows = a.shape[1]
            grad_a = torch.empty((rows, k), dtype=torch.float32, device=x.device)
            grad_w = torch.zeros((k, n), dtype=torch.float32, device=x.device)
            step = batch_chunk(1, k, rows)
            for s in range(0, rows, step):
                ga, gb = self._bmm_backward(a[:, s : s + step], w[None], gc[:, s : s + step])
                grad_a[s : s + step] = ga[0]
                grad_w += gb[0]
            return grad_a.reshape(x.shape), grad_w
        batch, a, b = self._batched(x, w)
        gc = grad_out.reshape(a.shape[0], a.shape[1], n)
        grad_a = torch.empty(a.shape, dtype=torch.float32, device=x.device)
        grad_b = torch.empty(b.shape, dtype=torch.float32, device=x.device)
        step = batch_chunk(a.shape[1], k, a.shape[0])
        for s in range(0, a.shape[0], step):
            grad_a[s : s + step], grad_b[s : s + step] = self._bmm_backward(
                a[s : s + step], b[s : s + step], gc[s : s + step]
            )
        grad_x = grad_a.reshape(*batch, *x.shape[-2:]).sum_to_size(x.shape)
        grad_w = grad_b.reshape(*batch, *w.shape[-2:]).sum_to_size(w.shape)
        return grad_x, grad_w


class LinearLowering(MatmulLowering):
    """``x [..., in] @ w.T`` for ``w [out, in]``."""

    def __init__(self, lut: PreparedLut, engine: Engine, *, ste: bool) -> None:
        super().__init__(lut, engine, ste=ste, name="approx_linear")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return super().forward(x, w.t())

    def backward(self, x: torch.Tensor, w: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_x, grad_wt = super().backward(x, w.t(), grad_out)
        return grad_x, grad_wt.t()
