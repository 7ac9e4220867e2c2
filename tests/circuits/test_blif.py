from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlut.circuits import Cover, Kind, Netlist, NetlistBuilder
from approxlut.circuits.blif import read_blif, write_blif
from approxlut.circuits.io import read_netlist, write_netlist
from approxlut.circuits.sop import read_sop
from approxlut.errors import ConfigError, InputError, ParseError
from approxlut.lutgen.metrics import matches_published
from approxlut.lutgen.reference import evaluate_vector
from approxlut.lutgen.simulate import simulate_lut

CORPUS_BLIF = ["mul7u_06Q_sop.blif", "mul8u_17C8_sop.blif"]


def truth(netlist: Netlist) -> list[list[int]]:
    """Every output vector, by the one-vector-at-a-time reference evaluator."""
    wa, wb = netlist.widths
    return [evaluate_vector(netlist, (a, b)) for a in range(1 << wa) for b in range(1 << wb)]


def value_table(netlist: Netlist) -> list[int]:
    return [sum(bit << i for i, bit in enumerate(bits)) for bits in truth(netlist)]


# 2x2 exact multiplier: O = A*B with explicit covers, comments and continuations.
MUL2 = """\
# a 2x2 multiplier
.model mul2   # trailing comment
.inputs A[0] A[1] \\
        B[0] B[1]
.outputs O[0] O[1] O[2] O[3]
.names A[0] B[0] O[0]
11 1
.names A[1] B[0] p10
11 1
.names A[0] B[1] \\
  p01
11 1
.names p10 p01 O[1]
10 1
01 1
.names p10 p01 c1
11 1
.names A[1] B[1] p11
11 1
.names p11 c1 O[2]
10 1
01 1
.names p11 c1 O[3]
11 1
.end
"""


def test_small_multiplier_with_continuations_and_comments() -> None:
    nl = read_blif(MUL2, "mul2.blif")
    assert nl.name == "mul2" and nl.widths == (2, 2) and nl.output_name == "O"
    assert nl.operand_names == ("A", "B")
    assert value_table(nl) == [a * b for a in range(4) for b in range(4)]
    assert nl.gate_count() == 8 and all(g.kind is Kind.SOP for g in nl.gates)
    assert nl.gates[0].loc is not None and nl.gates[0].loc.line == 6


@pytest.mark.parametrize("name", CORPUS_BLIF)
def test_corpus_sop_blif_parses_and_round_trips(corpus: Path, tmp_path: Path, name: str) -> None:
    nl = read_netlist(corpus / "date25" / name)
    assert nl.output_name == "O" and nl.operand_names == ("A", "B")
    lut = simulate_lut(nl, signed=False)
    again = read_blif(write_blif(nl), "again.blif")
    assert again.canonical_text() == nl.canonical_text()
    out = tmp_path / "w.blif"
    write_netlist(nl, out, "blif")
    assert simulate_lut(read_netlist(out), signed=False).hash == lut.hash
    sop = tmp_path / "w.sop"
    write_netlist(nl, sop)
    assert read_netlist(sop).canonical_text() == nl.canonical_text()


def test_corpus_sop_blif_functions(corpus: Path) -> None:
    nl = read_netlist(corpus / "date25" / "mul7u_06Q_sop.blif")
    assert nl.widths == (7, 7) and nl.gate_count() == 126
    m = simulate_lut(read_netlist(corpus / "date25" / "mul8u_17C8_sop.blif"), signed=False).metrics()
    # The figures EvoApproxLib publishes for mul8u_17C8 (v2022 release: the circuit in this file).
    for value, published in ((m.mae_pct, "0.56"), (m.wce_pct, "2.41"), (m.ep_pct, "98.99"), (m.mre_pct, "10.85")):
        assert matches_published(value, published)
    assert m.wce == 1577
    pytest.importorskip("approxlut.circuits.verilog")
    for name, release in (("mul7u_06Q", "narrow/v2022"), ("mul8u_17C8", "8x8/v2022")):
        blif = simulate_lut(read_netlist(corpus / "date25" / f"{name}_sop.blif"), signed=False)
        verilog = simulate_lut(read_netlist(corpus / "evoapprox" / f"{release}_{name}.v"), signed=False)
        assert blif.hash == verilog.hash, name


