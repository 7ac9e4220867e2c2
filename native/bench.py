"""``lutgen bench``: native fp32 PyTorch vs the LUT engine vs the reference, in one run.

Cases: (a) single conv/linear layers of ResNet-18 and VGG-16, and depthwise convs of MobileNetV2, on
CIFAR-10 (batch 64, activations as after a ReLU: non-negative, about half zeros, 8-bit), (a') the two
batched matmuls of attention (``Q·Kᵀ`` and ``A·V``, both operands activations) at ViT-S/16 and BERT-base
shapes, and (b) whole-network inference of ResNet-18 and VGG-16 (batch 128) with every Conv2d/Linear
through an 8-bit signed approximate multiplier. Each case times native fp32 and the engine (best of
``repeat`` runs after a warm-up), and *verifies* what it timed: the engine's results for the first
samples of the timed batch must equal the reference engine's bit-exactly (gradients: within float
tolerance). The reference is slow, so it runs on those samples only and its time for the whole batch is
extrapolated linearly (``reference_s``).
Where torch has CUDA, (c) the GPU kernels on the layer shapes: cuDNN fp32 vs the shared-memory LUT
kernel vs a naive kernel of the kind public tools use, with look-ups per second.

Any multiplier can be timed (``lutgen bench --lut FILE|NAME``): operands follow its signedness and width
(unsigned: both operands over their whole code range, as affine quantisation gives them). A corpus sweep
(:func:`run_corpus`) times the ResNet-18 3x3 convolutions for every table of a folder and summarises the
ratios by the path each took. The path column is what ran (kernel, activation bits, plan), read from the
engine after the timed call.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..lutgen.lut import Lut
from .bench_models import VGG16, ResNet18, approximate, set_engine
from .engines import CpuEngine
from .ops import approx_conv2d, approx_linear, approx_matmul, choose_engine, path_for
from .prepared import PreparedLut, code_values, value_range

T = TypeVar("T")

LUT_KINDS = ("approx", "wide", "trunc", "exact")
_GRAD_RTOL = 1e-4
NATIVE_ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that cap the ISA of native fp32 PyTorch (oneDNN convolutions, MKL GEMMs); read by
those libraries once, at their first use in a process."""


def limit_native_isa(isa: str) -> None:
    """Cap native fp32 PyTorch at ``isa`` (e.g. ``AVX2``) in this process, unless the user set a cap already.

    Effective only before the first native convolution or GEMM of the process (the CLI calls it first).
    """
    for name in NATIVE_ISA_ENV:
        os.environ.setdefault(name, isa)


def native_isa() -> str:
    """The ISA cap of native fp32 PyTorch in words: ``"full"`` or e.g. ``"AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, ...)"``."""
    caps = [f"{name}={os.environ[name]}" for name in NATIVE_ISA_ENV if os.environ.get(name)]
    if not caps:
        return "full"
    return f"{os.environ.get(NATIVE_ISA_ENV[0]) or os.environ[NATIVE_ISA_ENV[1]]} ({', '.join(caps)})"


@dataclass(frozen=True)
class LayerCase:
    """One layer: conv2d when ``kernel > 0`` (input ``[batch, cin, size, size]``, ``groups`` channel groups),
    else linear."""

    name: str
    batch: int
    cin: int
    cout: int
    size: int = 1
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    relu_input: bool = True
    groups: int = 1


