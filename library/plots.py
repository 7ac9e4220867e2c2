"""PNG plots with matplotlib's Agg canvas (no GUI, no pyplot global state).

- :func:`error_heatmap`: ``f - a·b`` over all operand pairs, axes in operand values.
- :func:`pareto_plot`: every entry as a point in two columns, the Pareto front highlighted and
  labelled, log axes when the values span two decades or more.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_write_bytes, check_writable
from .catalogue import Entry, column_key
from .pareto import pareto_front, value

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..lutgen.lut import Lut

AXIS_LABELS = {
    "power_mw": "power (mW)",
    "area_um2": "area (µm²)",
    "delay_ns": "delay (ns)",
    "mae_pct": "MAE (%)",
    "wce_pct": "WCE (%)",
    "mre_pct": "MRE (%)",
    "wcre_pct": "WCRE (%)",
    "ep_pct": "error probability (%)",
    "mse": "MSE",
    "med": "mean |error|",
    "wce": "max |error|",
    "bias": "bias (mean error)",
    "gates": "gates",
}
#: Label every point when there are at most this many; otherwise only the front.
LABEL_ALL_UP_TO = 12
#: Labels closer than this (pixels, x and y) to one already drawn are left out.
LABEL_GAP_PX = (90.0, 11.0)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def check_plot_path(path: str | Path) -> Path:
    """``path`` if a plot can be written there (a ``.png`` name in a writable folder), else a one-line error: called
    before the work whose plot it is."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ConfigError(f"{target}: plots are written as PNG; use a .png file name")
    check_writable(target)
    return target


def _save(fig: Figure, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    target = check_plot_path(path)
    FigureCanvasAgg(fig)
    image = io.BytesIO()
    fig.savefig(image, format="png")
    return atomic_write_bytes(target, image.getvalue())


def _value_order(bits: int, signed: bool) -> np.ndarray:
    codes = np.arange(1 << bits)
    if signed:
        half = 1 << (bits - 1)
        return np.concatenate([codes[half:], codes[:half]])
    return codes


def error_heatmap(lut: Lut, path: str | Path, *, title: str | None = None) -> Path:
    """Save a heat-map of ``f - a·b`` (rows: operand a, columns: operand b, both in value order)."""
    rows = _value_order(lut.bits_a, lut.signed)
    cols = _value_order(lut.bits_b, lut.signed)
    error = lut.error()[np.ix_(rows, cols)]
    va, vb = lut.values_a[rows], lut.values_b[cols]
    limit = float(max(1, np.abs(error).max()))
    fig = _figure(6.4, 5.4)
    ax = fig.add_subplot()
    image = ax.imshow(
        error,
        origin="lower",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
        aspect="auto",
        extent=(vb[0] - 0.5, vb[-1] + 0.5, va[0] - 0.5, va[-1] + 0.5),
    )
    fig.colorbar(image, ax=ax, label="f − a·b")
    ax.set_xlabel("operand b (weight)")
    ax.set_ylabel("operand a (activation)")
    sign = "signed" if lut.signed else "unsigned"
    ax.set_title(title or f"{lut.name}: error, {lut.bits_a}x{lut.bits_b} {sign}")
    return _save(fig, path)


#: Axis scales :func:`pareto_plot` takes: ``auto`` (log when the values span two decades), ``log``, ``linear``.
SCALES = ("auto", "log", "linear")


def _scale(ax: Axes, axis: str, values: np.ndarray, mode: str = "auto") -> None:
    """Set an axis scale; ``log`` becomes symlog when zeros are present (exact multipliers have MAE 0).

    ``auto`` picks log when positive values span two decades, else linear; negative values keep it linear.
    """
    if mode not in SCALES:
        raise ConfigError(f"unknown axis scale '{mode}' (choose from {', '.join(SCALES)})")
    positive = values[values > 0]
    if mode == "linear" or positive.size == 0 or (values < 0).any():
        return
    if mode == "auto" and (positive.size < 2 or positive.max() / positive.min() < 100):
        return
    from matplotlib.ticker import FuncFormatter, NullFormatter

    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if (values == 0).any():
        setter("symlog", linthresh=float(positive.min()))
        # from just below 0, so that the zeros (exact multipliers) show whole at the bottom
        (ax.set_xlim if axis == "x" else ax.set_ylim)(-0.3 * float(positive.min()), float(positive.max()) * 1.6)
    else:
        setter("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    few_decades = positive.max() / positive.min() < 30
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(plain)
    target.set_minor_formatter(plain if few_decades else NullFormatter())


def pareto_plot(
    entries: Sequence[Entry],
    path: str | Path,
    *,
    x: str = "power",
    y: str = "mae",
    title: str | None = None,
    scales: tuple[str, str] = ("auto", "auto"),
) -> Path:
    """Save a scatter of ``entries`` in ``(x, y)``, the Pareto front drawn as a step line and labelled.

    ``scales`` sets the x and y axis scales (:data:`SCALES`); a report passes fixed ones so that all its
    plots read alike.
    """
    x_col, y_col = column_key(x), column_key(y)
    points = [(e, value(e, x_col), value(e, y_col)) for e in entries]
    shown = [(e, vx, vy) for e, vx, vy in points if vx is not None and vy is not None]
    if not shown:
        raise ConfigError(f"no entry has both {x_col} and {y_col}: nothing to plot")
    front = pareto_front([e for e, _, _ in shown], x_col, y_col)
    on_front = {e.id for e in front}
    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[float, float]]] = {}
    for e, vx, vy in shown:
        assert vx is not None and vy is not None
        groups.setdefault(f"{e.kind} {e.origin.split()[0]}", []).append((vx, vy))
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for i, (group, pts) in enumerate(sorted(groups.items())):
        arr = np.array(pts)
        ax.scatter(arr[:, 0], arr[:, 1], s=18, alpha=0.6, label=group, color=palette(i % palette.N))
    fx = np.array([value(e, x_col) for e in front], dtype=float)
    fy = np.array([value(e, y_col) for e in front], dtype=float)
    ax.step(fx, fy, where="post", color="black", linewidth=1.2, label="Pareto front")
    ax.scatter(fx, fy, s=46, facecolors="none", edgecolors="black", linewidths=1.2)
    _scale(ax, "x", np.array([p[1] for p in shown], dtype=float), scales[0])
    _scale(ax, "y", np.array([p[2] for p in shown], dtype=float), scales[1])
    label_all = len(shown) <= LABEL_ALL_UP_TO
    candidates = [(e, vx, vy) for e, vx, vy in shown if e.id in on_front] + [
        (e, vx, vy) for e, vx, vy in shown if label_all and e.id not in on_front
    ]
    placed: list[np.ndarray] = []
    for e, vx, vy in candidates:
        where = ax.transData.transform((vx, vy))
        if any(abs(where[0] - p[0]) < LABEL_GAP_PX[0] and abs(where[1] - p[1]) < LABEL_GAP_PX[1] for p in placed):
            continue  # would overlap a label already drawn
        placed.append(where)
        weight = "bold" if e.id in on_front else "normal"
        ax.annotate(e.full_name, (vx, vy), fontsize=7, fontweight=weight, textcoords="offset points", xytext=(4, 3))
    ax.set_xlabel(AXIS_LABELS.get(x_col, x_col))
    ax.set_ylabel(AXIS_LABELS.get(y_col, y_col))
    ax.set_title(title or f"{len(shown)} multipliers, {len(front)} on the Pareto front")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    return _save(fig, path)
