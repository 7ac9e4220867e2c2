"""Engines behind one interface, chosen by name: the registry, resolution and the public LUT-GEMM calls.

An engine implements :class:`Engine`. ``resolve_engine(None, device)`` picks the best available engine
for the device (highest ``priority``; ``LUTGEN_ENGINE`` overrides), falling back to ``"reference"``
with one warning when a native engine cannot be built or loaded. An engine asked for by name (argument
or ``LUTGEN_ENGINE``) that cannot run raises :class:`NativeUnavailableError` instead.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, NativeUnavailableError
from . import reference, tuning
from .costs import kernel_costs
from .cpu_features import choose_path, detect
from .plan import AVX2_ROWS_COST, TablePlan, int8_flip, int8_gemm_is_exact, plan_for, plane_cost
from .prepared import PreparedLut, value_range

ENGINE_ENV = "LUTGEN_ENGINE"
LANES = 256
"""Rows of a per block of the CPU kernels (``kLaneAlign`` in the C++ sources: the code panels are padded to it)."""


def padded_lanes(count: int) -> int:
    """``count`` rows of a rounded up to whole blocks of :data:`LANES` (the code panels' and sums' rows)."""
    return -(-count // LANES) * LANES


def looked_up_lanes(isa: str, count: int) -> int:
    """The lanes the kernels of ``isa`` look up for ``count`` rows of a: whole blocks of :data:`LANES`, and for
    a last, partial block whole blocks of the kernel's own width up to its rows (AVX2: 32 lanes; VBMI: 64, 128
    or 256; the other paths, whose kernels are not planned, a whole block)."""
    full, tail = divmod(count, LANES)
    if tail and isa == "avx2":
        tail = -(-tail // 32) * 32
    elif tail and isa == "avx512vbmi":
        tail = 64 if tail <= 64 else 128 if tail <= 128 else LANES
    elif tail:
        tail = LANES
    return full * LANES + tail


class Engine:
    """One LUT-GEMM implementation. Subclasses set ``name``, ``priority``, ``devices`` and the two ops.

    ``lut_bmm``/``lut_bmm_backward`` receive validated operands (see :func:`check_operands`): integer
    value tensors ``a [G, M, K]``, ``b [G, K, N]`` with equal ``G`` on one device, and ``lut`` on that
    device.
    """

    name = "engine"
    priority = 0
    devices: tuple[str, ...] = ("cpu",)
    last_path: str | None = None
    """What the last ``lut_bmm`` call ran (e.g. ``"avx512vbmi/bytes a7"``), for benchmarks and reports."""

    def supports(self, device: torch.device) -> bool:
        """Whether this engine runs on tensors of ``device``."""
        return device.type in self.devices

    def unavailable_reason(self) -> str | None:
        """``None`` when usable here (may build native code on first call), else why not."""
        return None

    def describe(self) -> str:
        """A short note on what this engine will run (e.g. the ISA path), for reports."""
        return self.name

    def describe_for(self, lut: PreparedLut) -> str:
        """:meth:`describe` for one LUT (engines whose path depends on the table say which)."""
        return self.describe()

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        """``C[g, m, n] = sum_k T[a[g, m, k], b[g, k, n]]``, int32 ``[G, M, N]``."""
        raise NotImplementedError

    def lut_bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gA [G, M, K], gB [G, K, N])`` float32."""
        raise NotImplementedError


class ReferenceEngine(Engine):
    """The pure-torch gather-and-sum oracle; runs everywhere torch does."""

    name = "reference"
    priority = 0
    devices = ("cpu", "cuda", "mps", "xpu", "meta")

    def supports(self, device: torch.device) -> bool:
        return True

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        return reference.lut_bmm(a, b, lut)

    def lut_bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return reference.lut_bmm_backward(a, b, grad_c, lut, ste=ste)


INT32_MAX = (1 << 31) - 1
PLAN_PATHS = ("avx2", "avx512vbmi")
"""ISA paths whose byte-plane kernels run table plans (exact product, offsets, one or two planes)."""


ROWS_PRICED = 512
"""Calls of at least this many rows of a (and 32 columns of b) price the AVX2 plans for the rows order (see
:func:`rows_order_pays`, which then runs it from 6-bit codes on); other calls price the blend tree."""
ROWS_GAIN = {6: 1.5, 7: 2.5, 8: 4.5}
"""How many times less the AVX2 rows order costs per look-up than the blend tree, at thousands of rows, by the
code bits looked up (measured on AMD Zen 5, one and two planes: 1.6-2.1x, 3.1x, 5.4-6.8x)."""


def prices_rows_order(rows: int, columns: int) -> bool:
    """Whether a call of ``rows`` rows of a and ``columns`` of b prices its AVX2 plan for the rows order."""
    return rows >= ROWS_PRICED and columns >= 32


