"""Export formats, Pareto fronts, PNG plots and the HTML report."""

from __future__ import annotations

import random
import re
import struct
from dataclasses import replace

import numpy as np
import pytest

from approxlut.errors import ConfigError, LibraryError
from approxlut.library import Cost
from approxlut.library.export import export_lut
from approxlut.library.pareto import pareto_front, pareto_front_reference
from approxlut.library.plots import error_heatmap, pareto_plot
from approxlut.library.report import MIN_PLOT_POINTS, page_slug, write_report
from approxlut.lutgen.formats import load_npz, read_lutfp, read_tfapprox
from approxlut.lutgen.lut import Lut
from approxlut.lutgen.simulate import simulate_lut

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def filled(lib, multiplier):
    """A library with a few 4-bit and 8-bit unsigned and signed multipliers and costs."""
    for bits, signed, drop, power in [(8, False, 0, 0.40), (8, False, 5, 0.20), (4, True, 0, 0.05), (4, True, 3, 0.02)]:
        netlist = multiplier(bits, signed, drop=drop)
        lut = simulate_lut(netlist, signed=signed)
        lib.add(lut, netlist, cost=Cost(power, 100 * power, 1.0, "estimated"))
    return lib


def test_export_round_trips(filled, tmp_path):
    lut = filled.load_lut("mul8u_drop5")
    npz = export_lut(filled, "mul8u_drop5", "npz", tmp_path / "x.npz")
    back = load_npz(npz)
    assert back.hash == lut.hash and np.array_equal(back.grad_a, lut.grad_a)
    binary = export_lut(filled, "mul8u_drop5", "tfapprox", tmp_path / "x.bin")
    assert binary.stat().st_size == 65536 * 2
    assert np.array_equal(read_tfapprox(binary).forward, lut.forward)
    text = export_lut(filled, "mul8u_drop5", "lutfp", tmp_path / "x_lutfp+bp_avg_8_8.txt", gradients=True)
    fp = read_lutfp(text)
    assert np.array_equal(fp.forward, lut.forward)
    assert np.array_equal(fp.grad_b, np.round(16 * lut.grad_b) / 16)
    signed = export_lut(filled, "mul4s_drop3", "npz", tmp_path / "s.npz")
    assert load_npz(signed).signed
    with pytest.raises(LibraryError):
        export_lut(filled, "nothing", "npz", tmp_path / "n.npz")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_lut(filled, "mul8u_drop5", "csv", tmp_path / "n.csv")
    with pytest.raises(Exception, match="8x8"):  # TFApprox holds unsigned 8x8 tables only
        export_lut(filled, "mul4s_drop3", "tfapprox", tmp_path / "s.bin")


def test_pareto_front_matches_the_quadratic_reference(filled):
    template = filled.query()[0]
    rng = random.Random(7)
    for trial in range(30):
        entries = []
        for i in range(rng.randint(1, 25)):
            power = rng.choice([None, rng.randint(1, 6) / 10])
            mae = rng.choice([None, 0.0, rng.randint(0, 5) / 4])
            entries.append(replace(template, id=i, name=f"e{i}", power_mw=power, mae_pct=mae))
        fast = [e.id for e in pareto_front(entries, "power", "mae")]
        slow = [e.id for e in pareto_front_reference(entries, "power", "mae")]
        assert fast == slow, trial


def test_pareto_front_on_the_library(filled):
    front = pareto_front(filled.query(), "power", "mae")
    assert [e.name for e in front] == ["mul4s_drop3", "mul4s_drop0"]
    front8 = pareto_front(filled.query(bits=8), "area", "mae")
    assert [e.name for e in front8] == ["mul8u_drop5", "mul8u_drop0"]


def test_plots_are_valid_pngs(filled, tmp_path):
    width, height = _png_size(error_heatmap(filled.load_lut("mul4s_drop3"), tmp_path / "heat.png"))
    assert width > 100 and height > 100
    _png_size(error_heatmap(filled.load_lut("mul8u_drop0"), tmp_path / "exact.png"))  # all-zero error
    _png_size(pareto_plot(filled.query(), tmp_path / "pareto.png", x="power", y="mae"))
    _png_size(pareto_plot(filled.query(), tmp_path / "gates.png", x="gates", y="wce"))
    with pytest.raises(ConfigError, match="PNG"):
        pareto_plot(filled.query(), tmp_path / "pareto.svg")
    with pytest.raises(ConfigError, match="nothing to plot"):
        pareto_plot([replace(e, power_mw=None) for e in filled.query()], tmp_path / "none.png")


def test_html_report(filled, tmp_path):
    summary = write_report(filled, tmp_path / "report")
    page = summary.index
    text = page.read_text()
    rows = re.findall(r"<tr class=\"[a-z]*\" data-text=", text)
    assert len(rows) == len(filled) == summary.pages
    assert text.index('<table id="library">') < text.index('<div class="plots">')  # the table first
    for entry in filled.query():
        assert f">{entry.full_name}</a></td>" in text
        circuit = (page.parent / "circuits" / f"{page_slug(entry)}.html").read_text()
        assert f"<h1>{entry.full_name}</h1>" in circuit and "heatmap.png" in circuit
    assert '<script src="report.js"></script>' in text and "<th>MAE %</th>" in text
    assert "http://" not in text and "https://" not in text  # nothing fetched from a network
    assert summary.plots == [] and summary.unplotted == {"4x4s": 2, "8x8u": 2}  # 2-point kinds are not plotted
    images = re.findall(r'<img[^>]* src="([^"]+)"', text)
    assert all((page.parent / name).is_file() for name in images)


def test_report_plots_are_in_width_order_on_the_same_axes(lib, tmp_path):
    for bits in (10, 4, 6):  # as text, "10x10u" would come first
        exact = np.multiply.outer(np.arange(1 << bits), np.arange(1 << bits))
        for drop in range(MIN_PLOT_POINTS):
            noise = np.random.default_rng(drop).integers(0, 3, exact.shape) * drop
            lut = Lut(forward=(exact + noise).astype(np.int32), bits_a=bits, bits_b=bits, signed=False, name="t")
            lib.add(lut, name=f"m{bits}_{drop}", cost=Cost(0.1 * bits - 0.01 * drop, 1.0, 1.0))
    summary = write_report(lib, tmp_path / "r")
    assert summary.plots == ["plots/power-mae-4x4u.png", "plots/power-mae-6x6u.png", "plots/power-mae-10x10u.png"]
    page = summary.index.read_text()
    assert [page.index(p) for p in summary.plots] == sorted(page.index(p) for p in summary.plots)
    files = {p.name for p in (tmp_path / "r").rglob("*")}
    assert "m6_0.npz" in files and "m10_0.npz" not in files  # 20 input bits: too wide to offer as files


def test_every_report_plot_has_log_axes(lib, multiplier, tmp_path, monkeypatch):
    from approxlut.library import report

    seen = []
    monkeypatch.setattr(report, "pareto_plot", lambda *a, **k: seen.append(k["scales"]))
    for drop in range(MIN_PLOT_POINTS):
        netlist = multiplier(4, True, drop=drop)
        lib.add(simulate_lut(netlist, signed=True), netlist, cost=Cost(1.0 - 0.1 * drop, 1.0, 1.0))
    write_report(lib, tmp_path / "r")
    assert seen == [report.PLOT_SCALES] and report.PLOT_SCALES == ("log", "log")
