"""Engines behind one interface, chosen by name: the registry, resolution and the public LUT-GEMM calls.

An engine implements :class:`Engine`. ``resolve_engine(None, device)`` picks the best available engine
for the device (highest ``priority``; ``LUTGEN_ENGINE`` overrides), falling back to ``"reference"``
with one warning when a native engine cannot be built or loaded. An engine asked for by name (argument
or ``LUTGEN_ENGINE``) that cannot run raises :class:`NativeUnavailableError` instead.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import torch

from ..errors import ConfigError, NativeUnavailableError
from . import reference
from .cpu_features import choose_path, detect
from .prepared import PreparedLut, value_range

ENGINE_ENV = "LUTGEN_ENGINE"


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


def splits_exact_product(isa: str, lut: PreparedLut) -> bool:
    """Whether the CPU engine runs ``lut`` as an exact native GEMM/conv plus a LUT-GEMM over its error table.

    On the AVX2 path a look-up costs many times a native multiply-add, and every byte plane of the table
    costs a full look-up: when ``T`` spans more than 256 values but ``E = T - a·b`` spans at most 256 (true
    of many low-error multipliers), one plane of ``E`` plus the exact product is cheaper than two of ``T``.
    """
    if isa != "avx2" or lut.fits_8bit_span or not lut.fits_16bit_span:
        return False

    def build() -> bool:
        error = lut.error_table()
        return int(error.max()) - int(error.min()) < 1 << 8

    return lut.cached("error-fits-8bit-span", build)


def kernel_for(isa: str, lut: PreparedLut, *, error: bool = False) -> tuple[str, str]:
    """``(kernel, table layout)`` of the CPU kernel for an ISA path and a LUT (``error``: for its error table,
    see :func:`splits_exact_product`)."""
    if error:
        return "avx2/nibble1", "bytes1-error"
    if isa == "scalar":
        return "scalar/i32", "i32"
    if isa == "avx2":
        if lut.fits_8bit_span:
            return "avx2/nibble1", "bytes1"
        if lut.fits_16bit_span:
            return "avx2/nibble", "bytes"
        return "avx2/gather", "i32"
    if not lut.fits_16bit_span:
        return "avx512/gather", "i32"
    if isa == "avx512bw":
        return "avx512bw/i16", "i16"
    if lut.fits_8bit_span:
        return "avx512vbmi/bytes1", "bytes1"
    return "avx512vbmi/bytes", "bytes"


def table_layout(lut: PreparedLut, layout: str, bits_eff: int | None = None) -> tuple[torch.Tensor, int, int, int]:
    """``(table, column stride, plane stride, bias)`` of a LUT in a CPU kernel layout (cached).

    Strides are in bytes; the kernels add ``bias`` back per product (stored entry + bias = T, or = E for
    ``bytes1-error``). With ``bits_eff`` (every code of ``a`` is below ``2^bits_eff``) the register-table
    layouts keep only the rows those codes reach: after a ReLU that halves the table, and its columns sit
    back to back, so they spread over every set of the L1 cache instead of every other one.
    """
    full = 1 << lut.bits_a
    rows = full if layout == "i32" or bits_eff is None else min(full, 1 << bits_eff)

    def build() -> tuple[torch.Tensor, int, int, int]:
        source = lut.error_table() if layout == "bytes1-error" else lut.forward
        columns = source.to("cpu").t()[:, :rows].to(torch.int64).contiguous()  # [2^bits_b, rows]: column b
        if layout == "i32":
            return columns.to(torch.int32), 4 * rows, 0, 0
        padded = max(64, rows)
        if layout == "i16":  # signed 16-bit: T - min - 2^15
            bias = lut.min_value + (1 << 15)
            table = torch.zeros((columns.shape[0], padded), dtype=torch.int16)
            table[:, :rows] = (columns - bias).to(torch.int16)
            return table, 2 * padded, 0, bias
        low = int(columns.min())
        unsigned = columns - low  # "bytes": T - min as two unsigned byte planes; "bytes1*": one plane
        count = 2 if layout == "bytes" else 1
        planes = torch.zeros((columns.shape[0], count, padded), dtype=torch.uint8)
        planes[:, 0, :rows] = (unsigned & 0xFF).to(torch.uint8)
        if count == 2:
            planes[:, 1, :rows] = ((unsigned >> 8) & 0xFF).to(torch.uint8)
        return planes, count * padded, padded if count == 2 else 0, low

    return lut.cached(f"cpu-layout:{layout}:{rows}", build)


def pack_codes(x: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes (``value & (2^bits - 1)``) of an integer tensor, same shape."""
    codes = x.view(torch.uint8) if x.dtype == torch.int8 else x.to(torch.uint8)
    return codes & ((1 << bits) - 1)


_WORKSPACES = threading.local()


