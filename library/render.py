"""Rich terminal rendering of catalogue entries (``lutgen library list / show / pareto``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ..lutgen.metrics import MRE_CONVENTIONS, published_round
from .catalogue import (
    COST_COLUMNS,
    COST_DECIMALS,
    METRIC_COLUMNS,
    PUBLISHED_KEYS,
    WORST_CASE_COLUMNS,
    Entry,
    column_key,
)
from .pareto import value


def _num(raw: float | int | None, decimals: int | None = None) -> str:
    if raw is None:
        return "-"
    if isinstance(raw, int):
        return str(raw)
    if decimals is not None:
        return f"{raw:.{decimals}f}"
    return published_round(float(raw))


def _cell(col: str, raw: float | None) -> str:
    return _num(raw, COST_DECIMALS.get(col))


def entries_table(entries: Sequence[Entry], *, title: str | None = None) -> Table:
    """One row per entry: name, kind, gates, MAE/WCE/EP and cost (``*``: estimated, not published)."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption_justify="left",
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for header in ("gates", "MAE%", "WCE%", "EP%", "mW", "µm²", "ns"):
        table.add_column(header, justify="right", no_wrap=True)
    estimated = sampled = False
    for e in entries:
        mark = "*" if e.power_source == "estimated" else ""
        estimated = estimated or bool(mark)
        sampled = sampled or e.sampled
        table.add_row(
            e.full_name,
            e.kind,
            _num(e.gates),
            _num(e.mae_pct),
            ("≥" if e.sampled else "") + _num(e.wce_pct),
            _num(e.ep_pct),
            _cell("power_mw", e.power_mw) + mark,
            _cell("area_um2", e.area_um2) + mark,
            _cell("delay_ns", e.delay_ns) + mark,
        )
    captions = []
    if estimated:
        captions.append("* cost estimated by lutgen's cell model; the others are published")
    if sampled:
        captions.append("≥ largest error in a random sample (too wide to enumerate): a lower bound")
    table.caption = "\n".join(captions) or None
    return table


def print_entries(
    entries: Sequence[Entry], *, library: Path, console: Console | None = None, title: str | None = None
) -> None:
    """Print :func:`entries_table`, or a hint naming the ``library`` folder when the selection is empty."""
    console = console or Console()
    if not entries:
        console.print(
            f"no multipliers match in the library at {library} "
            "(see `lutgen library list` without filters, or `lutgen library import`)",
            soft_wrap=True,
        )
        return
    console.print(entries_table(entries, title=title))


def print_entry(entry: Entry, *, console: Console | None = None) -> None:
    """All figures of one entry, where it came from, and published figures it does not reproduce."""
    console = console or Console()
    sign = "signed" if entry.signed else "unsigned"
    table = Table(title=f"{entry.full_name}: {entry.bits_a}x{entry.bits_b} {sign}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_column("published", overflow="fold")
    published = {col: text for key, text in entry.published.items() if (col := PUBLISHED_KEYS.get(key))}
    for col in METRIC_COLUMNS:
        table.add_row(col, _num(getattr(entry, col)), published.get(col, ""))
    for col in COST_COLUMNS:
        table.add_row(col, _cell(col, getattr(entry, col)), published.get(col, ""))
    table.add_row("power source", entry.power_source or "-", "")
    table.add_row("gates", _num(entry.gates), "")
    table.add_row("metrics", entry.metrics_method or "-", "")
    table.add_row("MRE/WCRE convention", f"{entry.mre_convention}: {MRE_CONVENTIONS[entry.mre_convention]}", "")
    table.add_row("hash", entry.hash, "")
    table.add_row("table", "stored" if entry.has_lut else "none (too wide; metrics only)", "")
    table.add_row("origin", entry.origin, "")
    if entry.family:
        table.add_row("family", entry.family + (f" {entry.params}" if entry.params else ""), "")
    table.add_row("source", entry.source or "-", "")
    for alt in entry.alt_sources:
        table.add_row("also in", alt, "")
    if entry.aliases:
        table.add_row("same table as", ", ".join(entry.aliases), "")
    if entry.licence:
        table.add_row("licence", entry.licence, "")
    if entry.citation:
        table.add_row("cite", entry.citation, "")
    table.add_row("created", entry.created, "")
    console.print(table)
    for note in difference_notes(entry):
        console.print(f"[yellow]note:[/] {note}")


def difference_notes(entry: Entry) -> list[str]:
    """One sentence per published figure the measured one does not reproduce (sampled: why it cannot)."""
    notes = [
        f"published {col} = {text} but the netlist gives {_num(measured)} (lutgen keeps the measured value)"
        for col, (text, measured) in entry.published_differences().items()
    ]
    for col, (text, measured) in entry.sampled_differences().items():
        what = "the largest in the sample, a lower bound" if col in WORST_CASE_COLUMNS else "a sampled estimate"
        notes.append(f"{col} = {_num(measured)} is {what} ({entry.metrics_method}); published {text}")
    return notes


def print_front(
    front: Sequence[Entry], x: str, y: str, *, total: int, kind: str, console: Console | None = None
) -> None:
    """The Pareto front of one kind as a table of its two coordinates."""
    console = console or Console()
    x_col, y_col = column_key(x), column_key(y)
    console.print(
        f"Pareto front of the {kind} multipliers: {len(front)} of {total}, minimising {x_col} and {y_col}",
        soft_wrap=True,
    )
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column(x_col, justify="right")
    table.add_column(y_col, justify="right")
    for e in front:
        table.add_row(e.full_name, _cell(x_col, value(e, x_col)), _cell(y_col, value(e, y_col)))
    console.print(table)