def _wrap(body: str, inputs: str = "A[0] A[1] B[0] B[1]", outputs: str = "O[0] O[1]") -> str:
    return f".model t\n.inputs {inputs}\n.outputs {outputs}\n{body}\n.end\n"


def test_off_set_dont_cares_and_constants() -> None:
    body = """\
.names A[0] B[0] A[1] O[0]
11- 0
--1 0
.names O[1]
1
.names O[2]
.names O[3]
0
.names $false O[4]
1 1
.names $true O[5]
1 1
"""
    nl = read_blif(_wrap(body, outputs=" ".join(f"O[{i}]" for i in range(6))), "t.blif")
    kinds = [g.kind for g in nl.gates]
    assert kinds.count(Kind.CONST1) == 2 and kinds.count(Kind.CONST0) == 3
    sop = next(g for g in nl.gates if g.kind is Kind.SOP)
    assert sop.cover == Cover(("11-", "--1"), 0)
    for (a, b), bits in zip([(a, b) for a in range(4) for b in range(4)], truth(nl), strict=True):
        nand_or = int(not ((a & 1 and b & 1) or a >> 1))
        assert bits == [nand_or, 1, 0, 0, 0, 1]


@pytest.mark.parametrize(
    ("cover", "kind"),
    [
        ("1 1", Kind.BUF),
        ("0 1", Kind.NOT),
        ("1 0", Kind.NOT),
        ("0 0", Kind.BUF),
        ("- 1", Kind.CONST1),
        ("", Kind.CONST0),
    ],
)
def test_trivial_covers_become_simple_gates(cover: str, kind: Kind) -> None:
    nl = read_blif(_wrap(f".names A[0] O[0]\n{cover}\n.names B[1] O[1]\n1 1"), "t.blif")
    assert nl.gates[0].kind is kind


SUBCKT = """\
.model mul2
.inputs A[0] A[1] B[0] B[1]
.outputs O[0] O[1] O[2] O[3]
.subckt and2 x=A[0] y=B[0] z=O[0]
.subckt and2 x=A[1] y=B[0] z=p10
.gate and2 x=A[0] y=B[1] z=p01
.subckt and2 x=A[1] y=B[1] z=p11
.subckt ha a=p10 b=p01 s=O[1] c=c1
.subckt ha a=p11 b=c1 s=O[2] c=O[3]
.end

.model ha
.inputs a b
.outputs s c
.names a b s
01 1
10 1
.subckt and2 x=a y=b z=c
.end

.model and2
.inputs x y
.outputs z
.names x y z
11 1
.end
"""