def _panel_workspace() -> torch.Tensor:
    """This thread's buffer for the direct conv's code panel (grown by the packing, kept between calls)."""
    workspace = getattr(_WORKSPACES, "panel", None)
    if workspace is None:
        workspace = torch.empty(0, dtype=torch.uint8)
        _WORKSPACES.panel = workspace
    return workspace


class CpuEngine(Engine):
    """The C++ kernels (AVX2 / AVX-512BW / AVX-512 VBMI / scalar, chosen at run time), built on first use."""

    name = "cpu"
    priority = 10
    devices = ("cpu",)

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

    def describe_for(self, lut: PreparedLut) -> str:
        isa = choose_path()
        if splits_exact_product(isa, lut):
            return f"cpu ({isa}: exact product + one byte plane of E = T - a·b)"
        if lut.fits_8bit_span and isa in ("avx2", "avx512vbmi"):
            return f"cpu ({isa}: one byte plane)"
        return self.describe()

    def lut_bmm(self, a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> torch.Tensor:
        from . import build

        ext = build.load()
        m_count = a.shape[1]
        at, max_code = ext.pack_transposed(a, (1 << lut.bits_a) - 1)
        split = splits_exact_product(choose_path(), lut)
        out = self._gemm_transposed(ext, at, int(max_code), b, lut, error=split)[:, :, :m_count].transpose(1, 2)
        if not split:
            return out
        from .decompose import exact_bmm

        exact = exact_bmm(a.to(torch.float32), b.to(torch.float32))
        return reference.check_int32(exact.to(torch.int64) + out, lut)

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
    ) -> bool:
        """Direct conv2d: ``out [N, O, OH, OW]`` (float32, contiguous) from integer values ``x [N, C, H, W]``
        and ``w [O, C/groups, kh, kw]``, with the im2col panel built in C++ (no torch temporaries).

        Returns ``False`` (``out`` untouched) when the sums need the int64 split of :meth:`lut_bmm`.
        """
        from . import build

        out_ch, cg, kh, kw = w.shape
        if cg * kh * kw > max(1, INT32_MAX // max(lut.max_abs, 1)):
            return False
        ext = build.load()
        codes = x if x.dtype in (torch.int8, torch.uint8) else pack_codes(x, lut.bits_a)
        at, max_code = ext.conv2d_pack(
            codes.contiguous(),
            kh,
            kw,
            list(stride),
            list(padding),
            list(dilation),
            groups,
            (1 << lut.bits_a) - 1,
            _panel_workspace(),
        )
        b = w.reshape(groups, out_ch // groups, -1).transpose(1, 2)
        split = splits_exact_product(choose_path(), lut)
        ext.conv_output(self._gemm_transposed(ext, at, int(max_code), b, lut, error=split), out)
        if split:
            from .decompose import exact_product_conv2d

            exact = exact_product_conv2d(x, w, lut, stride=stride, padding=padding, dilation=dilation, groups=groups)
            # Both parts are exact integers and their sum fits int32 (checked above): one rounding to
            # float32, as for every other path.
            if exact.dtype == torch.float64:
                out.copy_(out.double() + exact)
            else:
                out += exact
        return True

    def _gemm_transposed(
        self, ext: Any, at: torch.Tensor, max_code: int, b: torch.Tensor, lut: PreparedLut, *, error: bool = False
    ) -> torch.Tensor:
        """``C^T [G, N, Mp]`` int32 for the K-major code panel ``at [G, K, Mp]`` and values ``b [G, K, N]``
        (sums of the LUT's error table ``E = T - a·b`` when ``error``)."""
        isa = choose_path()
        g_count, k_count, padded = at.shape
        bits_eff = max(1, max_code.bit_length())
        bc = pack_codes(b, lut.bits_b)  # n-major when b is a transposed view of [G, N, K] weights
        kernel, layout = kernel_for(isa, lut, error=error)
        table, col_stride, plane_stride, bias = table_layout(lut, layout, bits_eff)
        self.last_path = f"{kernel} a{bits_eff}" + (" + exact product" if error else "")
        # Each int32 partial sum covers at most `chunk` products, so it cannot wrap; wider sums go int64.
        chunk = max(1, INT32_MAX // max(lut.max_abs, 1))
        if k_count <= chunk:
            ct = ext.lut_gemm(kernel, at, bc, table, col_stride, plane_stride, bias, bits_eff)
        else:
            self.last_path += " k-split"
            total = torch.zeros((g_count, b.shape[2], padded), dtype=torch.int64)
            for k0 in range(0, k_count, chunk):
                part = ext.lut_gemm(
                    kernel,
                    at[:, k0 : k0 + chunk],
                    bc[:, k0 : k0 + chunk],
                    table,
                    col_stride,
                    plane_stride,
                    bias,
                    bits_eff,
                )
                total += part
            ct = reference.check_int32(total, lut)
        return ct

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
