"""The ``lutgen synth`` jobs: synthesise Verilog with Yosys, generate a multiplier, or run the
approximate-synthesis loop; each simulates the result, estimates its cost and can write the netlist."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..circuits.io import format_for, read_netlist, write_netlist
from ..circuits.names import name_hint, safe_name
from ..circuits.netlist import Netlist
from ..errors import ConfigError
from ..fileio import make_dirs
from ..lutgen.job import settle_signedness
from ..lutgen.metrics import METRIC_KEYS, Metrics, published_round
from ..lutgen.report import describe_signedness
from ..lutgen.simulate import MAX_LUT_BITS, simulate_lut, simulate_metrics
from .als import approximate
from .approx import FAMILIES, family
from .generators import array_multiplier, dadda_multiplier, wallace_multiplier
from .power import HardwareCost, estimate_cost
from .yosys import synthesize

#: ``lutgen synth generate`` kinds: the exact reductions and the approximation families.
EXACT_KINDS = {"array": array_multiplier, "wallace": wallace_multiplier, "dadda": dadda_multiplier}
KINDS = (*EXACT_KINDS, *FAMILIES)


@dataclass
class SynthJob:
    """One circuit lutgen made: its netlist, error metrics and estimated cost."""

    netlist: Netlist
    signed: bool
    metrics: Metrics
    cost: HardwareCost
    seconds: float
    out: Path | None
    #: Why the operands were read so, for a circuit read from ``source`` (``settle_signedness``'s "where from").
    signed_from: str | None = None
    #: Where the option, the file name and the ports disagree: what was read and why.
    note: str | None = None
    source: Path | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object (keys as in :mod:`approxlut.schema`; ``signed_from`` and ``note`` for a circuit read
        from a file)."""
        bits_a, bits_b = self.netlist.widths
        m = self.metrics
        read = {"signed_from": self.signed_from, "note": self.note} if self.signed_from is not None else {}
        return {
            "name": self.netlist.name,
            "bits_a": bits_a,
            "bits_b": bits_b,
            "signed": self.signed,
            "gates": self.netlist.gate_count(),
            **{key: getattr(m, key) for key in METRIC_KEYS},
            "metrics_method": m.method,
            **read,
            "power_mw": self.cost.power_mw,
            "area_um2": self.cost.area_um2,
            "delay_ns": self.cost.delay_ns,
            "out": str(self.out) if self.out else None,
            "elapsed_s": self.seconds,
        }


def _finish(
    netlist: Netlist,
    signed: bool,
    out: Path | None,
    start: float,
    read: tuple[str, str | None, Path] | None = None,
) -> SynthJob:
    """Simulate, estimate and write one circuit; ``read``: ``settle_signedness``'s where from and note, and the
    file the circuit was read from."""
    bits = sum(netlist.widths)
    metrics = simulate_lut(netlist, signed=signed).metrics() if bits <= MAX_LUT_BITS else None
    if metrics is None:
        metrics = simulate_metrics(netlist, signed=signed)
    cost = estimate_cost(netlist)
    if out is not None:
        netlist.signed_ports = signed  # (Verilog declares the ports so: the file reads back as it was measured)
        write_netlist(netlist, out)
    signed_from, note, source = read if read is not None else (None, None, None)
    return SynthJob(netlist, signed, metrics, cost, time.perf_counter() - start, out, signed_from, note, source)


def run_verilog(
    path: Path,
    *,
    top: str | None = None,
    signed: bool | None = None,
    operands: tuple[str, str] | None = None,
    out: Path | None = None,
) -> SynthJob:
    """Synthesise behavioural Verilog with Yosys, then simulate and estimate it (``signed``: ``None`` takes what
    the file name says, else its top module's operand ports declared ``signed``, else unsigned, as ``sim`` does;
    ``operands`` names the operand ports, else they are found as ``sim`` finds them)."""
    if out is not None and out.resolve() == path.resolve():
        raise ConfigError(f"{out}: refusing to overwrite the input file")
    start = time.perf_counter()
    netlist = synthesize(path, top=top, operands=operands).netlist
    signed, signed_from, note = settle_signedness(path, signed, ports=netlist.signed_ports)
    return _finish(netlist, signed, out, start, (signed_from, note, path))


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["k=4", "compensate=yes", "mode=truncate"]`` -> ``{"k": 4, "compensate": True, ...}``."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"parameter {item!r} must look like NAME=VALUE (e.g. k=4)")
        low = value.lower()
        if low in ("true", "yes", "on"):
            params[key] = True
        elif low in ("false", "no", "off"):
            params[key] = False
        else:
            try:
                params[key] = int(value)
            except ValueError:
                params[key] = value
    return params