def test_subckt_and_gate_are_flattened() -> None:
    nl = read_blif(SUBCKT, "sub.blif")
    assert value_table(nl) == [a * b for a in range(4) for b in range(4)]
    assert nl.gate_count() == 8
    assert read_blif(write_blif(nl), "w").canonical_text() == nl.canonical_text()


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        (_wrap(".latch A[0] O[0] re clk 0\n.names B[0] O[1]\n1 1"), 4, 1, "combinational circuits only"),
        (_wrap(".subckt fa a=A[0] b=B[0] s=O[0]\n.names B[0] O[1]\n1 1"), 4, 9, "unknown model 'fa'"),
        (_wrap(".names A[0] B[0] O[0]\n11 1\n00 0\n.names B[1] O[1]\n1 1"), 6, 4, "mixes on-set"),
        (_wrap(".names A[0] B[0] O[0]\n111 1\n.names B[1] O[1]\n1 1"), 5, 1, "3 values for 2 inputs"),
        (_wrap(".names A[0] B[0] O[0]\n1x 1\n.names B[1] O[1]\n1 1"), 5, 2, "'x' is not 0, 1 or -"),
        (_wrap(".names A[0] B[0] O[0]\n11 2\n.names B[1] O[1]\n1 1"), 5, 4, "output value '2'"),
        (_wrap(".names A[0] B[0] O[0]\n11\n.names B[1] O[1]\n1 1"), 5, 1, "found 1 fields"),
        (_wrap(".names A[0] ghost O[0]\n11 1\n.names B[1] O[1]\n1 1"), 4, 13, "'ghost' is used but never driven"),
        (_wrap(".names A[0] O[0]\n1 1\n.names B[0] O[0]\n1 1\n.names B[1] O[1]\n1 1"), 6, 13, "driven twice"),
        (_wrap(".names A[0] A[1]\n1 1\n.names B[1] O[1]\n1 1\n.names B[1] O[0]\n1 1"), 4, 13, "first by an input"),
        (_wrap(".names A[0] q O[0]\n11 1\n.names O[0] q\n0 1\n.names B[1] O[1]\n1 1"), 4, 15, "loop through"),
        (_wrap(".names A[0] O[0]\n1 1"), 3, 15, r"output 'O\[1\]' is never driven"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] O[1]\n1 1", inputs="A[0] A[1] B[0] B[1] C[0]"), 2, 29, "neither"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] P[0]\n1 1", outputs="O[0] P[0]"), 3, 10, "2 buses"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] O[1]\n1 1", inputs="A[0] A[2] B[0]"), 2, 9, "missing bits"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] O[1]\n1 1", inputs="A[0] A[0] B[0]"), 2, 14, "declared twice"),
        (_wrap(".frobnicate x\n.names B[1] O[1]\n1 1"), 4, 1, "unknown BLIF directive"),
        (_wrap(".exdc\n.names B[1] O[1]\n1 1"), 4, 1, "external don't-care"),
        (_wrap("11 1"), 4, 1, "cover rows belong after a .names"),
        (".inputs a b\n", 1, 1, "before any .model"),
        ("# nothing here\n", 1, 1, "no .model found"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] O[1]\n1 1") + ".model t\n.end\n", 9, 8, "defined twice"),
        (_wrap(".names A[0] O[0]\n1 1\n.names A[0] O[1]\n1 1").replace(".end", ".end now"), 8, 6, "after .end"),
        (_wrap(".subckt s x=A[0] y\n.names B[1] O[1]\n1 1"), 4, 18, "expected formal=actual"),
        (_wrap(".conn A[0]\n.names B[1] O[1]\n1 1"), 4, 1, ".conn takes"),
        (_wrap(".names\n.names B[1] O[1]\n1 1"), 4, 1, "needs at least an output"),
        (".model t\n.outputs O[0]\n.end\n", 1, 8, "no .inputs"),
        (".model t\n.inputs A[0] B[0]\n.end\n", 1, 8, "no .outputs"),
    ],
)
def test_bad_blif_gives_located_parse_error(
    text: str, line: int, col: int | None, message: str, line_ending: Callable[[str], str]
) -> None:
    with pytest.raises(ParseError, match=message) as info:
        read_blif(line_ending(text), "bad.blif")
    err = info.value
    assert (err.path, err.line, err.col) == ("bad.blif", line, col), str(err)
    assert str(err).startswith(f"bad.blif:{line}")


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (".model s\n.inputs x\n.outputs z\n.subckt s x=x z=z\n.end\n", "instantiates itself"),
        (".model s\n.inputs x\n.outputs z\n.blackbox\n.end\n", "is a .blackbox"),
        (".model s\n.inputs x y\n.outputs z\n.names x y z\n11 1\n.end\n", "input 'y' of model 's' is not connected"),
        (".model s\n.inputs x\n.outputs z\n.names x z\n1 1\n.end\n", "has no port 'q'"),
    ],
)
def test_bad_hierarchy_is_refused(models: str, message: str) -> None:
    conn = "x=A[0] q=B[0] z=O[0]" if "port 'q'" in message else "x=A[0] z=O[0]"
    text = _wrap(f".subckt s {conn}\n.names B[1] O[1]\n1 1") + models
    with pytest.raises(ParseError, match=message):
        read_blif(text, "h.blif")


def test_yosys_conn_and_ignored_annotations() -> None:
    body = '.names A[0] B[0] w\n11 1\n.attr src "x.v:3"\n.cname g1\n.conn w O[0]\n.names B[1] O[1]\n1 1'
    nl = read_blif(_wrap(body), "y.blif")
    assert [g.kind for g in nl.gates] == [Kind.SOP, Kind.BUF, Kind.BUF]


_UNDEF_MESSAGE = (
    "output O[1] depends on $undef, an undefined value (x, or a net nothing drives); "
    "lutgen needs every output bit defined"
)


