"""The ``lutgen sim`` job: read a netlist (or a LUT file), simulate it, compute metrics, write the LUT file.

Signedness follows one rule, the one ``library import`` uses: ``--signed``/``--unsigned`` when given,
else what the file name says (EvoApproxLib's ``mul8s_``/``mul8u_``, :mod:`approxlut.circuits.names`),
else signed where a Verilog module declares its operand ports ``signed``, else unsigned. LUT files
(DATE'25 text, TFApprox binary, lutgen ``.npz``) are recognised by their content and carry their own
signedness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..circuits.io import read_netlist, source_library
from ..circuits.names import name_hint, safe_name, said_signedness
from ..circuits.netlist import CellUse
from ..errors import ConfigError, ParseError
from .formats import LUT_FORMATS, read_lut_file, save_npz, sniff_lut_format
from .lut import Lut
from .metrics import DEFAULT_MRE_CONVENTION, LIBRARY_MRE_CONVENTIONS, METRIC_KEYS, Metrics, check_mre_convention
from .simulate import MAX_EXHAUSTIVE_BITS, MAX_LUT_BITS, simulate_lut, simulate_metrics

#: A table file larger than this gets a note offering ``--compress``.
LARGE_FILE_BYTES = 16 << 20


@dataclass
class SimResult:
    """What one simulation produced."""

    path: Path
    name: str
    bits_a: int
    bits_b: int
    signed: bool
    gates: int | None
    metrics: Metrics
    seconds: float
    lut: Lut | None
    out: Path | None
    #: Where the option, the file name and the ports disagree: what was read and why (``settle_signedness``'s note).
    note: str | None
    signed_from: str = "default"
    input_format: str = "netlist"
    out_bytes: int | None = None
    compressed: bool = False
    #: Why the metrics follow their MRE convention ("--mre-convention", a file header, "default").
    mre_convention_from: str = "default"
    cell_use: CellUse | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object (keys as in :mod:`approxlut.schema`: EvoApproxLib's percent metrics)."""
        m = self.metrics
        return {
            "name": self.name,
            "bits_a": self.bits_a,
            "bits_b": self.bits_b,
            "signed": self.signed,
            "gates": self.gates,
            **{key: getattr(m, key) for key in METRIC_KEYS},
            "metrics_method": m.method,
            "mre_convention": m.mre_convention,
            "mre_convention_from": self.mre_convention_from,
            "cells": self.cell_use.as_dict() if self.cell_use is not None else None,
            "signed_from": self.signed_from,
            "note": self.note,
            "input_format": self.input_format,
            "input_pairs": m.n,
            "hash": self.lut.hash if self.lut is not None else None,
            "out": str(self.out) if self.out is not None else None,
            "out_bytes": self.out_bytes,
            "elapsed_s": self.seconds,
        }


def default_out(path: Path) -> Path:
    """``FILE.npz`` next to the input (``FILE.lut.npz`` if the input itself ends in ``.npz``)."""
    out = path.with_suffix(".npz")
    return out if out != path else path.with_suffix(".lut.npz")


