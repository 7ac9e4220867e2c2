"""Yosys bridge: behavioural Verilog to gates, simulated exactly (skipped where Yosys is not installed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from approxlut.circuits.blif import read_blif
from approxlut.errors import InputError
from approxlut.lutgen.lut import code_values
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.yosys import declared_signed, synthesize

from .conftest import needs_yosys


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("signed", [False, True])
def test_behavioural_multiplier_is_exact(tmp_path, signed):
    sign = "signed " if signed else ""
    src = tmp_path / "mul.v"
    src.write_text(
        "module helper(input x, output y); assign y = x; endmodule\n"
        f"module mul4(input {sign}[3:0] A, input {sign}[3:0] B, output {sign}[7:0] O);\n"
        "  assign O = A * B;\nendmodule\n"
    )
    result = synthesize(src, top="mul4")
    assert result.netlist.widths == (4, 4) and len(result.netlist.outputs) == 8
    assert result.netlist.gate_count() > 20
    lut = simulate_lut(result.netlist, signed=signed)
    assert np.array_equal(lut.forward, np.outer(code_values(4, signed), code_values(4, signed)))


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("ports", ["in1, input in2", "a, input b", "signed in1, input signed in2"])
def test_one_bit_operands_synthesise_as_sim_reads_them(tmp_path, ports):
    """Yosys writes 1-bit ports in1, in2 as BLIF inputs `in1 in2`, which became one bus `in`: `synth verilog` said it
    could not tell the operands (even with --operands in1,in2) where `sim` reads the file."""
    from approxlut.circuits.io import read_netlist

    src = tmp_path / "one.v"
    first = ports.split(",")[0].split()[-1]
    src.write_text(f"module m(input {ports}, output [1:0] o);\n  assign o = {{1'b0, ~{first}}};\nendmodule\n")
    read = read_netlist(src)
    made = synthesize(src).netlist
    assert made.operand_names == read.operand_names and made.signed_ports == read.signed_ports
    signed = "signed" in ports
    assert np.array_equal(simulate_lut(made, signed=signed).forward, simulate_lut(read, signed=signed).forward)


@needs_yosys
@pytest.mark.slow
def test_yosys_errors_are_located(tmp_path):
    src = tmp_path / "bad.v"
    src.write_text("module bad(input [1:0] A, output O);\n  assign O = ;\nendmodule\n")
    with pytest.raises(InputError, match=r"bad\.v:2"):
        synthesize(src)


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("module m(input [1:0] A, input [1:0] B, output [3:0] O); endmodule\n", "module m is empty"),
        ("// no module here\n", "no Verilog module found"),
    ],
)
def test_nothing_to_synthesise_is_said_so(tmp_path, source, message):
    """An empty module (a black box to Yosys) or none at all was reported as 'not a BLIF file' (the user gave none)."""
    src = tmp_path / "empty.v"
    src.write_text(source)
    with pytest.raises(InputError, match=f"^{re.escape(str(src))}: {message}: nothing to synthesise$"):
        synthesize(src)


@needs_yosys
@pytest.mark.slow
def test_two_modules_that_could_be_the_top_are_refused_as_sim_does(tmp_path):
    """Yosys picks one by size: `synth` printed the metrics of `mul` for a file whose `add` may have been meant."""
    src = tmp_path / "two.v"
    src.write_text(
        "module add(input [3:0] a, input [3:0] b, output [7:0] o); assign o = a + b; endmodule\n"
        "module mul(input [3:0] a, input [3:0] b, output [7:0] o); assign o = a * b; endmodule\n"
    )
    with pytest.raises(InputError, match=r"two\.v: cannot tell the top module among add, mul; name it with --top$"):
        synthesize(src)
    assert synthesize(src, top="add").netlist.name == "add"
    src.write_text(  # (a module another instantiates is not a candidate)
        "module top(input [3:0] a, input [3:0] b, output [7:0] o); child #(.N(4)) u(a, b, o); endmodule\n"
        "module child #(parameter N = 2) (input [N-1:0] x, y, output [2*N-1:0] z); assign z = x * y; endmodule\n"
    )
    assert synthesize(src).netlist.name == "top"


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "bit", "yosys_said"),
    [
        ("assign o = 8'bx;", 0, ""),
        ("assign o[3:0] = a * b;", 4, r" \(Yosys: Warning: Wire m\.\\o \[7\] is used but has no driver\.\)"),
        ("wire [7:0] t; assign o = t;", 0, r" \(Yosys: Warning: Wire m\.\\t \[7\] is used but has no driver\.\)"),
    ],
)
def test_an_output_left_undefined_is_refused(tmp_path, body, bit, yosys_said):
    """x bits and undriven nets come out of Yosys as $undef, which BLIF reading took for 0: `synth` printed
    MAE 19-22 % with exit 0 where `sim` of the same file says a net is never driven."""
    src = tmp_path / "u.v"
    src.write_text(f"module m(input [3:0] a, input [3:0] b, output [7:0] o); {body} endmodule\n")
    message = (
        f"output o[{bit}] depends on $undef, an undefined value (x, or a net nothing drives); "
        "lutgen needs every output bit defined"
    )
    with pytest.raises(InputError, match=f"^{re.escape(str(src))}: {re.escape(message)}{yosys_said}$"):
        synthesize(src)


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            "module m(input clk, input [1:0] a, b, output reg [3:0] o); always @(posedge clk) o <= a * b; endmodule",
            "sequential element .latch: lutgen handles combinational circuits only",
        ),
        (
            "module m(input [1:0] a, b, c, output [3:0] o); assign o = a * b + c; endmodule",
            "inputs c are neither operand (a, b); a multiplier has two input buses",
        ),
    ],
)
def test_what_the_gates_cannot_be_is_said_without_a_location_in_yosyss_blif(tmp_path, module, message):
    """It read "m.v (synthesised):29:1: ...": line 29 of a BLIF file the user never sees (m.v has one line)."""
    src = tmp_path / "m.v"
    src.write_text(module + "\n")
    with pytest.raises(InputError, match=f"^{re.escape(f'{src}: {message} (in the gates Yosys made)')}$"):
        synthesize(src)


def test_a_file_that_is_not_utf8_is_a_located_one_line_error(tmp_path):
    """A Latin-1 byte in the Verilog raised UnicodeDecodeError: a traceback from `lutgen synth`."""
    from click.testing import CliRunner

    from approxlut.cli import main

    src = tmp_path / "latin1.v"
    src.write_bytes(b"module m(input [1:0] a, input [1:0] b, output [3:0] o); assign o = a * b; endmodule\n// \xe9\n")
    with pytest.raises(InputError, match=r"latin1\.v:2: not a UTF-8 text file"):
        synthesize(src)
    result = CliRunner().invoke(main, ["synth", str(src)])
    assert result.exit_code == 2 and "latin1.v:2: not a UTF-8 text file" in result.output
    assert isinstance(result.exception, SystemExit)


def test_bad_top_name_and_missing_file(tmp_path):
    with pytest.raises(InputError):
        synthesize(tmp_path / "x.v", top="not a name")
    with pytest.raises(InputError):
        synthesize(tmp_path / "missing.v")


def _port(direction: str, width: int, signed: bool) -> dict[str, object]:
    return {"direction": direction, "bits": list(range(2, 2 + width)), **({"signed": 1} if signed else {})}


@pytest.mark.parametrize(("signed_a", "signed_b", "expected"), [(True, True, True), (True, False, False)])
def test_declared_signed_reads_the_operand_ports_of_yosys_json(signed_a, signed_b, expected):
    """BLIF loses the ports' ``signed``; Yosys's JSON of the same run says it (a 1-bit port x1 is BLIF bus x)."""
    netlist = read_blif(".model m\n.inputs a[0] a[1] x1\n.outputs o\n.names a[0] a[1] x1 o\n111 1\n.end\n")
    ports = {"a": _port("input", 2, signed_a), "x1": _port("input", 1, signed_b), "o": _port("output", 1, True)}
    assert netlist.operand_names == ("a", "x")
    assert declared_signed({"modules": {"m": {"ports": ports}}}, netlist) is expected
    assert declared_signed({"modules": {"other": {"ports": ports}}}, netlist) is expected  # (the only module)
    assert declared_signed({"modules": {}}, netlist) is False
