"""A static HTML report of the library: a filterable, sortable table, Pareto plots, and a page per circuit.

Layout of the report folder (plain files, no network, opens from ``file://``)::

    index.html                  the table (search, filters, sortable columns), then one plot per kind
    report.css, report.js       the page's style and its small script (sorting and filtering)
    plots/power-mae-8x8s.png    power vs MAE per kind (widths and signedness), the front marked
    circuits/<slug>.html        one page per circuit: error heat-map, metrics, cost, provenance, downloads
    circuits/<slug>/            the heat-map and the downloads (npz, TFApprox binary, DATE'25 text, netlist)

Every plot uses the same axes: power on a log scale, MAE on a log scale (symlog when an exact multiplier,
MAE 0, is among the points). Kinds with fewer than :data:`MIN_PLOT_POINTS` costed multipliers get no plot
(the page lists them): their rows are in the table.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from ..circuits.names import safe_name
from ..fileio import atomic_write, atomic_write_text, make_dirs
from ..lutgen.metrics import published_round
from .catalogue import COST_COLUMNS, COST_DECIMALS, METRIC_COLUMNS, PUBLISHED_KEYS, Entry, Library
from .pareto import pareto_front
from .plots import error_heatmap, pareto_plot
from .render import difference_notes

#: (header, attribute, left-aligned) of the index table's columns.
TABLE_COLUMNS = (
    ("name", "full_name", True),
    ("kind", "kind", True),
    ("origin", "origin", True),
    ("family", "family", True),
    ("gates", "gates", False),
    ("MAE %", "mae_pct", False),
    ("WCE %", "wce_pct", False),
    ("MRE %", "mre_pct", False),
    ("EP %", "ep_pct", False),
    ("MSE", "mse", False),
    ("power mW", "power_mw", False),
    ("area µm²", "area_um2", False),
    ("delay ns", "delay_ns", False),
    ("cost", "power_source", True),
)
#: A kind (widths and signedness) gets a plot when at least this many of its entries have power and MAE.
MIN_PLOT_POINTS = 5
#: Axis scales of every plot (x: power, y: MAE), so that the plots read alike.
PLOT_SCALES = ("log", "log")
#: Widest table (``bits_a + bits_b``) whose files are offered for download (an 8x8 table is ~1 MB as text).
DOWNLOAD_MAX_BITS = 16
STATIC_FILES = ("report.css", "report.js")

_LABELS = {
    "mae_pct": "MAE %",
    "wce_pct": "WCE %",
    "mre_pct": "MRE %",
    "wcre_pct": "WCRE %",
    "ep_pct": "EP %",
    "mse": "MSE",
    "med": "mean |error|",
    "wce": "max |error|",
    "bias": "bias (mean error)",
    "power_mw": "power mW",
    "area_um2": "area µm²",
    "delay_ns": "delay ns",
}


@dataclass
class ReportSummary:
    """What :func:`write_report` wrote."""

    index: Path
    pages: int
    plots: list[str] = field(default_factory=list)
    unplotted: dict[str, int] = field(default_factory=dict)
    bytes: int = 0


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _shown(attr: str, raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return str(raw)
    if isinstance(raw, int) or (attr == "wce" and float(raw).is_integer()):
        return str(int(raw))
    if attr in COST_DECIMALS:
        return f"{raw:.{COST_DECIMALS[attr]}f}"
    return published_round(float(raw))


def _sort_key(entry: Entry) -> tuple[int, int, bool, str]:
    return entry.bits_a, entry.bits_b, entry.signed, entry.full_name


def kinds(entries: Sequence[Entry]) -> list[str]:
    """The kinds of ``entries`` ordered by width numerically (4x4 before 12x12), unsigned before signed."""
    firsts = {e.kind: e for e in sorted(entries, key=_sort_key, reverse=True)}
    return sorted(firsts, key=lambda kind: _sort_key(firsts[kind])[:3])


def page_slug(entry: Entry) -> str:
    """The file name stem of an entry's page: its full name made file-safe, and a hash prefix (names repeat)."""
    return f"{safe_name(entry.full_name)}-{entry.hash[:8]}"


