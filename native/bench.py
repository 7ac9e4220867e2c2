"""``lutgen bench``: native fp32 PyTorch vs the LUT engine vs the reference, in one run.

Cases: (a) single conv/linear layers of ResNet-18 and VGG-16 on CIFAR-10 (batch 64, activations as
after a ReLU: non-negative, about half zeros, 8-bit), (a') the two batched matmuls of attention
(``Q·Kᵀ`` and ``A·V``, both operands activations) at ViT-S/16 and BERT-base shapes, and (b)
whole-network inference of both networks (batch 128) with every Conv2d/Linear through an 8-bit signed
approximate multiplier. Each case times
native fp32 and the engine (best of ``repeat`` runs after a warm-up), and *verifies* what it timed:
the engine's results for the first samples of the timed batch must equal the reference engine's
bit-exactly (gradients: within float tolerance). The reference is slow, so it runs on those samples
only and its time for the whole batch is extrapolated linearly (``reference_s``).
Where torch has CUDA, (c) the GPU kernels on the layer shapes: cuDNN fp32 vs the shared-memory LUT
kernel vs a naive kernel of the kind public tools use, with look-ups per second.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .bench_models import VGG16, ResNet18, approximate, set_engine
from .ops import approx_conv2d, approx_linear, approx_matmul, path_for
from .prepared import PreparedLut, code_values

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
    """One layer: conv2d when ``kernel > 0`` (input ``[batch, cin, size, size]``), else linear."""

    name: str
    batch: int
    cin: int
    cout: int
    size: int = 1
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    relu_input: bool = True


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


def bench_lut(kind: str = "approx") -> PreparedLut:
    """An 8x8 signed multiplier with difference-gradient tables.

    ``approx``: the sign-magnitude product with its 5 low magnitude bits cut (a truncated multiplier;
    its error is not low-rank, so it runs on the LUT engine; it spans 63 values, so the AVX2 path runs it
    as the exact product plus one byte plane of the error); ``wide``: 9 bits cut (the error spans 1023
    values: every path looks up both byte planes of the table); ``trunc``: the product with the 2 low
    bits of the weight cut (``decomp`` with one term); ``exact``: the exact product.
    """
    from ..lutgen.lut import Lut

    v = code_values(8, True).numpy()
    exact = np.multiply.outer(v, v)
    if kind in ("approx", "wide"):
        table = np.sign(exact) * (np.abs(exact) & ~(31 if kind == "approx" else 511))
    elif kind == "trunc":
        table = np.multiply.outer(v, v & ~3)
    elif kind == "exact":
        table = exact
    else:
        raise ConfigError(f"bench: unknown LUT kind '{kind}' (choose from {', '.join(LUT_KINDS)})")
    lut = Lut(table.astype(np.int32), 8, 8, True, name=f"bench-{kind}8s").with_gradients()
    return PreparedLut.from_lut(lut)


def _best_times(native: Callable[[], object], engine: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best of ``repeat`` timed runs of each, after a warm-up, alternating native and engine runs so that
    a slow spell of a shared machine falls on both sides of the ratio."""
    native()
    engine()
    best_native = best_engine = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        native()
        middle = time.perf_counter()
        engine()
        end = time.perf_counter()
        best_native = min(best_native, middle - start)
        best_engine = min(best_engine, end - middle)
    return best_native, best_engine


