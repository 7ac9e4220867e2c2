"""The ``lutgen sim`` job: read a netlist file, simulate it, compute metrics, write the LUT file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..circuits.io import read_netlist
from ..errors import ConfigError
from .formats import save_npz
from .lut import Lut
from .metrics import Metrics
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
    cells: Path | None = None,
) -> SimResult:
    """Parse, simulate and (for tables up to 24 input bits) write the LUT with its gradients.

    ``signed=None`` means the default, unsigned; the result carries a hint when the file name
    suggests a signed circuit (EvoApproxLib's ``mul8s_``).
    """
    netlist = read_netlist(path, format=fmt, operands=operands, top=top, cells=cells)
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
        metrics = lut.metrics()
        seconds = time.perf_counter() - start
        lut = lut.with_gradients(half_window, grad, compat=compat)
        lut.meta.update(source=str(path))
    else:
        metrics = simulate_metrics(netlist, signed=signed, samples=samples)
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
    )
