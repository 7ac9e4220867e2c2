"""Every EvoApproxLib corpus circuit parses and reproduces its published metrics (issue 3)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from approxlut.circuits.blif import read_blif, write_blif
from approxlut.circuits.io import read_netlist
from approxlut.lutgen.metrics import matches_published
from approxlut.lutgen.simulate import MAX_LUT_BITS, simulate_lut, simulate_metrics

CSV = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "evoapprox" / "metrics.csv"
ROWS = list(csv.DictReader(CSV.open())) if CSV.is_file() else []
EXACT_FIELDS = {
    "mae_pct": "mae_pct",
    "mae": "med",
    "wce_pct": "wce_pct",
    "wce": "wce",
    "wcre_pct": "wcre_pct",
    "ep_pct": "ep_pct",
    "mre_pct": "mre_pct",
    "mse": "mse",
}


def _id(row: dict[str, str]) -> str:
    return row["file"].split("/")[-1].removesuffix(".v")


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_published_metrics_reproduce(row: dict[str, str], corpus: Path) -> None:
    root = corpus / "evoapprox"
    signed = row["signed"] == "1"
    netlist = read_netlist(root / row["file"])
    assert netlist.widths == (int(row["bits_a"]), int(row["bits_b"]))
    assert len(netlist.outputs) == int(row["bits_a"]) + int(row["bits_b"])
    errata = set(row["errata"].split(";")) if row["errata"] else set()
    if sum(netlist.widths) <= MAX_LUT_BITS:
        lut = simulate_lut(netlist, signed=signed)
        metrics = lut.metrics()
        for field, attr in EXACT_FIELDS.items():
            if row[field] and not any(field in e for e in errata):
                assert matches_published(getattr(metrics, attr), row[field]), (
                    field,
                    getattr(metrics, attr),
                    row[field],
                )
        twin = row["pdk45_file"]
        if twin:
            assert np.array_equal(simulate_lut(read_netlist(root / twin), signed=signed).forward, lut.forward)
        if sum(netlist.widths) <= 16:
            again = read_blif(write_blif(netlist), "written.blif")
            assert simulate_lut(again, signed=signed).hash == lut.hash
    else:  # 16x16: stated Monte-Carlo sampling, compared within its statistical error
        metrics = simulate_metrics(netlist, signed=signed, samples=1 << 16, seed=1)
        assert metrics.method.startswith("monte-carlo")
        assert metrics.mae_pct == pytest.approx(float(row["mae_pct"]), rel=0.1, abs=1e-6)
        assert metrics.ep_pct == pytest.approx(float(row["ep_pct"]), abs=1.0)


def test_names_are_reused_across_releases() -> None:
    """The corpus holds different circuits under one name: identity must come from the LUT hash."""
    by_name: dict[str, list[dict[str, str]]] = {}
    for row in ROWS:
        by_name.setdefault(row["name"], []).append(row)
    reused = {name: rows for name, rows in by_name.items() if len(rows) > 1}
    if not reused:
        pytest.skip("no reused names in this corpus")
    root = CSV.parent
    for rows in reused.values():
        hashes = {simulate_lut(read_netlist(root / r["file"]), signed=r["signed"] == "1").hash for r in rows}
        metrics = {(r["mae_pct"], r["wce_pct"]) for r in rows}
        if len(metrics) > 1:
            assert len(hashes) == len(rows)