def _timed_once(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _activations(shape: tuple[int, ...], relu: bool, gen: torch.Generator) -> torch.Tensor:
    """8-bit signed activation values: ReLU'd Gaussians (about half zeros) or a signed image."""
    x = torch.randn(shape, generator=gen) * 40
    if relu:
        x = x.clamp_min(0)
    return x.round().clamp(-128, 127)


def _weights(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return (torch.randn(shape, generator=gen) * 30).round().clamp(-127, 127)


def _layer_fns(
    case: LayerCase, lut: PreparedLut, engine: str | None
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    if case.kernel:
        x = _activations((case.batch, case.cin, case.size, case.size), case.relu_input, gen)
        w = _weights((case.cout, case.cin, case.kernel, case.kernel), gen)

        def native(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, w, stride=case.stride, padding=case.padding)

        def approx(x: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
            return approx_conv2d(x, w, lut, case.stride, case.padding, engine=eng)

        return native, approx, (x, w)
    x = _activations((case.batch, case.cin), case.relu_input, gen)
    w = _weights((case.cout, case.cin), gen)

    def native_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    def approx_lin(x: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
        return approx_linear(x, w, lut, engine=eng)

    return native_linear, approx_lin, (x, w)


def _attention_fns(
    case: AttentionCase, lut: PreparedLut, engine: str | None
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Operand values: ``qk`` multiplies signed queries by the transposed keys (a strided view, as attention
    code passes it); ``av`` multiplies attention weights (softmax rows scaled to 0..127: non-negative,
    mostly small) by signed values."""
    gen = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    b, h, t, d = case.batch, case.heads, case.tokens, case.head_dim
    if case.product == "qk":
        a = _activations((b, h, t, d), False, gen)
        w = _activations((b, h, t, d), False, gen).transpose(-2, -1)
    else:
        a = (torch.softmax(torch.randn((b, h, t, t), generator=gen) * 3, dim=-1) * 127).round()
        w = _activations((b, h, t, d), False, gen)

    def native(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, w)

    def approx(a: torch.Tensor, w: torch.Tensor, eng: str | None = engine) -> torch.Tensor:
        return approx_matmul(a, w, lut, engine=eng)

    return native, approx, (a, w)


def _bench_layer(
    case: LayerCase | AttentionCase, lut: PreparedLut, engine: str | None, *, backward: bool, repeat: int, verify: int
) -> BenchResult:
    if isinstance(case, AttentionCase):
        native, approx, (x, w) = _attention_fns(case, lut, engine)
        verify_w = lambda n: w[:n]  # noqa: E731  (attention: both operands are per sample)
    else:
        native, approx, (x, w) = _layer_fns(case, lut, engine)
        verify_w = lambda n: w  # noqa: E731
    path = path_for(lut, engine)
    if not backward:
        with torch.no_grad():
            native_s, engine_s = _best_times(lambda: native(x, w), lambda: approx(x, w), repeat)
            out = approx(x, w)
            ref, ref_s = _timed_once(lambda: approx(x[:verify], verify_w(verify), "reference"))
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
    sub_w = verify_w(verify)
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
    *,
    quick: bool = False,
    backward: bool = False,
    engine: str | None = None,
    lut_kind: str = "approx",
    repeat: int | None = None,
    networks: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Run every case; see the module docstring. ``progress`` is called with each case's name first."""
    lut = bench_lut(lut_kind)
    reps = repeat if repeat is not None else (1 if quick else 3)
    if reps < 1:
        raise ConfigError(f"bench: repeat={reps} must be >= 1")
    results: list[BenchResult] = []
    cases: list[LayerCase | AttentionCase] = [*layer_cases(quick), *attention_cases(quick)]
    for case in cases:
        for direction in (False, True) if backward else (False,):
            if progress is not None:
                progress(case.name + (" (backward)" if direction else ""))
            results.append(_bench_layer(case, lut, engine, backward=direction, repeat=reps, verify=1))
    if networks:
        for name in ("resnet18", "vgg16"):
            if progress is not None:
                progress(f"{name} network")
            results.append(_bench_network(name, lut, engine, quick=quick, repeat=reps, verify=1))
    if torch.cuda.is_available() and engine in (None, "cuda"):
        for case in layer_cases(quick):
            if progress is not None:
                progress(f"cuda kernels: {case.name}")
            results += _bench_cuda_kernels(case, lut, repeat=reps)
    baseline = native_isa()
    return [replace(r, native_isa=baseline) for r in results]


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
        spec = conv2d_spec(w.shape, case.stride, case.padding, 1, 1)
        a = im2col(pad_values(x.to(torch.int8), spec), case.kernel, case.kernel, spec)
        b = weight_matrix(w.to(torch.int8), 1)
    else:
        a = x.to(torch.int8)[None].contiguous()
        b = w.to(torch.int8).t()[None].contiguous()
    lookups = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    native_s = _cuda_time(lambda: native(x, w), repeat)
    smem_s = _cuda_time(lambda: lut_bmm_cuda(a, b, lut_gpu), repeat)
    naive_s = _cuda_time(lambda: lut_bmm_cuda(a, b, lut_gpu, naive=True), repeat)
    rows = min(a.shape[1], 512)
    want = reference_bmm(a[:, :rows].cpu(), b.cpu(), lut)
    smem_ok = torch.equal(lut_bmm_cuda(a, b, lut_gpu)[:, :rows].cpu(), want)
    naive_ok = torch.equal(lut_bmm_cuda(a, b, lut_gpu, naive=True)[:, :rows].cpu(), want)
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


def render(results: list[BenchResult], *, threads: int) -> Any:
    """A rich table of the results."""
    from rich.table import Table

    baseline = results[0].native_isa if results else native_isa()
    table = Table(title=f"lutgen bench ({threads} threads): LUT engine vs native fp32 PyTorch (native ISA: {baseline})")
    for column in ("case", "dir", "native ms", "engine ms", "ratio", "reference s (est.)", "exact", "path"):
        table.add_column(column, justify="left" if column in ("case", "path", "dir") else "right")
    for r in results:
        table.add_row(
            r.case,
            r.direction,
            f"{1e3 * r.native_s:.1f}",
            f"{1e3 * r.engine_s:.1f}",
            f"{r.ratio:.2f}x",
            "-" if r.reference_s is None else f"{r.reference_s:.1f}",
            "yes" if r.verified else "[red]NO[/red]",
            r.path,
        )
    return table