@dataclass(frozen=True)
class BenchResult:
    """Timings of one case (seconds), the engine path and whether its results were verified."""

    case: str
    native_s: float
    engine_s: float
    ratio: float
    path: str
    direction: str
    reference_s: float | None
    verified: bool
    native_isa: str = "full"
    op_s: float | None = None
    """For an ``nn`` layer case: the time of the op alone on the same operands (the layer adds quantising and
    rescaling)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def layer_cases(quick: bool) -> list[LayerCase]:
    """The single-layer cases (tiny shapes when ``quick``)."""
    if quick:
        return [
            LayerCase("quick.conv3x3 8->8 8x8", 2, 8, 8, 8, 3, 1, 1),
            LayerCase("quick.conv3x3 s2 8->16 8x8", 2, 8, 16, 8, 3, 2, 1),
            LayerCase("quick.linear 32->10", 4, 32, 10),
            LayerCase("quick.dwconv3x3 8 8x8", 2, 8, 8, 8, 3, 1, 1, groups=8),
        ]
    return [
        LayerCase("resnet18.conv3x3 64->64 32x32", 64, 64, 64, 32, 3, 1, 1),
        LayerCase("resnet18.conv3x3 128->128 16x16", 64, 128, 128, 16, 3, 1, 1),
        LayerCase("resnet18.conv3x3 256->256 8x8", 64, 256, 256, 8, 3, 1, 1),
        LayerCase("resnet18.conv3x3 512->512 4x4", 64, 512, 512, 4, 3, 1, 1),
        LayerCase("resnet18.shortcut1x1 s2 64->128 32x32", 64, 64, 128, 32, 1, 2, 0),
        LayerCase("resnet18.fc 512->10", 64, 512, 10),
        LayerCase("vgg16.conv1 3->64 32x32", 64, 3, 64, 32, 3, 1, 1, relu_input=False),
        LayerCase("vgg16.conv3 64->128 16x16", 64, 64, 128, 16, 3, 1, 1),
        LayerCase("vgg16.conv8 256->512 4x4", 64, 256, 512, 4, 3, 1, 1),
        LayerCase("mobilenetv2.dwconv3x3 144 32x32", 64, 144, 144, 32, 3, 1, 1, groups=144),
        LayerCase("mobilenetv2.dwconv3x3 960 4x4", 64, 960, 960, 4, 3, 1, 1, groups=960),
    ]


@dataclass(frozen=True)
class AttentionCase:
    """One attention matmul: ``qk`` (``Q [B, H, L, d] · Kᵀ``) or ``av`` (``A [B, H, L, L] · V [B, H, L, d]``)."""

    name: str
    batch: int
    heads: int
    tokens: int
    head_dim: int
    product: str


def attention_cases(quick: bool) -> list[AttentionCase]:
    """The attention cases (tiny shapes when ``quick``)."""
    if quick:
        return [AttentionCase(f"quick.attention {p} 2x2 heads 9x9x8", 2, 2, 9, 8, p) for p in ("qk", "av")]
    shapes = (("vit-s/16", 8, 6, 197, 64), ("bert-base", 8, 12, 128, 64))
    return [
        AttentionCase(f"{model}.attention {p} {b}x{h} heads {t}x{t}x{d}", b, h, t, d, p)
        for model, b, h, t, d in shapes
        for p in ("qk", "av")
    ]


def resnet_cases(quick: bool) -> list[LayerCase]:
    """The ResNet-18 3x3 convolutions (the corpus sweep's cases)."""
    return [case for case in layer_cases(quick) if "conv3x3" in case.name and case.groups == 1]


def bench_lut(kind: str = "approx") -> Lut:
    """An 8x8 signed multiplier with difference-gradient tables.

    ``approx``: the sign-magnitude product with its 5 low magnitude bits cut (a truncated multiplier;
    its error is not low-rank, so it runs on the LUT engine; it spans 63 values, so the AVX2 path runs it
    as the exact product plus one byte plane of the error); ``wide``: magnitude bits 1..9 cut (bit 0 kept,
    so the table has no common factor; the error spans 1023 values: every path looks up two byte planes);
    ``trunc``: the product with the 2 low bits of the weight cut (``decomp`` with one term); ``exact``:
    the exact product.
    """
    v = code_values(8, True).numpy()
    exact = np.multiply.outer(v, v)
    if kind in ("approx", "wide"):
        table = np.sign(exact) * (np.abs(exact) & ~(0x1F if kind == "approx" else 0x3FE))
    elif kind == "trunc":
        table = np.multiply.outer(v, v & ~3)
    elif kind == "exact":
        table = exact
    else:
        raise ConfigError(f"bench: unknown LUT kind '{kind}' (choose from {', '.join(LUT_KINDS)})")
    return Lut(table.astype(np.int32), 8, 8, True, name=f"bench-{kind}8s").with_gradients()


def best_times(*fns: Callable[[], object], repeat: int) -> list[float]:
    """Best of ``repeat`` timed runs of each function, after a warm-up, the functions alternating within each
    round so that a slow spell of a shared machine falls on every side of a ratio."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _best_times(native: Callable[[], object], engine: Callable[[], object], repeat: int) -> tuple[float, float]:
    native_s, engine_s = best_times(native, engine, repeat=repeat)
    return native_s, engine_s


def taken_path(lut: PreparedLut, engine: str | None) -> str:
    """What the last op on ``lut`` ran: the CPU engine's kernel and plan, else the engine's description."""
    impl = choose_engine(lut, engine, "cpu")
    if isinstance(impl, CpuEngine) and impl.last_path:
        return f"cpu {impl.last_path}"
    return path_for(lut, engine)


def operand_ranges(lut: PreparedLut) -> tuple[tuple[int, int], tuple[int, int]]:
    """Value ranges of the bench's activations and weights for ``lut``: signed activations as after a ReLU
    (0..max), unsigned ones over every code (affine quantisation maps a ReLU's range onto all of them)."""
    return value_range(lut.bits_a, lut.signed), value_range(lut.bits_b, lut.signed)


def _timed_once(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _activations(
    shape: tuple[int, ...], relu: bool, gen: torch.Generator, bounds: tuple[int, int] = (-128, 127)
) -> torch.Tensor:
    """Activation values: ReLU'd Gaussians (about half zeros) or a signed image; for 8-bit signed operands
    a standard deviation of 40 codes. Unsigned operands: the same shape stretched over every code."""
    low, high = bounds
    spread = 40 * (high + 1) / 128
    x = torch.randn(shape, generator=gen) * spread
    if relu or low == 0:
        x = x.clamp_min(0) * (2 if low == 0 else 1)
    return x.round().clamp(low, high)


def _weights(shape: tuple[int, ...], gen: torch.Generator, bounds: tuple[int, int] = (-128, 127)) -> torch.Tensor:
    """Weight values: Gaussians (30 codes for 8-bit signed), centred in the range for unsigned operands."""
    low, high = bounds
    centre = 0 if low < 0 else (high + 1) // 2
    spread = 30 * (high - low + 1) / 256
    return (centre + torch.randn(shape, generator=gen) * spread).round().clamp(max(low, -high), high)


def _layer_fns(
    case: LayerCase, lut: PreparedLut, engine: str | None
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    a_range, b_range = operand_ranges(lut)
    grad = "difference" if lut.has_gradients else "ste"  # the forward cases time the same kernels either way
    if case.kernel:
        x = _activations((case.batch, case.cin, case.size, case.size), case.relu_input, gen, a_range)
        w = _weights((case.cout, case.cin // case.groups, case.kernel, case.kernel), gen, b_range)

        def native(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, w, stride=case.stride, padding=case.padding, groups=case.groups)

        def approx(x: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
            return approx_conv2d(x, w, lut, case.stride, case.padding, 1, case.groups, grad=grad, engine=eng)

        return native, approx, (x, w)
    x = _activations((case.batch, case.cin), case.relu_input, gen, a_range)
    w = _weights((case.cout, case.cin), gen, b_range)

    def native_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    def approx_lin(x: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
        return approx_linear(x, w, lut, grad=grad, engine=eng)

    return native_linear, approx_lin, (x, w)


def _attention_fns(
    case: AttentionCase, lut: PreparedLut, engine: str | None
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Operand values: ``qk`` multiplies queries by the transposed keys (a strided view, as attention code
    passes it); ``av`` multiplies attention weights (softmax rows scaled to the first operand's largest code:
    non-negative, mostly small) by values."""
    gen = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    a_range, b_range = operand_ranges(lut)
    grad = "difference" if lut.has_gradients else "ste"
    b, h, t, d = case.batch, case.heads, case.tokens, case.head_dim
    if case.product == "qk":
        a = _activations((b, h, t, d), False, gen, a_range)
        w = _activations((b, h, t, d), False, gen, b_range).transpose(-2, -1)
    else:
        a = (torch.softmax(torch.randn((b, h, t, t), generator=gen) * 3, dim=-1) * a_range[1]).round()
        w = _activations((b, h, t, d), False, gen, b_range)

    def native(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, w)

    def approx(a: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
        return approx_matmul(a, w, lut, grad=grad, engine=eng)

    return native, approx, (a, w)


def _bench_layer(
    case: LayerCase | AttentionCase, lut: PreparedLut, engine: str | None, *, backward: bool, repeat: int, verify: int
) -> BenchResult:
    if isinstance(case, AttentionCase):
        native, approx, (x, w) = _attention_fns(case, lut, engine)
        sub_w = w[:verify]  # attention: both operands are per sample
    else:
        native, approx, (x, w) = _layer_fns(case, lut, engine)
        sub_w = w
    if not backward:
        with torch.no_grad():
            native_s, engine_s = _best_times(lambda: native(x, w), lambda: approx(x, w), repeat)
            out = approx(x, w)
            path = taken_path(lut, engine)
            ref, ref_s = _timed_once(lambda: approx(x[:verify], sub_w, "reference"))
        verified = torch.equal(out[:verify], ref)
        return BenchResult(
            case.name, native_s, engine_s, engine_s / native_s, path, "forward", ref_s * case.batch / verify, verified
        )
    grad_out = torch.randn(native(x, w).shape, generator=torch.Generator().manual_seed(7))

    def run(
        fn: Callable[..., torch.Tensor], xs: torch.Tensor, ws: torch.Tensor, go: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xg, wg = xs.clone().requires_grad_(), ws.clone().requires_grad_()
        fn(xg, wg).backward(go)
        assert xg.grad is not None and wg.grad is not None
        return xg.grad, wg.grad

    native_s, engine_s = _best_times(lambda: run(native, x, w, grad_out), lambda: run(approx, x, w, grad_out), repeat)
    gx, _ = run(approx, x, w, grad_out)
    path = path_for(lut, engine)
    (ref_gx, ref_gw), ref_s = _timed_once(
        lambda: run(lambda a, b: approx(a, b, "reference"), x[:verify], sub_w, grad_out[:verify])
    )
    _, sub_gw = run(approx, x[:verify], sub_w, grad_out[:verify])
    verified = torch.allclose(gx[:verify], ref_gx, rtol=_GRAD_RTOL, atol=1e-3) and torch.allclose(
        sub_gw, ref_gw, rtol=_GRAD_RTOL, atol=1e-3
    )
    return BenchResult(
        case.name, native_s, engine_s, engine_s / native_s, path, "backward", ref_s * case.batch / verify, verified
    )


def _bench_network(
    name: str, lut: PreparedLut, engine: str | None, *, quick: bool, repeat: int, verify: int
) -> BenchResult:
    width, batch = (8, 2) if quick else (64, 128)
    torch.manual_seed(0)
    model = (ResNet18 if name == "resnet18" else VGG16)(width=width).eval()
    gen = torch.Generator().manual_seed(1)
    images = torch.randn((batch, 3, 32, 32), generator=gen)
    approx = approximate(model, lut, images[: min(batch, 8)], engine=engine)
    with torch.no_grad():
        native_s, engine_s = _best_times(lambda: model(images), lambda: approx(images), repeat)
        out = approx(images)
        set_engine(approx, "reference")
        ref, ref_s = _timed_once(lambda: approx(images[:verify]))
        set_engine(approx, engine)
    verified = torch.equal(out[:verify], ref)
    case = f"{name} CIFAR-10 inference, batch {batch}" + (f", width {width}" if quick else "")
    return BenchResult(
        case,
        native_s,
        engine_s,
        engine_s / native_s,
        path_for(lut, engine),
        "forward",
        ref_s * batch / verify,
        verified,
    )


def run_bench(
    lut: PreparedLut,
    *,
    quick: bool = False,
    backward: bool = False,
    engine: str | None = None,
    repeat: int | None = None,
    networks: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Run every case for ``lut``; see the module docstring. ``progress`` is called with each case's name
    first. The whole networks quantise symmetrically: they run for signed multipliers only."""
    reps = repeat if repeat is not None else (1 if quick else 3)
    if reps < 1:
        raise ConfigError(f"bench: repeat={reps} must be >= 1")
    if engine is not None and engine != "reference":
        choose_engine(lut, engine, "cuda" if engine == "cuda" else "cpu")  # (one that cannot run: refused up front)
    results: list[BenchResult] = []
    cases: list[LayerCase | AttentionCase] = [*layer_cases(quick), *attention_cases(quick)]
    for case in cases:
        for direction in (False, True) if backward else (False,):
            if progress is not None:
                progress(case.name + (" (backward)" if direction else ""))
            results.append(_bench_layer(case, lut, engine, backward=direction, repeat=reps, verify=1))
    if networks and lut.signed:
        for name in ("resnet18", "vgg16"):
            if progress is not None:
                progress(f"{name} network")
            results.append(_bench_network(name, lut, engine, quick=quick, repeat=reps, verify=1))
    if torch.cuda.is_available() and engine in (None, "cuda"):
        results += run_cuda_bench(lut, quick=quick, repeat=reps, progress=progress)
    baseline = native_isa()
    return [replace(r, native_isa=baseline) for r in results]


def run_cuda_bench(
    lut: PreparedLut, *, quick: bool = False, repeat: int = 5, progress: Callable[[str], None] | None = None
) -> list[BenchResult]:
    """The GPU cases alone (``scripts/gpu_check.sh``): per layer shape, cuDNN fp32 vs the shared-memory LUT
    kernel vs the naive kernel, both verified against the reference."""
    results: list[BenchResult] = []
    for case in layer_cases(quick):
        if progress is not None:
            progress(f"cuda kernels: {case.name}")
        results += _bench_cuda_kernels(case, lut, repeat=repeat)
    return results


def _cuda_time(fn: Callable[[], object], repeat: int) -> float:
    torch.cuda.synchronize()
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _bench_cuda_kernels(case: LayerCase, lut: PreparedLut, *, repeat: int) -> list[BenchResult]:
    """GPU: cuDNN fp32 vs the shared-memory LUT kernel vs a naive public-tool-style kernel (LUT-GEMM only,
    im2col excluded), with look-ups per second; both kernels verified against the reference on the
    first rows of the GEMM."""
    from .conv import conv2d_spec, im2col, pad_values, weight_matrix
    from .cuda import lut_bmm_cuda
    from .reference import lut_bmm as reference_bmm

    native, _, (x, w) = _layer_fns(case, lut, None)
    x, w = x.cuda(), w.cuda()
    lut_gpu = lut.to("cuda")
    if case.kernel:
        spec = conv2d_spec(w.shape, case.stride, case.padding, 1, case.groups)
        a = im2col(pad_values(x.to(torch.int8), spec), case.kernel, case.kernel, spec)
        b = weight_matrix(w.to(torch.int8), case.groups)
    else:
        a = x.to(torch.int8)[None].contiguous()
        b = w.to(torch.int8).t()[None].contiguous()
    lookups = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    native_s = _cuda_time(lambda: native(x, w), repeat)
    smem_s = _cuda_time(lambda: lut_bmm_cuda(a, b, lut_gpu), repeat)
    naive_s = _cuda_time(lambda: lut_bmm_cuda(a, b, lut_gpu, naive=True), repeat)
    # The reference is a CPU gather: the first and last 32 rows suffice (edges of the grid of blocks).
    rows = torch.unique(
        torch.cat([torch.arange(min(a.shape[1], 32)), torch.arange(max(0, a.shape[1] - 32), a.shape[1])])
    )
    want = reference_bmm(a[:, rows.to(a.device)].cpu(), b.cpu(), lut)
    smem_ok = torch.equal(lut_bmm_cuda(a, b, lut_gpu)[:, rows.to(a.device)].cpu(), want)
    naive_ok = torch.equal(lut_bmm_cuda(a, b, lut_gpu, naive=True)[:, rows.to(a.device)].cpu(), want)
    rate = lookups / smem_s / 1e9
    naive_rate = lookups / naive_s / 1e9
    return [
        BenchResult(
            f"cuda kernel {case.name}",
            native_s,
            smem_s,
            smem_s / native_s,
            f"cuda shared-memory kernel: {rate:.0f} G look-ups/s ({naive_s / smem_s:.1f}x the naive kernel)",
            "forward",
            None,
            smem_ok,
        ),
        BenchResult(
            f"cuda naive kernel {case.name}",
            native_s,
            naive_s,
            naive_s / native_s,
            f"cuda naive kernel (global-memory fetch, one output per thread, 16x16): {naive_rate:.0f} G look-ups/s",
            "forward",
            None,
            naive_ok,
        ),
    ]


@dataclass(frozen=True)
class CorpusRow:
    """One table of a corpus sweep: the plan class and path its convolutions took, the median and largest
    ratio to native fp32 over the cases, whether every timed result was bit-exact, and the case results."""

    name: str
    signed: bool
    plan: str
    path: str
    median_ratio: float
    worst_ratio: float
    verified: bool
    results: tuple[BenchResult, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the case results go under the command's ``results``)."""
        row = asdict(self)
        del row["results"]
        return row


def run_corpus(
    tables: list[tuple[str, PreparedLut]],
    *,
    quick: bool = False,
    engine: str | None = None,
    repeat: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CorpusRow]:
    """Time the ResNet-18 3x3 convolutions (forward) for every table; see the module docstring. A case's
    name in the results is ``"<table>: <case>"``."""
    reps = repeat if repeat is not None else (1 if quick else 3)
    baseline = native_isa()
    rows = []
    for name, lut in tables:
        if progress is not None:
            progress(name)
        results = tuple(
            replace(
                _bench_layer(case, lut, engine, backward=False, repeat=reps, verify=1),
                case=f"{name}: {case.name}",
                native_isa=baseline,
            )
            for case in resnet_cases(quick)
        )
        impl = choose_engine(lut, engine, "cpu")
        plan = impl.last_plan.code if isinstance(impl, CpuEngine) and impl.last_plan is not None else "other"
        ratios = [r.ratio for r in results]
        rows.append(
            CorpusRow(
                name,
                lut.signed,
                plan,
                results[-1].path,
                float(np.median(ratios)),
                max(ratios),
                all(r.verified for r in results),
                results,
            )
        )
    return rows


def corpus_summary(rows: list[CorpusRow]) -> list[dict[str, Any]]:
    """Per plan class and over all tables: how many tables, the min, median and max of their ratios (every
    case of every table) and the median of each table's largest ratio."""

    def line(label: str, group: list[CorpusRow]) -> dict[str, Any]:
        ratios = [r.ratio for row in group for r in row.results]
        return {
            "plan": label,
            "table_count": len(group),
            "min_ratio": min(ratios),
            "median_ratio": float(np.median(ratios)),
            "max_ratio": max(ratios),
            "median_worst_ratio": float(np.median([row.worst_ratio for row in group])),
        }

    classes = sorted({row.plan for row in rows})
    out = [line(label, [row for row in rows if row.plan == label]) for label in classes]
    return [*out, line("all", rows)] if rows else out


PLAN_LEGEND = (
    "E0: the exact product alone (an exact table); E1/E2: the exact product (i8: int8 GEMM, f32: float32) plus "
    "one/two byte planes of the error left after "
    "row and column offsets; T1/T2: one/two byte planes of the table; Nv: the values a plane spans; fN: "
    "folded on bit N of the codes (half the rows looked up; f7i8: its term in the int8 GEMM); nL: narrow, L of "
    "the code bits looked up (the others are row offsets); hL: the high plane looked up on a >> L; >>L: the table "
    "ignores a's low L bits (run on a >> L); sw: operands swapped (few rows); ro: AVX2 rows order (lanes over "
    "32 columns)"
)

_PLAN_WORDS = re.compile(
    r"(?:exact (\w+)(?: \(a << \d\))? \+ )?(\d) planes? of ([ET]) \((\d+) values"
    r"(?:, folded on bit (\d)( into the int8 product)?|, (\d) of \d code bits|, high plane on a >> (\d))?\)"
)
_KERNELS = {
    "avx512vbmi/planes": "vbmi",
    "avx512vbmi/fold": "vbmi",
    "avx2/nibble": "avx2",
    "avx2/fold": "avx2",
    "avx512bw/i16": "bw i16",
}


def short_path(path: str) -> str:
    """A path in a few characters: ``cpu avx512vbmi/planes a7: exact int8 + 1 plane of E (32 values)`` is
    ``vbmi a7 E1 i8 32v`` (see :data:`PLAN_LEGEND`); paths without a plan lose their ``cpu`` prefix only."""
    path = path.removeprefix("cpu ")
    for long, short in _KERNELS.items():
        path = path.replace(long, short)
    match = _PLAN_WORDS.search(path)
    if match is None:
        return path
    exact, planes, part, span, fold_bit, in_gemm, kept, hi_drop = match.groups()
    kind = {"int8": " i8", "values": " f32"}.get(exact or "", "")
    fold = f" f{fold_bit}{'i8' if in_gemm else ''}" if fold_bit else f" n{kept}" if kept else ""
    fold += f" h{hi_drop}" if hi_drop else ""
    head = path[: match.start()].rstrip(": ")
    tail = "".join(f" >>{bits}" for bits in re.findall(r"\(a >> (\d)\)", path[match.end() :]))
    tail += " sw" if "(operands swapped)" in path else ""
    tail += " ro" if "(rows order)" in path else ""
    return f"{head} {part}{planes}{kind} {span}v{fold}{tail}".strip()


def _short_case(name: str) -> str:
    for long, short in (
        ("resnet18.", "r18 "),
        ("vgg16.", "vgg "),
        ("mobilenetv2.dwconv3x3 ", "mbv2 dw "),
        ("dwconv3x3 ", "dw "),
        ("conv3x3 ", ""),
        ("shortcut1x1 ", "1x1 "),
        ("nn.ApproxConv2d ", "nn "),
        ("nn.ApproxLinear ", "nn linear "),
        (" CIFAR-10 inference, batch ", " net b"),
        (", width ", " w"),
        ("resnet18 net", "r18 net"),
        ("vgg16 net", "vgg net"),
    ):
        name = name.replace(long, short)
    return name


def _threads(count: int) -> str:
    return f"{count} thread{'' if count == 1 else 's'}"


def render(results: list[BenchResult], *, threads: int, wide: bool = False) -> list[Any]:
    """What ``lutgen bench`` prints: the table of results and, unless ``wide`` (full case and path names,
    the reference's time), short names in 80 columns with the legend of the plan classes."""
    from rich import box
    from rich.table import Table

    baseline = results[0].native_isa if results else native_isa()
    title = f"lutgen bench ({_threads(threads)}, ms; native ISA {baseline}): LUT engine vs native fp32"
    table = Table(title=title, title_justify="left", box=box.HEAVY_HEAD if wide else None, pad_edge=wide)
    table.add_column("case", no_wrap=True, overflow="ellipsis", max_width=None if wide else 26)
    if wide:
        table.add_column("dir")
    for column in ("native", "engine", "ratio", *(("reference s",) if wide else ()), "exact"):
        table.add_column(column, justify="right")
    table.add_column("path", no_wrap=not wide, overflow="ellipsis", max_width=None if wide else 20)
    for r in results:
        path = r.path if wide else short_path(r.path)
        if r.op_s is not None:
            path = (
                f"nn layer: {r.engine_s / r.op_s:.2f}x the op ({path})"
                if wide
                else f"{r.engine_s / r.op_s:.2f}x the op"
            )
        # (the direction first: the end of a long name is the part cut off at 80 columns)
        case = r.case if wide else ("bwd " if r.direction == "backward" else "") + _short_case(r.case)
        cells = [f"{1e3 * r.native_s:.1f}", f"{1e3 * r.engine_s:.1f}", f"{r.ratio:.2f}x"]
        if wide:
            cells.insert(0, r.direction)
            cells.append("-" if r.reference_s is None else f"{r.reference_s:.1f}")
        table.add_row(case, *cells, "yes" if r.verified else "[red]NO[/red]", path)
    return [table] if wide else [table, PLAN_LEGEND]


def render_corpus(rows: list[CorpusRow], *, threads: int, wide: bool = False) -> list[Any]:
    """What a corpus sweep prints: a table with one line per table (ratio per case), the summary by plan
    class, and the legend of the plan classes."""
    from rich import box
    from rich.table import Table

    style = None if not wide else box.HEAVY_HEAD
    cases = [r.case.split(": ", 1)[1] for r in rows[0].results] if rows else []
    per_table = Table(
        title=f"corpus sweep, {_threads(threads)}: ratio to native fp32",
        title_justify="left",
        box=style,
        pad_edge=wide,
    )
    per_table.add_column("table")
    per_table.add_column("path", no_wrap=not wide, overflow="ellipsis", max_width=None if wide else 22)
    for case in cases:
        label = _short_case(case).removeprefix("r18 ").removeprefix("quick.")
        words = label.split("->")[0].split()  # ("64", or "s2 64" for a strided case: "64/s2")
        per_table.add_column(label if wide else "/".join([words[-1], *words[:-1]]), justify="right")
    per_table.add_column("exact")
    for row in rows:
        cells = [f"{r.ratio:.2f}" for r in row.results]
        path = row.path if wide else short_path(row.path)
        per_table.add_row(row.name, path, *cells, "yes" if row.verified else "[red]NO[/red]")
    summary = Table(
        title="by plan (ratios over every case; worst: median of each table's largest)",
        title_justify="left",
        box=style,
        pad_edge=wide,
    )
    for column in ("plan", "tables", "min", "median", "max", "worst"):
        summary.add_column(column, justify="left" if column == "plan" else "right")
    for line in corpus_summary(rows):
        summary.add_row(
            line["plan"],
            str(line["table_count"]),
            f"{line['min_ratio']:.2f}x",
            f"{line['median_ratio']:.2f}x",
            f"{line['max_ratio']:.2f}x",
            f"{line['median_worst_ratio']:.2f}x",
        )
    return [per_table, summary, PLAN_LEGEND]