def settle_signedness(path: Path, signed: bool | None, *, ports: bool = False) -> tuple[bool, str, str | None]:
    """``(signed, where from, note)``: the option, else what the file says (its name, else its ports:
    :func:`~approxlut.circuits.names.said_signedness`), else unsigned.

    ``ports``: the netlist declares its operand ports signed (:attr:`~approxlut.circuits.netlist.Netlist.signed_ports`).
    ``where from`` is ``"option"``, ``"name"``, ``"ports"`` or ``"default"``; the note says when the option
    contradicts the name or the ports, or the name the ports.
    """
    hint = name_hint(path.name)
    said = said_signedness(hint.signed if hint is not None else None, ports)
    if signed is not None:
        note = None
        asked = "signed" if signed else "unsigned"
        if said is not None and said[0] != signed:
            if hint is not None:
                note = (
                    f"the name ({hint.token}) says {'signed' if hint.signed else 'unsigned'}; read as {asked} as asked"
                )
            else:
                note = f"the ports are declared signed; read as {asked} as asked"
        return signed, "option", note
    if said is None:
        return False, "default", None
    note = None
    if hint is not None and ports and not hint.signed:
        note = f"the ports are declared signed; read as unsigned as the name ({hint.token}) says"
    return said[0], said[1], note


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
    seed: int | None = None,
    top: str | None = None,
    cells: Path | str | None = None,
    mre_convention: str | None = None,
    compress: bool = False,
) -> SimResult:
    """Parse, simulate and (for tables up to 24 input bits) write the LUT with its gradients.

    ``signed=None``: what the file name says (``mul8s_``), else unsigned (see the module docstring).
    ``mre_convention=None`` picks the convention of the library the file's header names (EvoApprox8b:
    ``max1``), else the default. A LUT file (``fmt`` one of :data:`LUT_FORMATS`, or recognised by
    content) is read instead of simulated. ``seed`` seeds Monte-Carlo sampling (default 0), which ``samples`` or a
    netlist of more than ``MAX_EXHAUSTIVE_BITS`` input bits asks for; an exhaustive run refuses it.
    """
    if not path.exists():  # (before the format is guessed: a mistyped name is that, whatever its extension)
        raise ParseError("no such file", str(path))
    lut_format = fmt if fmt in LUT_FORMATS else (sniff_lut_format(path) if fmt is None else None)
    if lut_format is None and fmt is None and path.suffix.lower() == ".npz":
        lut_format = "npz"  # (not lutgen's by its content: its reader says what is missing)
    if lut_format is not None:
        return _run_table(
            path,
            lut_format,
            signed=signed,
            half_window=half_window,
            grad=grad,
            compat=compat,
            out=out,
            write=write,
            compress=compress,
            operands=operands,
            top=top,
            cells=cells,
            samples=samples,
            seed=seed,
            mre_convention=mre_convention,
        )
    netlist = read_netlist(path, format=fmt, operands=operands, top=top, cells=cells)
    convention, convention_from = mre_convention_for(path, fmt, mre_convention)
    signed, signed_from, note = settle_signedness(path, signed, ports=netlist.signed_ports)
    bits_a, bits_b = netlist.widths if len(netlist.widths) == 2 else (0, 0)
    target = out or default_out(path)
    if write and target.resolve() == path.resolve():
        raise ConfigError(f"{target}: refusing to overwrite the input file")
    if seed is not None and samples is None and bits_a + bits_b <= MAX_EXHAUSTIVE_BITS:
        raise ConfigError(
            f"{path}: --seed: for Monte-Carlo sampling only (--samples N; this {bits_a}x{bits_b} netlist is simulated "
            "exhaustively)"
        )
    start = time.perf_counter()
    lut: Lut | None = None
    if bits_a + bits_b <= MAX_LUT_BITS and samples is None:
        lut = simulate_lut(netlist, signed=signed, name=safe_name(path.stem))
        metrics = lut.metrics(mre_convention=convention)
        seconds = time.perf_counter() - start
        lut = lut.with_gradients(half_window, grad, compat=compat)
        lut.meta.update(source=str(path))
    else:
        metrics = simulate_metrics(netlist, signed=signed, samples=samples, seed=seed or 0, mre_convention=convention)
        seconds = time.perf_counter() - start
    written, size = _write(lut, target, compress=compress) if write and lut is not None else (None, None)
    return SimResult(
        path=path,
        name=safe_name(path.stem),
        bits_a=bits_a,
        bits_b=bits_b,
        signed=signed,
        gates=netlist.gate_count(),
        metrics=metrics,
        seconds=seconds,
        lut=lut,
        out=written,
        note=note,
        mre_convention_from=convention_from,
        cell_use=netlist.cell_use,
        signed_from=signed_from,
        out_bytes=size,
        compressed=compress,
    )


def _write(lut: Lut, target: Path, *, compress: bool) -> tuple[Path, int]:
    save_npz(lut, target, compress=compress)
    return target, target.stat().st_size


def _run_table(
    path: Path,
    lut_format: str,
    *,
    signed: bool | None,
    half_window: int,
    grad: str,
    compat: bool,
    out: Path | None,
    write: bool,
    compress: bool,
    operands: tuple[str, str] | None,
    top: str | None,
    cells: Path | str | None,
    samples: int | None,
    seed: int | None,
    mre_convention: str | None,
) -> SimResult:
    """``sim`` of a LUT file: its metrics, and the lutgen ``.npz`` with gradients per the options."""
    netlist_only = [
        name
        for name, given in (("--operands", operands), ("--top", top), ("--cells", cells), ("--samples", samples))
        if given is not None
    ]
    netlist_only += ["--seed"] if seed is not None else []
    if netlist_only:
        given = ", ".join(netlist_only)
        raise ConfigError(f"{path}: {given}: for netlists only (a LUT file holds every product already)")
    lut = read_lut_file(path, lut_format)
    if signed is not None and signed != lut.signed:
        kind = "signed" if lut.signed else "unsigned"
        raise ConfigError(f"{path}: this {lut_format} file holds an {kind} table; leave out --signed/--unsigned")
    target = out or default_out(path)
    if write and target.resolve() == path.resolve():
        raise ConfigError(f"{target}: refusing to overwrite the input file")
    convention = check_mre_convention(mre_convention) if mre_convention is not None else DEFAULT_MRE_CONVENTION
    start = time.perf_counter()
    metrics = lut.metrics(mre_convention=convention)
    seconds = time.perf_counter() - start
    lut = lut.with_gradients(half_window, grad, compat=compat)
    written, size = _write(lut, target, compress=compress) if write else (None, None)
    return SimResult(
        path=path,
        name=lut.name,
        bits_a=lut.bits_a,
        bits_b=lut.bits_b,
        signed=lut.signed,
        gates=None,
        metrics=metrics,
        seconds=seconds,
        lut=lut,
        out=written,
        note=None,
        signed_from="file",
        input_format=lut_format,
        out_bytes=size,
        compressed=compress,
        mre_convention_from="--mre-convention" if mre_convention is not None else "default",
    )


def mre_convention_for(path: Path, fmt: str | None, chosen: str | None) -> tuple[str, str]:
    """``(convention, why)``: ``chosen`` when given, else the one of the library the header names, else the default."""
    if chosen is not None:
        return check_mre_convention(chosen), "--mre-convention"
    found = source_library(path, fmt)
    if found is not None and found[0] in LIBRARY_MRE_CONVENTIONS:
        return LIBRARY_MRE_CONVENTIONS[found[0]], found[1]
    return DEFAULT_MRE_CONVENTION, "default"
