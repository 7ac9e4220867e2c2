from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approxlut.circuits import Cover, Kind, Netlist, NetlistBuilder
from approxlut.errors import ConfigError
from approxlut.lutgen import simulate
from approxlut.lutgen.lut import code_values
from approxlut.lutgen.reference import evaluate_vector, output_value
from approxlut.lutgen.simulate import simulate_lut, simulate_metrics, simulate_nets


def ripple_multiplier(bits_a: int, bits_b: int, *, signed: bool) -> Netlist:
    """Shift-and-add multiplier; signed operands are sign-extended to the full product width."""
    width = bits_a + bits_b
    b = NetlistBuilder(f"mul{bits_a}x{bits_b}{'s' if signed else 'u'}")
    a_bus = b.input_bus("A", bits_a)
    b_bus = b.input_bus("B", bits_b)
    a_ext = a_bus + [a_bus[-1] if signed else b.const(0)] * (width - bits_a)
    b_ext = b_bus + [b_bus[-1] if signed else b.const(0)] * (width - bits_b)
    acc = [b.const(0)] * width
    for j in range(width):
        carry = b.const(0)
        for i in range(width - j):
            pp = b.gate(Kind.AND, [a_ext[i], b_ext[j]])
            s = b.gate(Kind.XOR, [acc[i + j], pp, carry])
            carry = b.gate(
                Kind.OR,
                [b.gate(Kind.AND, [acc[i + j], pp]), b.gate(Kind.AND, [carry, b.gate(Kind.XOR, [acc[i + j], pp])])],
            )
            acc[i + j] = s
    return b.build(acc)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("bits_a", "bits_b"), [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (8, 4), (3, 6)])
def test_exact_multipliers_equal_products(bits_a: int, bits_b: int, signed: bool) -> None:
    lut = simulate_lut(ripple_multiplier(bits_a, bits_b, signed=signed), signed=signed)
    expected = np.multiply.outer(code_values(bits_a, signed), code_values(bits_b, signed))
    assert lut.forward.dtype == np.int32
    assert np.array_equal(lut.forward, expected)
    assert lut.is_exact()
    if signed:  # the row and column of -2^(n-1) are where emulators go wrong
        assert lut.forward[1 << (bits_a - 1), 1 << (bits_b - 1)] == (1 << (bits_a - 1)) * (1 << (bits_b - 1))
    metrics = lut.metrics()
    assert metrics.mae_pct == metrics.wce == metrics.ep_pct == metrics.mre_pct == 0


KINDS = [k for k in Kind if k is not Kind.SOP]


@st.composite
def random_netlists(draw: st.DrawFn) -> Netlist:
    bits_a = draw(st.integers(1, 4))
    bits_b = draw(st.integers(1, 4))
    b = NetlistBuilder("random")
    nets = b.input_bus("a", bits_a) + b.input_bus("b", bits_b)
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from([*KINDS, Kind.SOP]))
        if kind in (Kind.CONST0, Kind.CONST1):
            ins: list[int] = []
        elif kind in (Kind.BUF, Kind.NOT):
            ins = [draw(st.sampled_from(nets))]
        elif kind is Kind.MUX:
            ins = [draw(st.sampled_from(nets)) for _ in range(3)]
        else:
            ins = [draw(st.sampled_from(nets)) for _ in range(draw(st.integers(2, 4)))]
        cover = None
        if kind is Kind.SOP:
            cubes = tuple("".join(draw(st.sampled_from("01-")) for _ in ins) for _ in range(draw(st.integers(0, 3))))
            cover = Cover(cubes, draw(st.integers(0, 1)))
        nets.append(b.gate(kind, ins, cover=cover))
    outs = [draw(st.sampled_from(nets)) for _ in range(draw(st.integers(1, 6)))]
    return b.build(outs)


