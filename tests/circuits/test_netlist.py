from __future__ import annotations

import pytest

from approxlut.circuits import Cover, Kind, Netlist, NetlistBuilder
from approxlut.circuits.netlist import Gate
from approxlut.circuits.ports import group_bits, order_operands, split_bit_name
from approxlut.errors import NetlistError, ParseError


def _half_adder() -> Netlist:
    b = NetlistBuilder("ha")
    a = b.input_bus("a", 1)
    x = b.input_bus("b", 1)
    s = b.gate(Kind.XOR, [a[0], x[0]])
    c = b.gate(Kind.AND, [a[0], x[0]])
    return b.build([s, c])


def test_builder_sorts_and_validates() -> None:
    b = NetlistBuilder("t")
    a = b.input_bus("a", 2)
    x = b.input_bus("b", 2)
    late = b.new_net("late")
    out = b.gate(Kind.OR, [late, a[1]])
    b.gate(Kind.AND, [a[0], x[0]], output=late)
    nl = b.build([out, late])
    assert [g.kind for g in nl.gates] == [Kind.AND, Kind.OR]
    assert nl.widths == (2, 2)
    assert nl.gate_count() == 2


def test_loop_is_reported_with_net_names() -> None:
    b = NetlistBuilder("loop")
    a = b.input_bus("a", 1)
    b.input_bus("b", 1)
    p, q = b.new_net("p"), b.new_net("q")
    b.gate(Kind.AND, [a[0], q], output=p)
    b.gate(Kind.NOT, [p], output=q)
    with pytest.raises(NetlistError, match=r"combinational loop through .*(p.*q|q.*p)"):
        b.build([p])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda nl: nl.gates.append(Gate(Kind.AND, (0, 1), 3)), "driven twice"),
        (lambda nl: nl.gates.append(Gate(Kind.NOT, (0, 1), 6)), "has 2 inputs"),
        (lambda nl: nl.gates.append(Gate(Kind.AND, (0, 9), 6)), "unknown net id 9"),
        (lambda nl: nl.outputs.append(11), "unknown net id 11"),
        (lambda nl: nl.gates.append(Gate(Kind.SOP, (0, 1), 6, Cover(("1",)))), "cube '1' for 2 inputs"),
        (lambda nl: nl.gates.append(Gate(Kind.OR, (0, 5), 6)), "never driven"),
        (lambda nl: nl.gates.insert(0, Gate(Kind.NOT, (3,), 6)), "topological order"),
    ],
)
def test_validate_finds_structural_errors(mutate, message) -> None:
    nl = _half_adder()
    nl.num_nets = 8
    mutate(nl)
    with pytest.raises(NetlistError, match=message):
        nl.validate()


def test_canonical_text_ignores_names_and_ids() -> None:
    one = _half_adder()
    b = NetlistBuilder("other")
    b.new_net("unused-first")
    a = b.input_bus("a", 1, ["p"])
    x = b.input_bus("b", 1, ["q"])
    s = b.gate(Kind.XOR, [a[0], x[0]])
    c = b.gate(Kind.AND, [a[0], x[0]])
    two = b.build([s, c])
    assert one.canonical_text() == two.canonical_text()
    assert one.structure_hash() == two.structure_hash()
    graph = one.to_networkx()
    assert graph.number_of_nodes() == 4 and graph.number_of_edges() == 4


def test_cover_reference_evaluation() -> None:
    on = Cover(("1-", "01"), phase=1)
    assert [on.evaluate((x, y)) for x in (0, 1) for y in (0, 1)] == [0, 1, 1, 1]
    off = Cover(("11",), phase=0)
    assert [off.evaluate((x, y)) for x in (0, 1) for y in (0, 1)] == [1, 1, 1, 0]
    assert Cover((), phase=1).evaluate(()) == 0


def test_bit_names_and_operands() -> None:
    assert split_bit_name("A[3]") == ("A", 3)
    assert split_bit_name("IN1[0]") == ("IN1", 0)
    assert split_bit_name("x<2>") == ("x", 2)
    assert split_bit_name("cin") == ("cin", None)
    # Only ASCII digits index a bit (an Arabic-Indic '٤' is not 4), and at most nine of them: a 5000-digit index
    # made int() raise its own ValueError (a confusing message about set_int_max_str_digits).
    assert split_bit_name("a[\u0664]") == ("a[\u0664]", None)
    assert split_bit_name("b[" + "9" * 5000 + "]") == ("b[" + "9" * 5000 + "]", None)
    assert split_bit_name("b[123456789]") == ("b", 123456789)
    assert group_bits(["B[1]", "A[0]", "B[0]", "A[1]"]) == {"B": ["B[0]", "B[1]"], "A": ["A[0]", "A[1]"]}
    with pytest.raises(ValueError, match="missing bits"):
        group_bits(["A[0]", "A[2]"])
    assert order_operands(["B", "A"]) == ("A", "B")
    assert order_operands(["IN2", "IN1"]) == ("IN1", "IN2")
    assert order_operands(["p", "q"]) == ("p", "q")
    assert order_operands(["p", "q", "r"], ("r", "P")) == ("r", "p")
    with pytest.raises(ParseError, match="--operands"):
        order_operands(["p", "q", "r"], path="f.v")
