"""The ``nn`` layer in ``lutgen bench``: an :class:`ApproxConv2d` against the op it runs and native fp32.

The layer quantises its input, runs the LUT convolution and rescales; the op alone is timed on the same
codes, so the ratio of the two is what the layer adds (the fused inference path keeps it near 1). The
layer's result is checked against its step-by-step twin on the reference engine.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut
from ..native.bench import BenchResult, LayerCase, best_times, layer_cases, taken_path
from ..native.ops import approx_conv2d
from .config import LayerConfig
from .layers import ApproxConv2d
from .quant import calibrate


def bench_layer(lut: Lut, *, quick: bool, repeat: int, engine: str | None = None) -> BenchResult | None:
    """Time the first ResNet-18 3x3 convolution as an ``nn`` layer, as the op and natively (``None`` for an
    unsigned multiplier: the bench layer quantises symmetrically)."""
    if not lut.signed:
        return None
    case: LayerCase = next(c for c in layer_cases(quick) if "conv3x3" in c.name)
    torch.manual_seed(zlib.crc32(case.name.encode()))
    native = nn.Conv2d(case.cin, case.cout, case.kernel, case.stride, case.padding).eval()
    layer = ApproxConv2d.from_float(native, LayerConfig(multiplier=lut, engine=engine)).eval()
    twin = ApproxConv2d.from_float(native, LayerConfig(multiplier=lut, engine="reference")).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((case.batch, case.cin, case.size, case.size), generator=gen).clamp_min(0)
    calibrate(layer, [x])
    calibrate(twin, [x])
    with torch.no_grad():
        codes, _, _ = layer.quantize_input(x)
        weights, _, _ = layer.quantize_weight()
        prepared = layer.resolved.prepared("cpu")

        def op() -> torch.Tensor:
            return approx_conv2d(codes, weights, prepared, case.stride, case.padding, grad="ste", engine=engine)

        native_s, op_s, layer_s = best_times(lambda: native(x), op, lambda: layer(x), repeat=repeat)
        path = taken_path(prepared, engine)
        verified = torch.equal(layer(x)[:1], twin(x[:1]))
    return BenchResult(
        f"nn.ApproxConv2d {case.name.split('.', 1)[1]}",
        native_s,
        layer_s,
        layer_s / native_s,
        path,
        "forward",
        None,
        verified,
        op_s=op_s,
    )


def corpus_tables(folder: str | os.PathLike[str]) -> tuple[list[tuple[str, Lut]], list[str]]:
    """The tables of the netlists and table files in ``folder`` (not recursive), each distinct table once
    (twins such as EvoApprox's ``_pdk45`` netlists are left out), with a line per file skipped and why."""
    from ..errors import LutgenError
    from .multipliers import LUT_SUFFIXES, NETLIST_SUFFIXES, load_multiplier

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    tables: list[tuple[str, Lut]] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(LUT_SUFFIXES + NETLIST_SUFFIXES):
            continue
        try:
            lut = load_multiplier(str(path))
        except LutgenError as error:
            skipped.append(f"{path.name}: {error}")
            continue
        if lut.hash in seen:
            skipped.append(f"{path.name}: same table as {seen[lut.hash]}")
            continue
        seen[lut.hash] = path.name
        tables.append((path.stem, lut))
    if not tables:
        raise ConfigError(f"{root}: no multiplier tables or netlists found")
    return tables, skipped