@settings(max_examples=120, deadline=None)
@given(random_netlists(), st.booleans())
def test_bit_parallel_equals_reference(netlist: Netlist, signed: bool) -> None:
    bits_a, bits_b = netlist.widths
    lut = simulate_lut(netlist, signed=signed)
    for a in range(1 << bits_a):
        for b in range(1 << bits_b):
            assert lut.forward[a, b] == output_value(evaluate_vector(netlist, (a, b)), signed)


def test_chunked_simulation_matches_single_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    netlist = ripple_multiplier(6, 7, signed=True)
    whole = simulate_lut(netlist, signed=True)
    monkeypatch.setattr(simulate, "CHUNK_WORDS", 3)
    assert np.array_equal(simulate_lut(netlist, signed=True).forward, whole.forward)


def _truncated(bits: int, cut: int) -> Netlist:
    """A multiplier whose lowest ``cut`` output bits are forced to 0 (an approximate circuit)."""
    exact = ripple_multiplier(bits, bits, signed=False)
    b = NetlistBuilder("trunc")
    a_bus = b.input_bus("A", bits)
    b_bus = b.input_bus("B", bits)
    mapping = dict(zip([*exact.inputs["A"], *exact.inputs["B"]], [*a_bus, *b_bus], strict=True))
    for gate in exact.gates:
        mapping[gate.output] = b.gate(gate.kind, [mapping[n] for n in gate.inputs])
    outs = [b.const(0) if i < cut else mapping[n] for i, n in enumerate(exact.outputs)]
    return b.build(outs)


def test_streaming_and_sampled_metrics() -> None:
    netlist = _truncated(6, 4)
    exhaustive = simulate_lut(netlist, signed=False).metrics()
    streamed = simulate_metrics(netlist, signed=False)
    assert streamed.method == "exhaustive"
    assert streamed == exhaustive
    sampled = simulate_metrics(netlist, signed=False, samples=1 << 16, seed=3)
    assert sampled.method.startswith("monte-carlo")
    assert sampled.n == 1 << 16
    assert sampled.mae_pct == pytest.approx(exhaustive.mae_pct, rel=0.05)
    assert sampled.wce <= exhaustive.wce
    assert simulate_metrics(netlist, signed=False, samples=1 << 16, seed=3) == sampled


def test_per_net_simulation_and_width_checks() -> None:
    netlist = ripple_multiplier(3, 3, signed=False)
    nets = simulate_nets(netlist)
    driven = {g.output for g in netlist.gates} | {n for bus in netlist.inputs.values() for n in bus}
    assert set(nets) == driven
    lut = simulate_lut(netlist, signed=False)
    for k, net in enumerate(netlist.outputs):  # output bit k of vector (a, b) sits at bit a*8+b
        bits = np.unpackbits(nets[net].view(np.uint8), bitorder="little")
        assert np.array_equal(bits, (lut.forward.ravel() >> k) & 1)
    b = NetlistBuilder("three")
    x = b.input_bus("a", 1) + b.input_bus("b", 1) + b.input_bus("c", 1)
    with pytest.raises(ConfigError, match="exactly two input buses"):
        simulate_lut(b.build([b.gate(Kind.AND, x)]), signed=False)


def test_two_input_covers_fast_path_equals_reference() -> None:
    """Every two-input cover (the fast path covers ten of the sixteen functions) against the per-vector reference."""
    import itertools

    cubes = ["".join(c) for c in itertools.product("01-", repeat=2)]
    seen = set()
    for count in range(4):
        for chosen in itertools.combinations(cubes, count):
            for phase in (0, 1):
                b = NetlistBuilder("c")
                x, y = b.input_bus("a", 1) + b.input_bus("b", 1)
                out = b.gate(Kind.SOP, [x, y], cover=Cover(chosen, phase))
                netlist = b.build([out])
                lut = simulate_lut(netlist, signed=False)
                for a in range(2):
                    for bb in range(2):
                        assert lut.forward[a, bb] == output_value(evaluate_vector(netlist, (a, bb)), False)
                seen.add(tuple(lut.forward.ravel()))
    assert len(seen) == 16


