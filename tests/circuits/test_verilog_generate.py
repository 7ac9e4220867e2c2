"""Verilog generate constructs: loops over genvars and constant ``if`` unrolled into the netlist IR."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from approxlut.circuits import verilog
from approxlut.circuits.verilog import read_verilog
from approxlut.errors import ParseError
from approxlut.lutgen.simulate import simulate_lut

FULL_ADDER = """module fa(input x, input y, input ci, output s, output co);
  wire t;
  assign t = x ^ y;
  assign s = t ^ ci;
  assign co = (x & y) | (t & ci);
endmodule
"""

#: An N x N unsigned array multiplier: row i adds the partial products a[j] & b[i] to the previous row's
#: sum shifted right by one (its carry out on top); pp, s and c hold row i at bits i*N .. i*N+N-1.
ARRAY_GENERATE = (
    FULL_ADDER
    + """
module mul_gen #(parameter N = 4) (input [N-1:0] a, input [N-1:0] b, output [2*N-1:0] o);
  localparam W = 2 * N;
  genvar i, j;
  wire [N*N-1:0] pp, s, c;
  generate
    for (i = 0; i < N; i = i + 1) begin : row
      for (j = 0; j < N; j = j + 1) begin : col
        and g (pp[i*N+j], a[j], b[i]);
      end
      if (i == 0) begin : first
        assign s[N-1:0] = pp[N-1:0];
        assign c[N-1:0] = {N{1'b0}};
      end else begin : rest
        for (j = 0; j < N; j = j + 1) begin : cell
          localparam UP = (i - 1) * N + j + 1;
          wire y, ci;
          if (j == N - 1) assign y = c[(i-1)*N + N-1];
          else assign y = s[UP];
          if (j == 0) assign ci = 1'b0;
          else assign ci = c[i*N + j - 1];
          fa u (.x(pp[i*N+j]), .y(y), .ci(ci), .s(s[i*N+j]), .co(c[i*N+j]));
        end
      end
      if (i < N - 1) begin : low
        assign o[i] = s[i*N];
      end
    end
  endgenerate
  assign o[W-1:N-1] = {c[N*N-1], s[(N-1)*N +: N]};
endmodule
"""
)


def array_flat(n: int) -> str:
    """The circuit of :data:`ARRAY_GENERATE` written out gate by gate, with every index a number."""
    out = [FULL_ADDER, f"module mul_flat(input [{n - 1}:0] a, input [{n - 1}:0] b, output [{2 * n - 1}:0] o);"]
    out.append(f"  wire [{n * n - 1}:0] pp, s, c;")
    for i in range(n):
        for j in range(n):
            out.append(f"  and g_{i}_{j} (pp[{i * n + j}], a[{j}], b[{i}]);")
        if i == 0:
            out += [f"  assign s[{n - 1}:0] = pp[{n - 1}:0];", f"  assign c[{n - 1}:0] = 0;"]
            continue
        for j in range(n):
            y = f"c[{(i - 1) * n + n - 1}]" if j == n - 1 else f"s[{(i - 1) * n + j + 1}]"
            ci = "1'b0" if j == 0 else f"c[{i * n + j - 1}]"
            k = i * n + j
            out.append(f"  fa u_{i}_{j} (.x(pp[{k}]), .y({y}), .ci({ci}), .s(s[{k}]), .co(c[{k}]));")
    out += [f"  assign o[{i}] = s[{i * n}];" for i in range(n - 1)]
    out.append(f"  assign o[{2 * n - 1}:{n - 1}] = {{c[{n * n - 1}], s[{(n - 1) * n + n - 1}:{(n - 1) * n}]}};")
    return "\n".join([*out, "endmodule", ""])


def product_table(n: int) -> np.ndarray:
    codes = np.arange(1 << n)
    return codes[:, None] * codes[None, :]


def error_of(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        read_verilog(text, "gen.v")
    assert info.value.path == "gen.v"
    return info.value


def position(text: str, token: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the ``occurrence``-th ``token`` in ``text``."""
    offset = -1
    for _ in range(occurrence):
        offset = text.index(token, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_generate_array_multiplier_multiplies_every_input_pair() -> None:
    netlist = read_verilog(ARRAY_GENERATE, "mul_gen.v")
    assert netlist.widths == (4, 4)
    lut = simulate_lut(netlist, signed=False)
    assert np.array_equal(lut.forward, product_table(4))


def test_generate_and_flat_array_multipliers_give_identical_luts() -> None:
    generated = simulate_lut(read_verilog(ARRAY_GENERATE, "mul_gen.v"), signed=False)
    flat = simulate_lut(read_verilog(array_flat(4), "mul_flat.v"), signed=False)
    assert np.array_equal(generated.forward, flat.forward)
    assert generated.forward.dtype == flat.forward.dtype


@pytest.mark.parametrize("n", [2, 3, 5])
def test_loop_bounds_follow_a_parameter_override(n: int) -> None:
    top = f"module top(input [{n - 1}:0] a, input [{n - 1}:0] b, output [{2 * n - 1}:0] o);\n"
    top += f"  mul_gen #(.N({n})) m (.a(a), .b(b), .o(o));\nendmodule\n"
    lut = simulate_lut(read_verilog(ARRAY_GENERATE + top, "top.v", top="top"), signed=False)
    assert np.array_equal(lut.forward, product_table(n))


def test_generated_nets_are_named_after_their_blocks() -> None:
    text = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : bit
    wire t;
    and g (t, a[i], b[i]);
    if (i % 2) begin
      wire u;
      assign u = ~t;
      assign o[i] = u;
    end else
      assign o[i] = t;
  end
endmodule
"""  # (a bare loop, without generate ... endgenerate; the unnamed if block is genblk1, the first in its scope)
    netlist = read_verilog(text, "names.v")
    names = set(netlist.net_names.values())
    assert {"bit[0].t", "bit[2].t", "bit[1].genblk1.u", "bit[3].genblk1.u"} <= names
    table = simulate_lut(netlist, signed=False).forward
    codes = np.arange(16)
    expected = (codes[:, None] & codes[None, :]) ^ 0b1010
    assert np.array_equal(table, expected)


def test_if_generate_picks_the_branch_of_constant_conditions() -> None:
    text = """module m #(parameter MODE = 2) (input [1:0] a, input [1:0] b, output [1:0] o);
  localparam HALF = MODE / 2;
  generate
    if (MODE == 0) begin : and_
      assign o = a & b;
    end else if (HALF == 1) begin : xor_
      wire [1:0] t;
      assign t = a ^ b, o = t;
    end else
      assign o = a | b;
  endgenerate
endmodule
"""
    codes = np.arange(4)
    for mode, expected in [(0, codes[:, None] & codes), (2, codes[:, None] ^ codes), (5, codes[:, None] | codes)]:
        source = text.replace("MODE = 2", f"MODE = {mode}")
        assert np.array_equal(simulate_lut(read_verilog(source), signed=False).forward, expected), mode


def test_non_constant_loop_bound_is_refused_at_the_condition() -> None:
    text = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  generate
    for (i = 0; i < b; i = i + 1) begin : g
      assign o[i] = a[i];
    end
  endgenerate
endmodule
"""
    err = error_of(text)
    assert "must be a constant expression" in err.message and "refers to a net" in err.message
    assert (err.line, err.col) == position(text, "i < b")
    assert str(err).startswith("gen.v:4:") and "\n" not in str(err)


def test_runaway_loops_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    head = "module m(input [3:0] a, input [3:0] b, output [3:0] o);\n  genvar i;\n  assign o = a;\n"
    stuck = head + "  for (i = 0; i < 4; i = i * 2) begin : g\n  end\nendmodule\n"
    err = error_of(stuck)
    assert "repeats the value 0" in err.message and (err.line, err.col) == (4, 3)
    growing = head + "  for (i = 1; i != 0; i = i * 1000) begin : g\n  end\nendmodule\n"  # (32-bit: wraps to 0)
    assert read_verilog(growing).gate_count() == 0
    monkeypatch.setattr(verilog, "MAX_GENERATE_ITERATIONS", 100)
    endless = head + "  for (i = 0; i >= 0; i = i + 1) begin : g\n  end\nendmodule\n"
    err = error_of(endless)
    assert "more than 100 iterations" in err.message and (err.line, err.col) == (4, 3)
    nested = head + "  genvar j;\n  for (i = 0; i < 20; i = i + 1) begin : g\n"
    nested += "    for (j = 0; j < 20; j = j + 1) begin : h\n    end\n  end\nendmodule\n"
    assert "more than 100 iterations" in error_of(nested).message  # counted over all loops together


@pytest.mark.parametrize(
    ("body", "token", "match"),
    [
        ("always @(*) o[i] = a[i];", "always", "an always block is behavioural code"),
        ("initial o[i] = 1'b0;", "initial", "an initial block is behavioural code"),
        ("reg r;", "reg r", "'reg r' belongs to procedural (behavioural) code"),
    ],
)
def test_behavioural_code_in_a_generate_block_is_still_refused(body: str, token: str, match: str) -> None:
    text = f"""module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  generate
    for (i = 0; i < 4; i = i + 1) begin : g
      {body}
    end
  endgenerate
endmodule
"""
    err = error_of(text)
    assert match in err.message and "lutgen synth" in err.message
    assert (err.line, err.col) == position(text, token)


def test_behavioural_code_in_a_branch_not_taken_is_refused_too() -> None:
    text = """module m(input a, input b, output o);
  assign o = a & b;
  if (0) begin
    always @(*) o = a;
  end
endmodule
"""
    err = error_of(text)
    assert "behavioural code" in err.message and err.line == 4


@pytest.mark.parametrize(
    ("items", "token", "match"),
    [
        ("for (k = 0; k < 4; k = k + 1) assign o[k] = a[k];", "k = 0", "must count with a genvar"),
        ("for (i = 0; i < 4; j = j + 1) assign o[i] = a[i];", "j = j", "assigns another genvar than 'i'"),
        ("assign o[i] = a[0];", "i]", "genvar 'i' has a value only inside a generate loop"),
        (
            "for (i = 0; i < 2; i = i + 1) begin : g\n    for (i = 0; i < 2; i = i + 1) begin : h end\n  end",
            "i = 0; i < 2; i = i + 1) begin : h",
            "genvar 'i' already counts an enclosing generate loop",
        ),
        (
            "for (i = 0; i < 4; i = i + 1) begin : g end\n  for (j = 0; j < 1; j = j + 1) begin : g end",
            "for (j",
            "generate block 'g' is named twice in one scope (lines 4 and 5)",
        ),
        ("if (1) begin : g parameter P = 1; end", "parameter P", "cannot declare a parameter; use localparam"),
        ("if (1) begin : g input x; end", "input x", "port 'x' is declared inside a generate block"),
        ("if (a) assign o = b;", "a)", "condition of a generate construct must be a constant expression"),
    ],
)
def test_malformed_generate_constructs(items: str, token: str, match: str) -> None:
    text = "module m(input [3:0] a, input [3:0] b, output [3:0] o);\n  genvar i, j;\n  assign o = b;\n"
    text += f"  {items}\nendmodule\n"
    err = error_of(text)
    assert match in err.message
    assert (err.line, err.col) == position(text, token), err


def _table(source: str, **kwargs: str) -> np.ndarray:
    """The unsigned 4x4 table of a module with inputs ``a``, ``b`` (4 bits)."""
    return simulate_lut(read_verilog(source, "t.v", **kwargs), signed=False).forward


A_XOR_B = np.bitwise_xor.outer(np.arange(16), np.arange(16))


def test_a_ranged_parameter_takes_its_declared_type() -> None:
    """A parameter declared with a range holds its value converted to it (as an assignment would), in loop
    bounds and conditions too: N = 6 in a [1:0] parameter is 2, a signed [3:0] 4'b1111 is -1 (both were used
    unconverted: a table wrong on every bit, exit 0)."""
    sub = """module sub #(parameter [1:0] N = 1) (input [3:0] x, input [3:0] y, output [3:0] z);
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    if (i < N) begin : on assign z[i] = x[i] ^ y[i]; end
    else begin : off assign z[i] = 1'b0; end
  end
endmodule
module m(input [3:0] a, input [3:0] b, output [3:0] o);
  sub #(.N(6)) u (.x(a), .y(b), .z(o));
endmodule
"""
    assert np.array_equal(_table(sub, top="m"), A_XOR_B & 3)
    signed = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam signed [3:0] P = 4'b1111;
  if (P < 0) begin : neg assign o = a ^ b; end
  else begin : pos assign o = a & b; end
endmodule
"""
    assert np.array_equal(_table(signed), A_XOR_B)


def test_a_genvar_declared_in_a_loop_body_is_its_own() -> None:
    """``genvar j;`` inside a loop's block is declared once per iteration's scope (it was 'declared twice'), and
    stays out of the enclosing scope."""
    nested = """module m(input [3:0] a, input [3:0] b, output [7:0] o);
  genvar i;
  for (i = 0; i < 2; i = i + 1) begin : row
    genvar j;
    for (j = 0; j < 2; j = j + 1) begin : col
      assign o[i*2+j] = a[i] & b[j];
    end
  end
  assign o[7:4] = 0;
endmodule
"""
    expected = sum(
        ((np.arange(16)[:, None] >> i) & (np.arange(16)[None, :] >> j) & 1) << (i * 2 + j)
        for i in (0, 1)
        for j in (0, 1)
    )
    assert np.array_equal(_table(nested), expected)
    leaked = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  if (1) begin : x genvar k; end
  for (k = 0; k < 4; k = k + 1) begin : g assign o[k] = a[k]; end
endmodule
"""
    with pytest.raises(ParseError, match=r"t\.v:3:\d+: a generate loop must count with a genvar"):
        read_verilog(leaked, "t.v")


def test_designs_too_large_to_build_are_refused_at_once() -> None:
    """Wide wires in a long loop are refused in one line before they exhaust memory (a MemoryError traceback)."""
    body = "genvar i; for (i = 0; i < 100000; i = i + 1) begin : g wire [65535:0] t; end"
    source = f"module m(input [3:0] a, input [3:0] b, output [7:0] o);\n{body}\nassign o = a * b;\nendmodule\n"
    with pytest.raises(ParseError, match=r"exceeds \d+ nets"):
        read_verilog(source, "t.v")


@pytest.mark.parametrize(
    "body",
    [
        "genvar i; for (i = 0; i < (2**4096)**4096 + 1; i = i + 1) begin : g assign o[0] = a[0]; end",
        "localparam P = ((2**4096)**4096)**4096; if (P == 0) begin : g assign o[0] = a[0]; end",
    ],
)
def test_huge_powers_are_taken_at_their_width_at_once(body: str) -> None:
    """An unsized power is a 32-bit value, as Verilog has it: ``(2**4096)**4096`` is 0, computed modulo 2^32 at
    once (it took 0.1 s per loop test, hours for the parameter, or a MemoryError)."""
    source = f"module m(input [3:0] a, input [3:0] b, output [7:0] o);\n{body}\nassign o[7:1] = 0;\nendmodule\n"
    assert np.array_equal(
        simulate_lut(read_verilog(source, "t.v"), signed=False).forward,
        np.arange(16)[:, None] & 1 * np.ones((1, 16), int),
    )


@pytest.mark.parametrize(
    ("condition", "xor"),
    [
        ("i - 1 < N", [False, True, True, True]),  # (N unsigned: at i = 0, 32'hFFFFFFFF < 4 is false)
        ("(i - 4 >> 1) > 0", [True, True, True, True]),  # (>> is logical: -4 >> 1 is 32'h7FFFFFFE)
        ("(i - 4 >>> 1) < 0", [True, True, True, True]),  # (>>> of a signed genvar keeps its sign)
        ("i - 1 == 32'hFFFFFFFF", [True, False, False, False]),
        ("(i - 2) / 2 == 0", [False, True, True, True]),  # (signed, toward zero: -2/2 = -1, -1/2 = 0)
        ("(X + 4'd1) / 4'd2 == 8", [True, True, True, True]),  # (sized by the 32-bit 8: 16 / 2, no wrap)
        ("((X + 4'd1) >> 1) == 8'd8", [True, True, True, True]),
        ("(X + 4'd1) == 4'd0", [True, True, True, True]),  # (all 4-bit: 15 + 1 wraps to 0)
    ],
)
def test_constant_conditions_follow_verilog_widths_and_signedness(condition: str, xor: list[bool]) -> None:
    """Generate conditions are evaluated at their operands' width and signedness (they were evaluated on
    unbounded signed integers: another branch taken, a wrong table, exit 0)."""
    source = f"""module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam [3:0] N = 4;
  localparam [3:0] X = 15;
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    if ({condition}) begin : x assign o[i] = a[i] ^ b[i]; end
    else begin : y assign o[i] = a[i] & b[i]; end
  end
endmodule
"""
    codes = np.arange(16)
    expected = sum(
        ((np.bitwise_xor if on else np.bitwise_and).outer(codes, codes) >> i & 1) << i for i, on in enumerate(xor)
    )
    assert np.array_equal(_table(source), expected)


def test_bit_and_part_selects_of_parameters_and_genvars_are_constants() -> None:
    """A mask parameter chooses per bit (``if (MASK[i])``, ``i[0]``, a part select, an ascending range): the
    usual way to write a perforated or truncated multiplier (they were refused as 'refers to a net')."""
    source = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam [3:0] MASK = 4'b0110;
  localparam [0:3] UP = 4'b0110;
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    if (MASK[i] && UP[3 - i] && MASK[2:1] == 2'b11) begin : x assign o[i] = a[i] ^ b[i]; end
    else if (i[0]) begin : y assign o[i] = a[i] & b[i]; end
    else begin : z assign o[i] = a[i] | b[i]; end
  end
endmodule
"""
    codes = np.arange(16)
    ops = [np.bitwise_or, np.bitwise_xor, np.bitwise_xor, np.bitwise_and]  # bits 1, 2 masked; bit 3 odd
    expected = sum((ops[i].outer(codes, codes) >> i & 1) << i for i in range(4))
    assert np.array_equal(_table(source), expected)
    outside = source.replace("MASK[2:1] == 2'b11", "MASK[4]")
    with pytest.raises(ParseError, match=r"t\.v:\d+:\d+: select \[4:4\] is outside parameter 'MASK'"):
        read_verilog(outside, "t.v")


def test_a_ranged_parameter_is_computed_at_its_declared_width() -> None:
    """``localparam [3:0] L = -(Q <= P) >> 1`` is 7: the right-hand side works at the declared 4 bits, as an
    assignment's does (it was computed at the comparison's 1 bit: 0)."""
    source = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam P = 4;
  localparam signed [2:0] Q = 1;
  localparam [3:0] L = -(Q <= P) >> 2'd1;
  if (L == 7) begin : x assign o = a ^ b; end
  else begin : y assign o = a & b; end
endmodule
"""
    assert np.array_equal(_table(source), A_XOR_B)


@pytest.mark.parametrize(
    ("body", "token"),
    [
        ("assign o = a + g.N;", "g.N"),  # (g's own N is 3; the module's N is 1)
        ("assign o = g.t;", "g.t"),  # (the module's localparam t is 1)
        ("assign o = {a[3:1], b[0]} ^ {4{g.t[0]}};", "g.t[0]"),
        ("and x (o[0], a[0], g.t); assign o[3:1] = 0;", "g.t)"),
        ("and x (g.t, a[0], b[0]); assign o = 0;", "g.t,"),
        ("assign g.t = a;", "g.t ="),
        ("if (g.N == 3) begin : h assign o = a; end", "g.N =="),
    ],
)
def test_hierarchical_names_are_refused_wherever_they_are_read(body: str, token: str) -> None:
    """``g.N``, ``g.t``: a hierarchical name is refused with its position (it was looked up by its last component
    alone: ``a + g.N`` added the module's N = 1, ``g.t`` read the localparam t; a wrong table, exit 0)."""
    source = f"""module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam N = 1;
  localparam [3:0] t = 1;
  if (1) begin : g
    localparam N = 3;
  end
  {body}
endmodule
"""
    err = error_of(source)
    assert "hierarchical names are not supported" in err.message
    assert (err.line, err.col) == position(source, token), err


def test_a_block_declaration_hides_an_outer_name_of_another_kind() -> None:
    """Nets, parameters and genvars share one name space per scope and a name refers to the innermost declaration
    (IEEE 1364-2005 12.7): a loop block's ``wire t`` hides the module's ``localparam t`` inside the block only (it
    was refused: 'cannot assign to parameter'); a block's localparam hides a module net; an inner block's wire hides
    the loop's genvar. Yosys agrees on all three tables."""
    codes = np.arange(16)
    wire_over_param = """module m(input [3:0] a, input [3:0] b, output [7:0] o);
  localparam [3:0] t = 4'd5;
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    wire t;
    assign t = a[i] ^ b[i];
    assign o[i] = t;
  end
  assign o[7:4] = a + t;
endmodule
"""
    netlist = read_verilog(wire_over_param, "t.v")
    assert {"g[0].t", "g[3].t"} <= set(netlist.net_names.values())
    expected = A_XOR_B + (((codes[:, None] + 5) & 15) << 4)
    assert np.array_equal(simulate_lut(netlist, signed=False).forward, expected)
    param_over_wire = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  wire [3:0] w;
  assign w = a & b;
  if (1) begin : g
    localparam [3:0] w = 4'd3;
    assign o = b + w;
  end
endmodule
"""
    assert np.array_equal(_table(param_over_wire), np.broadcast_to((codes[None, :] + 3) & 15, (16, 16)))
    wire_over_genvar = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    localparam K = i;
    if (1) begin : h
      wire i;
      assign i = a[K] ^ b[K];
      assign o[K] = i;
    end
  end
endmodule
"""
    assert np.array_equal(_table(wire_over_genvar), A_XOR_B)


@pytest.mark.parametrize(
    ("items", "token", "match"),
    [
        ("wire [3:0] P;\n  localparam P = 1;", "localparam P", "'P' is declared as a parameter or genvar and as a net"),
        ("localparam P = 1;\n  wire P;", "wire P", "'P' is declared as a parameter or genvar and as a net"),
        ("localparam N = 1;\n  localparam N = 2;", "localparam N = 2", "'N' is declared twice"),
        ("if (1) begin : g localparam N = 1; localparam N = 2; end", "localparam N = 2", "'N' is declared twice"),
        ("genvar i;\n  for (i = 0; i < 2; i = i + 1) begin : g wire i; end", "wire i", "as a parameter or genvar"),
    ],
)
def test_two_declarations_of_a_name_in_one_scope_are_refused(items: str, token: str, match: str) -> None:
    """Within one scope a name is declared once (a wire and a localparam ``P`` both were accepted and the
    parameter silently won; a second localparam replaced the first); a loop's block declares its genvar."""
    text = f"module m(input [3:0] a, input [3:0] b, output [3:0] o);\n  assign o = a;\n  {items}\nendmodule\n"
    err = error_of(text)
    assert match in err.message
    assert (err.line, err.col) == position(text, token), err


def test_a_declaration_later_in_a_block_is_the_one_referred_to() -> None:
    """A name refers to its scope's declaration even where that comes later in the text (Yosys does the same):
    ``localparam B = A + 1; localparam A = 5;`` in a block is 6 (it took the module's A = 1: a wrong table, exit 0),
    a wire's width from a later localparam too; at module level it was 'undeclared'."""
    codes = np.arange(16)
    plus = {k: np.broadcast_to((codes[:, None] + k) & 15, (16, 16)) for k in (2, 6)}
    later_param = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam A = 1;
  if (1) begin : g
    localparam B = A + 1;
    localparam A = 5;
    assign o = a + B;
  end
endmodule
"""
    assert np.array_equal(_table(later_param), plus[6])
    later_width = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam W = 2;
  if (1) begin : g
    wire [W-1:0] x;
    localparam W = 4;
    assign x = a ^ b;
    assign o = x;
  end
endmodule
"""
    assert np.array_equal(_table(later_width), A_XOR_B)
    module_level = later_param.replace("  localparam A = 1;\n  if (1) begin : g\n", "").replace("  end\n", "")
    assert np.array_equal(_table(module_level), plus[6])
    for items, token in [
        ("if (1) begin : g localparam N = N + 2; end", "N + 2"),  # (Yosys: stack exhausted)
        ("localparam A = B, B = A + 1;", "A + 1"),
        ("wire [X:0] X;", "X:0"),
    ]:
        text = f"module m(input [3:0] a, input [3:0] b, output [3:0] o);\n  localparam N = 1;\n  {items}\nendmodule\n"
        err = error_of(text)
        assert "depends on itself (a circular declaration)" in err.message
        assert (err.line, err.col) == position(text, token), err


def test_selects_of_parameters_and_genvars_are_constant_bits_in_net_expressions() -> None:
    """``M[i]``, ``S[7:6]``, ``U[0:1]``, ``i[0]`` in an assign are constant bits (they were refused as 'undeclared
    net'); Yosys gives the same table."""
    source = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  localparam [3:0] M = 4'b0101;
  localparam signed [7:0] S = -8'sd3;
  localparam [0:3] U = 4'b0011;
  genvar i;
  for (i = 0; i < 2; i = i + 1) begin : g
    assign o[i] = a[i] ^ M[i] ^ i[0];
  end
  assign o[3:2] = (b[3:2] & M[3:2]) + S[7:6] + U[0:1] + {S[1], U[3]};
endmodule
"""
    codes = np.arange(16)
    expected = ((codes[:, None] & 3) ^ 3) | (((codes[None, :] >> 2) & 1) << 2)
    assert np.array_equal(_table(source), expected)


def test_an_override_of_a_localparam_is_refused_at_the_instance() -> None:
    """``#(.L(2))`` where L is a localparam of the module is refused, as Yosys does (it was ignored: the instance
    kept L = 1 without a word)."""
    text = """module s #(parameter K = 1) (input [3:0] a, input [3:0] b, output [3:0] o);
  localparam L = 1;
  assign o = a + L + K;
endmodule
module m(input [3:0] a, input [3:0] b, output [3:0] o);
  s #(.K(3), .L(2)) u (.a(a), .b(b), .o(o));
endmodule
"""
    err = error_of(text)
    assert err.message == "'L' is a localparam of module s: it cannot be overridden"
    assert (err.line, err.col) == position(text, ".L(2)")
    plus = np.broadcast_to((np.arange(16)[:, None] + 4) & 15, (16, 16))
    assert np.array_equal(_table(text.replace(", .L(2)", ""), top="m"), plus)


def test_unnamed_blocks_are_named_by_the_standards_rule() -> None:
    """An unnamed generate block is ``genblk<n>`` for the n-th construct of its scope, with zeros put before n
    while a name declared in that scope is the same (IEEE 1364-2005 12.4.3, its example): beside a block named
    ``genblk2`` the second construct's block is ``genblk02`` (it was refused: 'named twice'). Yosys names every net
    here the same."""
    text = """module m(input [5:0] a, input [5:0] b, output [5:0] o);
  localparam genblk2 = 0;
  genvar i;
  if (genblk2) begin wire t; and x (t, a[0], b[0]); assign o[0] = t; end
  else begin wire t; xor x (t, a[0], b[0]); assign o[0] = t; end
  if (genblk2) begin wire t; and x (t, a[1], b[1]); assign o[1] = t; end
  else begin wire t; xor x (t, a[1], b[1]); assign o[1] = t; end
  for (i = 0; i < 1; i = i + 1) begin : g1
    if (1) begin wire t; xor x (t, a[2], b[2]); assign o[2] = t; end
  end
  for (i = 0; i < 1; i = i + 1)
    if (1) begin wire t; xor x (t, a[3], b[3]); assign o[3] = t; end
  if (1) begin wire t; xor x (t, a[4], b[4]); assign o[4] = t; end
  wire genblk6, genblk06;
  if (1) begin wire t; xor x (t, a[5], b[5]); assign o[5] = t; end
endmodule
"""
    netlist = read_verilog(text, "t.v")
    blocks = {name for name in netlist.net_names.values() if name.endswith(".t")}
    assert blocks == {
        "genblk1.t",
        "genblk02.t",
        "g1[0].genblk1.t",
        "genblk4[0].genblk1.t",
        "genblk5.t",
        "genblk006.t",
    }
    assert np.array_equal(
        simulate_lut(netlist, signed=False).forward, np.bitwise_xor.outer(np.arange(64), np.arange(64))
    )
    beside = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  for (i = 0; i < 2; i = i + 1) begin : g
    if (1) begin : genblk2 wire t; and x (t, a[i], b[i]); assign o[i] = t; end
    if (1) begin wire t; xor x (t, a[i + 2], b[i + 2]); assign o[i + 2] = t; end
  end
endmodule
"""
    netlist = read_verilog(beside, "t.v")
    assert {"g[0].genblk2.t", "g[1].genblk02.t"} <= set(netlist.net_names.values())
    codes = np.arange(16)
    expected = (np.bitwise_and.outer(codes, codes) & 3) | (A_XOR_B & 12)
    assert np.array_equal(simulate_lut(netlist, signed=False).forward, expected)


@pytest.mark.parametrize(
    "loop",
    [
        "i = 0; i < 2000000; i = i + 1",
        "i = 0; i >= 0; i = i + 1",  # (true until the genvar wraps: 2^31 iterations)
        "i = 0; i != 7; i = i + 2",
        "i = -1; i > 32'd10; i = i - 1",  # (unsigned: -1 is 32'hFFFFFFFF, counted down to 10)
        "i = 0; 2000000 > i; i = 1 + i",
        "i = 0; i + 1 > 0; i = i + 1",  # (true until i + 1 wraps)
    ],
)
def test_a_counted_loop_over_the_limit_is_refused_before_its_first_iteration(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that would unroll past the limit is refused with its position before any block is elaborated: its
    trip count is computed up front (2,000,000 iterations took ~11 s to be refused)."""
    elaborated: list[object] = []
    monkeypatch.setattr(verilog._Module, "_generate_block", lambda self, *args: elaborated.append(args))
    text = f"""module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i;
  assign o = a;
  for ({loop}) begin : g
    wire t;
  end
endmodule
"""
    err = error_of(text)
    assert f"more than {verilog.MAX_GENERATE_ITERATIONS} iterations" in err.message
    assert (err.line, err.col) == (4, 3) and elaborated == []


def test_iteration_counts_match_a_step_by_step_count() -> None:
    """:func:`verilog._iterations` (runs between wraps skipped at once) against counting every value, for every
    start, step, bound and comparison of a 4-bit genvar."""
    modulus = 16
    for op in verilog._COMPARE:
        for start in range(modulus):
            for step in range(-modulus - 1, modulus + 2):
                for bound in range(-2, modulus + 2):
                    for limit in (0, 3, 2 * modulus + 1):
                        value, expected = start, None
                        for k in range(limit):
                            if not verilog._COMPARE[op](value, bound):
                                expected = k
                                break
                            value = (value + step) % modulus
                        got = verilog._iterations(start, step, op, bound, limit, modulus)
                        assert got == expected, (op, start, step, bound, limit)


def _loop_outcome(start: str, cond: str, step: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """The genvar values, in order, of the iterations of ``for (i = start; cond; i = step)``, or its error."""
    values: list[int] = []
    monkeypatch.setattr(verilog._Module, "_generate_block", lambda self, node, name, loop: values.append(loop[1]))
    text = f"""module m(input [3:0] a, input [3:0] b, output o);
  genvar i;
  assign o = a[0];
  for (i = {start}; {cond}; i = {step}) begin : g
  end
endmodule
"""
    try:
        read_verilog(text, "t.v")
    except ParseError as exc:
        return exc.message
    return tuple(values)


def test_counted_loops_unroll_as_their_condition_and_step_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loops whose trip count is computed up front give the blocks (or the error) that evaluating the condition and
    step at every iteration gives (``(cond) || 1'b0`` is not a counted form): signed and unsigned bounds, 64-bit
    bounds, counting down, strides that wrap, ``!=`` bounds missed, ``i + 1 < N`` (wider than 32 bits: stepped)."""
    monkeypatch.setattr(verilog, "MAX_GENERATE_ITERATIONS", 300)
    rng = np.random.default_rng(7)
    literals = [
        "0",
        "5",
        "-3",
        "32'd7",
        "32'hFFFFFFF0",
        "-32'sd2",
        "64'sd5",
        "-64'sd9",
        "4'd9",
        "2147483640",
        "-2147483645",
    ]
    strides = ["1", "2", "3", "32'd1", "32'h80000000", "32'hFFFFFFFF", "1073741824", "-64'sd1", "0", "4'd15"]
    operators = ["<", "<=", ">", ">=", "!=", "==", "!==", "==="]
    seen = set()
    for _ in range(200):
        start, bound = rng.choice(literals, 2)
        stride, op = rng.choice(strides), rng.choice(operators)
        side = ["i", "i", f"i + {rng.choice(literals)}", f"{rng.choice(literals)} + i", f"i - {rng.choice(literals)}"]
        counter = side[rng.integers(len(side))]
        cond = f"{counter} {op} {bound}" if rng.random() < 0.5 else f"{bound} {op} {counter}"
        step = [f"i + {stride}", f"i - {stride}", f"{stride} + i"][rng.integers(3)]
        counted = _loop_outcome(start, cond, step, monkeypatch)
        assert counted == _loop_outcome(start, f"({cond}) || 1'b0", step, monkeypatch), (start, cond, step)
        seen.add(counted if isinstance(counted, str) else min(len(counted), 2))
    assert {0, 1, 2} <= seen and any(isinstance(o, str) and "repeats" in o for o in seen)
    assert any(isinstance(o, str) and "more than 300 iterations" in o for o in seen)


NESTED = """module m(input [3:0] a, input [3:0] b, output [3:0] o);
  genvar i, j;
  assign o = a;
  for (i = 0; i < OUTER; i = i + 1) begin : g
    localparam K = i * 10;
    if (i >= 0) begin : h
      for (j = 0; j < K; j = j + 1) begin : k
        wire t;
      end
    end
  end
endmodule
"""


@pytest.mark.parametrize(("outer", "iterations"), [(10, 10 + 450), (20, 20 + 1900)])
def test_nested_loops_are_counted_before_any_is_elaborated(
    outer: int, iterations: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loops within a loop (through an ``if`` and a block's localparam) are counted together before the first block
    is elaborated: past the limit nothing is elaborated (2,000 x 1,000 iterations took ~4 s to be refused); at the
    limit or under it, everything is."""
    elaborated: list[object] = []
    original = verilog._Module._generate_block

    def record(self: verilog._Module, *args: Any) -> None:
        elaborated.append(args)
        original(self, *args)

    monkeypatch.setattr(verilog._Module, "_generate_block", record)
    text = NESTED.replace("OUTER", str(outer))
    for limit in (iterations - 1, iterations):
        monkeypatch.setattr(verilog, "MAX_GENERATE_ITERATIONS", limit)
        elaborated.clear()
        if limit < iterations:
            err = error_of(text)
            assert f"more than {limit} iterations" in err.message and err.line in (4, 7)
            assert elaborated == []
        else:
            read_verilog(text, "t.v")
            assert len(elaborated) == iterations + outer  # (and one `if` block per outer iteration)


def test_a_long_chain_of_declarations_that_refer_to_later_ones_is_refused_with_its_position() -> None:
    """Each declaration that refers to a later one is evaluated inside the first: past 64 in a row the chain is
    refused where it goes on (deeper chains ran out of Python's stack: 'nested too deeply', without a line)."""
    head = "module m(input [3:0] a, input [3:0] b, output [3:0] o);\n  assign o = a + P0;\n"

    def chain(n: int) -> str:
        return (
            head
            + "".join(f"  localparam P{k} = P{k + 1} + 1;\n" for k in range(n))
            + f"  localparam P{n} = 0;\nendmodule\n"
        )

    assert np.array_equal(_table(chain(64)), np.broadcast_to((np.arange(16)[:, None] + 64) & 15, (16, 16)))
    for n in (65, 3000):
        err = error_of(chain(n))
        assert "more than 64 declarations in a row refer to later ones (here 'P65')" in err.message
        assert (err.line, err.col) == position(chain(n), "P65 + 1")


def test_constant_concatenations_and_replications() -> None:
    """``{N{1'b1}}``, ``{2'b10, 1'b1, 1'b0}`` and selects of them are constants in localparams and generate
    conditions (they were refused: 'refers to a net'); Yosys gives the same table."""
    source = """module m(input [3:0] a, input [3:0] b, output [7:0] o);
  localparam [3:0] P = {2'b10, 1'b1, 1'b0};
  localparam Q = {3{2'b01}};
  localparam signed [7:0] R = {4{1'b1}};
  localparam S = {P, Q[3:0]} + {2{P[1:0]}};
  genvar i;
  for (i = 0; i < 4; i = i + 1) begin : g
    if ({P[i], Q[i]} == 2'b10 || {2{i[0]}} == 2'b11) begin : x assign o[i] = a[i] ^ b[i]; end
    else begin : y assign o[i] = a[i] & b[i]; end
  end
  assign o[7:4] = (R < 0 ? 4'd1 : 4'd2) + S[3:0] + {1'b1, a[0]} + Q;
endmodule
"""
    codes = np.arange(16)
    xor = [False, True, False, True]  # (P = 4'b1010, Q = 6'b010101: P[i] & ~Q[i] at 1, 3; i odd at 1, 3)
    expected = sum(
        (((np.bitwise_xor if xor[i] else np.bitwise_and).outer(codes, codes) >> i) & 1) << i for i in range(4)
    )
    high = 2 + 0xF + 2 + (codes[:, None] & 1) + 0b010101  # (R = 15 >= 0: 2; S = 8'hA5 + 4'b1010 = 8'hAF)
    expected = expected | ((high & 15) << 4) * np.ones((1, 16), int)
    assert np.array_equal(_table(source), expected)


MUL_SHIFT_ADD = """module mul #(parameter N = 4) (input [N-1:0] a, input [N-1:0] b, output [2*N-1:0] o);
  localparam [N-1:0] ONES = {N{1'b1}};
  localparam s = 0;
  wire genblk1;
  wire [2*N*(N+1)-1:0] acc;
  genvar i;
  assign acc[2*N-1:0] = s;
  for (i = 0; i + 1 <= N; i = i + 1) begin
    wire [2*N-1:0] s;
    assign s = acc[2*N*i +: 2*N] + ((a & {N{b[i]}} & ONES[N-1:0]) << i);
    assign acc[2*N*(i+1) +: 2*N] = s;
  end
  assign o = acc[2*N*N +: 2*N];
endmodule
"""


@pytest.mark.parametrize("n", [3, 4, 5])
def test_a_shift_add_multiplier_with_shadowed_names_multiplies(n: int) -> None:
    """A generate multiplier whose unnamed row blocks (``genblk01``, beside a wire ``genblk1``) declare a net ``s``
    named like the module's ``localparam s``, masked by a constant replication, counted by ``i + 1 <= N``: its
    table is ``a * b`` on every pair (Yosys agrees)."""
    netlist = read_verilog(MUL_SHIFT_ADD.replace("N = 4", f"N = {n}"), "mul.v")
    assert np.array_equal(simulate_lut(netlist, signed=False).forward, product_table(n))
