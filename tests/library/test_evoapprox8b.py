"""Importing EvoApprox8b as shipped, twins that disagree, and a whole EvoApproxLib-like checkout."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.library import Library
from approxlut.library.evoapprox import EVOAPPROX8B_CITATION, parse_header, read_meta
from approxlut.library.filters import Filter
from approxlut.library.importer import import_paths, plan_import

#: metrics.csv column -> Entry attribute (EvoApprox8b publishes absolute MAE and WCE).
EVO8B = {"MAE": "med", "WCE": "wce", "MSE": "mse", "MRE%": "mre_pct", "WCRE%": "wcre_pct", "EP%": "ep_pct"}


def _rows(corpus: Path) -> dict[str, dict[str, str]]:
    with open(corpus / "evoapprox8b" / "metrics.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def test_evoapprox8b_imports_as_shipped(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "evoapprox8b"
    rows = _rows(corpus)
    truth = np.load(folder / "truth.npz")
    with Library.open(tmp_path / "lib") as lib:
        summary = import_paths(lib, [folder])
        assert not summary.failed and not summary.warnings
        assert len(summary.added) == len(rows) and len(summary.merged) == len(rows)  # every twin agreed
        assert {p.name for p, _ in summary.merged} == {f"{name}_pdk45.v" for name in rows}
        for entry in summary.added:
            row = rows[entry.name]
            assert np.array_equal(lib.load_lut(entry, gradients=False).forward, truth[entry.name])
            assert entry.mre_convention == "max1" and entry.origin == "evoapprox8b"
            assert entry.licence == "MIT" and entry.citation == EVOAPPROX8B_CITATION
            assert entry.published_differences() == {}  # the published figures, under their own convention
            for column in EVO8B:
                assert entry.published[column] == row[column], column
            assert entry.power_source == "published" and entry.alt_sources == (
                str((folder / f"{entry.name}_pdk45.v").resolve()),
            )
        # the two exact multipliers are one table under two names
        exact = lib.entry("mul8_282")
        assert exact.aliases == ("mul8_CarrySaveArrayMultiplier_Using_CarrySelectAdder",)
        assert [e.name for e in summary.aliases] == ["mul8_CarrySaveArrayMultiplier_Using_CarrySelectAdder"]
        header = parse_header((folder / "mul8_039.v").read_text())
        assert lib.entry("mul8_039").power_mw == 0.4002 and header.published["PDK45_PWR"] == "0.40020"
        assert lib.entry("mul8_039").area_um2 == 629 and lib.entry("mul8_039").delay_ns == 1.29


def test_legacy_header_form_drops_its_padding() -> None:
    text = (
        "/***\n* This code is a part of EvoApproxLib library (ehw.fit.vutbr.cz/approxlib) distributed under The MIT "
        "License.\n* This file contains a circuit from evoapprox8b dataset\n***/\n// Library = cgp-evoapproxlib\n"
        "// Power  (45) = 0.400200\n// MRE = 2.510000 %\n// WCRE = 250.000000 %\n// MAE = 64.767580\nmodule m();\n"
    )
    header = parse_header(text)
    assert header.library == "evoapprox8b" and header.licence == "MIT"
    assert header.published == {"PDK45_PWR": "0.4002", "MRE%": "2.51", "WCRE%": "250", "MAE": "64.76758"}


def _twins(corpus: Path, folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    plain = shutil.copy(corpus / "evoapprox8b" / f"{name}.v", folder / f"{name}.v")
    twin = shutil.copy(corpus / "evoapprox8b" / f"{name}_pdk45.v", folder / f"{name}_pdk45.v")
    return Path(plain), Path(twin)


def test_twins_that_disagree_are_refused_naming_both(corpus: Path, tmp_path: Path) -> None:
    plain, twin = _twins(corpus, tmp_path / "src", "mul8_038")
    text = twin.read_bytes().replace(b"  AND2X1 ", b"  OR2X1 ", 1)
    twin.write_bytes(text)
    with Library.open(tmp_path / "lib") as lib:
        summary = import_paths(lib, [twin])  # the plain file beside it is found and compared
        ((_, message),) = summary.failed
        assert len(lib) == 0 and not summary.added
        assert f"{twin}: its table differs from that of (" in message and f"its twin {plain}" in message
        assert "\n" not in message and "neither file was imported" in message
    result = CliRunner().invoke(main, ["library", "import", str(tmp_path / "src"), "--library", str(tmp_path / "l2")])
    assert result.exit_code == 2 and f"its twin {plain}" in result.output


def test_ambiguous_twin_takes_the_cells_that_agree(corpus: Path, tmp_path: Path) -> None:
    """A _pdk45.v stripped of its header no longer says whose MUX2X1 it uses: its twin decides."""
    plain, twin = _twins(corpus, tmp_path / "src", "mul8_039")
    for path in (plain, twin):
        text = path.read_text()
        path.write_text(text[text.index("module") :])
    with Library.open(tmp_path / "lib") as lib:
        summary = import_paths(lib, [tmp_path / "src"])
        assert not summary.failed and len(summary.merged) == 1
        (entry,) = summary.added
        assert entry.mre_convention == "nonzero" and entry.origin == "import"  # no header: no provenance
        truth = np.load(corpus / "evoapprox8b" / "truth.npz")["mul8_039"]
        assert np.array_equal(lib.load_lut(entry, gradients=False).forward, truth)
    # with no twin to compare with, the same file is refused rather than guessed
    plain.unlink()
    with Library.open(tmp_path / "lib2") as lib:
        ((_, message),) = import_paths(lib, [twin]).failed
        assert "MUX2X1 is inverting in OSU FreePDK45, non-inverting in EvoApprox8b" in message


def _checkout(corpus: Path, root: Path) -> Path:
    """A small tree laid out like an EvoApproxLib checkout of one release."""
    evo = corpus / "evoapprox" / "8x8"
    legacy = root / "multiplers" / "8x8_unsigned" / "legacy_evoapprox8b"
    _twins(corpus, legacy, "mul8_125")
    (legacy / "mul8_125.c").write_text("uint16_t mul8_125(uint8_t a, uint8_t b) { return a * b; }\n")
    (legacy / "README.md").write_text("| Circuit name | MAE |\n")
    (legacy / "fig.png").write_bytes(b"\x89PNG\r\n")
    for folder in ("pareto_pwr_mae", "pareto_pwr_wce"):  # one circuit in two folders: other header bytes
        target = root / "multiplers" / "8x8_unsigned" / folder
        target.mkdir(parents=True)
        for name in ("mul8u_1JJQ", "mul8u_ZB3"):
            text = (evo / f"v2022_{name}.v").read_text().replace("***/", f"* {folder}\n***/", 1)
            (target / f"{name}.v").write_text(text)
    v11 = root / "multiplers" / "8x8_unsigned" / "pareto_pwr_ep"
    v11.mkdir()
    (v11 / "mul8u_1JFF.v").write_text((evo / "v1.1_mul8u_1JFF.v").read_text())
    # a circuit the header says nothing about: meta.json gives its name and figures
    bare = (evo / "v1.0_mul8u_96D.v").read_text()
    (v11 / "mul8u_96D_gen.v").write_text(bare[bare.index("module") :].replace("mul8u_96D", "mul8u_96D_gen"))
    adders = root / "adders" / "8_unsigned" / "pareto_pwr_mae"
    adders.mkdir(parents=True)
    (adders / "add8u_0FP.v").write_text(
        "module add8u_0FP(input [7:0] A, B, output [8:0] O); assign O = A + B; endmodule\n"
    )
    meta = [
        {
            "datasets": [
                {
                    "folder": "multiplers/8x8_unsigned/pareto_pwr_ep",
                    "license": "The MIT License",
                    "references": ["A. Author, A paper, 2019"],
                    "instances": [
                        {
                            "name": "mul8u_96D",
                            "files": [{"file": "mul8u_96D_gen.v", "type": "Verilog file"}],
                            "params": {"mae%": "0.0015", "pwr": "0.39", "area": "700.5", "delay": "1.4"},
                            "references": [0],
                        }
                    ],
                }
            ]
        }
    ]
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_a_whole_checkout_in_one_command(corpus: Path, tmp_path: Path, json_output) -> None:
    root = _checkout(corpus, tmp_path / "evoapproxlib")
    plan = plan_import([root / "multiplers" / "8x8_unsigned"])  # meta.json above the named folder is found
    assert {c.primary.name: c.meta.name for c in plan.circuits if c.meta} == {"mul8u_96D_gen.v": "mul8u_96D"}
    assert read_meta(root / "meta.json")[(root / "multiplers/8x8_unsigned/pareto_pwr_ep/mul8u_96D_gen.v").resolve()]
    lib_dir = tmp_path / "lib"
    result = CliRunner().invoke(main, ["library", "import", str(root), "--library", str(lib_dir), "--json"])
    assert result.exit_code == 0, result.output
    summary = json_output(result.output, "library import")
    assert [s["file"] for s in summary["skipped"]] == [str(next(root.rglob("add8u_0FP.v")))]
    assert "adder" in summary["skipped"][0]["reason"] and not summary["failed"]
    # 1JJQ and ZB3 twice (two Pareto folders, other header bytes): one entry each, the copy an alternative source
    assert sorted(summary["added"]) == ["mul8_125", "mul8u_1JFF", "mul8u_1JJQ", "mul8u_96D", "mul8u_ZB3"]
    assert summary["new_circuits"] == 4 and summary["added_aliases"][0]["entry"] in ("mul8u_1JFF", "mul8u_1JJQ")
    assert len(summary["merged"]) == 3  # the legacy twin and the two copies
    with Library.open(lib_dir) as lib:
        assert lib.entry("mul8u_1JFF").aliases == ("mul8u_1JJQ",)  # v1.1's exact 1JFF is v2022's 1JJQ
        legacy = lib.entry("mul8_125")
        assert legacy.mre_convention == "max1" and legacy.published_differences() == {}
        assert (
            lib.entry("mul8u_ZB3").mre_convention == "nonzero" and lib.entry("mul8u_ZB3").published_differences() == {}
        )
        from_meta = lib.entry("mul8u_96D")
        assert from_meta.published["MAE%"] == "0.0015" and from_meta.power_mw == 0.39
        assert from_meta.power_source == "published" and from_meta.citation == "A. Author, A paper, 2019"
        assert from_meta.licence == "MIT" and from_meta.family == "evoapprox" and from_meta.origin == "evoapprox"
        evoapprox = {e.full_name for e in lib.query() if e.family == "evoapprox"}
        assert {e.full_name for e in Filter.parse("origin=evoapprox").select(lib)} == evoapprox
        assert len(evoapprox) == 5 and lib.entry("mul8_125").origin == "evoapprox8b"  # (the legacy folder's)
    again = CliRunner().invoke(main, ["library", "import", str(root), "--library", str(lib_dir)])
    assert again.exit_code == 0 and "0 added" in again.output and "1 skipped" in again.output