def _rewired(exact: Netlist, outputs: Callable[[NetlistBuilder, list[int]], list[int]]) -> Netlist:
    """A copy of ``exact`` whose output bus is ``outputs(builder, its output nets)``."""
    b = NetlistBuilder("rewired")
    ins = [net for bus in exact.inputs for net in b.input_bus(bus, len(exact.inputs[bus]))]
    mapping = dict(zip([net for nets in exact.inputs.values() for net in nets], ins, strict=True))
    for gate in exact.gates:
        mapping[gate.output] = b.gate(gate.kind, [mapping[n] for n in gate.inputs], cover=gate.cover)
    return b.build(outputs(b, [mapping[n] for n in exact.outputs]))


def test_output_buses_wider_than_64_bits_are_read_exactly() -> None:
    """Bit 64 of the output is worth 2^64: it is neither dropped nor wrapped into a small number."""
    b = NetlistBuilder("wide")
    x, y = b.input_bus("a", 1) + b.input_bus("b", 1)
    top = b.gate(Kind.AND, [x, y])
    wide = b.build([b.const(0)] * 64 + [top, b.const(0)])  # 66 bits: 1x1 gives 2^64
    with pytest.raises(ConfigError, match="do not fit int32"):
        simulate_lut(wide, signed=False)
    metrics = simulate_metrics(wide, signed=False)
    assert metrics.wce == (1 << 64) - 1 and metrics.ep_pct == 25.0
    b = NetlistBuilder("minus_one")
    x, y = b.input_bus("a", 1) + b.input_bus("b", 1)
    one = b.gate(Kind.AND, [x, y])
    signed = b.build([one] * 64)  # all 64 bits set: -1 as a signed number
    assert simulate_lut(signed, signed=True).forward.tolist() == [[0, 0], [0, -1]]


def test_32x32_multipliers_are_measured_exactly() -> None:
    """Products of 32-bit operands reach 2^64: the errors and relative errors are not wrapped into int64."""
    exact_s = ripple_multiplier(32, 32, signed=True)
    assert simulate_metrics(exact_s, signed=True, samples=256).wce == 0
    stuck = _rewired(ripple_multiplier(32, 32, signed=False), lambda b, outs: [*outs[:63], b.const(0)])
    m = simulate_metrics(stuck, signed=False, samples=1 << 12)
    # e = -2^63 exactly where a·b >= 2^63 (about 15 % of the pairs), else 0
    assert m.wce == 1 << 63 and m.wce_pct == 50.0
    assert 5 < m.ep_pct < 30
    assert m.mae_pct == pytest.approx(m.ep_pct / 2) and m.bias == -m.med
    assert 50 < m.wcre_pct <= 100
    assert m.ep_pct / 2 < m.mre_pct <= m.ep_pct * 1.001  # |e|/|O| is in (1/2, 1] where e != 0


@pytest.mark.parametrize("signed", [False, True])
def test_operands_wider_than_62_bits_are_sampled_over_all_their_bits(signed: bool) -> None:
    """A 64x64 circuit that always gives 0: every error is the product, |e|/|O| = 1 (it was a numpy traceback)."""
    b = NetlistBuilder("zero64")
    b.input_bus("a", 64)
    b.input_bus("b", 64)
    netlist = b.build([b.const(0)])
    m = simulate_metrics(netlist, signed=signed, samples=1 << 12)
    assert m.mre_pct == m.wcre_pct == 100 and m.ep_pct == 100
    assert m.bias == -m.med if not signed else abs(m.bias) < m.med / 10
    # E|a·b| / 2^128 is 1/4 for uniform unsigned 64-bit operands and 1/16 for signed ones
    assert m.mae_pct == pytest.approx(25 if not signed else 6.25, rel=0.1)
    assert 0 < m.wce < 1 << 128
