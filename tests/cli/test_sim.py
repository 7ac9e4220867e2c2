from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.lutgen.formats import load_npz


def test_sim_verilog_json_and_npz(corpus: Path, tmp_path: Path, json_output) -> None:
    src = corpus / "evoapprox" / "8x8" / "v2022_mul8s_1KVA.v"
    out = tmp_path / "x.npz"
    result = CliRunner().invoke(main, ["sim", str(src), "--signed", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json_output(result.output, "sim")
    assert (data["bits_a"], data["bits_b"], data["signed"]) == (8, 8, True)
    assert data["mae_pct"] == pytest.approx(0.019, abs=0.0005)  # published MAE% 0.019
    assert data["ep_pct"] == pytest.approx(81.25, abs=0.005)
    lut = load_npz(out)
    assert lut.hash == data["hash"] and lut.grad_a is not None and lut.signed


def test_sim_table_output_and_default_location(corpus: Path, tmp_path: Path) -> None:
    src = tmp_path / "mul7u_06Q_sop.blif"
    src.write_text((corpus / "date25" / "mul7u_06Q_sop.blif").read_text())
    result = CliRunner().invoke(main, ["sim", str(src), "--half-window", "4"])
    assert result.exit_code == 0, result.output
    assert "unsigned: the file name says so (mul7u" in result.output and "MAE %" in result.output
    lut = load_npz(tmp_path / "mul7u_06Q_sop.npz")
    assert lut.meta["half_window"] == 4 and lut.bits_a == 7


def test_sim_takes_signedness_from_the_name_as_import_does(corpus: Path, tmp_path: Path, json_output) -> None:
    src = corpus / "evoapprox" / "8x8" / "v2022_mul8s_1KV8.v"
    runs = {
        flag: CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json", *([flag] if flag else [])])
        for flag in ("", "--signed", "--unsigned")
    }
    data = {flag: json_output(run.output, "sim") for flag, run in runs.items()}
    assert data[""]["signed"] and data[""]["signed_from"] == "name"
    assert data[""]["mae_pct"] == data["--signed"]["mae_pct"] == pytest.approx(0.0019, abs=0.00005)  # published 0.0019
    assert not data["--unsigned"]["signed"] and data["--unsigned"]["mae_pct"] > 40  # the 49.61 % misreading
    assert data["--signed"]["signed_from"] == "option"
    shown = CliRunner().invoke(main, ["sim", str(src), "--no-write"]).output
    header = shown.splitlines()[:3]
    assert "signed" in header[0] and any("the file name says so (mul8s" in line for line in header)
    contradicted = CliRunner().invoke(main, ["sim", str(src), "--no-write", "--unsigned"]).output
    assert "the name (mul8s) says signed; read as unsigned as asked" in " ".join(contradicted.split())
    plain = tmp_path / "mult.blif"
    plain.write_text((corpus / "date25" / "mul7u_06Q_sop.blif").read_text())
    default = json.loads(CliRunner().invoke(main, ["sim", str(plain), "--no-write", "--json"]).output)
    assert not default["signed"] and default["signed_from"] == "default"


def test_sim_reads_date25_text_luts_by_content(corpus: Path, tmp_path: Path, json_output) -> None:
    netlist = json.loads(
        CliRunner().invoke(main, ["sim", str(corpus / "date25" / "mul7u_06Q_sop.blif"), "--no-write", "--json"]).output
    )
    for name in ("mul7u_06Q_lutfp.txt", "mul7u_06Q_lutfp+bp_avg_4_4.txt"):
        renamed = tmp_path / f"{name}.data"  # content decides, not the name
        renamed.write_bytes((corpus / "date25" / name).read_bytes())
        out = tmp_path / f"{name}.npz"
        result = CliRunner().invoke(main, ["sim", str(renamed), "--json", "--out", str(out), "--half-window", "4"])
        assert result.exit_code == 0, result.output
        data = json_output(result.output, "sim")
        assert data["hash"] == netlist["hash"] and data["mae_pct"] == netlist["mae_pct"] and data["gates"] is None
        assert data["input_format"] == "lutfp" and data["signed_from"] == "file"
        assert load_npz(out).meta["half_window"] == 4
    text = tmp_path / "mul7u_06Q_lutfp.txt.data"
    for extra in (["--signed"], ["--top", "m"], ["--samples", "100"]):
        bad = CliRunner().invoke(main, ["sim", str(text), "--no-write", *extra])
        assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_sim_says_how_large_the_file_is_and_compresses(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "date25" / "mul8u_17C8_sop.blif"
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    shown = CliRunner().invoke(main, ["sim", str(src), "--out", str(plain)]).output
    assert f"wrote {plain} (" in shown.replace("\n", "") and "kB" in shown
    CliRunner().invoke(main, ["sim", str(src), "--out", str(packed), "--compress"])
    assert packed.stat().st_size < plain.stat().st_size / 2
    a, b = load_npz(plain), load_npz(packed)
    assert a.hash == b.hash and np.array_equal(a.grad_a, b.grad_a) and np.array_equal(a.grad_b, b.grad_b)


def test_sim_wide_circuit_reports_sampling(corpus: Path, json_output) -> None:
    src = corpus / "evoapprox" / "wide" / "v2022_mul16u_1K3.v"
    result = CliRunner().invoke(main, ["sim", str(src), "--json", "--samples", "4096", "--no-write"])
    assert result.exit_code == 0, result.output
    data = json_output(result.output, "sim")
    assert data["metrics_method"].startswith("monte-carlo") and data["hash"] is None and data["input_pairs"] == 4096


def test_sim_seeds_its_sampling_and_refuses_a_seed_where_nothing_is_sampled(corpus: Path, json_output) -> None:
    """`--seed` seeds Monte-Carlo sampling (it was fixed at 0, unlike `evaluate --seed` and `retrain --seed`); a run
    that samples nothing (an exhaustive netlist, a table file) refuses it in one line rather than ignore it."""
    src = corpus / "evoapprox" / "wide" / "v2022_mul16u_1K3.v"

    def sampled(*seed: str) -> dict:
        result = CliRunner().invoke(main, ["sim", str(src), "--json", "--samples", "4096", "--no-write", *seed])
        assert result.exit_code == 0, result.output
        return json_output(result.output, "sim")

    default, zero, seven, again = sampled(), sampled("--seed", "0"), sampled("--seed", "7"), sampled("--seed", "7")
    assert default == zero | {"elapsed_s": default["elapsed_s"]}
    assert seven["metrics_method"] == "monte-carlo (4096 samples, seed 7)" and seven["mae_pct"] != zero["mae_pct"]
    assert seven["mae_pct"] == again["mae_pct"]
    for path in (corpus / "evoapprox" / "8x8" / "v2022_mul8u_17C8.v", corpus / "date25" / "mul7u_06Q_lutfp.txt"):
        refused = CliRunner().invoke(main, ["sim", str(path), "--no-write", "--seed", "7"])
        assert refused.exit_code == 2 and "--seed" in refused.output and len(refused.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "suffix", "where"),
    [
        ("module m(input [1:0] A, input [1:0] B, output [3:0] O);\n assign O = A & C;\nendmodule\n", ".v", ":2"),
        (".model m\n.inputs A[0] B[0]\n.outputs O[0]\n.names A[0] B[0] O[0]\n1 1\n.end\n", ".blif", ":5"),
        ("", ".v", ""),
        ("\x00\x01\x02garbage\xff", ".blif", ""),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, text: str, suffix: str, where: str) -> None:
    src = tmp_path / f"bad{suffix}"
    src.write_bytes(text.encode("latin-1"))
    result = CliRunner().invoke(main, ["sim", str(src)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {src}{where}")
    assert "Traceback" not in result.output


def test_missing_file_and_no_overwrite(tmp_path: Path, corpus: Path) -> None:
    result = CliRunner().invoke(main, ["sim", str(tmp_path / "nope.v")])
    assert result.exit_code == 2 and "nope.v" in result.output
    src = tmp_path / "m.blif"
    src.write_text((corpus / "date25" / "mul7u_06Q_sop.blif").read_text())
    result = CliRunner().invoke(main, ["sim", str(src), "--out", str(src)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert src.read_text().startswith("# Generated by Yosys")


def test_sim_does_not_import_torch(corpus: Path) -> None:
    src = corpus / "date25" / "mul8u_17C8_sop.blif"
    code = (
        "import sys; from approxlut.cli import main\n"
        f"try: main(['sim', {str(src)!r}, '--no-write', '--json'])\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert np.isclose(json.loads(proc.stdout)["bits_a"], 8)


def test_sim_top_module_and_extra_cells(tmp_path: Path) -> None:
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps({"cells": [{"name": "MYAND", "inputs": ["P", "Q"], "outputs": {"Z": "P & Q"}}]}))
    src = tmp_path / "two.v"
    src.write_text(
        "module inner(input [1:0] A, input [1:0] B, output [3:0] O);\n"
        "  MYAND g(.P(A[0]), .Q(B[0]), .Z(O[0]));\n  assign O[3:1] = 3'b000;\nendmodule\n"
        "module other(input [1:0] A, input [1:0] B, output [3:0] O);\n  assign O = A * B;\nendmodule\n"
    )
    args = ["sim", str(src), "--no-write", "--json", "--cells", str(cells)]
    exact = CliRunner().invoke(main, [*args, "--top", "other"])
    assert exact.exit_code == 0, exact.output
    assert json.loads(exact.output)["mae_pct"] == 0
    approx = CliRunner().invoke(main, [*args, "--top", "inner"])
    assert approx.exit_code == 0, approx.output
    assert json.loads(approx.output)["ep_pct"] > 0
    bad = CliRunner().invoke(main, ["sim", str(src), "--top", "missing", "--cells", str(cells)])
    assert bad.exit_code == 2 and "missing" in bad.output


def test_sim_unrolls_generate_loops_and_reports_their_errors_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "mul3u_gen.v"
    text = """module mul3u_gen(input [2:0] a, input [2:0] b, output [5:0] o);
  genvar i;
  wire [17:0] acc;  // acc[6*i +: 6]: the sum of rows 0..i
  for (i = 0; i < 3; i = i + 1) begin : row
    wire [5:0] pp;
    assign pp = b[i] ? {3'b0, a} << i : 6'd0;
    if (i == 0) assign acc[5:0] = pp;
    else assign acc[6*i +: 6] = acc[6*(i-1) +: 6] + pp;
  end
  assign o = acc[17:12];
endmodule
"""
    src.write_text(text)
    result = CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["bits_a"], data["bits_b"], data["mae_pct"], data["ep_pct"]) == (3, 3, 0, 0)
    src.write_text(text.replace("i < 3", "i < a"))
    result = CliRunner().invoke(main, ["sim", str(src), "--no-write"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: {src}:4:15: the condition of a generate construct must be a constant expression "
        "(numbers, parameters, genvars), but it refers to a net"
    ]


#: EvoApprox8b metrics.csv column -> ``sim --json`` key.
EVO8B_FIELDS = {"MAE": "med", "WCE": "wce", "MSE": "mse", "MRE%": "mre_pct", "WCRE%": "wcre_pct", "EP%": "ep_pct"}


def test_sim_evoapprox8b_as_shipped_reproduces_its_published_figures(corpus: Path, json_output) -> None:
    """No flags: the header picks the cells and the max1 convention, and says so; both netlists agree."""
    import csv

    from approxlut.lutgen.metrics import matches_published

    folder = corpus / "evoapprox8b"
    truth = np.load(folder / "truth.npz")
    with open(folder / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for path in (folder / f"{row['name']}.v", folder / f"{row['name']}_pdk45.v"):
            result = CliRunner().invoke(main, ["sim", str(path), "--json", "--no-write"])
            assert result.exit_code == 0, result.output
            data = json.loads(result.output)
            assert data["mre_convention"] == "max1" and "Library = EvoApprox8b" in data["mre_convention_from"]
            for column, key in EVO8B_FIELDS.items():
                assert matches_published(data[key], row[column]), (path.name, column, data[key], row[column])
        exact = np.multiply.outer(np.arange(256), np.arange(256))
        assert data["med"] == np.abs(truth[row["name"]] - exact).mean()
        if row["pdk45_has_mux2x1"] == "True":
            assert "MUX2X1" in data["cells"]["used"] and data["cells"]["profile"] == "evoapprox8b"


def test_sim_mre_convention_option_and_report(corpus: Path, json_output) -> None:
    path = corpus / "evoapprox8b" / "mul8_039.v"
    result = CliRunner().invoke(main, ["sim", str(path), "--json", "--no-write", "--mre-convention", "nonzero"])
    data = json_output(result.output, "sim")
    assert data["mre_convention"] == "nonzero" and data["mre_convention_from"] == "--mre-convention"
    assert data["mre_pct"] == pytest.approx(2.4272, abs=1e-4)  # the 2019+ definition; EvoApprox8b published 2.51
    result = CliRunner().invoke(main, ["sim", str(corpus / "evoapprox8b" / "mul8_038_pdk45.v"), "--no-write"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "MRE % (max1)" in result.output and "convention max1" in text
    assert (
        "evoapprox8b cells (the file header says 'Library = EvoApprox8b')" in text and "MUX2X1 (non-inverting" in text
    )
    v2022 = CliRunner().invoke(
        main, ["sim", str(corpus / "evoapprox" / "8x8" / "v2022_mul8u_17C8.v"), "--json", "--no-write"]
    )
    assert json.loads(v2022.output)["mre_convention"] == "nonzero"


def test_python_dash_m_runs_the_command(corpus: Path) -> None:
    """``python -m approxlut.cli`` is the ``lutgen`` command (it did nothing and exited 0)."""
    netlist = next((corpus / "evoapprox" / "8x8").glob("*mul8u_*.v"))
    proc = subprocess.run(
        [sys.executable, "-m", "approxlut.cli", "sim", str(netlist), "--json", "--no-write"],  # (not into the corpus)
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bits_a"] == 8
    bad = subprocess.run([sys.executable, "-m", "approxlut.cli", "sim"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: lutgen sim: Missing argument 'FILE'."


SIGNED_PORTS = (
    "module smul(input signed [3:0] a, input signed [3:0] b, output signed [7:0] y);\n  assign y = a * b;\nendmodule\n"
)


def test_sim_takes_signedness_from_verilog_ports_the_name_leaves_open(tmp_path: Path, json_output) -> None:
    """A module whose operand ports are declared signed multiplies signed numbers (it was read unsigned: MAE 43 %)."""
    src = tmp_path / "smul.v"
    src.write_text(SIGNED_PORTS)
    data = json_output(CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json"]).output, "sim")
    assert data["signed"] and data["signed_from"] == "ports" and data["mae_pct"] == 0
    shown = CliRunner().invoke(main, ["sim", str(src), "--no-write"]).output
    assert "the module's operand ports are declared signed" in " ".join(shown.split())
    asked = CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json", "--unsigned"]).output
    assert json_output(asked, "sim")["signed_from"] == "option"
    contradicted = CliRunner().invoke(main, ["sim", str(src), "--no-write", "--unsigned"]).output
    assert "the ports are declared signed; read as unsigned as asked" in " ".join(contradicted.split())
    named = tmp_path / "mul4u_x.v"  # (a name that says wins, as it does over --signed/--unsigned in import)
    named.write_text(SIGNED_PORTS)
    assert (
        json_output(CliRunner().invoke(main, ["sim", str(named), "--no-write", "--json"]).output, "sim")["signed_from"]
        == "name"
    )
    shown = CliRunner().invoke(main, ["sim", str(named), "--no-write"]).output
    assert "the ports are declared signed; read as unsigned as the name (mul4u) says" in " ".join(shown.split())


def test_sim_json_carries_the_signedness_note_it_prints(tmp_path: Path, json_output) -> None:
    """The text said "note: the ports are declared signed; read as unsigned as asked"; --json did not."""
    src = tmp_path / "smul.v"
    src.write_text(SIGNED_PORTS)
    asked = json_output(CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json", "--unsigned"]).output, "sim")
    assert asked["note"] == "the ports are declared signed; read as unsigned as asked"
    named = tmp_path / "mul4u_x.v"
    named.write_text(SIGNED_PORTS)
    by_name = json_output(CliRunner().invoke(main, ["sim", str(named), "--no-write", "--json"]).output, "sim")
    assert by_name["note"] == "the ports are declared signed; read as unsigned as the name (mul4u) says"
    agreed = json_output(CliRunner().invoke(main, ["sim", str(src), "--no-write", "--json"]).output, "sim")
    assert agreed["note"] is None