@pytest.mark.parametrize(
    ("defined", "body", "line"),
    [
        (".names $undef\n", ".names $undef O[1]\n1 1", 10),  # as Yosys's write_blif
        ("", ".names $undef O[1]\n1 1", 9),  # write_blif -impltf
        ("", ".names $undef B[1] w\n11 1\n.names w A[1] O[1]\n1- 1\n-1 1", 9),  # through another gate
        (".names $undef\n", ".conn $undef O[1]", 10),  # write_blif -conn
        ("", ".subckt $_AND_ A=$undef B=B[1] Y=O[1]", 9),  # write_blif -icells
    ],
    ids=["defined", "implicit", "through-a-gate", "conn", "cell"],
)
def test_an_output_that_depends_on_undef_is_refused(defined: str, body: str, line: int) -> None:
    """Yosys writes x bits and undriven nets as $undef, which was read as 0: `sim` printed the metrics of a circuit
    nobody designed, with exit 0."""
    text = _wrap(f".names $false\n.names $true\n1\n{defined}.names A[0] B[0] O[0]\n11 1\n{body}")
    with pytest.raises(ParseError, match=f"^u\\.blif:{line}:[0-9]+: {re.escape(_UNDEF_MESSAGE)}$"):
        read_blif(text, "u.blif")


def test_undef_that_no_output_depends_on_is_accepted() -> None:
    """Yosys defines $undef in every file it writes; only its use in an output's cone is refused."""
    body = ".names $undef\n.names $undef A[1] dead\n11 1\n.names A[0] B[0] O[0]\n11 1\n.names $true O[1]\n1 1"
    nl = read_blif(_wrap(body), "d.blif")
    assert truth(nl)[-1] == [1, 1]


def test_a_net_named_undef_is_written_under_another_name() -> None:
    """A driven net that a netlist calls $undef must not come back from BLIF as an undefined value."""
    b = NetlistBuilder("n")
    a, x = b.input_bus("a", 1), b.input_bus("b", 1)
    y = b.gate(Kind.AND, [a[0], x[0]], b.new_net("$undef"))
    nl = b.build([b.gate(Kind.NOT, [y]), b.gate(Kind.BUF, [y])])
    assert truth(read_blif(write_blif(nl), "w.blif")) == truth(nl)


@pytest.mark.parametrize(
    ("inputs", "outputs", "operands", "expected"),
    [
        ("IN1[0] IN1[1] IN2[0] IN2[1]", "Out[0] Out[1]", None, ("IN1", "IN2")),
        ("b[0] b[1] a[0] a[1]", "y[0] y[1]", None, ("a", "b")),
        ("W[0] W[1] X[0] X[1]", "P[0] P[1]", ("X", "W"), ("X", "W")),
        ("p0 p1 q0 q1", "r0 r1", None, ("p", "q")),
    ],
)
def test_operand_conventions(inputs: str, outputs: str, operands, expected) -> None:
    ins, outs = inputs.split(), outputs.split()
    body = f".names {ins[0]} {ins[2]} {outs[0]}\n11 1\n.names {ins[1]} {outs[1]}\n1 1"
    nl = read_blif(_wrap(body, inputs, outputs), "o.blif", operands=operands)
    assert nl.operand_names == expected
    assert nl.output_name == split_bus(outs[0])


def split_bus(name: str) -> str:
    from approxlut.circuits.ports import split_bit_name

    return split_bit_name(name)[0]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [("in1 in2", ("in1", "in2")), ("x_1 x_0", ("x_1", "x_0")), ("in2 in1", ("in1", "in2")), ("I1 I2", ("I1", "I2"))],
)
def test_two_one_bit_operands_are_not_one_bus(inputs: str, expected: tuple[str, str]) -> None:
    """`.inputs in1 in2` (Yosys's BLIF of two 1-bit ports) became one bus `in`: no operands, where the Verilog
    reader reads the two ports; the PLA reader did the same with `.ilb in1 in2`."""
    first, second = inputs.split()
    blif = read_blif(_wrap(f".names {first} {second} O[0]\n10 1", inputs, "O[0]"), "one.blif")
    pla = read_sop(f".i 2\n.o 1\n.ilb {inputs}\n.ob O\n10 1\n.e\n", "one.pla")
    for nl in (blif, pla):
        assert nl.operand_names == expected and nl.widths == (1, 1)
        hot = (1, 0) if first == expected[0] else (0, 1)  # (the cover is 1 where `first` is 1 and `second` is 0)
        assert value_table(nl) == [int((a, b) == hot) for a in range(2) for b in range(2)]


