"""Verilog reader, cell library and writer: corpus dialects, Verilog width rules, errors, round trips."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlut.circuits import parsetables, verilog
from approxlut.circuits.cells import PROFILES, Cell, CellLibrary
from approxlut.circuits.netlist import Cover, Kind, Netlist, NetlistBuilder
from approxlut.circuits.verilog import cells_from_verilog, read_verilog
from approxlut.circuits.verilog_writer import write_verilog
from approxlut.errors import ConfigError, ParseError
from approxlut.lutgen.simulate import simulate_lut, simulate_metrics

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
EVOAPPROX = CORPUS / "evoapprox"


def _corpus_rows() -> dict[str, dict[str, str]]:
    """metrics.csv rows keyed by every file they describe (plain and pdk45)."""
    if not (EVOAPPROX / "metrics.csv").is_file():
        return {}
    rows: dict[str, dict[str, str]] = {}
    with open(EVOAPPROX / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["file"]] = row
            if row["pdk45_file"]:
                rows[row["pdk45_file"]] = row
    return rows


ROWS = _corpus_rows()
FILES = sorted(str(p.relative_to(EVOAPPROX)) for p in EVOAPPROX.glob("*/*.v")) if EVOAPPROX.is_dir() else []
TWINS = sorted({(row["file"], row["pdk45_file"]) for row in ROWS.values() if row["pdk45_file"]})


def truth_table(netlist: Netlist) -> list[int]:
    """Reference evaluator: output codes for all (a, b) codes, index a * 2^nb + b (Python ints as bit sets)."""
    na, nb = netlist.widths
    total = 1 << (na + nb)
    ones = (1 << total) - 1
    value: dict[int, int] = {}
    for k, net in enumerate(netlist.inputs[netlist.operand_names[1]]):
        value[net] = sum(1 << v for v in range(total) if (v >> k) & 1)
    for k, net in enumerate(netlist.inputs[netlist.operand_names[0]]):
        value[net] = sum(1 << v for v in range(total) if (v >> (nb + k)) & 1)
    for gate in netlist.gates:
        ins = [value[n] for n in gate.inputs]
        kind = gate.kind
        if kind is Kind.SOP:
            assert gate.cover is not None
            hit = 0
            for cube in gate.cover.cubes:
                term = ones
                for c, x in zip(cube, ins, strict=True):
                    term &= x if c == "1" else (ones ^ x) if c == "0" else ones
                hit |= term
            out = hit if gate.cover.phase == 1 else ones ^ hit
        elif kind is Kind.MUX:
            out = (ins[0] & ins[2]) | ((ones ^ ins[0]) & ins[1])
        else:
            acc = {Kind.AND: ones, Kind.NAND: ones}.get(kind, 0)
            for x in ins:
                acc = acc & x if kind in (Kind.AND, Kind.NAND) else acc | x if kind in (Kind.OR, Kind.NOR) else acc ^ x
            out = {
                Kind.CONST0: 0,
                Kind.CONST1: ones,
                Kind.BUF: acc,
                Kind.NOT: ones ^ acc,
                Kind.AND: acc,
                Kind.OR: acc,
                Kind.XOR: acc,
                Kind.NAND: ones ^ acc,
                Kind.NOR: ones ^ acc,
                Kind.XNOR: ones ^ acc,
            }[kind]
        value[gate.output] = out
    return [sum(((value[n] >> v) & 1) << i for i, n in enumerate(netlist.outputs)) for v in range(total)]


def signed_value(code: int, bits: int) -> int:
    return code - (1 << bits) if code >> (bits - 1) & 1 else code


# ----------------------------------------------------------------------------------------------
# The corpus: all five EvoApproxLib dialects and the pdk45 cell netlists
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", FILES)
def test_corpus_file_parses_with_published_widths(corpus: Path, rel: str) -> None:
    path = corpus / "evoapprox" / rel
    netlist = read_verilog(path.read_text(), str(path))
    netlist.validate()
    row = ROWS[rel]
    assert netlist.widths == (int(row["bits_a"]), int(row["bits_b"]))
    assert len(netlist.outputs) == int(row["bits_a"]) + int(row["bits_b"])
    assert netlist.operand_names == ("A", "B")


def test_corpus_is_complete(corpus: Path) -> None:
    assert len(FILES) == 137 and set(FILES) <= set(ROWS)


@pytest.mark.parametrize(("plain", "pdk45"), [t for t in TWINS if t[0].startswith(("8x8", "narrow"))])
def test_pdk45_twin_has_the_same_table(corpus: Path, plain: str, pdk45: str) -> None:
    signed = ROWS[plain]["signed"] == "1"
    a = read_verilog((corpus / "evoapprox" / plain).read_text(), plain)
    b = read_verilog((corpus / "evoapprox" / pdk45).read_text(), pdk45)
    assert simulate_lut(a, signed=signed).hash == simulate_lut(b, signed=signed).hash


@pytest.mark.parametrize(("plain", "pdk45"), [t for t in TWINS if t[0].startswith("wide")])
def test_wide_pdk45_twin_agrees_on_samples(corpus: Path, plain: str, pdk45: str) -> None:
    signed = ROWS[plain]["signed"] == "1"
    a = read_verilog((corpus / "evoapprox" / plain).read_text(), plain)
    b = read_verilog((corpus / "evoapprox" / pdk45).read_text(), pdk45)
    ma = simulate_metrics(a, signed=signed, samples=4096, seed=3)
    mb = simulate_metrics(b, signed=signed, samples=4096, seed=3)
    assert (ma.mae_pct, ma.wce, ma.ep_pct, ma.bias) == (mb.mae_pct, mb.wce, mb.ep_pct, mb.bias)


@pytest.mark.parametrize(
    "rel",
    [
        "8x8/v1.1_mul8u_1JFF.v",  # (b) wire [N:0] bus with PDKGEN cells defined later in the file
        "8x8/v2022_mul8s_1KV6.v",  # (c) Baugh-Wooley array, expressions in port connections
        "8x8/v2022_mul8s_1L12.v",  # (c) vector addition of concatenations
        "8x8/v2022_mul8u_1JJQ.v",
    ],
)
def test_exact_corpus_multipliers_multiply(corpus: Path, rel: str) -> None:
    signed = ROWS[rel]["signed"] == "1"
    netlist = read_verilog((corpus / "evoapprox" / rel).read_text(), rel)
    lut = simulate_lut(netlist, signed=signed)
    if rel.endswith("1L12.v"):
        assert lut.metrics().ep_pct > 0  # approximate: the adder still has to be right, checked by MAE below
        assert abs(lut.metrics().mae_pct - float(ROWS[rel]["mae_pct"])) <= 0.005
    else:
        assert (lut.forward == lut.exact()).all()


def test_word_level_and_hierarchical_wide_files_are_exact(corpus: Path) -> None:
    # (d) `assign tmpZ = $signed(A[16-1:0]) * $signed(B[16-1:0])`, output Z; (e) sub-modules + CLA adders.
    for rel, signed in (("wide/v2022_mul16s_HG4.v", True), ("wide/v2022_mul16u_9DU.v", False)):
        netlist = read_verilog((corpus / "evoapprox" / rel).read_text(), rel)
        metrics = simulate_metrics(netlist, signed=signed, samples=1 << 14, seed=1)
        assert metrics.ep_pct == 0, rel
    assert read_verilog((corpus / "evoapprox" / "wide/v2022_mul16s_HG4.v").read_text()).output_name == "Z"


# ----------------------------------------------------------------------------------------------
# Small inline examples of each dialect and of the general Verilog subset
# ----------------------------------------------------------------------------------------------

MUL2_ASSIGN = """// dialect (a)
module mul2(A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  wire p10, p01, c1;
  assign O[0] = A[0] & B[0];
  assign p10 = A[1] & B[0];
  assign p01 = A[0] & B[1];
  assign c1 = p10 & p01;
  assign O[1] = p10 ^ p01;
  assign O[2] = (A[1] & B[1]) ^ c1;
  assign O[3] = A[1] & B[1] & c1;
endmodule
"""


def products(bits_a: int, bits_b: int, signed: bool, out_bits: int) -> list[int]:
    mask = (1 << out_bits) - 1
    result = []
    for a in range(1 << bits_a):
        for b in range(1 << bits_b):
            x = signed_value(a, bits_a) if signed else a
            y = signed_value(b, bits_b) if signed else b
            result.append((x * y) & mask)
    return result


def test_dialect_a_assign_chains() -> None:
    netlist = read_verilog(MUL2_ASSIGN)
    assert truth_table(netlist) == products(2, 2, False, 4)
    assert netlist.gate_count() == 8  # one gate per operator; A[1] & B[1] & c1 is one 3-input AND


def test_dialect_b_bus_with_cells_defined_later() -> None:
    text = """module m(A, B, O);
  input [1:0] A; input [1:0] B; output [3:0] O;
  wire [9:0] N;
  assign N[0] = A[0]; assign N[1] = A[1]; assign N[2] = B[0]; assign N[3] = B[1];
  PDKGENAND2X1 n4(.A(N[0]), .B(N[2]), .Y(N[4]));
  PDKGENAND2X1 n5(.A(N[1]), .B(N[2]), .Y(N[5]));
  PDKGENAND2X1 n6(.A(N[0]), .B(N[3]), .Y(N[6]));
  PDKGENAND2X1 n7(.A(N[1]), .B(N[3]), .Y(N[7]));
  PDKGENHAX1 n8(.A(N[5]), .B(N[6]), .YS(O[1]), .YC(N[8]));
  PDKGENHAX1 n9(.A(N[7]), .B(N[8]), .YS(O[2]), .YC(O[3]));
  assign O[0] = N[4];
endmodule
/* mod */
module PDKGENHAX1( input A, input B, output YS, output YC );
    assign YS = A ^ B;
    assign YC = A & B;
endmodule
/* mod */
module PDKGENAND2X1(input A, input B, output Y );
     assign Y = A & B;
endmodule
"""
    assert truth_table(read_verilog(text)) == products(2, 2, False, 4)


def test_dialect_c_baugh_wooley_with_port_expressions_and_concat_addition() -> None:
    # A 2x2 signed Baugh-Wooley array: inverted partial products in port connections, then a
    # vector addition of concatenations with a constant 1 (as in v2022 mul8s_1L12).
    text = """module mul2s ( A, B, O );
  input [1:0] A; input [1:0] B; output [3:0] O;
  wire S_0_0, S_0_1, S_1_0, C_1_0, S_1_1, S_2_0, S_2_1, S_2_2;
  assign S_0_0 = (A[0] & B[0]);
  assign S_0_1 = ~(A[0] & B[1]);
  HAX1 U1 (.A(S_0_1), .B(~(A[1] & B[0])), .YS(S_1_0), .YC(C_1_0));
  assign S_1_1 = (A[1] & B[1]);
  assign {S_2_2, S_2_1, S_2_0} = {1'b0, S_1_1} + {1'b0, C_1_0} + 3'b011;
  assign O = {S_2_1 ^ 1'b0, S_2_0, S_1_0, S_0_0} ;
endmodule
"""
    netlist = read_verilog(text)
    table = truth_table(netlist)
    assert table == products(2, 2, True, 4)


def test_dialect_d_word_level_rtl_with_constant_ranges() -> None:
    text = """module mul4s_rtl(A, B, Z);
input signed [4-1:0] A;
input signed [4-1:0] B;
output signed [2*4-1:0] Z;
wire signed [2*(4-0)-1:0] tmpZ;
assign tmpZ = $signed(A[4-1:0]) * $signed(B[4-1:0]);
assign Z = $signed(tmpZ);
endmodule
"""
    netlist = read_verilog(text)
    assert netlist.output_name == "Z"
    assert truth_table(netlist) == products(4, 4, True, 8)
    assert simulate_lut(netlist, signed=True).exact().tolist() == simulate_lut(netlist, signed=True).forward.tolist()


@pytest.mark.parametrize("signed", [False, True])
def test_word_level_product_is_exact_for_every_input(signed: bool) -> None:
    kw = "signed " if signed else ""
    text = f"module m(input {kw}[3:0] A, input {kw}[3:0] B, output {kw}[7:0] O); assign O = A * B; endmodule"
    netlist = read_verilog(text)
    lut = simulate_lut(netlist, signed=signed)
    assert (lut.forward == lut.exact()).all()
    assert truth_table(netlist) == products(4, 4, signed, 8)
    for code in (0, 15, 8, 7):  # edge codes including -8 and the maximum
        assert lut.forward[code, 8] == lut.exact()[code, 8]


def test_dialect_e_hierarchy_is_flattened_with_parameters() -> None:
    text = """module add #(parameter W = 2) (input [W-1:0] x, input [W-1:0] y, output [W:0] s);
  assign s = x + y;
endmodule
module pp(a, b, p);
  input [1:0] a; input b; output [1:0] p;
  and g0 (p[0], a[0], b);
  and g1 (p[1], a[1], b);
endmodule
module mul2(input [1:0] A, input [1:0] B, output [3:0] O);
  wire [1:0] r0, r1;
  wire [2:0] sum;
  pp row0 (.a(A), .b(B[0]), .p(r0));
  pp row1 (A, B[1], r1);
  add #(.W(2)) acc (.x({1'b0, r0[1]}), .y(r1), .s(sum));
  assign O = {sum, r0[0]};
endmodule
"""
    netlist = read_verilog(text)
    assert netlist.name == "mul2"
    assert truth_table(netlist) == products(2, 2, False, 4)
    lines = {g.loc.line for g in netlist.gates if g.loc is not None}
    assert {2, 6, 7} <= lines  # gates carry the line of the sub-module that made them


def test_gate_primitives_including_or_token() -> None:
    text = """module prims(A, B, O);
  input [1:0] A; input [1:0] B; output [7:0] O;
  and  g1 (O[0], A[0], B[0], A[1]);
  or   g2 (O[1], A[0], B[0], B[1]);
  xor  g3 (O[2], A[0], B[0], A[1]);
  nand g4 (O[3], A[0], B[1]);
  nor     (O[4], A[1], B[1]);
  xnor g6 (O[5], A[0], B[0]);
  not  g7 (O[6], A[1]);
  buf  g8 (O[7], B[1]);
endmodule
"""
    netlist = read_verilog(text)
    kinds = [g.kind for g in netlist.gates]
    assert kinds == [Kind.AND, Kind.OR, Kind.XOR, Kind.NAND, Kind.NOR, Kind.XNOR, Kind.NOT, Kind.BUF]
    table = truth_table(netlist)
    for a in range(4):
        for b in range(4):
            a0, a1, b0, b1 = a & 1, a >> 1, b & 1, b >> 1
            want = [
                a0 & b0 & a1,
                a0 | b0 | b1,
                a0 ^ b0 ^ a1,
                1 - (a0 & b1),
                1 - (a1 | b1),
                1 - (a0 ^ b0),
                1 - a1,
                b1,
            ]
            assert table[a * 4 + b] == sum(bit << i for i, bit in enumerate(want))


# Each case: (expression for an 8-bit output O from 4-bit A and B, Python reference on codes a, b).
SIGNED = "input signed [3:0] A, input signed [3:0] B"
UNSIGNED = "input [3:0] A, input [3:0] B"


def s4(x: int) -> int:
    return signed_value(x, 4)


EXPRESSIONS: list[tuple[str, str, Callable[[int, int], int] | None]] = [
    (UNSIGNED, "A + B", lambda a, b: a + b),
    (UNSIGNED, "A - B", lambda a, b: a - b),
    (UNSIGNED, "-A", lambda a, b: -a),
    (SIGNED, "A + B", lambda a, b: s4(a) + s4(b)),
    (SIGNED, "A - B", lambda a, b: s4(a) - s4(b)),
    (SIGNED, "-A", lambda a, b: -s4(a)),
    (SIGNED, "A + $unsigned(B)", lambda a, b: a + b),  # one unsigned operand: the whole sum is unsigned
    (UNSIGNED, "$signed(A) + $signed(B)", lambda a, b: s4(a) + s4(b)),
    (UNSIGNED, "$signed(A) + B", lambda a, b: a + b),
    (UNSIGNED, "A * 3", lambda a, b: a * 3),
    (SIGNED, "A * -2", lambda a, b: s4(a) * -2),
    (SIGNED, "A * B + 7", lambda a, b: s4(a) * s4(b) + 7),
    (UNSIGNED, "{A, B}", lambda a, b: a << 4 | b),
    (UNSIGNED, "{2{A[1:0]}} ^ {B[3], 3'b101}", lambda a, b: ((a & 3) * 5) ^ ((b >> 3) << 3 | 5)),
    (UNSIGNED, "~A", lambda a, b: ~a),
    (SIGNED, "~A", lambda a, b: ~s4(a)),
    (UNSIGNED, "A > B ? A : B", max),
    (SIGNED, "A < B ? A : B", lambda a, b: min(s4(a), s4(b))),
    (UNSIGNED, "{A >= B, A <= B, A == B, A != B, A < B, A > B}", None),
    (UNSIGNED, "$signed(A) < $signed(B)", lambda a, b: int(s4(a) < s4(b))),
    (UNSIGNED, "A << 2", lambda a, b: a << 2),
    (UNSIGNED, "(A << 2) >> 1", lambda a, b: (a << 2) >> 1),
    (SIGNED, "A >>> 1", lambda a, b: s4(a) >> 1),
    (UNSIGNED, "$signed(A) >>> 1", lambda a, b: (s4(a) >> 1) & 0xFF),
    (UNSIGNED, "A >> B", lambda a, b: a >> b),
    (UNSIGNED, "A << B", lambda a, b: a << b),
    (SIGNED, "A >>> B[2:0]", lambda a, b: s4(a) >> (b & 7)),
    (UNSIGNED, "!A + &B + |A + ^B + ~&A + ~|B + ~^A", None),
    (UNSIGNED, "A && B || !B[0]", lambda a, b: int(bool(a and b) or not b & 1)),
    (UNSIGNED, "A[3:1] + B[0]", lambda a, b: (a >> 1) + (b & 1)),
    (UNSIGNED, "A ~^ B", lambda a, b: ~(a ^ b)),
    (UNSIGNED, "8'd200 + A", lambda a, b: 200 + a),
    (UNSIGNED, "'hF0 | A", lambda a, b: 0xF0 | a),
]


def _special(expr: str, a: int, b: int) -> int:
    if expr.startswith("{A >= B"):
        bits = [a >= b, a <= b, a == b, a != b, a < b, a > b]
        return sum(int(v) << (5 - i) for i, v in enumerate(bits))
    ones = lambda x: bin(x).count("1")  # noqa: E731
    terms = [int(a == 0), int(b == 15), int(a != 0), ones(b) & 1, int(a != 15), int(b == 0), 1 - (ones(a) & 1)]
    return sum(terms)


@pytest.mark.parametrize(("ports", "expr", "ref"), EXPRESSIONS, ids=[e[1] for e in EXPRESSIONS])
def test_expression_semantics(ports: str, expr: str, ref: Callable[[int, int], int] | None) -> None:
    netlist = read_verilog(f"module m({ports}, output [7:0] O);\n  assign O = {expr};\nendmodule\n")
    table = truth_table(netlist)
    for a in range(16):
        for b in range(16):
            want = ref(a, b) if ref is not None else _special(expr, a, b)
            assert table[a * 16 + b] == want & 0xFF, (a, b)


def test_truncation_and_extension_follow_the_assignment_width() -> None:
    text = """module m(input [3:0] A, input [3:0] B, output [3:0] O);
  wire [4:0] carry_sum;
  wire [1:0] low;
  assign carry_sum = A + B;      // 5-bit context keeps the carry
  assign low = A + B;            // truncated to two bits
  assign O = {carry_sum[4], low, 1'b0};
endmodule
"""
    table = truth_table(read_verilog(text))
    for a in range(16):
        for b in range(16):
            s = a + b
            assert table[a * 16 + b] == ((s >> 4) << 3 | (s & 3) << 1)


def test_parameters_escaped_names_indexed_selects_and_ascending_ranges() -> None:
    text = """module \\mul-top (A, B, O);
  parameter N = 2;
  localparam M = N * 2;
  input [N-1:0] A; input [0:N-1] B; output [M-1:0] O;
  wire \\p[0][0] ;
  supply0 gnd;
  assign \\p[0][0]  = A[0] & B[N-1];     // B is [0:1]: B[1] is its LSB
  assign O[0 +: 1] = \\p[0][0] ;
  assign O[3 -: 3] = {gnd, A[1] & B[0], A[1] ^ B[1]};
endmodule
"""
    netlist = read_verilog(text)
    assert netlist.name == "mul-top"
    table = truth_table(netlist)
    for a in range(4):
        for b in range(4):
            b_lsb, b_msb = b & 1, b >> 1  # bus bit 0 is the LSB whatever the declared direction
            a0, a1 = a & 1, a >> 1
            assert table[a * 4 + b] == (a0 & b_lsb) | (a1 ^ b_lsb) << 1 | (a1 & b_msb) << 2


def test_ternary_becomes_mux_gates_and_implicit_nets() -> None:
    text = """module m(A, B, O); input [1:0] A, B; output [1:0] O;
  and g (t, A[0], B[0]);
  assign O = t ? A : B;
endmodule"""
    netlist = read_verilog(text)
    assert [g.kind for g in netlist.gates].count(Kind.MUX) == 2
    table = truth_table(netlist)
    assert table == [(a if a & b & 1 else b) for a in range(4) for b in range(4)]


def test_one_assign_with_several_targets() -> None:
    """Verilog-2001 ``assign a = x, b = y;`` (pyverilog's grammar lacks it: lutgen's parser adds it)."""
    text = """module m(input [1:0] A, B, output [3:0] O);
  wire [1:0] x;
  assign x = A & B, t = A[1] ^ B[0],
         O = {t, x[1], x[0] | t, x[0]};
endmodule"""
    expected = []
    for a in range(4):
        for b in range(4):
            x, t = a & b, (a >> 1 ^ b) & 1
            expected.append(t << 3 | (x >> 1) << 2 | ((x & 1) | t) << 1 | (x & 1))
    assert truth_table(read_verilog(text)) == expected  # t: an implicit net, as after a single-target assign
    assert truth_table(read_verilog(text.replace("assign x", "assign #1 x"))) == expected
    again = text.replace("O = {", "x = A, O = {")
    err = error_of(again)
    assert "net 'x[0]' has more than one driver" in err.message
    assert (err.line, err.col) == (4, again.split("\n")[3].index("x = A") + 1)  # at the second target
    err = error_of(text.replace("B[0],", "B[0], ,"))
    assert err.line == 3 and "syntax error near ','" in err.message


def test_default_nettype_none_refuses_implicit_nets() -> None:
    text = "`default_nettype none\nmodule m(input [1:0] A, B, output O);\n"
    text += "  and g (t, A[0], B[0]);\n  assign O = t;\nendmodule\n"
    err = error_of(text)
    assert err.line == 3 and "undeclared net 't'" in err.message
    assert read_verilog(text.replace("none", "wire")).gate_count() == 1


def test_operands_by_name_and_other_port_names() -> None:
    text = "module m(input [2:0] x, input [1:0] w, input [1:0] y, output [4:0] p); assign p = x * y; endmodule"
    netlist = read_verilog(text)  # x/y is a known pair; w is unused
    assert netlist.operand_names == ("x", "y") and netlist.widths == (3, 2)
    netlist = read_verilog(text, operands=("y", "x"))
    assert netlist.operand_names == ("y", "x")
    with pytest.raises(ParseError, match="not one of the operands"):
        read_verilog(text.replace("x * y", "x * w"))


def test_single_bit_ports_are_grouped_into_buses() -> None:
    # ABC and other tools write one escaped port per bit.
    text = r"""module top ( \a[0] , \a[1] , b_0, b_1, \y[0] , \y[1] , \y[2] , \y[3] );
  input \a[0] , \a[1] , b_0, b_1;
  output \y[0] , \y[1] , \y[2] , \y[3] ;
  wire c;
  assign \y[0]  = \a[0]  & b_0;
  assign c = \a[1]  & b_0 & \a[0] & b_1;
  assign \y[1]  = \a[1]  & b_0 ^ \a[0] & b_1;
  assign \y[2]  = \a[1] & b_1 ^ c;
  assign \y[3]  = \a[1] & b_1 & c;
endmodule"""
    netlist = read_verilog(text)
    assert netlist.operand_names == ("a", "b") and netlist.output_name == "y"
    assert truth_table(netlist) == products(2, 2, False, 4)
    assert read_verilog("module m(input a, b, output y); assign y = a & b; endmodule").widths == (1, 1)
    with pytest.raises(ParseError, match="declared twice"):
        read_verilog("module m(input [1:0] A, input A_2, input B, output y); assign y = A[0] & B; endmodule")


def test_top_selection() -> None:
    text = "module a(input [1:0] A, B, output [1:0] O); assign O = A & B; endmodule\n" + (
        "module b(input [1:0] A, B, output [1:0] O); assign O = A | B; endmodule\n"
    )
    with pytest.raises(ParseError, match="top module"):
        read_verilog(text)
    assert read_verilog(text, top="b").gates[0].kind is Kind.OR
    assert read_verilog(text, "lib/b.v").gates[0].kind is Kind.OR  # the file name names the top
    with pytest.raises(ParseError, match="not found"):
        read_verilog(text, top="c")


# ----------------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------------


def test_builtin_cells_cover_the_pdk45_set() -> None:
    lib = CellLibrary.builtin()
    for name in ("INVX1", "AND2X1", "OR2X1", "XOR2X1", "XNOR2X1", "NAND2X1", "NOR2X1", "AOI21X1", "OAI21X1"):
        assert name in lib and "PDKGEN" + name in lib
    for name in ("AOI22X1", "OAI22X1", "HAX1", "FAX1", "BUFX2"):
        assert name in lib
    assert lib.get("FAX1").outputs == ("YC", "YS")
    # MUX2X1 means two things: only a profile defines it
    assert "MUX2X1" not in lib and "inverting" in (lib.ambiguity("MUX2X1") or "")
    for profile in PROFILES:
        assert "MUX2X1" in CellLibrary.for_profile(profile)


@pytest.mark.parametrize(
    ("cell", "pins", "function", "profile"),
    [
        ("AOI21X1", "A B C", lambda a, b, c: 1 - ((a & b) | c), None),
        ("OAI21X1", "A B C", lambda a, b, c: 1 - ((a | b) & c), None),
        ("MUX2X1", "A B S", lambda a, b, s: 1 - (b if s else a), "osu"),  # OSU MUX2X1 inverts
        ("MUX2X1", "A B S", lambda a, b, s: b if s else a, "evoapprox8b"),  # EvoApprox8b's does not
        ("NAND3X1", "A B C", lambda a, b, c: 1 - (a & b & c), None),
        ("FAX1", "A B C", lambda a, b, c: (a + b + c) >> 1 | ((a + b + c) & 1) << 1, None),
    ],
)
def test_cell_functions(cell: str, pins: str, function: Callable[[int, int, int], int], profile: str | None) -> None:
    p = pins.split()
    outs = ".YC(O[0]), .YS(O[1])" if cell == "FAX1" else ".Y(O[0])"
    text = f"""module t(input [1:0] A, input B, output [1:0] O);
  {cell} u (.{p[0]}(A[0]), .{p[1]}(A[1]), .{p[2]}(B), {outs});
  {"" if cell == "FAX1" else "assign O[1] = 1'b0;"}
endmodule"""
    table = truth_table(read_verilog(text, cells=CellLibrary.for_profile(profile) if profile else None))
    for a in range(4):
        for b in range(2):
            assert table[a * 2 + b] == function(a & 1, a >> 1, b), (a, b)


def test_user_cells_from_register_verilog_and_json(tmp_path: Path) -> None:
    lib = CellLibrary.builtin()
    lib.register(Cell.from_spec("MAJ", "X Y Z -> M", "p=AND(X,Y) q=AND(Y,Z) r=AND(X,Z) M=OR(p,q,r)"))
    with pytest.raises(ConfigError, match="already defined"):
        lib.register(Cell.from_spec("MAJ", "X -> M", "M=BUF(X)"))
    assert lib.add_verilog("module NAND4X1(input A, B, C, D, output Y); assign Y = ~(A & B & C & D); endmodule") == [
        "NAND4X1"
    ]
    assert lib.get("NAND4X1").gates[0].kind is Kind.NAND
    cells = tmp_path / "cells.json"
    cells.write_text(
        json.dumps(
            {
                "cells": [
                    {"name": "ANDNOT", "inputs": ["A", "B"], "outputs": {"Y": "A & ~B"}},
                    {"verilog": "module PASS(input A, output Y, Z); assign Y = A; assign Z = 1'b1; endmodule"},
                ]
            }
        )
    )
    assert lib.load_json(cells) == ["ANDNOT", "PASS"]
    text = """module t(input [1:0] A, input [1:0] B, output [3:0] O);
  MAJ m (A[0], A[1], B[0], O[0]);
  ANDNOT n (.A(A[1]), .B(B[1]), .Y(O[1]));
  PASS p (.A(B[0]), .Y(O[2]), .Z(O[3]));
endmodule"""
    table = truth_table(read_verilog(text, cells=lib))
    for a in range(4):
        for b in range(4):
            a0, a1, b0, b1 = a & 1, a >> 1, b & 1, b >> 1
            assert table[a * 4 + b] == (int(a0 + a1 + b0 >= 2) | (a1 & (1 - b1)) << 1 | b0 << 2 | 1 << 3)
    with pytest.raises(ParseError, match="unknown module or cell 'MAJ'"):
        read_verilog(text)  # not in the default library


def test_bad_cell_definitions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never driven"):
        Cell.from_spec("X", "A -> Y Z", "Y=BUF(A)")
    with pytest.raises(ConfigError, match="not a pin"):
        Cell.from_spec("X", "A -> Y", "Y=AND(A,Q)")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cells": [{"name": "X", "inputs": ["A"], "outputs": {"Y": "A &"}}]}')
    with pytest.raises(ParseError) as info:
        CellLibrary.builtin().load_json(bad)
    assert info.value.path == str(bad)
    bad.write_text("{not json")
    with pytest.raises(ParseError, match="invalid JSON"):
        CellLibrary.builtin().load_json(bad)
    with pytest.raises(ParseError, match="single bit"):
        cells_from_verilog("module W(input [1:0] A, output Y); assign Y = A[0]; endmodule")


# ----------------------------------------------------------------------------------------------
# Writer round trip
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [f for f in FILES if f.startswith(("8x8/v2022_mul8s", "narrow/")) or "9DU" in f])
def test_writer_round_trip_is_identical(corpus: Path, rel: str) -> None:
    netlist = read_verilog((corpus / "evoapprox" / rel).read_text(), rel)
    again = read_verilog(write_verilog(netlist), "written.v")
    assert again.canonical_text() == netlist.canonical_text()
    assert again.output_name == netlist.output_name and again.operand_names == netlist.operand_names


def test_writer_handles_every_gate_kind_and_sop_covers() -> None:
    b = NetlistBuilder("all kinds")
    a, x = b.input_bus("a", 2), b.input_bus("b", 2)
    nets = [
        b.gate(Kind.NAND, [a[0], x[0], a[1]]),
        b.gate(Kind.NOR, [a[0], x[1]]),
        b.gate(Kind.XNOR, [a[1], x[1], x[0]]),
        b.gate(Kind.MUX, [a[0], x[0], x[1]]),
        b.gate(Kind.BUF, [a[1]]),
        b.const(1),
        b.gate(Kind.SOP, [a[0], x[0], x[1]], cover=Cover(("1-0", "011"))),
        b.gate(Kind.SOP, [a[1], x[0]], cover=Cover(("10",), phase=0)),
        b.gate(Kind.SOP, [a[0]], cover=Cover(())),
        b.gate(Kind.SOP, [a[0], a[1]], cover=Cover(("--",))),
    ]
    netlist = b.build([*nets, a[0], nets[0]])
    text = write_verilog(netlist)
    assert "module \\all kinds" not in text  # names Verilog cannot spell are replaced
    again = read_verilog(text)
    assert truth_table(again) == truth_table(netlist)


def test_writer_keeps_names_and_escapes_odd_ones() -> None:
    b = NetlistBuilder("m")
    a, x = b.input_bus("A", 1), b.input_bus("B", 1)
    g = b.gate(Kind.AND, [a[0], x[0]], b.new_net("u1.sum[3]"))
    h = b.gate(Kind.NOT, [g], b.new_net("wire"))
    text = write_verilog(b.build([g, h]))
    assert "\\u1.sum[3] " in text and "\\wire " in text
    assert read_verilog(text).net_names[2] == "u1.sum[3]"


# ----------------------------------------------------------------------------------------------
# Errors: always a ParseError with the right line
# ----------------------------------------------------------------------------------------------


def error_of(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        read_verilog(text, "bad.v")
    assert info.value.path == "bad.v"
    return info.value


def test_procedural_code_the_grammar_cannot_hold_is_named_as_such(tmp_path) -> None:
    """An always block after a macro-sized ``output reg`` was a bare 'syntax error near always'."""
    from approxlut.circuits.io import read_netlist

    path = tmp_path / "v.v"
    path.write_text(
        "`define W 3\nmodule top(input [`W-1:0] a, input [`W-1:0] b, output reg [2*`W-1:0] O);\n"
        "  always @(*) O = a * b;\nendmodule\n"
    )
    with pytest.raises(ParseError) as info:
        read_netlist(path)
    assert (info.value.line, info.value.col) == (3, 3)
    assert "'always' belongs to procedural (behavioural) code" in info.value.message
    assert "lutgen synth" in info.value.message


def test_truncated_file_points_at_the_end() -> None:
    lines = MUL2_ASSIGN.splitlines()
    err = error_of("\n".join(lines[:9]) + "\n")
    assert err.line == 9 and "end of input" in err.message


def test_syntax_error_has_its_line() -> None:
    err = error_of(MUL2_ASSIGN.replace("assign c1 = p10 & p01;", "assign c1 = p10 & & ;"))
    assert err.line == 10 and "syntax error" in err.message


@pytest.mark.parametrize(
    ("old", "new", "line", "token", "match"),
    [
        ("assign c1 = p10 & p01;", "assign c1 = p10 & p99;", 10, "p99", "undeclared net 'p99'"),
        ("assign O[1] = p10 ^ p01;", "assign O[1] = p10 ^ p01;\n  assign O[1] = c1;", 12, "assign", "more than one"),
        ("assign O[0] = A[0] & B[0];", "assign O[0] = A[2] & B[0];", 7, "A[2]", "outside A"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 & 1'bx;", 10, "1'bx", "x/z"),
        ("assign c1 = p10 & p01;", "assign A[0] = p10;", 10, "assign", "input port"),
        ("assign c1 = p10 & p01;", "always @(*) c1 = p10;", 10, "always", "lutgen synth"),
        ("wire p10, p01, c1;", "wire p10, p01;\n  reg c1;", 7, "reg", "lutgen synth"),
        ("assign c1 = p10 & p01;", "initial begin end", 10, "initial", "lutgen synth"),
        ("assign c1 = p10 & p01;", "XYZ2X1 u (.A(p10), .B(p01), .Y(c1));", 10, "XYZ2X1", "unknown module or cell"),
        ("assign c1 = p10 & p01;", "AND2X1 u (.A(p10), .B(A), .Y(c1));", 10, "A)", "connected to 2 bits"),
        ("assign c1 = p10 & p01;", "AND2X1 u (.A(p10), .Y(c1));", 10, "AND2X1", "not connected"),
        ("assign c1 = p10 & p01;", "AND2X1 u (.A(p10), .Q(p01), .Y(c1));", 10, ".Q", "no port 'Q'"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 & p01 & O[3];", 10, "p10", "combinational loop"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 / p01;", 10, "p10", "constant operands"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 & A[p01];", 10, "p01]", "constant expression"),
        ("module mul2(A, B, O);", "`define W 2\nmodule mul2(A, B, O);", 2, "`define", "directive `define"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 & f(p01);", 10, "f(p01)", "function"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 & & ;", 10, ";", "syntax error near ';'"),
        ("assign c1 = p10 & p01;", "assign c1 = p10 \u00a3 p01;", 10, "\u00a3", "Illegal character '\u00a3'"),
    ],
)
def test_malformed_inputs(
    old: str, new: str, line: int, token: str, match: str, line_ending: Callable[[str], str]
) -> None:
    """Every error names the 1-based line and column of its token, whatever the line endings."""
    assert old in MUL2_ASSIGN
    text = MUL2_ASSIGN.replace(old, new, 1)
    err = error_of(line_ending(text))
    assert match in err.message
    assert (err.line, err.col) == (line, text.split("\n")[line - 1].index(token) + 1), err


def test_crlf_cr_and_bom_read_like_lf(line_ending: Callable[[str], str]) -> None:
    assert read_verilog(line_ending(MUL2_ASSIGN)).canonical_text() == read_verilog(MUL2_ASSIGN).canonical_text()


def test_undriven_output_and_unconnected_submodule_input() -> None:
    err = error_of(MUL2_ASSIGN.replace("  assign O[3] = A[1] & B[1] & c1;\n", ""))
    assert "never driven" in err.message and err.line == 5
    text = """module sub(input x, output y); assign y = ~x; endmodule
module top(input [1:0] A, B, output [1:0] O);
  sub u (.y(O[0]));
  assign O[1] = A[0] & B[0];
endmodule"""
    err = error_of(text)
    assert "u.x" in err.message and err.line == 1


def test_wrong_port_widths_on_modules_and_primitives() -> None:
    text = """module sub(input [1:0] x, output y); assign y = x[0]; endmodule
module top(input [1:0] A, B, output [1:0] O);
  sub u (.x(A[0]), .y(O[0]));
  assign O[1] = 1'b0;
endmodule"""
    assert error_of(text).line == 3
    err = error_of("module t(input [1:0] A, B, output O);\n and (O, A, B);\nendmodule")
    assert err.line == 2 and "wide" in err.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "\x00\x01\x02\xff" * 16,
        "".join(map(chr, range(1, 256))),
        "module",
        "module m(; endmodule",
        "endmodule",
        "module m(input [1:0] A, B, output [3:0] O); assign O = A * B; endmodule" * 2,
        "module m(input [3:0] A, B, output [1:0] O); assign O = A[1:2]; endmodule",
        "module m(input [3:0] A, B, output O); assign O = (" * 400,
        "module m(input [99999999:0] A, B, output O); endmodule",
        "module m(input [1:0] A, B, output O); assign O = {0{A}}; endmodule",
        "module m(input [1:0] A, B, output O); m u (A, B, O); endmodule",
        "module m(input [1:0] A, B, output O); assign O = A[1] ** B[0]; endmodule",
        "module m(input [1:0] A, B, output O); assign O = 2'sd3 ? A[1 -: 0] : B; endmodule",
        "module m(input [1:0] A, B, inout O); endmodule",
        "module m(input [1:0] A, B, output X, Q); assign X = 1; assign Q = 0; endmodule",
        "module m(input [1:0] A, B, output O); wire [1:0] w [0:3]; assign O = 1; endmodule",
    ],
)
def test_garbage_only_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as info:
        read_verilog(text, "junk.v")
    assert info.value.path == "junk.v"
    assert "\n" not in str(info.value)


def test_long_chains_and_deep_nesting() -> None:
    terms = " + ".join(f"A[{i % 4}]" for i in range(2000))
    netlist = read_verilog(f"module m(input [3:0] A, B, output [7:0] O);\n  assign O = {terms} - B;\nendmodule\n")
    table = truth_table(netlist)
    for a in range(16):
        for b in range(16):
            assert table[a * 16 + b] == (500 * bin(a).count("1") - b) & 0xFF
    deep = "(A[0] ? B : " * 2000 + "A" + ")" * 2000
    err = error_of(f"module m(input [3:0] A, B, output [7:0] O);\n  assign O = {deep};\nendmodule\n")
    assert err.line == 2 and "nested too deeply" in err.message


def test_empty_file_reports_line_one() -> None:
    assert error_of("").line == 1
    assert error_of("// only a comment\n").line == 1


# ----------------------------------------------------------------------------------------------
# The pyverilog adapter
# ----------------------------------------------------------------------------------------------


def test_parser_tables_come_from_the_package_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(verilog, "_PARSER", None)
    assert truth_table(read_verilog(MUL2_ASSIGN)) == products(2, 2, False, 4)
    assert list(tmp_path.iterdir()) == []  # no cache, no parsetab.py


def test_shipped_parser_tables_match_the_installed_grammar() -> None:
    """Regenerate with `python -m approxlut.circuits.parsetables` when this fails after an upgrade."""
    shipped = parsetables.shipped_tables()
    built = verilog.build_parser(tables=parsetables.no_tables())
    assert shipped._lr_signature == parsetables.grammar_signature(built)
    assert shipped._lr_action == built.parser.action and shipped._lr_goto == built.parser.goto


def test_line_numbers_restart_for_every_parse() -> None:
    for _ in range(2):
        assert error_of(MUL2_ASSIGN.replace("assign c1 = p10 & p01;", "assign c1 = p10 & q;")).line == 10


# ----------------------------------------------------------------------------------------------
# Random expressions against a value-level model of the Verilog-2005 width and sign rules
# ----------------------------------------------------------------------------------------------

Expr = tuple  # ("A",) | ("B",) | ("lit", value, width, signed) | (op, ...) trees, see expr_type


def expr_text(node: Expr) -> str:
    tag = node[0]
    if tag in ("A", "B"):
        return tag
    if tag == "lit":
        _, value, width, signed = node
        return str(value) if width == 32 else f"{width}'{'s' if signed else ''}d{value}"
    if tag in ("bin", "cmp"):
        return f"({expr_text(node[2])} {node[1]} {expr_text(node[3])})"
    if tag in ("un", "red"):
        return f"({node[1]}{expr_text(node[2])})"
    if tag == "cond":
        return f"({expr_text(node[1])} ? {expr_text(node[2])} : {expr_text(node[3])})"
    if tag == "cat":
        return "{" + ", ".join(expr_text(item) for item in node[1]) + "}"
    if tag == "sys":
        return f"${node[1]}({expr_text(node[2])})"
    return f"({expr_text(node[2])} {node[1]} {node[3]})"  # shift by a constant


def expr_type(node: Expr, signs: dict[str, bool]) -> tuple[int, bool]:
    tag = node[0]
    if tag in ("A", "B"):
        return 4, signs[tag]
    if tag == "lit":
        return node[2], node[3]
    if tag == "bin":
        (wl, sl), (wr, sr) = expr_type(node[2], signs), expr_type(node[3], signs)
        return max(wl, wr), sl and sr
    if tag in ("cmp", "red"):
        return 1, False
    if tag == "un":
        return expr_type(node[2], signs)
    if tag == "cond":
        (wt, st), (wf, sf) = expr_type(node[2], signs), expr_type(node[3], signs)
        return max(wt, wf), st and sf
    if tag == "cat":
        return sum(expr_type(item, signs)[0] for item in node[1]), False
    if tag == "sys":
        return expr_type(node[2], signs)[0], node[1] == "signed"
    return expr_type(node[2], signs)


def expr_value(node: Expr, width: int, signed: bool, env: dict[str, int], signs: dict[str, bool]) -> int:
    """The expression's bit pattern (``width`` bits) when evaluated in a context of that width and sign."""
    mask = (1 << width) - 1

    def extend(code: int, bits: int, sign: bool) -> int:
        return (signed_value(code, bits) if sign else code) & mask

    tag = node[0]
    if tag in ("A", "B"):
        return extend(env[tag], 4, signed)
    if tag == "lit":
        return extend(node[1] & ((1 << node[2]) - 1), node[2], signed)
    if tag == "bin":
        a = expr_value(node[2], width, signed, env, signs)
        b = expr_value(node[3], width, signed, env, signs)
        return {"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b, "^": a ^ b}[node[1]] & mask
    if tag == "cmp":
        (wl, sl), (wr, sr) = expr_type(node[2], signs), expr_type(node[3], signs)
        w, s = max(wl, wr), sl and sr
        a = expr_value(node[2], w, s, env, signs)
        b = expr_value(node[3], w, s, env, signs)
        if s:
            a, b = signed_value(a, w), signed_value(b, w)
        ops = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b, "==": a == b, "!=": a != b}
        return int(ops[node[1]])
    if tag == "un":
        value = expr_value(node[2], width, signed, env, signs)
        return (~value if node[1] == "~" else -value) & mask
    if tag == "red":
        w, s = expr_type(node[2], signs)
        value = expr_value(node[2], w, s, env, signs)
        if node[1] == "&":
            return int(value == (1 << w) - 1)
        return int(value != 0) if node[1] == "|" else bin(value).count("1") & 1
    if tag == "cond":
        wc, sc = expr_type(node[1], signs)
        chosen = node[2] if expr_value(node[1], wc, sc, env, signs) else node[3]
        return expr_value(chosen, width, signed, env, signs)
    if tag == "cat":
        code = 0
        for item in node[1]:
            w, s = expr_type(item, signs)
            code = code << w | expr_value(item, w, s, env, signs)
        return code & mask
    if tag == "sys":
        w, s = expr_type(node[2], signs)
        return extend(expr_value(node[2], w, s, env, signs), w, signed)
    value = expr_value(node[2], width, signed, env, signs)
    amount = node[3]
    if node[1] == "<<":
        return (value << amount) & mask
    if node[1] == ">>>" and signed:
        return (signed_value(value, width) >> amount) & mask
    return value >> amount


def expressions() -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.sampled_from([("A",), ("B",)]),
        st.builds(lambda v, w, s: ("lit", v % (1 << w), w, s), st.integers(0, 63), st.integers(1, 6), st.booleans()),
        st.integers(0, 20).map(lambda v: ("lit", v, 32, True)),
    )

    def grow(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.tuples(st.just("bin"), st.sampled_from("+-*&|^"), inner, inner),
            st.tuples(st.just("cmp"), st.sampled_from(["<", ">", "<=", ">=", "==", "!="]), inner, inner),
            st.tuples(st.just("un"), st.sampled_from("~-"), inner),
            st.tuples(st.just("red"), st.sampled_from("&|^"), inner),
            st.tuples(st.just("cond"), inner, inner, inner),
            st.tuples(st.just("cat"), st.lists(inner, min_size=1, max_size=3).map(tuple)),
            st.tuples(st.just("sys"), st.sampled_from(["signed", "unsigned"]), inner),
            st.tuples(st.just("shift"), st.sampled_from(["<<", ">>", ">>>"]), inner, st.integers(0, 9)),
        )

    return st.recursive(leaves, grow, max_leaves=6)


@settings(max_examples=60, deadline=None)
@given(expr=expressions(), sign_a=st.booleans(), sign_b=st.booleans())
def test_random_expressions_match_the_verilog_model(expr: Expr, sign_a: bool, sign_b: bool) -> None:
    signs = {"A": sign_a, "B": sign_b}
    text = expr_text(expr)
    kw = {True: "signed ", False: ""}
    source = f"module m(input {kw[sign_a]}[3:0] A, input {kw[sign_b]}[3:0] B, output [7:0] O);\n"
    source += f"  assign O = {text};\nendmodule\n"
    netlist = read_verilog(source)
    width, signed = expr_type(expr, signs)
    table = truth_table(netlist)
    for a in range(16):
        for b in range(16):
            want = expr_value(expr, max(width, 8), signed, {"A": a, "B": b}, signs) & 0xFF
            assert table[a * 16 + b] == want, (text, a, b)


@pytest.mark.parametrize(
    ("ports", "declared"),
    [
        ("input signed [1:0] a, input signed [1:0] b, output signed [3:0] y", True),
        ("input signed [1:0] a, input [1:0] b, output [3:0] y", False),  # (one signed operand: the file is unclear)
        ("input [1:0] a, input [1:0] b, output signed [3:0] y", False),
    ],
)
def test_operand_ports_declared_signed_are_recorded(ports: str, declared: bool) -> None:
    netlist = read_verilog(f"module m({ports});\n  assign y = a * b;\nendmodule\n")
    assert netlist.signed_ports is declared


def test_non_ansi_signed_ports_are_recorded(corpus: Path) -> None:
    assert read_verilog((corpus / "evoapprox" / "wide/v2022_mul16s_HG4.v").read_text()).signed_ports
