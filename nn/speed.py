"""``lutgen bench`` for a multiplier or a folder of them: the native bench cases plus an ``nn`` layer.

The layer cases time an :class:`ApproxConv2d` and an :class:`ApproxLinear` (quantise, LUT op, rescale and
bias) against the op each runs on the same codes and against native fp32, so the ratio of layer to op is what
the layer adds (the fused inference paths keep it near 1); each result is checked against its step-by-step twin
on the reference engine. The corpus sweep reads every netlist or table file of a folder and times the ResNet-18
3x3 convolutions for each distinct table (:func:`approxlut.native.bench.run_corpus`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..circuits.io import NETLIST_SUFFIXES
from ..errors import ConfigError, LutgenError
from ..lutgen.lut import Lut
from ..native import PreparedLut
from ..native.bench import (
    BenchResult,
    CorpusRow,
    LayerCase,
    best_times,
    corpus_summary,
    layer_cases,
    run_bench,
    run_corpus,
    taken_path,
)
from ..native.ops import approx_conv2d, approx_linear
from .config import LayerConfig
from .layers import ApproxConv2d, ApproxLinear
from .multipliers import LUT_SUFFIXES, load_multiplier
from .quant import calibrate


def bench_layers(lut: Lut, *, quick: bool, repeat: int, engine: str | None = None) -> list[BenchResult]:
    """Time the first ResNet-18 3x3 convolution and a BERT-base projection (768 -> 768 over 8 sequences of 128
    tokens) as ``nn`` layers, as the ops they run and natively (a signed multiplier's layers quantise
    symmetrically, an unsigned one's affinely: their zero-point terms are part of what the layer adds)."""
    case: LayerCase = next(c for c in layer_cases(quick) if "conv3x3" in c.name)
    torch.manual_seed(zlib.crc32(case.name.encode()))
    conv = nn.Conv2d(case.cin, case.cout, case.kernel, case.stride, case.padding).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((case.batch, case.cin, case.size, case.size), generator=gen).clamp_min(0)

    def conv_op(codes: torch.Tensor, weights: torch.Tensor, prepared: PreparedLut) -> torch.Tensor:
        return approx_conv2d(codes, weights, prepared, case.stride, case.padding, grad="ste", engine=engine)

    rows, features = (16, 32) if quick else (1024, 768)
    linear = nn.Linear(features, features).eval()
    tokens = torch.randn((rows, features), generator=gen)

    def linear_op(codes: torch.Tensor, weights: torch.Tensor, prepared: PreparedLut) -> torch.Tensor:
        return approx_linear(codes, weights, prepared, grad="ste", engine=engine)

    return [
        _bench_nn_layer(
            f"nn.ApproxConv2d {case.name.split('.', 1)[1]}", conv, ApproxConv2d, x, conv_op, lut, repeat, engine
        ),
        _bench_nn_layer(
            f"nn.ApproxLinear {features}->{features} x{rows}", linear, ApproxLinear, tokens, linear_op, lut, repeat,
            engine,
        ),
    ]  # fmt: skip


def _bench_nn_layer(
    name: str,
    native: nn.Module,
    kind: type[ApproxConv2d] | type[ApproxLinear],
    x: torch.Tensor,
    op: Callable[[torch.Tensor, torch.Tensor, PreparedLut], torch.Tensor],
    lut: Lut,
    repeat: int,
    engine: str | None,
) -> BenchResult:
    """One ``nn`` layer case: the layer, the op on its codes and the native module timed alternately; the
    layer's result checked against its step-by-step twin on the reference engine."""
    layer = kind.from_float(native, LayerConfig(multiplier=lut, engine=engine)).eval()
    twin = kind.from_float(native, LayerConfig(multiplier=lut, engine="reference")).eval()
    calibrate(layer, [x])
    calibrate(twin, [x])
    with torch.no_grad():
        codes, _, _ = layer.quantize_input(x)
        weights, _, _ = layer.quantize_weight()
        prepared = layer.resolved.prepared("cpu")
        native_s, op_s, layer_s = best_times(
            lambda: native(x), lambda: op(codes, weights, prepared), lambda: layer(x), repeat=repeat
        )
        path = taken_path(prepared, engine)
        verified = torch.equal(layer(x)[:1], twin(x[:1]))
    return BenchResult(name, native_s, layer_s, layer_s / native_s, path, "forward", None, verified, op_s=op_s)


def bench_multiplier(
    lut: Lut,
    *,
    quick: bool = False,
    backward: bool = False,
    engine: str | None = None,
    repeat: int | None = None,
    networks: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Every bench case for ``lut`` (:func:`approxlut.native.bench.run_bench`), then the ``nn`` layer."""
    if backward and lut.grad_a is None:
        lut = lut.with_gradients()
    results = run_bench(
        PreparedLut.from_lut(lut),
        quick=quick,
        backward=backward,
        engine=engine,
        repeat=repeat,
        networks=networks,
        progress=progress,
    )
    if progress is not None:
        progress("nn layers")
    for layer in bench_layers(lut, quick=quick, repeat=repeat or (1 if quick else 3), engine=engine):
        results.append(replace(layer, native_isa=results[0].native_isa if results else layer.native_isa))
    return results


def corpus_tables(folder: str | os.PathLike[str]) -> tuple[list[tuple[str, Lut]], list[dict[str, str]]]:
    """The tables of the netlists and table files in ``folder`` (not recursive) that LUT layers take (2..8
    bit operands), each distinct table once (twins such as EvoApprox's ``_pdk45`` netlists are left out),
    with each file left out and why (``{file, reason}``)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    tables: list[tuple[str, Lut]] = []
    skipped: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(LUT_SUFFIXES + NETLIST_SUFFIXES):
            continue
        try:
            lut = load_multiplier(str(path))
        except LutgenError as error:
            skipped.append({"file": path.name, "reason": str(error)})
            continue
        if not (2 <= lut.bits_a <= 8 and 2 <= lut.bits_b <= 8):
            skipped.append({"file": path.name, "reason": f"{lut.bits_a}x{lut.bits_b} (LUT layers take 2..8 bits)"})
            continue
        if lut.hash in seen:
            skipped.append({"file": path.name, "reason": f"same table as {seen[lut.hash]}"})
            continue
        seen[lut.hash] = path.name
        tables.append((path.stem, lut))
    if not tables:
        raise ConfigError(f"{root}: no multiplier tables or netlists of 2..8 bit operands found")
    return tables, skipped


@dataclass(frozen=True)
class CorpusReport:
    """A corpus sweep: one row per table, and the files left out."""

    rows: list[CorpusRow]
    skipped: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        """The body of ``lutgen bench --corpus DIR --json``."""
        return {
            "results": [r.as_dict() for row in self.rows for r in row.results],
            "tables": [row.as_dict() for row in self.rows],
            "summary": corpus_summary(self.rows),
            "skipped": self.skipped,
        }


def bench_corpus(
    folder: str | os.PathLike[str],
    *,
    quick: bool = False,
    engine: str | None = None,
    repeat: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CorpusReport:
    """Time the ResNet-18 3x3 convolutions for every distinct table of ``folder``."""
    tables, skipped = corpus_tables(folder)
    prepared = [(name, PreparedLut.from_lut(lut)) for name, lut in tables]
    return CorpusReport(run_corpus(prepared, quick=quick, engine=engine, repeat=repeat, progress=progress), skipped)
