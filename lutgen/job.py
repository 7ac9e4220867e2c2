"""The ``lutgen sim`` job: read a netlist file, simulate it, compute metrics, write the LUT file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..circuits.io import read_netlist, source_library
from ..circuits.netlist import CellUse
from ..errors import ConfigError
from .formats import save_npz
from .lut import Lut
from .metrics import DEFAULT_MRE_CONVENTION, LIBRARY_MRE_CONVENTIONS, Metrics, check_mre_convention
from .simulate import MAX_LUT_BITS, simulate_lut, simulate_metrics

_SIGNED_NAME = re.compile(r"mul\d+(?:x\d+)?s(?:_|$)", re.IGNORECASE)


@dataclass
class SimResult:
    """What one simulation produced."""

    path: Path
    name: str
    bits_a: int
    bits_b: int
    signed: bool
    gates: int
    metrics: Metrics
    seconds: float
    lut: Lut | None
    out: Path | None
    hint: str | None
    #: Why the metrics follow their MRE convention ("--mre-convention", a file header, "default").
    mre_convention_from: str = "default"
    cell_use: CellUse | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object: EvoApproxLib's percent units for mae/wce/mre/wcre/ep."""
        m = self.metrics
        return {
            "name": self.name,
            "bits_a": self.bits_a,
            "bits_b": self.bits_b,
            "signed": self.signed,
            "gates": self.gates,
            "mae": m.mae_pct,
            "wce": m.wce_pct,
            "mre": m.mre_pct,
            "wcre": m.wcre_pct,
            "ep": m.ep_pct,
            "mse": m.mse,
            "med": m.med,
            "bias": m.bias,
            "wce_abs": m.wce,
            "method": m.method,
            "mre_convention": m.mre_convention,
            "mre_convention_from": self.mre_convention_from,
            "cells": self.cell_use.as_dict() if self.cell_use is not None else None,
            "hash": self.lut.hash if self.lut is not None else None,
            "out": str(self.out) if self.out is not None else None,
            "seconds": self.seconds,
        }


def default_out(path: Path) -> Path:
    """``FILE.npz`` next to the input (``FILE.lut.npz`` if the input itself ends in ``.npz``)."""
    out = path.with_suffix(".npz")
    return out if out != path else path.with_suffix(".lut.npz")


def run_sim(
    path: Path,
    *,
    signed: bool | None = None,
    fmt: str | None = None,
    operands: tuple[str, str] | None = None,
    half_window: int = 8,
    grad: str = "difference",
    compat: bool = False,
    out: Path | None = None,
    write: bool = True,
    samples: int | None = None,
    top: str | None = None,
    cells: Path | str | None = None,
    mre_convention: str | None = None,
) -> SimResult:
    """Parse, simulate and (for tables up to 24 input bits) write the LUT with its gradients.

    ``signed=None`` means the default, unsigned; the result carries a hint when the file name
    suggests a signed circuit (EvoApproxLib's ``mul8s_``). ``mre_convention=None`` picks the convention
    of the library the file's header names (EvoApprox8b: ``max1``), else the default.
    """
    netlist = read_netlist(path, format=fmt, operands=operands, top=top, cells=cells)
    convention, convention_from = mre_convention_for(path, fmt, mre_convention)
    hint = None
    if signed is None:
        signed = False
        if _SIGNED_NAME.search(path.name):
            hint = f"{path.name} looks like a signed multiplier; read as unsigned (pass --signed)"
    bits_a, bits_b = netlist.widths if len(netlist.widths) == 2 else (0, 0)
    target = out or default_out(path)
    if write and target.resolve() == path.resolve():
        raise ConfigError(f"{target}: refusing to overwrite the input file")
    start = time.perf_counter()
    lut: Lut | None = None
    if bits_a + bits_b <= MAX_LUT_BITS and samples is None:
        lut = simulate_lut(netlist, signed=signed, name=path.stem)
        metrics = lut.metrics(mre_convention=convention)
        seconds = time.perf_counter() - start
        lut = lut.with_gradients(half_window, grad, compat=compat)
        lut.meta.update(source=str(path))
    else:
        metrics = simulate_metrics(netlist, signed=signed, samples=samples, mre_convention=convention)
        seconds = time.perf_counter() - start
    written = None
    if write and lut is not None:
        save_npz(lut, target)
        written = target
    return SimResult(
        path=path,
        name=path.stem,
        bits_a=bits_a,
        bits_b=bits_b,
        signed=signed,
        gates=netlist.gate_count(),
        metrics=metrics,
        seconds=seconds,
        lut=lut,
        out=written,
        hint=hint,
        mre_convention_from=convention_from,
        cell_use=netlist.cell_use,
    )


def mre_convention_for(path: Path, fmt: str | None, chosen: str | None) -> tuple[str, str]:
    """``(convention, why)``: ``chosen`` when given, else the one of the library the header names, else the default."""
    if chosen is not None:
        return check_mre_convention(chosen), "--mre-convention"
    found = source_library(path, fmt)
    if found is not None and found[0] in LIBRARY_MRE_CONVENTIONS:
        return LIBRARY_MRE_CONVENTIONS[found[0]], found[1]
    return DEFAULT_MRE_CONVENTION, "default"