def rows_order_pays(kernel: str, bits: int, planes: int, rows: int, columns: int) -> bool:
    """Whether the AVX2 byte-plane kernel ``kernel`` runs in its rows order (lanes over 32 columns; see
    ``rows_order.h``) for ``rows`` rows of a, ``columns`` of b and codes of ``bits`` bits: each k step then
    transposes ``2^bits`` rows of 32 columns, paid back over the rows where the blend tree of ``2^(bits - 4)``
    sub-tables (half as many folded) costs more, and whole blocks of 32 columns are summed (a depthwise conv's
    one column wastes 31 lanes). Measured on AMD Zen 5 (one thread, 576 k steps): the rows order wins from 512
    rows at 6 bits, 256 at 7 and 128 at 8, by 1.3-1.8x there and by :data:`ROWS_GAIN` at thousands of rows."""
    looked_up = bits - 1 if kernel == "avx2/fold" else bits
    if kernel not in ("avx2/nibble", "avx2/fold") or planes == 0 or looked_up < 6 or rows < 1 << (15 - looked_up):
        return False
    return -(-columns // 32) * 32 <= columns * ROWS_GAIN[looked_up]


AVX2_TRANSPOSE_COST = 22.0
"""The AVX2 rows order's transposes per k step (``2^bits`` rows of 32 columns) per row of a, in the units of
:func:`plane_cost` per 64 look-ups: paid over the rows of a call, so that at 128 rows of 8-bit codes the rows
order costs about 56 against the blend tree's 68 (measured on AMD Zen 5: 1.3x faster there) and at thousands of
rows about :data:`~approxlut.native.plan.AVX2_ROWS_COST`."""
SWAP_MARGIN = 0.9
"""A GEMM swaps its operands where that saves more than a tenth of the look-up work: swapped, it also packs the
other operand's codes and plans the transposed table."""


def lookup_work(isa: str, rows: int, columns: int, bits: int) -> float:
    """Estimated look-up work per k step of a GEMM whose lanes run over ``rows`` codes of ``bits`` bits and
    whose columns are ``columns``, in the units of :func:`plane_cost`.

    On VBMI: the vectors looked up (:func:`looked_up_lanes`) and each column's share per block of lanes, in
    look-ups at that width (measured: :attr:`~approxlut.native.costs.KernelCosts.column`). On AVX2: the blend
    tree's vectors (its cost grows with its lanes alone), or, in the rows order where that runs
    (:func:`rows_order_pays`), whole blocks of 32 columns at its cost, transposes included
    (:data:`AVX2_TRANSPOSE_COST`).
    """
    if isa == "avx2" and rows_order_pays("avx2/nibble", bits, 1, rows, columns):
        per_vector = AVX2_ROWS_COST + AVX2_TRANSPOSE_COST * (1 << bits) / rows
        return -(-columns // 32) * 32 * rows / 64 * per_vector
    share = kernel_costs().column if isa == "avx512vbmi" else 0.0
    vectors = looked_up_lanes(isa, rows) / 64 + -(-rows // LANES) * share
    return columns * vectors * plane_cost(isa, bits, 1)


def legacy_kernel(isa: str, lut: PreparedLut) -> tuple[str, str]:
    """``(kernel, table layout)`` for the paths without plans (scalar, AVX-512BW) and for calls no plan fits
    (tables spanning more than 2^16 values after the offsets, sums too long for the plan's int32 parts)."""
    if isa == "scalar":
        return "scalar/i32", "i32"
    if isa == "avx2":
        return "avx2/gather", "i32"
    if not lut.fits_16bit_span:
        return "avx512/gather", "i32"
    return "avx512bw/i16", "i16"


def table_layout(lut: PreparedLut, layout: str, bits_eff: int | None = None) -> tuple[torch.Tensor, int, int, int]:
    """``(table, column stride, plane stride, bias)`` of a LUT in the ``i32`` or ``i16`` kernel layout (cached).

    Strides are in bytes; the i16 kernel adds ``bias`` back per product (stored entry + bias = T). With
    ``bits_eff`` (every code of ``a`` is below ``2^bits_eff``) the i16 layout keeps only the rows those codes
    reach.
    """
    full = 1 << lut.bits_a
    rows = full if layout == "i32" or bits_eff is None else min(full, 1 << bits_eff)

    def build() -> tuple[torch.Tensor, int, int, int]:
        columns = lut.forward.to("cpu").t()[:, :rows].to(torch.int64).contiguous()  # [2^bits_b, rows]: column b
        if layout == "i32":
            return columns.to(torch.int32), 4 * rows, 0, 0
        padded = max(64, rows)
        bias = lut.min_value + (1 << 15)  # signed 16-bit: T - min - 2^15
        table = torch.zeros((columns.shape[0], padded), dtype=torch.int16)
        table[:, :rows] = (columns - bias).to(torch.int16)
        return table, 2 * padded, 0, bias

    return lut.cached(f"cpu-layout:{layout}:{rows}", build)


def error_bound(lut: PreparedLut) -> int:
    """The largest ``|T - a·b|`` (cached): what a plan with the float exact product sums per product in int32 (the
    kernels' sums and the offsets), before that product is added."""
    return lut.cached("error-bound", lambda: int(lut.error_table().abs().max()))


def pack_codes(x: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes (``value & (2^bits - 1)``) of an integer tensor, same shape (a view of an 8-bit one)."""
    codes = x.view(torch.uint8) if x.dtype == torch.int8 else x.to(torch.uint8)
    return codes if bits == 8 else codes & ((1 << bits) - 1)


def exact_kind() -> str:
    """How this machine computes the exact product of a plan: ``"int8"`` (oneDNN int8 GEMM, exact with VNNI or
    AMX) or ``"values"`` (float32 GEMMs kept exact by slicing)."""
    return "int8" if int8_gemm_is_exact() else "values"


@dataclass(frozen=True)
class Epilogue:
    """What a quantised layer does to the sums, per output channel, in float32 and in this order:
    ``y = sum * scale``, then ``+ bias``, then ``+ extra`` (each ``[O]`` or ``None``).

    An affine layer (unsigned codes with zero points) also gives ``zero`` (its weight zero points ``zb``) and
    ``offset`` (``za·(Σqb − K·zb)``, with ``za`` the activation zero point): its rescale is then that of the
    step-by-step path, ``y = float32((float64(float32(sum)) − offset − zero·Σqa) · scale)`` (the zero-point
    terms exact in float64, ``Σqa`` each output's sum of activation codes, given by the op), then ``+ bias``,
    ``+ extra`` in float32.
    """

    scale: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    extra: torch.Tensor | None = None
    zero: torch.Tensor | None = None
    offset: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.zero is None) != (self.offset is None):
            raise ConfigError("an affine epilogue takes both its weight zero points and its offsets")

    @property
    def affine(self) -> bool:
        """Whether the zero-point terms of the affine scheme come off before the rescale."""
        return self.zero is not None

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three as contiguous float32 tensors (empty for ``None``), as the C++ output routine takes them."""

        def one(t: torch.Tensor | None) -> torch.Tensor:
            return torch.empty(0) if t is None else t.detach().to(torch.float32).contiguous()

        return one(self.scale), one(self.bias), one(self.extra)

    def affine_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``zero`` and ``offset`` as contiguous float64 tensors (empty where not affine)."""

        def one(t: torch.Tensor | None) -> torch.Tensor:
            return torch.empty(0) if t is None else t.detach().to(torch.float64).reshape(-1).contiguous()

        return one(self.zero), one(self.offset)

    def code_sums_for(self, code_sums: torch.Tensor | None) -> torch.Tensor:
        """The op's sums of activation codes as the C++ output routines take them (int32, contiguous; empty where
        not affine).

        Raises:
            ConfigError: an affine epilogue without them.
        """
        if not self.affine:
            return torch.empty(0, dtype=torch.int32)
        if code_sums is None:
            raise ConfigError("an affine epilogue needs each output's sum of activation codes")
        return code_sums.to(torch.int32).contiguous()


class WeightCodes:
    """Codes of operand b ``[G, K, N]`` (n-major when b is a transposed view of ``[G, N, K]`` weights), packed
    once per call, with the XOR-flipped copy that int8 plans may read (made on first request)."""

    def __init__(self, b: torch.Tensor, bits: int) -> None:
        self.codes = pack_codes(b, bits)
        self._max: int | None = None
        self._flipped: dict[int, torch.Tensor] = {}

    def reaches(self, flip: int) -> bool:
        """Whether some code is at least ``flip``."""
        if self._max is None:
            from . import build

            self._max = int(build.load().max_code(self.codes, 0xFF)) if self.codes.numel() else 0
        return self._max >= flip

    def flipped(self, flip: int) -> torch.Tensor:
        """The codes XOR ``flip`` (same layout)."""
        if flip not in self._flipped:
            self._flipped[flip] = self.codes ^ flip
        return self._flipped[flip]


@dataclass
class KernelSums:
    """What :meth:`CpuEngine._kernel_sums` ran: the kernel's sums ``[G, N, Mp]``, set on the first ``rows``
    lanes (a's rows; the rest is padding), and the plan (``None``: the sums are the result), with the operands'
    codes as the parts need them."""

    ct: torch.Tensor
    plan: TablePlan | None
    at: torch.Tensor
    bc: torch.Tensor
    rows: int


@dataclass(frozen=True)
class ResultInto:
    """Where a GEMM writes its float32 result: ``out [G, M, N]`` (any strides), then the ``epilogue`` per column,
    or per lane (row of a) where ``lanes``: a GEMM run with its operands swapped writes the transposed view. An
    affine epilogue takes ``code_sums``, each row's sum of activation codes (``[M]`` of the unswapped GEMM: per
    column where ``lanes``)."""

    out: torch.Tensor
    epilogue: Epilogue | None = None
    lanes: bool = False
    code_sums: torch.Tensor | None = None

    def swapped(self) -> ResultInto:
        """The same result for the swapped GEMM (``out`` transposed, the epilogue on the other axis)."""
        return ResultInto(self.out.transpose(1, 2), self.epilogue, not self.lanes, self.code_sums)

    def parts(self) -> tuple[torch.Tensor, ...]:
        """The epilogue's scale, bias and extra term, one float32 value per column (per lane where ``lanes``;
        empty where absent), its weight zero points and offsets likewise in float64, and the sums of activation
        codes (int32, on the other axis), as the C++ output routine takes them."""
        count = self.out.shape[1 if self.lanes else 2]
        ep = self.epilogue or Epilogue()
        tensors = (*ep.tensors(), *ep.affine_tensors())
        per_channel = (t.reshape(-1).expand(count).contiguous() if t.numel() == 1 else t for t in tensors)
        return (*per_channel, ep.code_sums_for(self.code_sums))

    def write(self, result: torch.Tensor) -> None:
        """Write an integer result ``[G, M, N]`` and apply the epilogue, step by step as torch rounds it."""
        self.out.copy_(result)
        if self.epilogue is None:
            return
        view = (1, -1, 1) if self.lanes else (1, 1, -1)
        ep = self.epilogue
        scale = ep.scale
        if ep.affine:  # (as the affine layers' step-by-step path: the terms and the rescale in float64)
            zero, offset = ep.affine_tensors()
            sums = ep.code_sums_for(self.code_sums).double().reshape((1, 1, -1) if self.lanes else (1, -1, 1))
            rest = self.out.double() - torch.addcmul(offset.reshape(view), sums, zero.reshape(view))
            if scale is not None:
                rest = rest * scale.detach().to(torch.float32).reshape(view)
            self.out.copy_(rest)
            scale = None
        for part, apply in ((scale, self.out.mul_), (ep.bias, self.out.add_), (ep.extra, self.out.add_)):
            if part is not None:
                apply(part.detach().to(torch.float32).reshape(view))


class CpuEngine(Engine):
    """The C++ kernels (AVX2 / AVX-512BW / AVX-512 VBMI / scalar, chosen at run time), built on first use.

    On the AVX2 and VBMI paths every call runs a :class:`~approxlut.native.plan.TablePlan`: the kernels look up
    one or two byte planes, and where that is cheaper an exact product runs beside them (int8 GEMM on the same
    code panel, or float32 on the values). Before planning, where the cost model says so, a table that ignores
    the low bits of a runs on ``a >> L`` with its coarse table (:meth:`PreparedLut.coarse`), and a GEMM of a
    few rows swaps its operands (:meth:`swaps_operands`).
    """

    name = "cpu"
    priority = 10
    devices = ("cpu",)
    last_plan: TablePlan | None = None
    """The plan of the last call's kernels (``None``: a path without plans)."""

    def unavailable_reason(self) -> str | None:
        """Why not (not x86-64, no compiler, build failed); a path forced by ``LUTGEN_CPU_ISA`` that this CPU
        lacks is an error, never a silent fallback."""
        from . import build

        if not detect().paths():
            return f"the CPU kernels need an x86-64 CPU, this is {detect().machine}"
        choose_path()
        try:
            build.load()
        except NativeUnavailableError as error:
            return str(error)
        return None

    def describe(self) -> str:
        return f"cpu ({choose_path()})"

    def _flip(self, isa: str, bits: int, signed: bool) -> int:
        """The XOR the packing may apply to codes of a ``bits``-wide operand (int8 exact products only)."""
        if isa not in PLAN_PATHS or exact_kind() != "int8":
            return 0
        return int8_flip(bits, signed)

    @staticmethod
    def swaps_operands(isa: str, m_count: int, n_count: int, bits_a: int = 8, bits_b: int = 8) -> bool:
        """Whether a GEMM of ``m_count`` rows of a (codes of ``bits_a`` bits) and ``n_count`` columns of b (codes
        of ``bits_b``) is cheaper with its operands swapped (:func:`lookup_work`, by :data:`SWAP_MARGIN`).

        The kernels run over lanes of rows of a (:func:`looked_up_lanes`), so a few rows (a batch of one through
        a deep layer) waste most of them, and each column pays for its table per block of lanes, so a block of
        one or two vectors (64 or 128 rows) pays more per look-up than one of four; swapped, the lanes run over
        b's columns instead and look up b's codes. On AVX2 a swap may also let the call run in the rows order.
        """
        if isa not in PLAN_PATHS:
            return False
        swapped = lookup_work(isa, n_count, m_count, bits_b)
        return swapped < SWAP_MARGIN * lookup_work(isa, m_count, n_count, bits_a)

    def _swaps(self, ext: Any, isa: str, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> bool:
        """Whether the GEMM of ``a [G, M, K]`` and ``b [G, K, N]`` swaps its operands: at the LUT's code widths,
        then (where that says so) at the widths its codes reach (activations after a ReLU often take fewer bits).
        (Pricing each way round by its plan's look-ups instead was measured and not kept: over 40 linear shapes
        and four tables on a Zen 5 it chose 8.6 % slower in total, against 0.4 % for the code widths.)"""
        m_count, n_count = a.shape[1], b.shape[2]
        if not self.swaps_operands(isa, m_count, n_count, lut.bits_a, lut.bits_b):
            return False
        reach = [
            max(1, int(ext.max_code(pack_codes(t, bits), (1 << bits) - 1)).bit_length())
            for t, bits in ((a, lut.bits_a), (b, lut.bits_b))
        ]
        return self.swaps_operands(isa, m_count, n_count, *reach)

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        result = self._bmm(a, b, lut, None)
        assert result is not None
        return result

    def lut_bmm_into(
        self,
        out: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        lut: PreparedLut,
        epilogue: Epilogue | None = None,
        *,
        code_sums: torch.Tensor | None = None,
    ) -> None:
        """:meth:`lut_bmm` written into the float32 ``out [G, M, N]`` (any strides), followed by the ``epilogue``
        per column (a quantised layer's rescale and bias, rounded step by step as torch's in-place ops round
        them; an affine one takes ``code_sums [M]``, each row of a's sum of activation codes). The sums, the
        table's other parts and the epilogue are written in one C++ pass, with no integer result and no
        transposed copy of it (except where the sums need int64)."""
        self._bmm(a, b, lut, ResultInto(out, epilogue, code_sums=code_sums))

    def _bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut, into: ResultInto | None) -> torch.Tensor | None:
        """The result ``[G, M, N]`` (int32, or int64 where checked within int32), or ``None`` once written
        ``into``."""
        from . import build

        ext = build.load()
        isa = choose_path()
        if lut.coarse_bits and a.numel():
            low, high = (int(v) for v in a.aminmax())
            top = (1 << lut.bits_a) - 1 if low < 0 else high  # (the largest code: negative values reach 2^bits - 1)
            shift = self._dropped_bits(isa, lut, top, prices_rows_order(a.shape[1], b.shape[2]))
        else:
            shift = 0
        if shift:  # a table that ignores a's low bits: its rows of a >> L, with fewer bits to look up
            out = self._bmm(a >> shift, b, lut.coarse(), into)
            self.last_path = f"{self.last_path} (a >> {shift})"
            return out
        if self._swaps(ext, isa, a, b, lut):  # C = (B^T A^T)^T with T'[b, a] = T[a, b]
            swapped = None if into is None else into.swapped()
            out = self._bmm(b.transpose(1, 2), a.transpose(1, 2), lut.transposed(), swapped)
            self.last_path = f"{self.last_path} (operands swapped)"
            return None if out is None else out.transpose(1, 2)
        m_count = a.shape[1]
        at, max_code, flipped = ext.pack_transposed(a, (1 << lut.bits_a) - 1, self._flip(isa, lut.bits_a, lut.signed))
        k_count = a.shape[2]
        chunk = max(1, INT32_MAX // max(lut.max_abs, 1))
        if k_count <= chunk:
            weights = WeightCodes(b, lut.bits_b)
            sums = self._kernel_sums(ext, isa, at, m_count, int(max_code), bool(flipped), weights, lut)
            plan = sums.plan
            if into is not None and (plan is None or plan.scale <= INT32_MAX):
                self._finish_into(ext, sums, lut, into, exact_values=(a, b))
                return None
            ct = self._finish(ext, sums, lut, exact_values=(a, b))
        else:  # every int32 partial sum covers at most `chunk` products; the total goes int64
            total = torch.zeros((at.shape[0], b.shape[2], m_count), dtype=torch.int64)
            for k0 in range(0, k_count, chunk):
                sl = slice(k0, k0 + chunk)
                weights = WeightCodes(b[:, sl], lut.bits_b)
                panel = at[:, sl].contiguous()
                sums = self._kernel_sums(ext, isa, panel, m_count, int(max_code), bool(flipped), weights, lut)
                total += self._finish(ext, sums, lut, exact_values=(a[:, :, sl], b[:, sl]))
            self.last_path = f"{self.last_path} k-split"
            ct = reference.check_int32(total, lut)
        if into is None:
            return ct.transpose(1, 2)
        into.write(ct.transpose(1, 2))
        return None

    def conv2d_into(
        self,
        out: torch.Tensor,
        x: torch.Tensor,
        w: torch.Tensor,
        lut: PreparedLut,
        *,
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        dilation: tuple[int, int],
        groups: int,
        epilogue: Epilogue | None = None,
        pad_value: int = 0,
    ) -> bool:
        """Direct conv2d: ``out [N, O, OH, OW]`` (float32, contiguous) from integer values ``x [N, C, H, W]``
        and ``w [O, C/groups, kh, kw]``, with the im2col panel built in C++ (no torch temporaries), and a
        quantised layer's ``epilogue`` applied to the sums in the same pass (an affine one with each output's sum
        of the codes of ``x`` over its receptive field: ``x`` then holds unsigned codes). Padding takes value
        ``pad_value`` (the affine scheme pads with the activation zero point, the code of the real value 0).

        Returns ``False`` (``out`` untouched) when the sums need the int64 split of :meth:`lut_bmm`, or when
        :meth:`lut_bmm` would swap the operands (few output positions).
        """
        sums_of = None
        if epilogue is not None and epilogue.affine:
            sums_of = (x.to(torch.uint8).contiguous(), pad_value)
        return self._conv2d_into(
            out,
            x,
            w,
            lut,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            epilogue=epilogue,
            pad_value=pad_value,
            sums_of=sums_of,
        )

    def _conv2d_into(
        self,
        out: torch.Tensor,
        x: torch.Tensor,
        w: torch.Tensor,
        lut: PreparedLut,
        *,
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        dilation: tuple[int, int],
        groups: int,
        epilogue: Epilogue | None,
        pad_value: int,
        sums_of: tuple[torch.Tensor, int] | None,
    ) -> bool:
        """:meth:`conv2d_into`, with the codes whose sums an affine epilogue takes and the code of their padding
        (those of the layer: ``x`` and ``pad_value`` may be shifted for a coarse table)."""
        from . import build

        ext = build.load()
        isa = choose_path()
        codes = (x if x.dtype in (torch.int8, torch.uint8) else pack_codes(x, lut.bits_a)).contiguous()
        mask = (1 << lut.bits_a) - 1
        top = int(ext.max_code(codes, mask))
        if pad_value and any(padding):  # (the padding's code is looked up too)
            top = max(top, pad_value & mask)
        rows, columns = out.shape[0] * out.shape[2] * out.shape[3], out.shape[1] // groups
        priced = prices_rows_order(rows, columns)
        shift = self._dropped_bits(isa, lut, top, priced)
        if shift:  # (as in lut_bmm; the padding's value is shifted as the codes are)
            done = self._conv2d_into(
                out,
                x >> shift,
                w,
                lut.coarse(),
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                epilogue=epilogue,
                pad_value=pad_value >> shift,
                sums_of=sums_of,
            )
            self.last_path = f"{self.last_path} (a >> {shift})"
            return done
        out_ch, cg, kh, kw = w.shape
        k_count = cg * kh * kw
        if k_count > max(1, INT32_MAX // max(lut.max_abs, 1)):
            return False
        weights = WeightCodes(w.reshape(groups, out_ch // groups, -1).transpose(1, 2), lut.bits_b)
        flip, flipped, bits_eff = self._reach(isa, lut, top)
        plan, bc = self._plan(isa, bits_eff, flipped, weights, lut, k_count, priced)
        if plan is None:
            flip, bits_eff = 0, max(1, top.bit_length())
        elif not flipped:
            flip = 0
        kernel, table, col_stride, plane_stride, table_bias, planes, kernel_args = self._kernel_table(
            isa, lut, plan, bits_eff
        )
        empty = torch.empty(0)
        exact_nchw = empty
        if plan is not None and plan.exact == "values":
            from .decompose import exact_product_conv2d

            exact_nchw = exact_product_conv2d(
                x, w, lut, stride=stride, padding=padding, dilation=dilation, groups=groups, pad_value=pad_value
            ).contiguous()
        ep = epilogue or Epilogue()
        out_zero, out_offset = ep.affine_tensors()
        bits = self._kernel_bits(plan, bits_eff)
        ext.conv_run(
            codes,
            [kh, kw, *stride, *padding, *dilation, groups],
            kernel,
            bits,
            planes,
            *kernel_args,
            self._rows_order(kernel, bits, planes, rows, columns),
            table,
            col_stride,
            plane_stride,
            table_bias,
            bc,
            mask,
            flip,
            tuning.k_slice(),
            1 if plan is None else plan.scale,
            plan is not None and plan.exact == "int8",
            empty if plan is None or plan.row_table is None else plan.row_table,
            0 if plan is None else plan.row_bias,
            empty if plan is None else self._col_offset(plan),
            0 if plan is None else plan.bias,
            exact_nchw,
            *ep.tensors(),
            empty if plan is None or plan.fold_weights is None else plan.fold_weights,
            0 if plan is None else plan.exact_shift,
            0 if plan is None else plan.exact_flip,
            pad_value,
            out_zero,
            out_offset,
            empty if sums_of is None else sums_of[0],
            0 if sums_of is None else sums_of[1],
            out,
        )
        return True

    def _dropped_bits(self, isa: str, lut: PreparedLut, top: int, rows_order: bool) -> int:
        """How many low bits of a's codes to drop: ``lut.coarse_bits`` (the table ignores them), where the
        coarse table's plan for codes up to ``top`` (priced for the rows order where ``rows_order``) costs no
        more per look-up than the table's own (its exact product, of the coarse values, may fit worse); always
        on paths without plans (a smaller table)."""
        bits = lut.coarse_bits
        if bits == 0 or isa not in PLAN_PATHS:
            return bits
        own = self._plan_cost(isa, lut, top, rows_order)
        coarse = self._plan_cost(isa, lut.coarse(), top >> bits, rows_order)
        return bits if coarse is not None and (own is None or coarse <= own) else 0

    def _reach(self, isa: str, lut: PreparedLut, top: int) -> tuple[int, bool, int]:
        """``(flip, flipped, bits_eff)`` for codes of a up to ``top``: the XOR the packing may apply, whether it
        does (some code reaches it), and the width the stored codes then span (a flipped panel spans every code
        below ``2 * flip``)."""
        flip = self._flip(isa, lut.bits_a, lut.signed)
        flipped = bool(flip) and top >= flip
        return flip, flipped, max(1, (2 * flip - 1 if flipped else top).bit_length())

    def _plan_cost(self, isa: str, lut: PreparedLut, top: int, rows_order: bool) -> float | None:
        """The estimated cost of the plan for codes of a up to ``top`` (weights over their whole range), priced
        for the rows order where ``rows_order``."""
        kind = exact_kind()
        flip, flipped, bits_eff = self._reach(isa, lut, top)
        flip_b = int8_flip(lut.bits_b, lut.signed) if kind == "int8" else 0
        plan = plan_for(lut, isa, 1 << bits_eff, flip if flipped else 0, flip_b, kind, rows_order=rows_order)
        return None if plan is None else plan.cost

    @staticmethod
    def _col_offset(plan: TablePlan) -> torch.Tensor:
        return torch.empty(0) if plan.col_offset is None else plan.col_offset

    @staticmethod
    def _kernel_bits(plan: TablePlan | None, bits_eff: int) -> int:
        """The code width the kernel is run for: the plan's (fewer bits than the codes' where it folds bit 7 into
        the int8 product or is narrow)."""
        return bits_eff if plan is None else plan.lookup_bits

    def _parts(self, ext: Any, sums: KernelSums) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact int8 product and the row-offset sums of a planned call (empty tensors where none)."""
        plan = sums.plan
        assert plan is not None
        empty = torch.empty(0)
        at = sums.at
        if plan.exact_shift:  # a coarse table's codes as the values they stand for (see TablePlan.exact_shift)
            at = ((at.to(torch.int32) << plan.exact_shift) & 0xFF ^ plan.exact_flip).to(torch.uint8)
        exact = ext.exact_int8(at, sums.bc, sums.rows) if plan.exact == "int8" else empty
        if plan.fold_weights is not None:  # bit 7 of a's codes times the fold weights of b's
            weights = plan.fold_weights[sums.bc.long()].view(torch.uint8)
            exact = exact + ext.exact_int8(sums.at >> 7, weights, sums.rows)
        rows = empty
        if plan.row_table is not None:
            table = plan.row_table
            zero = torch.zeros((sums.at.shape[0], 1, sums.at.shape[1]), dtype=torch.uint8).transpose(1, 2)
            bits_eff = max(1, (plan.rows - 1).bit_length())
            kernel = "avx512vbmi/planes" if choose_path() == "avx512vbmi" else "avx2/nibble"
            planes, padded = table.shape[1], table.shape[2]
            args = (table, planes * padded, padded, plan.row_bias, bits_eff, planes, 1, 1, 8, 7, 0, False)
            rows = ext.lut_gemm(kernel, sums.at, zero, sums.rows, *args)
        return exact, rows

    def _finish(
        self,
        ext: Any,
        sums: KernelSums,
        lut: PreparedLut,
        *,
        exact_values: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The result ``[G, N, M]`` of a GEMM (``M = sums.rows``): int32, or int64 where a float exact product was
        added."""
        plan, valid = sums.plan, sums.rows
        if plan is None:
            return sums.ct[:, :, :valid]
        exact, rows = self._parts(ext, sums)
        ct = sums.ct
        k_count = sums.at.shape[1]
        if not ext.finish_gemm(
            ct, valid, plan.scale, exact, rows, self._col_offset(plan), sums.bc, k_count * plan.bias
        ):
            raise_beyond_int32(lut)
        if plan.exact != "values":
            return ct[:, :, :valid]
        from .decompose import exact_bmm

        a, b = exact_values
        product = exact_bmm(a.to(torch.float32), b.to(torch.float32)).to(torch.int64).transpose(1, 2)
        return reference.check_int32(ct[:, :, :valid].to(torch.int64) + product, lut)

    def _finish_into(
        self,
        ext: Any,
        sums: KernelSums,
        lut: PreparedLut,
        into: ResultInto,
        *,
        exact_values: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        """:meth:`_finish` written as float32 ``into`` its result, with its epilogue."""
        plan, empty = sums.plan, torch.empty(0)
        if plan is None:
            parts: tuple[Any, ...] = (1, empty, empty, empty, sums.bc, 0, empty)
        else:
            exact, rows = self._parts(ext, sums)
            product = empty
            if plan.exact == "values":  # [G, M, N] as [G, N, M] (C++ takes its lanes contiguous)
                from .decompose import exact_bmm

                a, b = exact_values
                product = exact_bmm(a.to(torch.float32), b.to(torch.float32)).transpose(1, 2)
            constant = sums.at.shape[1] * plan.bias
            parts = (plan.scale, exact, rows, self._col_offset(plan), sums.bc, constant, product)
        if not ext.finish_into(into.out, sums.ct, sums.rows, *parts, *into.parts(), into.lanes):
            raise_beyond_int32(lut)

    def _kernel_sums(
        self,
        ext: Any,
        isa: str,
        at: torch.Tensor,
        rows: int,
        max_code: int,
        flipped: bool,
        weights: WeightCodes,
        lut: PreparedLut,
    ) -> KernelSums:
        """The kernel's sums ``C^T [G, N, Mp]`` for the K-major code panel ``at [G, K, Mp]`` of a's ``rows`` rows
        and the codes of b, with the plan they belong to (``None``: they are the result)."""
        bits_eff = max(1, max_code.bit_length())
        columns = weights.codes.shape[2]
        plan, bc = self._plan(isa, bits_eff, flipped, weights, lut, at.shape[1], prices_rows_order(rows, columns))
        if plan is None and flipped:  # back to plain codes for the int32/int16 kernels
            at = at ^ int8_flip(lut.bits_a, lut.signed)
            bits_eff = lut.bits_a
        kernel, table, col_stride, plane_stride, bias, planes, kernel_args = self._kernel_table(
            isa, lut, plan, bits_eff
        )
        bits = self._kernel_bits(plan, bits_eff)
        args = (table, col_stride, plane_stride, bias, bits, planes, *kernel_args)
        ct = ext.lut_gemm(kernel, at, bc, rows, *args, self._rows_order(kernel, bits, planes, rows, columns))
        return KernelSums(ct, plan, at, bc, rows)

    def _rows_order(self, kernel: str, bits: int, planes: int, rows: int, columns: int) -> bool:
        """Whether a call runs in the rows order (:func:`rows_order_pays`); said in ``last_path`` where it does."""
        order = rows_order_pays(kernel, bits, planes, rows, columns)
        if order:
            self.last_path = f"{self.last_path} (rows order)"
        return order

    def _plan(
        self,
        isa: str,
        bits_eff: int,
        flipped: bool,
        weights: WeightCodes,
        lut: PreparedLut,
        k_count: int,
        rows_order: bool,
    ) -> tuple[TablePlan | None, torch.Tensor]:
        """The plan for codes of a below ``2^bits_eff`` (XOR-flipped where ``flipped``) and a reduction of
        ``k_count``, priced for the rows order where ``rows_order``, with the codes of b it reads; ``None`` (and
        the plain codes) where no plan applies."""
        if isa not in PLAN_PATHS:
            return None, weights.codes
        kind: str | None = exact_kind() if k_count > 0 else None
        flip_a = int8_flip(lut.bits_a, lut.signed) if flipped else 0
        flip_b = 0
        if kind == "int8":
            flip = int8_flip(lut.bits_b, lut.signed)
            if flip and weights.reaches(flip):
                flip_b = flip
        plan = plan_for(lut, isa, 1 << bits_eff, flip_a, flip_b, kind, rows_order=rows_order)
        if plan is None or k_count > INT32_MAX // plan.sum_bound:
            return None, weights.codes
        if plan.exact == "values" and k_count > INT32_MAX // max(error_bound(lut), 1):
            return None, weights.codes  # (its int32 part, the error T - a·b, may reach beyond int32 where T does not)
        return plan, weights.flipped(flip_b) if flip_b else weights.codes

    def _kernel_table(
        self, isa: str, lut: PreparedLut, plan: TablePlan | None, bits_eff: int
    ) -> tuple[str, torch.Tensor, int, int, int, int, tuple[int, int, int, int, int]]:
        """``(kernel, table, column stride, plane stride, bias, planes, (group_lo, group_hi, plane_shift,
        fold_bit, hi_drop))`` of a call, and
        what it runs in words (``last_path``, ``last_plan``)."""
        if plan is None:
            kernel, layout = legacy_kernel(isa, lut)
            table, col_stride, plane_stride, bias = table_layout(lut, layout, bits_eff)
            self.last_path, self.last_plan = f"{kernel} a{bits_eff}", None
            return kernel, table, col_stride, plane_stride, bias, 1, (1, 1, 8, 7, 0)
        family = "avx512vbmi" if isa == "avx512vbmi" else "avx2"
        folded_here = plan.fold and plan.fold_weights is None
        kernel = f"{family}/fold" if folded_here else "avx512vbmi/planes" if family == "avx512vbmi" else "avx2/nibble"
        padded = plan.table.shape[2]
        self.last_path, self.last_plan = f"{kernel} a{bits_eff}: {plan.describe()}", plan
        col_stride = plan.table.shape[1] * padded
        kernel_args = (plan.group_lo, plan.group_hi, plan.shift, plan.fold_bit, plan.hi_drop)
        return kernel, plan.table, col_stride, padded, 0, plan.planes, kernel_args

    def lut_bmm_backward(
        self, a: torch.Tensor, b: torch.Tensor, grad_c: torch.Tensor, lut: PreparedLut, *, ste: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from . import build

        ext = build.load()
        ga_table, gb_table = lut.gradient_tables(ste=ste)
        ga_rows = ga_table.to("cpu").contiguous()
        gb_cols = lut.cached(f"cpu-gb-cols:{ste}", lambda: gb_table.to("cpu").t().contiguous())
        codes_a = pack_codes(a, lut.bits_a)
        ca = codes_a.contiguous()
        at = codes_a.transpose(1, 2).contiguous()
        cb = pack_codes(b, lut.bits_b).contiguous()
        gc = grad_c.to(torch.float32).contiguous()
        gct = gc.transpose(1, 2).contiguous()
        self.last_path = "cpu/backward"
        gb_rows = gb_table.to("cpu").contiguous()
        grad_a, grad_b = ext.lut_gemm_backward(ca, at, cb, gc, gct, ga_rows, gb_cols, gb_rows)
        return grad_a, grad_b


def raise_beyond_int32(lut: PreparedLut) -> None:
    """Raise the error :func:`reference.check_int32` raises for sums beyond int32."""
    reference.check_int32(torch.tensor([INT32_MAX + 1], dtype=torch.int64), lut)


class _Registry:
    """Registered engines by name, the last path run, and which fallbacks have been warned about."""

    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.warned: set[str] = set()
        self.last_path: str | None = None


_REGISTRY = _Registry()


def register_engine(name: str, impl: Engine) -> None:
    """Register (or replace) the engine ``impl`` under ``name``."""
    impl.name = name
    _REGISTRY.engines[name] = impl


def last_path() -> str | None:
    """What the most recent :func:`lut_bmm` ran: the engine, and for native engines the kernel path."""
    return _REGISTRY.last_path


def get_engine(name: str) -> Engine:
    """The engine registered as ``name`` (a :class:`ConfigError` naming the known ones if none)."""
    try:
        return _REGISTRY.engines[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY.engines))
        raise ConfigError(f"unknown LUT-GEMM engine '{name}' (known: {known})") from None


def available_engines(device: torch.device | str | None = None) -> list[str]:
    """Names of registered engines usable on ``device`` (all devices when ``None``), best first.

    Checking a native engine may build it (first use).
    """
    dev = None if device is None else torch.device(device)
    usable = [
        engine
        for engine in _REGISTRY.engines.values()
        if (dev is None or engine.supports(dev)) and engine.unavailable_reason() is None
    ]
    return [engine.name for engine in sorted(usable, key=lambda e: -e.priority)]


def resolve_engine(name: str | None, device: torch.device | str) -> Engine:
    """The engine to run on ``device``: ``name``, else ``$LUTGEN_ENGINE``, else the best available.

    Raises:
        NativeUnavailableError: the named engine cannot run here.
        ConfigError: the name is unknown.
    """
    dev = torch.device(device)
    requested = name or os.environ.get(ENGINE_ENV) or None
    if requested is not None:
        engine = get_engine(requested)
        if not engine.supports(dev):
            raise NativeUnavailableError(f"engine '{requested}' does not run on device '{dev.type}'")
        reason = engine.unavailable_reason()
        if reason is not None:
            raise NativeUnavailableError(f"engine '{requested}' is unavailable: {reason}")
        return engine
    candidates = sorted((e for e in _REGISTRY.engines.values() if e.supports(dev)), key=lambda e: -e.priority)
    for engine in candidates:
        reason = engine.unavailable_reason()
        if reason is None:
            return engine
        if engine.name not in _REGISTRY.warned:
            _REGISTRY.warned.add(engine.name)
            warnings.warn(
                f"lutgen: LUT-GEMM engine '{engine.name}' unavailable ({reason}); falling back to a slower one",
                RuntimeWarning,
                stacklevel=3,
            )
    return _REGISTRY.engines["reference"]


def check_operands(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate LUT-GEMM operands; return them with the group dimension broadcast to a common ``G``.

    ``a`` holds values of operand a ``[G, M, K]``, ``b`` values of operand b ``[G, K, N]`` (either ``G``
    may be 1), integer dtypes, values within the LUT's operand ranges.
    """
    for label, x, bits in (("a", a, lut.bits_a), ("b", b, lut.bits_b)):
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"LUT-GEMM operand {label} must be a tensor, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ConfigError(f"LUT-GEMM operand {label} must hold integer values, got {x.dtype}")
        if x.dim() != 3:
            raise ConfigError(f"LUT-GEMM operand {label} must be 3-D [G, rows, cols], got shape {tuple(x.shape)}")
        if x.numel():
            lo, hi = (int(v) for v in torch.aminmax(x))
            vmin, vmax = value_range(bits, lut.signed)
            if lo < vmin or hi > vmax:
                kind = "signed" if lut.signed else "unsigned"
                raise ConfigError(
                    f"LUT-GEMM operand {label} has values {lo}..{hi}, outside {vmin}..{vmax} of the "
                    f"{bits}-bit {kind} LUT '{lut.name}'"
                )
    if a.device != b.device:
        raise ConfigError(f"LUT-GEMM operands are on different devices ({a.device}, {b.device})")
    if a.shape[2] != b.shape[1]:
        raise ConfigError(f"LUT-GEMM shapes do not chain: a {tuple(a.shape)}, b {tuple(b.shape)} (K differs)")
    groups = max(a.shape[0], b.shape[0])
    if a.shape[0] not in (1, groups) or b.shape[0] not in (1, groups):
        raise ConfigError(f"LUT-GEMM group counts differ: a {tuple(a.shape)}, b {tuple(b.shape)}")
    return a.expand(groups, -1, -1), b.expand(groups, -1, -1)


def lut_bmm(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut, *, engine: str | None = None) -> torch.Tensor:
    """Batched LUT-GEMM ``C[g, m, n] = sum_k T[a[g, m, k], b[g, k, n]]`` (int32 ``[G, M, N]``).

    ``a`` ``[G, M, K]`` and ``b`` ``[G, K, N]`` hold operand values (a group count of 1 broadcasts).
    Sums are exact; a sum beyond int32 raises :class:`LutgenError` (never wraps). The result may be a
    non-contiguous view.

    Example:
        >>> t = torch.randint(-50, 50, (16, 16), dtype=torch.int32)
        >>> lut = PreparedLut(t, 4, 4, signed=True)
        >>> a = torch.randint(-8, 8, (1, 3, 5)); b = torch.randint(-8, 8, (1, 5, 2))
        >>> lut_bmm(a, b, lut, engine="reference").shape
        torch.Size([1, 3, 2])
    """
    a, b = check_operands(a, b, lut)
    impl = resolve_engine(engine, a.device)
    impl.last_path = None
    out = impl.lut_bmm(a, b, lut.to(a.device))
    _REGISTRY.last_path = f"{impl.name}: {impl.last_path}" if impl.last_path else impl.name
    return out


def lut_bmm_backward(
    a: torch.Tensor,
    b: torch.Tensor,
    grad_c: torch.Tensor,
    lut: PreparedLut,
    *,
    ste: bool = False,
    engine: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`lut_bmm` w.r.t. ``a`` and ``b`` through the gradient LUTs (float32).

    ``gA[g, m, k] = sum_n gC[g, m, n] * Ga[a, b]``, ``gB[g, k, n] = sum_m gC[g, m, n] * Gb[a, b]``;
    ``ste=True`` uses exact-product gradients (``Ga = value(b)``, ``Gb = value(a)``). A broadcast
    operand (group count 1) gets its gradient summed over groups.
    """
    a_groups, b_groups = a.shape[0] if a.dim() == 3 else 0, b.shape[0] if b.dim() == 3 else 0
    a, b = check_operands(a, b, lut)
    expected = (a.shape[0], a.shape[1], b.shape[2])
    if not isinstance(grad_c, torch.Tensor) or tuple(grad_c.shape) != expected:
        got = tuple(grad_c.shape) if isinstance(grad_c, torch.Tensor) else type(grad_c).__name__
        raise ConfigError(f"LUT-GEMM grad_c has shape {got}, expected {expected}")
    impl = resolve_engine(engine, a.device)
    grad_a, grad_b = impl.lut_bmm_backward(a, b, grad_c.to(torch.float32), lut.to(a.device), ste=ste)
    if a_groups == 1 and a.shape[0] > 1:
        grad_a = grad_a.sum(dim=0, keepdim=True)
    if b_groups == 1 and b.shape[0] > 1:
        grad_b = grad_b.sum(dim=0, keepdim=True)
    return grad_a, grad_b


register_engine("reference", ReferenceEngine())
register_engine("cpu", CpuEngine())
