"""Importing the EvoApproxLib corpus keeps the published figures, licence and citation; twins merge."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from approxlut.errors import LibraryError
from approxlut.library import Library
from approxlut.library.importer import import_paths
from approxlut.lutgen.metrics import matches_published

#: metrics.csv column -> Entry attribute
MEASURED = {
    "mae_pct": "mae_pct",
    "mae": "med",
    "wce_pct": "wce_pct",
    "wce": "wce",
    "wcre_pct": "wcre_pct",
    "ep_pct": "ep_pct",
    "mre_pct": "mre_pct",
    "mse": "mse",
}
#: A few 8x8 circuits with pdk45 twins (incl. the three with errata, and names reused across releases).
SUBSET = [
    "v1.1_mul8u_1JFF",
    "v2022_mul8u_1JJQ",
    "v2022_mul8s_1KV8",
    "v2022_mul8s_1KV9",
    "v2022_mul8s_1KVQ",
    "v2022_mul8s_1KV6",
    "v2022_mul8u_17C8",
    "v1.1_mul8u_17C8",
    "v2022_mul8u_ZB3",
    "v1.0_mul8u_96D",
]


def _rows(corpus: Path) -> dict[str, dict[str, str]]:
    with open(corpus / "evoapprox" / "metrics.csv", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def _check_entry(entry, row, corpus: Path) -> None:
    assert entry.full_name == f"{row['version']}_{row['name']}"
    assert (entry.bits_a, entry.bits_b, entry.signed) == (int(row["bits_a"]), int(row["bits_b"]), row["signed"] == "1")
    assert entry.power_source == "published"
    assert entry.power_mw == float(row["power_mW"])
    assert entry.area_um2 == float(row["area_um2"])
    assert entry.delay_ns == float(row["delay_ns"])
    assert entry.published["MAE%"] == row["mae_pct"] and entry.published["PDK45_PWR"] == row["power_mW"]
    assert entry.licence == "MIT" and entry.origin == f"evoapprox {row['version']}"
    assert entry.citation == row["reference"].strip()
    errata = {name for name in row["errata"].split(";") if name}
    for col, attr in MEASURED.items():
        agrees = matches_published(getattr(entry, attr), row[col])
        assert agrees != (col in errata), (entry.full_name, col, row[col], getattr(entry, attr))
    assert set(entry.published_differences()) == {MEASURED[c] for c in errata}
    if row["pdk45_file"]:
        assert entry.alt_sources == (str((corpus / "evoapprox" / row["pdk45_file"]).resolve()),)
    else:
        assert entry.alt_sources == ()


def test_evoapprox_subset_keeps_published_figures(corpus, tmp_path):
    rows = _rows(corpus)
    folder = corpus / "evoapprox" / "8x8"
    files = [folder / f"{stem}.v" for stem in SUBSET] + [
        folder / f"{stem}_pdk45.v" for stem in SUBSET if (folder / f"{stem}_pdk45.v").is_file()
    ]
    with Library.open(tmp_path / "lib") as lib:
        summary = import_paths(lib, files)
        assert not summary.failed
        assert len(summary.added) == len(SUBSET) and len(summary.merged) == len(files) - len(SUBSET)
        for entry in lib.query():
            _check_entry(entry, rows[f"8x8/{entry.full_name}.v"], corpus)
        # the same function under two names (the exact v1.1 1JFF and v2022 1JJQ) shares one table
        assert lib.entry("mul8u_1JFF").hash == lib.entry("mul8u_1JJQ").hash
        assert len(lib.blobs.hashes()) == len({e.hash for e in lib.query()})
        # v2022 reused the name mul8u_17C8 for another circuit: ambiguous by name, distinct by release
        assert lib.entry("v1.1_mul8u_17C8").hash != lib.entry("v2022_mul8u_17C8").hash
        with pytest.raises(LibraryError, match=r"ambiguous: v1\.1_mul8u_17C8 .*, v2022_mul8u_17C8"):
            lib.entry("mul8u_17C8")
        assert lib.load_lut("v2022_mul8s_1KV8").signed
        again = import_paths(lib, [folder / f"{stem}.v" for stem in SUBSET])  # the twins beside come along
        assert len(again.unchanged) == len(files) and len(lib) == len(SUBSET)


@pytest.mark.slow
def test_evoapprox_full_corpus(corpus, tmp_path):
    """All 8x8 files (with twins) and the 7x7 / 8x4 ones; one 16x16 circuit and its twin, metrics only."""
    rows = _rows(corpus)
    evo = corpus / "evoapprox"
    with Library.open(tmp_path / "lib") as lib:
        start = time.perf_counter()
        summary = import_paths(lib, [evo / "8x8", evo / "narrow"])
        seconds = time.perf_counter() - start
        assert not summary.failed, summary.failed[:3]
        plain = [f for f in rows if f.startswith(("8x8/", "narrow/"))]
        assert len(summary.added) == len(plain) == len(lib)
        twins = [r["pdk45_file"] for f, r in rows.items() if f in plain and r["pdk45_file"]]
        assert len(summary.merged) == len(twins)
        for entry in lib.query():
            folder = "8x8" if (entry.bits_a, entry.bits_b) == (8, 8) else "narrow"
            _check_entry(entry, rows[f"{folder}/{entry.full_name}.v"], corpus)
        assert seconds < 120, f"importing the 8x8 and narrow folders took {seconds:.0f} s"
        wide = [evo / "wide" / "v2022_mul16s_GQU.v", evo / "wide" / "v2022_mul16s_GQU_pdk45.v"]
        summary = import_paths(lib, wide)
        (entry,) = summary.added
        assert len(summary.merged) == 1 and not entry.has_lut and entry.metrics_method.startswith("monte-carlo")
        row = rows["wide/v2022_mul16s_GQU.v"]
        assert entry.power_mw == float(row["power_mW"]) and entry.kind == "16x16s"
        assert entry.mae_pct == pytest.approx(float(row["mae_pct"]), rel=0.05)
        assert entry.ep_pct == pytest.approx(float(row["ep_pct"]), rel=0.01)