def build_kind(kind: str, bits_a: int, bits_b: int, *, signed: bool, params: dict[str, Any]) -> Netlist:
    """A generated multiplier: ``array``/``wallace``/``dadda`` (exact) or an approximation family."""
    if kind in EXACT_KINDS:
        if params:
            raise ConfigError(f"{kind} takes no parameters (got {', '.join(params)})")
        return EXACT_KINDS[kind](bits_a, bits_b, signed=signed)
    fam = family(kind)
    allowed = {*fam.params, "method"} - ({"method"} if kind in ("mitchell", "drum") else set())
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(f"{kind} has no parameter {sorted(unknown)[0]} (it takes {', '.join(sorted(allowed))})")
    signature = inspect.signature(fam.build).parameters
    missing = [name for name in fam.params if name not in params and signature[name].default is inspect.Parameter.empty]
    if missing:
        needed = " ".join(f"--param {name}=N" for name in missing)
        raise ConfigError(f"{kind} needs {needed} (it takes {', '.join(sorted(allowed))})")
    for name, value in params.items():  # (the builders' annotations are strings: `from __future__ import annotations`)
        wanted = signature[name].annotation
        shown = ("yes" if value else "no") if isinstance(value, bool) else value
        if wanted == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{kind}: {name}={shown} is not a whole number")
        if wanted == "bool" and value not in (True, False):
            raise ConfigError(f"{kind}: {name}={shown}: give yes or no")
    try:
        return fam.build(bits_a, bits_b, signed=signed, **params)
    except TypeError as exc:
        raise ConfigError(f"{kind}: {exc}") from None


def run_generate(
    kind: str, bits_a: int, bits_b: int, *, signed: bool, params: dict[str, Any], out: Path | None = None
) -> SynthJob:
    """Generate a multiplier, then simulate and estimate it."""
    start = time.perf_counter()
    return _finish(build_kind(kind, bits_a, bits_b, signed=signed, params=params), signed, out, start)


def run_als(
    path: Path,
    *,
    signed: bool | None,
    operands: tuple[str, str] | None = None,
    max_mae_pct: float | None,
    max_wce_pct: float | None,
    objective: str = "gates",
    steps: int = 80,
    wires: bool = True,
    out_dir: Path | None = None,
) -> list[SynthJob]:
    """Approximate a netlist file greedily; one job per Pareto point (written to ``out_dir``). ``signed``:
    ``None`` takes what the file says (its name, else its Verilog ports), else unsigned, as ``sim`` does;
    ``operands`` names the operand buses, as ``sim --operands`` does."""
    if max_mae_pct is None and max_wce_pct is None:  # (before the file is read, in the options' words)
        raise ConfigError("give an error bound: --max-mae and/or --max-wce")
    start = time.perf_counter()
    netlist = read_netlist(path, operands=operands)
    signed, signed_from, note = settle_signedness(path, signed, ports=netlist.signed_ports)
    if out_dir is not None:
        make_dirs(out_dir)  # before the search: an unusable folder is found at once
    points = approximate(
        netlist,
        signed=signed,
        max_mae_pct=max_mae_pct,
        max_wce_pct=max_wce_pct,
        objective=objective,
        max_steps=steps,
        wires=wires,
    )
    jobs = []
    for i, point in enumerate(points):
        point.netlist.name = f"{safe_name(path.stem)}_als{i}"
        out = out_dir / f"{point.netlist.name}.blif" if out_dir is not None else None
        jobs.append(_finish(point.netlist, signed, out, start, (signed_from, note, path)))
    return jobs


def print_jobs(jobs: list[SynthJob], *, title: str, console: Console | None = None) -> None:
    """A rich table, one row per circuit; then how the operands were read (the same for every job) and what was
    written."""
    console = console or Console()
    table = Table(title=title)
    for col in ("circuit", "bits", "gates", "MAE %", "WCE %", "MRE %", "EP %", "power mW*", "area µm²*", "delay ns*"):
        table.add_column(col, justify="left" if col == "circuit" else "right")
    for job in jobs:
        bits_a, bits_b = job.netlist.widths
        m, c = job.metrics, job.cost
        table.add_row(
            job.netlist.name,
            f"{bits_a}x{bits_b}{'s' if job.signed else 'u'}",
            str(job.netlist.gate_count()),
            published_round(m.mae_pct),
            published_round(m.wce_pct),
            published_round(m.mre_pct),
            published_round(m.ep_pct),
            f"{c.power_mw:.3f}",
            f"{c.area_um2:.1f}",
            f"{c.delay_ns:.2f}",
        )
    console.print(table)
    console.print("* estimated with lutgen's 45 nm-class cell table (lutgen library calibrate shows its accuracy)")
    read = next((job for job in jobs if job.signed_from is not None), None)
    if read is not None and read.signed_from is not None:  # (checked again for mypy)
        hint = name_hint(read.source.name) if read.source is not None else None
        console.print(describe_signedness(read.signed, read.signed_from, token=hint.token if hint is not None else ""))
        if read.note:
            console.print(f"[yellow]note:[/] {read.note}")
    unsaid = []  # (signed circuits written where nothing can say so: BLIF and SOP, without a mul<N>s_ name)
    for job in jobs:
        if job.out is not None:
            console.print(f"wrote {job.out}")
            if job.signed and format_for(job.out) != "verilog" and name_hint(job.out.name) is None:
                unsaid.append(job.out.name)
    if unsaid:
        more = f" (and {len(unsaid) - 1} more)" if len(unsaid) > 1 else ""
        console.print(
            f"[yellow]note:[/] {unsaid[0]}{more} cannot say that its operands are signed: read it back with "
            "--signed, or name it mul<N>s_..."
        )
