"""Rich rendering of simulation results for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from .metrics import MRE_CONVENTIONS, published_round

if TYPE_CHECKING:
    from .job import SimResult


#: Why the operands were read as they were, by :attr:`SimResult.signed_from`.
_SIGNEDNESS = {
    "option": "operands read as {sign} (as asked)",
    "name": "operands read as {sign}: the file name says so ({token}; pass --{other} to override)",
    "ports": "operands read as signed: the module's operand ports are declared signed (pass --unsigned to override)",
    "default": "operands read as unsigned (the default; pass --signed for two's complement)",
    "file": "operands {sign}, as the {fmt} file says",
}


def describe_signedness(signed: bool, signed_from: str, *, token: str = "", fmt: str = "") -> str:
    """How the operands were read, in words: ``signed_from`` is :func:`~.job.settle_signedness`'s ``where from``
    (or ``"file"`` for a LUT file of format ``fmt``); ``token`` is what the file name says (``mul8s``)."""
    sign = "signed" if signed else "unsigned"
    other = "unsigned" if signed else "signed"
    return _SIGNEDNESS[signed_from].format(sign=sign, other=other, token=token, fmt=fmt)


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 2**20 else f"{count / 2**10:.0f} kB"


def print_sim(result: SimResult, *, console: Console | None = None) -> None:
    """Print the metrics of one simulated circuit (or LUT file), how its operands were read, what was written."""
    from ..circuits.names import name_hint
    from .job import LARGE_FILE_BYTES
    from .simulate import MAX_LUT_BITS

    console = console or Console()
    m = result.metrics
    sign = "signed" if result.signed else "unsigned"
    gates = f", {result.gates} gates" if result.gates is not None else f", {result.input_format} table"
    console.print(f"[bold]{result.name}[/]: {result.bits_a}x{result.bits_b} {sign}{gates}")
    hint = name_hint(result.path.name)
    token = hint.token if hint is not None else ""
    console.print(describe_signedness(result.signed, result.signed_from, token=token, fmt=result.input_format))
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
    verb = "simulated" if result.gates is not None else "measured"
    console.print(f"{verb} {m.n} input pairs ({m.method}) in {result.seconds * 1e3:.1f} ms")
    console.print(
        f"MRE/WCRE convention {m.mre_convention}: {MRE_CONVENTIONS[m.mre_convention]} ({result.mre_convention_from})",
        highlight=False,
    )
    if result.cell_use is not None:
        console.print(result.cell_use.describe(), highlight=False, markup=False)
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}")
    if result.out is not None and result.lut is not None:
        size = "" if result.out_bytes is None else f"{_size(result.out_bytes)}, "
        console.print(
            f"wrote {result.out} ({size}LUT {result.lut.hash[:12]}, gradients: {result.lut.meta.get('grad_method')})"
        )
        if result.out_bytes is not None and result.out_bytes > LARGE_FILE_BYTES and not result.compressed:
            console.print("[yellow]note:[/] a large file: --compress writes it zip-compressed (smaller, slower)")
    elif result.lut is None and result.bits_a + result.bits_b > MAX_LUT_BITS:
        console.print(f"no table for this width (more than {MAX_LUT_BITS} input bits): metrics only")
    elif result.lut is None:
        console.print("no table: --samples measures a random sample only (leave it out for the exhaustive table)")