def test_two_bracketed_bits_stay_one_bus() -> None:
    """`A[0] A[1]` says one bus: not read as two 1-bit operands."""
    with pytest.raises(ParseError, match=r"cannot tell the two operands among inputs A; name them with --operands"):
        read_blif(_wrap(".names A[0] A[1] O[0]\n11 1", "A[0] A[1]", "O[0]"), "a.blif")


def test_unknown_operands_are_reported() -> None:
    body = ".names X[0] O[0]\n1 1"
    with pytest.raises(ParseError, match="--operands"):
        read_blif(_wrap(body.replace("X", "P"), "P[0] Q[0] R[0]", "O[0]"), "u.blif")
    with pytest.raises(ParseError, match="operand bus Q not found"):
        read_blif(_wrap(body, "X[0] Y[0]", "O[0]"), "u.blif", operands=("X", "Q"))


def _every_kind() -> Netlist:
    b = NetlistBuilder("every")
    a = b.input_bus("a", 4)
    x = b.input_bus("b", 4)
    outs = [
        b.gate(Kind.AND, [a[0], x[0], a[1]]),
        b.gate(Kind.OR, [a[1], x[1]]),
        b.gate(Kind.XOR, [a[2], x[2]]),
        b.gate(Kind.XOR, [*a, *x]),  # wide parity: written as a chain
        b.gate(Kind.XNOR, [*a, *x[:3]]),
        b.gate(Kind.NAND, [a[3], x[3]]),
        b.gate(Kind.NOR, [a[0], x[3], a[2]]),
        b.gate(Kind.XNOR, [a[1], x[2]]),
        b.gate(Kind.MUX, [a[0], x[1], x[2]]),
        b.gate(Kind.NOT, [x[0]]),
        b.gate(Kind.BUF, [a[3]]),
        b.const(0),
        b.const(1),
        b.gate(Kind.SOP, [a[0], x[0], a[2]], cover=Cover(("1-0", "011"), 0)),
        b.gate(Kind.SOP, [a[1], x[1]], cover=Cover((), 0)),
        b.gate(Kind.SOP, [a[1], x[1]], cover=Cover((), 1)),
        a[2],  # an input straight to the output
    ]
    outs.append(outs[0])  # the same net twice
    return b.build(outs, output_name="P")


def test_writer_handles_every_kind() -> None:
    nl = _every_kind()
    text = write_blif(nl)
    back = read_blif(text, "every.blif")
    assert back.operand_names == ("a", "b") and back.output_name == "P"
    assert truth(back) == truth(nl)


def test_writer_refuses_unwritable_names() -> None:
    nl = _every_kind()
    nl.output_name = "a"
    with pytest.raises(InputError, match="name of an input bus"):
        write_blif(nl)
    nl.output_name = "my out"
    with pytest.raises(InputError, match="cannot be written"):
        write_blif(nl)


_KINDS = [Kind.AND, Kind.OR, Kind.XOR, Kind.NAND, Kind.NOR, Kind.XNOR, Kind.MUX, Kind.NOT, Kind.BUF, Kind.SOP]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_netlists_round_trip(data: st.DataObject) -> None:
    b = NetlistBuilder("rnd")
    nets = b.input_bus("a", 3) + b.input_bus("b", 2)
    for _ in range(data.draw(st.integers(1, 25))):
        kind = data.draw(st.sampled_from(_KINDS))
        arity = {Kind.MUX: 3, Kind.NOT: 1, Kind.BUF: 1}.get(kind) or data.draw(st.integers(2, 4))
        ins = [data.draw(st.sampled_from(nets)) for _ in range(arity)]
        cover = None
        if kind is Kind.SOP:
            cubes = data.draw(st.lists(st.text("01-", min_size=arity, max_size=arity), max_size=4))
            cover = Cover(tuple(cubes), data.draw(st.integers(0, 1)))
        nets.append(b.gate(kind, ins, cover=cover))
    outs = data.draw(st.lists(st.sampled_from(nets), min_size=1, max_size=6))
    nl = b.build(outs)
    back = read_blif(write_blif(nl), "r.blif")
    assert truth(back) == truth(nl)
    assert read_blif(write_blif(back), "r2.blif").canonical_text() == back.canonical_text()


