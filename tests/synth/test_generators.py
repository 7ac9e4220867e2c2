"""Exact generators equal a*b on every input pair; the folding builder and simplify keep functions."""

from __future__ import annotations

import numpy as np
import pytest

from approxlut.circuits.netlist import Kind
from approxlut.errors import ConfigError
from approxlut.lutgen.lut import code_values
from approxlut.lutgen.reference import evaluate_vector, output_value
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.generators import array_multiplier, dadda_multiplier, wallace_multiplier
from approxlut.synth.logic import simplify

GENERATORS = [array_multiplier, wallace_multiplier, dadda_multiplier]
WIDTHS = [(n, m) for n in range(2, 9) for m in range(2, 9) if n == m or (n + m) % 3 == 0]


def _exact(bits_a: int, bits_b: int, signed: bool) -> np.ndarray:
    return np.outer(code_values(bits_a, signed), code_values(bits_b, signed))


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize(("bits_a", "bits_b"), WIDTHS)
def test_exact_generators_equal_product(gen, signed, bits_a, bits_b):
    netlist = gen(bits_a, bits_b, signed=signed)
    assert netlist.operand_names == ("A", "B")
    assert len(netlist.outputs) == bits_a + bits_b
    lut = simulate_lut(netlist, signed=signed)
    assert np.array_equal(lut.forward, _exact(bits_a, bits_b, signed))


@pytest.mark.parametrize("signed", [False, True])
def test_edge_codes_with_the_reference_evaluator(signed):
    netlist = dadda_multiplier(8, 8, signed=signed)
    edges = [0, 1, 127, 128, 129, 255]
    for a in edges:
        for b in edges:
            got = output_value(evaluate_vector(netlist, (a, b)), signed)
            va = a - 256 if signed and a >= 128 else a
            vb = b - 256 if signed and b >= 128 else b
            assert got == va * vb


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
def test_wide_multipliers_sampled(gen):
    rng = np.random.default_rng(1)
    for signed, (bits_a, bits_b) in [(False, (12, 12)), (True, (16, 16)), (True, (12, 5))]:
        netlist = gen(bits_a, bits_b, signed=signed)
        for _ in range(40):
            a, b = int(rng.integers(0, 1 << bits_a)), int(rng.integers(0, 1 << bits_b))
            va = a - (1 << bits_a) if signed and a >> (bits_a - 1) else a
            vb = b - (1 << bits_b) if signed and b >> (bits_b - 1) else b
            assert output_value(evaluate_vector(netlist, (a, b)), signed) == va * vb


def test_gate_counts_are_textbook():
    # 8x8 unsigned array: 64 AND + 48 full adders (5 gates) + 8 half adders (2 gates)
    assert array_multiplier(8, 8, signed=False).gate_count() == 64 + 48 * 5 + 8 * 2
    assert dadda_multiplier(8, 8, signed=False).gate_count() == 320
    assert wallace_multiplier(8, 8, signed=False).gate_count() > 320


def test_bad_widths():
    with pytest.raises(ConfigError):
        array_multiplier(1, 4, signed=True)
    with pytest.raises(ConfigError):
        dadda_multiplier(0, 4, signed=False)


def test_simplify_constant_substitution_keeps_function_elsewhere():
    netlist = array_multiplier(4, 4, signed=False)
    # tie every partial product of A[0] to zero: the circuit then multiplies (a & ~1) by b
    a0 = netlist.inputs["A"][0]
    users = [g.output for g in netlist.gates if g.kind is Kind.AND and a0 in g.inputs]
    tied = simplify(netlist, {net: ("const", 0) for net in users})
    assert tied.gate_count() < netlist.gate_count()
    lut = simulate_lut(tied, signed=False)
    exact = _exact(4, 4, False)
    assert np.array_equal(lut.forward, (np.arange(16)[:, None] & ~1) * np.arange(16)[None, :])
    assert np.array_equal(simulate_lut(simplify(netlist), signed=False).forward, exact)
