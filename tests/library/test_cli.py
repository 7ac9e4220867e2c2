"""``lutgen library ...`` through click's CliRunner, each with ``--library`` in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from approxlut.circuits.blif import write_blif
from approxlut.cli import main
from approxlut.library import Library
from approxlut.library.pareto import pareto_front_reference
from approxlut.synth.builtin import builtin_circuits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["library", *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    """A library holding the built-in set, installed by the first command run on a new library."""
    root = tmp_path_factory.mktemp("cli") / "lib"
    listed = json.loads(run("list", "--library", str(root), "--json").output)
    assert len(listed) == len(builtin_circuits()) and {e["origin"] for e in listed} == {"builtin"}
    return root


def test_init_is_idempotent(initialised):
    with Library.open(initialised) as lib:
        before = len(lib)
    data = json.loads(run("init", "--library", str(initialised), "--json").output)
    assert data["builtin"] == before and data["library"] == str(initialised)
    with Library.open(initialised) as lib:
        assert len(lib) == before
        for name in ("exact8s", "exact8u", "exact4s", "exact4u"):
            entry = lib.entry(name)
            assert entry.mae_pct == 0 and entry.origin == "builtin"
            assert entry.power_source == "estimated" and entry.power_mw > 0


def test_list_filters_and_sorts(initialised):
    lib = str(initialised)
    everything = json.loads(run("list", "--library", lib, "--json").output)
    assert len(everything) == len(builtin_circuits())
    chosen = json.loads(
        run("list", "--library", lib, "--bits", "8", "--signed", "--max-mae", "0.2", "--sort", "power", "--json").output
    )
    assert chosen and all(e["bits_a"] == e["bits_b"] == 8 and e["signed"] and e["mae_pct"] <= 0.2 for e in chosen)
    expected = sorted(
        (e for e in everything if e["bits_a"] == 8 and e["signed"] and e["mae_pct"] <= 0.2),
        key=lambda e: e["power_mw"],
    )
    assert [e["power_mw"] for e in chosen] == [e["power_mw"] for e in expected]
    unsigned = json.loads(run("list", "--library", lib, "--unsigned", "--sort", "-mae", "--json").output)
    assert all(not e["signed"] for e in unsigned)
    assert [e["mae_pct"] for e in unsigned] == sorted((e["mae_pct"] for e in unsigned), reverse=True)
    table = run("list", "--library", lib, "--bits", "8", "--family", "exact").output
    assert "exact8u" in table and "exact8s" in table and "exact4u" not in table
    bad = run("list", "--library", lib, "--bits", "eight", ok=False)
    assert bad.exit_code == 2
    wrong = run("list", "--library", lib, "--sort", "speed", ok=False)
    assert wrong.exit_code == 2 and "error: unknown column 'speed'" in wrong.output


def test_show_and_heatmap(initialised, tmp_path):
    lib = str(initialised)
    data = json.loads(run("show", "exact8s", "--library", lib, "--json").output)
    assert data["full_name"] == "exact8s" and data["mae_pct"] == 0 and data["signed"]
    out = run("show", "trunc8u_k6", "--library", lib, "--plot", str(tmp_path / "heat.png")).output
    assert "trunc8u_k6" in out and "mae_pct" in out
    png = (tmp_path / "heat.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 1000
    missing = run("show", "exact9s", "--library", lib, ok=False)
    assert missing.exit_code == 2 and missing.output.startswith("error: no multiplier 'exact9s'")


def test_pareto(initialised, tmp_path):
    lib = str(initialised)
    data = json.loads(run("pareto", "--library", lib, "--x", "power", "--y", "mae", "--bits", "8", "--json").output)
    assert (data["x"], data["y"]) == ("power_mw", "mae_pct")
    with Library.open(initialised) as library:
        expected = [e.full_name for e in pareto_front_reference(library.query(bits=8), "power", "mae")]
    assert [e["full_name"] for e in data["front"]] == expected and len(expected) >= 3
    out = run("pareto", "--library", lib, "--x", "area", "--y", "wce", "--plot", str(tmp_path / "front.png")).output
    assert "Pareto front" in out
    assert (tmp_path / "front.png").read_bytes()[:8] == PNG_SIGNATURE


def test_export_and_report(initialised, tmp_path):
    lib = str(initialised)
    out = tmp_path / "t.bin"
    run("export", "trunc8u_k6", "--library", lib, "--format", "tfapprox", "--out", str(out))
    assert out.stat().st_size == 65536 * 2
    run("export", "exact8u", "--library", lib, "--format", "lutfp", "--out", str(tmp_path / "e_lutfp.txt"))
    assert (tmp_path / "e_lutfp.txt").read_text().count("\n") > 65536
    bad = run("export", "exact8s", "--library", lib, "--format", "tfapprox", "--out", str(tmp_path / "s.bin"), ok=False)
    assert bad.exit_code != 0 and bad.output.startswith("error:")
    run("report", str(tmp_path / "report"), "--library", lib)
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.count("<tr class=") == len(builtin_circuits())
    assert ">exact8s</td>" in page and "pareto_8x8u_power_mae.png" in page


def test_import_and_remove(tmp_path, multiplier):
    lib = str(tmp_path / "lib")
    src = tmp_path / "src"
    src.mkdir()
    (src / "mul4u_t1.blif").write_text(write_blif(multiplier(4, False, drop=1)))
    (src / "mine.blif").write_text(write_blif(multiplier(3, True)))
    data = json.loads(run("import", str(src), "--library", lib, "--json").output)
    assert sorted(data["added"]) == ["mine", "mul4u_t1"] and not data["failed"]
    again = json.loads(run("import", str(src), "--library", lib, "--json").output)
    assert not again["added"] and len(again["unchanged"]) == 2
    signed = json.loads(
        run("import", str(src / "mine.blif"), "--library", str(tmp_path / "l2"), "--signed", "--json").output
    )
    assert signed["added"] == ["mine"]
    (src / "broken.blif").write_text(".model x\n.inputs a\n.bogus\n")
    failed = run("import", str(src), "--library", lib, ok=False)
    assert failed.exit_code == 2 and "broken.blif" in failed.output
    assert "1 file(s) could not be imported" in failed.output
    assert "removed mine" in run("remove", "mine", "--library", lib).output
    with Library.open(lib) as library:
        assert [e.name for e in library.query()] == ["mul4u_t1"]


def test_library_from_environment(tmp_path, monkeypatch, multiplier):
    monkeypatch.setenv("LUTGEN_LIBRARY", str(tmp_path / "env"))
    (tmp_path / "m.blif").write_text(write_blif(multiplier(3, False)))
    run("import", str(tmp_path / "m.blif"))
    with Library.open(tmp_path / "env") as lib:
        assert lib.entry("m").mae_pct == 0


def test_calibrate(corpus):
    data = json.loads(run("calibrate", str(corpus / "evoapprox"), "--json").output)
    assert set(data) == {"spearman", "median_rel_error", "n"}
    assert data["n"] == 68 and data["spearman"] >= 0.9 and 0 <= data["median_rel_error"] < 1
    text = run("calibrate", str(corpus / "evoapprox"), "--bits", "7").output
    assert "over 18 circuits: Spearman" in text
    missing = run("calibrate", str(corpus / "date25"), ok=False)
    assert missing.exit_code != 0 and missing.output.startswith("error:")