PLA = """\
# a 2x2 multiplier as an Espresso PLA
.i 4
.o 4
.ilb A[0] A[1] B[0] B[1]
.ob O[0] O[1] O[2] O[3]
.p 5
1-1- 1000
-11- 0100
1--1 0100
-1-1 0010
11 11 0001
.e
"""


def test_pla_reader() -> None:
    nl = read_sop(PLA, "m.sop")
    # O[1] and O[2] here are OR covers, not the true product bits: check the cover semantics directly.
    for (a, b), bits in zip([(a, b) for a in range(4) for b in range(4)], truth(nl), strict=True):
        a0, a1, b0, b1 = a & 1, a >> 1, b & 1, b >> 1
        assert bits == [a0 & b0, (a1 & b0) | (a0 & b1), a1 & b1, a0 & a1 & b0 & b1]
    off = read_sop(PLA.replace(".p 5", ".type r"), "m.sop")
    assert truth(off)[0] == [1, 1, 1, 1]  # the 1 rows are ignored; no 0 row matches


@pytest.mark.parametrize(
    ("kind", "rows", "table"),
    [("fd", "11 ~1\n", [[0, 0], [0, 2]]), ("r", "11 0~\n", [[3, 3], [3, 2]])],
)
def test_pla_rows_with_no_meaning_for_an_output(kind: str, rows: str, table: list[list[int]]) -> None:
    """'~' says a cube means nothing for that output: it joins neither the on-set nor the off-set."""
    nl = read_sop(f".i 2\n.o 2\n.ilb a b\n.ob O[0] O[1]\n.type {kind}\n{rows}.e\n", "t.pla")
    assert simulate_lut(nl, signed=False).forward.tolist() == table


@pytest.mark.parametrize(
    ("old", "new", "line", "token", "message"),
    [
        ("-11- 0100", "-1x- 0100", 8, "x", "input value 'x'"),
        ("-11- 0100", "  -11-  0x00", 8, "x", "output value 'x'"),
        ("1--1 0100", "1--1 010", 9, "1--1", "expected 4 inputs"),
        (".o 4", ".o four", 3, "four", ".o takes one number"),
        (".o 4", ".o \u00b2", 3, "\u00b2", ".o takes one number"),  # (a digit to str.isdigit, not to int)
        (".o 4", ".o \u0664", 3, "\u0664", ".o takes one number"),  # (an Arabic-Indic 4: int reads it)
        (".p 5", ".type q", 6, "q", ".type must be one of"),
        (".p 5", "  .phase 1", 6, ".phase", "not supported"),
        (".ob O[0] O[1] O[2] O[3]", ".ob O[0] O[1] O[2]", 5, ".ob", "name each"),
        (".ilb A[0] A[1] B[0] B[1]", ".ilb A[0] A[1] B[0] C[1]", 4, ".ilb", "neither operand"),
        (".e", ".e\nmore", 13, "more", "text after .e"),
    ],
)
def test_bad_pla_gives_located_parse_error(
    old: str, new: str, line: int, token: str, message: str, line_ending: Callable[[str], str]
) -> None:
    assert old in PLA
    text = PLA.replace(old, new, 1)
    with pytest.raises(ParseError, match=message) as info:
        read_sop(line_ending(text), "bad.sop")
    err = info.value
    assert (err.line, err.col) == (line, text.split("\n")[line - 1].index(token) + 1), str(err)


def test_crlf_cr_and_bom_read_like_lf(line_ending: Callable[[str], str]) -> None:
    assert read_blif(line_ending(MUL2), "m.blif").canonical_text() == read_blif(MUL2).canonical_text()
    assert read_sop(line_ending(PLA), "m.sop").canonical_text() == read_sop(PLA, "m.sop").canonical_text()


def test_sop_accepts_blif_and_rejects_garbage(tmp_path: Path) -> None:
    assert read_sop(MUL2, "m.sop").canonical_text() == read_blif(MUL2, "m.blif").canonical_text()
    with pytest.raises(ParseError, match="neither BLIF"):
        read_sop("hello\n", "x.sop")
    with pytest.raises(ParseError, match="expected 4 inputs \\+ 4 outputs") as info:
        read_sop(PLA.replace("1-1- 1000", "1-1- 100"), "x.sop")
    assert info.value.line == 7