# --------------------------------------------------------------------------------------------- index


def _row(entry: Entry, front: bool) -> str:
    cells = []
    for _, attr, left in TABLE_COLUMNS:
        raw = getattr(entry, attr)
        shown = _e(_shown(attr, raw))
        if attr == "full_name":
            shown = f'<a href="circuits/{_e(page_slug(entry))}.html">{shown}</a>'
        if attr == "wce_pct" and entry.sampled and raw is not None:
            shown = "≥" + shown
        value = "" if raw is None else (repr(raw) if isinstance(raw, float) else str(raw))
        cells.append(f'<td{" class=text" if left else ""} data-v="{_e(value)}">{shown}</td>')
    text = " ".join(str(x).lower() for x in (entry.full_name, entry.kind, entry.origin, entry.family or ""))
    data = {
        "text": text,
        "kind": entry.kind,
        "origin": entry.origin,
        "family": entry.family or "",
        "mae": "" if entry.mae_pct is None else repr(entry.mae_pct),
        "power": "" if entry.power_mw is None else repr(entry.power_mw),
    }
    attrs = " ".join(f'data-{key}="{_e(value)}"' for key, value in data.items())
    return f'<tr class="{"front" if front else ""}" {attrs}>{"".join(cells)}</tr>'


def _select(ident: str, label: str, values: Sequence[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return f'<label>{_e(label)}<select id="{ident}"><option value="">all</option>{options}</select></label>'


def _filters(entries: Sequence[Entry]) -> str:
    origins = sorted({e.origin for e in entries})
    families = sorted({e.family for e in entries if e.family})
    return (
        '<form id="filters" onsubmit="return false">'
        '<label>search<input type="search" id="search" placeholder="name, family, origin"></label>'
        + _select("f-kind", "kind", kinds(entries))
        + _select("f-origin", "origin", origins)
        + _select("f-family", "family", families)
        + '<label>max MAE %<input type="number" id="f-max-mae" min="0" step="any"></label>'
        '<label>max power mW<input type="number" id="f-max-power" min="0" step="any"></label>'
        '<span id="count"></span></form>'
    )


def _plots(entries: Sequence[Entry], out_dir: Path, summary: ReportSummary) -> str:
    """One power-vs-MAE plot per kind with enough costed points, in width order; the others named."""
    figures = []
    groups: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=_sort_key):
        groups.setdefault(entry.kind, []).append(entry)
    make_dirs(out_dir / "plots")
    for kind, group in groups.items():
        usable = [e for e in group if e.power_mw is not None and e.mae_pct is not None]
        if len(usable) < MIN_PLOT_POINTS:
            summary.unplotted[kind] = len(usable)
            continue
        name = f"plots/power-mae-{kind}.png"
        title = f"{kind}: power vs MAE ({len(usable)} multipliers)"
        pareto_plot(usable, out_dir / name, x="power", y="mae", title=title, scales=PLOT_SCALES)
        summary.plots.append(name)
        figures.append(f'<figure><img src="{_e(name)}" alt="{_e(title)}"><figcaption>{_e(title)}</figcaption></figure>')
    skipped = ""
    if summary.unplotted:
        listed = ", ".join(f"{kind} ({count})" for kind, count in summary.unplotted.items())
        skipped = (
            f"<p>No plot for kinds with fewer than {MIN_PLOT_POINTS} multipliers with power and MAE: {_e(listed)}; "
            "their rows are in the table.</p>"
        )
    return f'<div class="plots">{"".join(figures)}</div>{skipped}'


def _index(lib: Library, rows: Sequence[Entry], front_ids: set[int], plots: str) -> str:
    head = "".join(f"<th{' class=text' if left else ''}>{_e(h)}</th>" for h, _, left in TABLE_COLUMNS)
    body = "\n".join(_row(e, e.id in front_ids) for e in rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lutgen multiplier library</title>
<link rel="stylesheet" href="report.css"></head>
<body>
<h1>lutgen multiplier library</h1>
<p class="lede">{len(rows)} multipliers from <code>{_e(lib.root)}</code>, {stamp}. Click a column header to sort,
a name for the circuit's page (error heat-map, metrics, provenance, downloads). Names in bold are on the
power/MAE Pareto front of their kind. Costs are published (EvoApproxLib, 45 nm) or estimated by lutgen's cell
model; ≥ marks a worst case found by sampling (a lower bound).</p>
{_filters(rows)}
<table id="library">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>Power vs MAE, per kind</h2>
<p>Both axes logarithmic in every plot (exact multipliers, MAE 0, sit at the bottom); the step line is the
Pareto front.</p>
{plots}
<script src="report.js"></script>
</body></html>
"""


# ------------------------------------------------------------------------------------ circuit pages


def _facts(rows: Sequence[tuple[str, str]]) -> str:
    return '<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _downloads(lib: Library, entry: Entry, folder: Path, slug: str) -> list[str]:
    """Write the entry's files into ``folder``; returns the list items linking them (or saying why not)."""
    from ..errors import InputError
    from ..lutgen.formats import save_npz, write_lutfp, write_tfapprox

    items: list[str] = []
    source = Path(entry.source) if entry.source else None
    if source is not None and source.is_file():
        atomic_write(folder / source.name, lambda handle: _copy(source, handle))
        items.append(f'<a href="{_e(slug)}/{_e(source.name)}">{_e(source.name)}</a>: the netlist it was imported from')
    if not entry.has_lut:
        return [*items, "no table: too wide to tabulate, the library keeps its metrics only"]
    if entry.bits_a + entry.bits_b > DOWNLOAD_MAX_BITS:
        hint = f"lutgen library export {entry.full_name} --format npz"
        return [*items, f"no table files for a table this wide; write one with <code>{_e(hint)}</code>"]
    lut = lib.load_lut(entry)
    name = safe_name(entry.full_name)  # a valid name unchanged; one catalogued before names were checked, too
    save_npz(lut, folder / f"{name}.npz", compress=True)
    items.append(
        f'<a href="{_e(slug)}/{_e(name)}.npz">{_e(name)}.npz</a>: lutgen table with gradient tables '
        f"(half window {lut.meta.get('half_window')}), for <code>--assign FILE</code>"
    )
    for fmt, file_name, label, write in (
        ("TFApprox", f"{name}.bin", "TFApprox binary table (65536 × uint16)", write_tfapprox),
        ("DATE'25", f"{name}_lutfp.txt", "DATE'25 text LUT (<code>a b value</code> rows)", None),
    ):
        try:
            if write is not None:
                write(lut, folder / file_name)
            else:
                write_lutfp(lut, folder / file_name, gradients=False)
        except InputError as error:
            items.append(f"no {fmt} file: {_e(str(error).split(';')[-1].strip())}")
            continue
        items.append(f'<a href="{_e(slug)}/{_e(file_name)}">{_e(file_name)}</a>: {label}')
    return items


def _copy(source: Path, handle: BinaryIO) -> None:
    with source.open("rb") as data:
        shutil.copyfileobj(data, handle)


def _circuit_page(lib: Library, entry: Entry, out_dir: Path, *, downloads: bool) -> str:
    slug = page_slug(entry)
    folder = make_dirs(out_dir / "circuits" / slug)
    sign = "signed" if entry.signed else "unsigned"
    if entry.has_lut:
        error_heatmap(lib.load_lut(entry, gradients=False), folder / "heatmap.png", title=f"{entry.full_name}: f − a·b")
        heatmap = f'<img class="heatmap" src="{_e(slug)}/heatmap.png" alt="error heat-map of {_e(entry.full_name)}">'
    else:
        heatmap = f"<p>No heat-map: the circuit is too wide to tabulate ({_e(entry.metrics_method)}).</p>"
    published = {col: text for key, text in entry.published.items() if (col := PUBLISHED_KEYS.get(key))}
    metric_rows = "".join(
        f"<tr><th>{_e(_LABELS[col])}</th><td>{_e(_shown(col, getattr(entry, col)) or '-')}</td>"
        f"<td>{_e(published.get(col, ''))}</td></tr>"
        for col in (*METRIC_COLUMNS, *COST_COLUMNS)
    )
    notes = "".join(f'<p class="note">note: {_e(n)}</p>' for n in difference_notes(entry))
    provenance = [
        ("origin", _e(entry.origin)),
        ("family", _e(entry.family + (f" {entry.params}" if entry.params else "")) if entry.family else "-"),
        ("cost", f"{_e(entry.power_source)} (45 nm)" if entry.power_source else "unknown"),
        ("gates", _e(entry.gates if entry.gates is not None else "-")),
        ("metrics", _e(entry.metrics_method or "-")),
        ("source", _e(entry.source or "-")),
        *(("also in", _e(alt)) for alt in entry.alt_sources),
        *((("licence", _e(entry.licence)),) if entry.licence else ()),
        *((("cite", _e(entry.citation)),) if entry.citation else ()),
        ("table hash", f"<code>{_e(entry.hash)}</code>"),
        ("catalogued", _e(entry.created)),
    ]
    if downloads:
        files = "".join(f"<li>{item}</li>" for item in _downloads(lib, entry, folder, slug))
    else:
        hint = f"lutgen library export {entry.full_name} --format npz|tfapprox|lutfp"
        files = f"<li>not written with this report; <code>{_e(hint)}</code> writes them</li>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(entry.full_name)} · lutgen</title>
<link rel="stylesheet" href="../report.css"></head>
<body>
<p><a href="../index.html">← all multipliers</a></p>
<h1>{_e(entry.full_name)}</h1>
<p class="lede">{entry.bits_a}×{entry.bits_b} {sign} multiplier, {_e(entry.origin)}</p>
{heatmap}
<h2>Error metrics and cost</h2>
<table class="facts"><tr><th>figure</th><th>lutgen</th><th>published</th></tr>{metric_rows}</table>
{notes}
<h2>Provenance</h2>
{_facts(provenance)}
<h2>Downloads</h2>
<ul class="downloads">{files}</ul>
<p>In Python: <code>approxlut.nn.load_multiplier("{_e(entry.full_name)}")</code>; on the command line:
<code>lutgen library show {_e(entry.full_name)}</code>.</p>
</body></html>
"""


# ----------------------------------------------------------------------------------------------- main


def write_report(
    lib: Library, out_dir: str | Path, *, entries: Sequence[Entry] | None = None, downloads: bool = True
) -> ReportSummary:
    """Write the report of ``entries`` (default: the whole library) into ``out_dir`` (created).

    ``downloads=False`` leaves out the table files of the circuit pages (about 1 MB per 8x8 circuit).
    """
    target = Path(out_dir)
    make_dirs(target / "circuits")
    rows = sorted(entries if entries is not None else lib.query(), key=_sort_key)
    front_ids: set[int] = set()
    for kind in {e.kind for e in rows}:
        front_ids |= {e.id for e in pareto_front([e for e in rows if e.kind == kind], "power", "mae")}
    summary = ReportSummary(index=target / "index.html", pages=0)
    plots = _plots(rows, target, summary)
    for name in STATIC_FILES:
        atomic_write_text(target / name, resources.files(__package__).joinpath("data", name).read_text())
    for entry in rows:
        page = _circuit_page(lib, entry, target, downloads=downloads)
        atomic_write_text(target / "circuits" / f"{page_slug(entry)}.html", page)
        summary.pages += 1
    atomic_write_text(summary.index, _index(lib, rows, front_ids, plots))
    summary.bytes = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return summary
