"""A static HTML report of the library: one sortable table (small inline script) and Pareto plots as PNGs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError
from ..fileio import atomic_write_text
from ..lutgen.metrics import published_round
from .catalogue import COST_DECIMALS, Entry, Library, column
from .pareto import pareto_front
from .plots import pareto_plot

#: (header, attribute) of the table columns.
TABLE_COLUMNS = (
    ("name", "full_name"),
    ("kind", "kind"),
    ("origin", "origin"),
    ("family", "family"),
    ("gates", "gates"),
    ("MAE %", "mae_pct"),
    ("WCE %", "wce_pct"),
    ("MRE %", "mre_pct"),
    ("EP %", "ep_pct"),
    ("MSE", "mse"),
    ("power mW", "power_mw"),
    ("area µm²", "area_um2"),
    ("delay ns", "delay_ns"),
    ("cost", "power_source"),
    ("hash", "hash"),
)

#: Kinds with at least this many costed entries also get an area plot.
AREA_PLOT_MIN = 5

_SCRIPT = """
document.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const rows = Array.from(body.rows);
  const up = th.dataset.dir !== "asc";
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? "asc" : "desc";
  const key = r => r.cells[col].dataset.v;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const nx = Number(x), ny = Number(y);
    const c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
    return up ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}));
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #eee; cursor: pointer; position: sticky; top: 0; }
th[data-dir=asc]::after { content: " ▲"; } th[data-dir=desc]::after { content: " ▼"; }
td:first-child, td:nth-child(2), td:nth-child(3), td:nth-child(4) { text-align: left; }
tr.front td:first-child { font-weight: bold; }
img { max-width: 48%; margin: 0.5em; border: 1px solid #ddd; }
"""


def _cell(entry: Entry, attr: str) -> str:
    raw = getattr(entry, attr)
    if raw is None:
        return '<td data-v=""></td>'
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        text = str(raw)[:12] if attr == "hash" else str(raw)
        return f'<td data-v="{html.escape(str(raw))}">{html.escape(text)}</td>'
    if isinstance(raw, int):
        shown = str(raw)
    elif attr in COST_DECIMALS:
        shown = f"{raw:.{COST_DECIMALS[attr]}f}"
    else:
        shown = published_round(float(raw))
    return f'<td data-v="{raw!r}">{html.escape(shown)}</td>'


def _plots(entries: Sequence[Entry], out_dir: Path) -> list[tuple[str, str]]:
    """Per kind (widths and signedness): power vs MAE, and area vs MAE where there are enough points."""
    plots: list[tuple[str, str]] = []
    for kind in sorted({e.kind for e in entries}):
        group = [e for e in entries if e.kind == kind]
        for x, label, minimum in (("power", "power", 2), ("area", "area", AREA_PLOT_MIN)):
            usable = [e for e in group if getattr(e, column(x)) is not None and e.mae_pct is not None]
            if len(usable) >= minimum:
                name = f"pareto_{kind}_{x}_mae.png"
                pareto_plot(usable, out_dir / name, x=x, y="mae", title=f"{kind}: {label} vs MAE")
                plots.append((name, f"{kind}: {label} vs MAE"))
    return plots


def write_report(lib: Library, out_dir: str | Path, *, entries: Sequence[Entry] | None = None) -> Path:
    """Write ``index.html`` and its PNG plots into ``out_dir`` (created); returns the page's path."""
    target = Path(out_dir)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{target}: cannot create the report folder ({error.strerror or error})") from None
    rows = list(entries) if entries is not None else lib.query()
    front_ids: set[int] = set()
    for kind in {e.kind for e in rows}:
        front_ids |= {e.id for e in pareto_front([e for e in rows if e.kind == kind], "power", "mae")}
    plots = _plots(rows, target)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in TABLE_COLUMNS)
    body = "\n".join(
        f'<tr class="{"front" if e.id in front_ids else ""}">'
        + "".join(_cell(e, a) for _, a in TABLE_COLUMNS)
        + "</tr>"
        for e in rows
    )
    images = "\n".join(
        f'<img src="{html.escape(name)}" alt="{html.escape(alt)}" title="{html.escape(alt)}">' for name, alt in plots
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lutgen multiplier library</title>
<style>{_STYLE}</style></head>
<body>
<h1>lutgen multiplier library</h1>
<p>{len(rows)} multipliers from <code>{html.escape(str(lib.root))}</code>, {stamp}.
Click a column header to sort; names in bold are on the power/MAE Pareto front of their kind.
Costs are published (EvoApproxLib, 45 nm) or estimated by lutgen's cell model.</p>
{images}
<table id="library">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script>{_SCRIPT}</script>
</body></html>
"""
    page_path = target / "index.html"
    return atomic_write_text(page_path, page)