def test_read_netlist_dispatch_and_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(MUL2)
    with pytest.raises(ParseError, match="pass --format"):
        read_netlist(path)
    assert read_netlist(path, format="blif").widths == (2, 2)
    with pytest.raises(ConfigError, match="unknown netlist format"):
        read_netlist(path, format="edif")
    for content, message in ((b"", "empty file"), (b"\x00\x01binary", "NUL byte"), (b".model \xff\xfe", "UTF-8")):
        bad = tmp_path / "bad.blif"
        bad.write_bytes(content)
        with pytest.raises(ParseError, match=message) as info:
            read_netlist(bad)
        assert info.value.path == str(bad)
    with pytest.raises(ParseError, match="no such file"):
        read_netlist(tmp_path / "none.blif")
    (tmp_path / "dir.blif").mkdir()
    with pytest.raises(ParseError, match="directory"):
        read_netlist(tmp_path / "dir.blif")


YOSYS_REFERENCE = {
    "$_BUF_": lambda a, b, c, d: a,
    "$_NOT_": lambda a, b, c, d: 1 - a,
    "$_AND_": lambda a, b, c, d: a & b,
    "$_NAND_": lambda a, b, c, d: 1 - (a & b),
    "$_OR_": lambda a, b, c, d: a | b,
    "$_NOR_": lambda a, b, c, d: 1 - (a | b),
    "$_XOR_": lambda a, b, c, d: a ^ b,
    "$_XNOR_": lambda a, b, c, d: 1 - (a ^ b),
    "$_ANDNOT_": lambda a, b, c, d: a & (1 - b),
    "$_ORNOT_": lambda a, b, c, d: a | (1 - b),
    "$_MUX_": lambda a, b, s, d: b if s else a,
    "$_NMUX_": lambda a, b, s, d: 1 - (b if s else a),
    "$_AOI3_": lambda a, b, c, d: 1 - ((a & b) | c),
    "$_OAI3_": lambda a, b, c, d: 1 - ((a | b) & c),
    "$_AOI4_": lambda a, b, c, d: 1 - ((a & b) | (c & d)),
    "$_OAI4_": lambda a, b, c, d: 1 - ((a | b) & (c | d)),
}


@pytest.mark.parametrize("cell", sorted(YOSYS_REFERENCE))
def test_yosys_internal_cells(cell: str) -> None:
    from approxlut.circuits.blif import YOSYS_CELLS

    ports = YOSYS_CELLS[cell][0]
    wires = dict(zip("ABCDS", ["A[0]", "A[1]", "B[0]", "B[1]", "B[0]"], strict=True))
    conns = " ".join(f"{p}={wires[p]}" for p in ports)
    nl = read_blif(_wrap(f".subckt {cell} {conns} Y=O[0]\n.names A[0] O[1]\n1 1"), "y.blif")
    for (a, b), bits in zip([(a, b) for a in range(4) for b in range(4)], truth(nl), strict=True):
        values = {"A": a & 1, "B": a >> 1, "C": b & 1, "D": b >> 1, "S": b & 1}
        assert bits[0] == YOSYS_REFERENCE[cell](*(values[p] for p in ports), *([0] * (4 - len(ports))))
    with pytest.raises(ParseError, match="port Y is not connected"):
        read_blif(_wrap(f".subckt {cell} {conns}\n.names A[0] O[1]\n1 1"), "y.blif")


@pytest.mark.slow
def test_corpus_verilog_written_as_blif_gives_the_same_lut(corpus: Path) -> None:
    """Every EvoApprox netlist up to 8x8 (gates of every kind), written as BLIF and read back."""
    pytest.importorskip("approxlut.circuits.verilog")
    files = sorted((corpus / "evoapprox" / "8x8").glob("*.v")) + sorted((corpus / "evoapprox" / "narrow").glob("*.v"))
    checked = 0
    for path in files:
        nl = read_netlist(path)
        back = read_blif(write_blif(nl), f"{path.name}.blif")
        assert simulate_lut(back, signed=False).hash == simulate_lut(nl, signed=False).hash, path.name
        assert read_blif(write_blif(back), "again").canonical_text() == back.canonical_text(), path.name
        checked += 1
    assert checked >= 80
