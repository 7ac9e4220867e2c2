"""Rich rendering of simulation results for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from .metrics import MRE_CONVENTIONS, published_round

if TYPE_CHECKING:
    from .job import SimResult


def print_sim(result: SimResult, *, explicit_signedness: bool, console: Console | None = None) -> None:
    """Print the metrics table of one simulated circuit."""
    console = console or Console()
    m = result.metrics
    sign = "signed" if result.signed else "unsigned"
    console.print(f"[bold]{result.name}[/]: {result.bits_a}x{result.bits_b} {sign}, {result.gates} gates")
    if not explicit_signedness:
        console.print("operands read as unsigned (the default; pass --signed for two's complement)")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    rel = f" ({m.mre_convention})"
    rows = [
        ("MAE %", published_round(m.mae_pct)),
        ("WCE %", published_round(m.wce_pct)),
        ("MRE %" + rel, published_round(m.mre_pct)),
        ("WCRE %" + rel, published_round(m.wcre_pct)),
        ("EP %", published_round(m.ep_pct)),
        ("MSE", published_round(m.mse)),
        ("MED (mean |e|)", published_round(m.med)),
        ("WCE (max |e|)", str(m.wce)),
        ("bias (mean e)", published_round(m.bias)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"simulated {m.n} input pairs ({m.method}) in {result.seconds * 1e3:.1f} ms")
    console.print(
        f"MRE/WCRE convention {m.mre_convention}: {MRE_CONVENTIONS[m.mre_convention]} ({result.mre_convention_from})",
        highlight=False,
    )
    if result.cell_use is not None:
        console.print(result.cell_use.describe(), highlight=False, markup=False)
    if result.hint:
        console.print(f"[yellow]note:[/] {result.hint}")
    if result.out is not None and result.lut is not None:
        console.print(
            f"wrote {result.out} (LUT {result.lut.hash[:12]}, gradients: {result.lut.meta.get('grad_method')})"
        )
    elif result.lut is None:
        console.print("no table for this width: metrics only")
