"""Power/area/delay model: basic properties, histogram weighting, and calibration on the corpus."""

from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.synth.approx import truncated
from approxlut.synth.generators import array_multiplier, dadda_multiplier
from approxlut.synth.power import OperandDistribution, calibrate, estimate_cost, rankdata, spearman


def test_bigger_costs_more():
    small, big = (
        estimate_cost(array_multiplier(4, 4, signed=False)),
        estimate_cost(array_multiplier(8, 8, signed=False)),
    )
    assert big.area_um2 > small.area_um2 and big.power_mw > small.power_mw and big.delay_ns > small.delay_ns
    exact = estimate_cost(array_multiplier(8, 8, signed=False))
    trunc = estimate_cost(truncated(8, 8, signed=False, k=8))
    assert trunc.power_mw < exact.power_mw and trunc.area_um2 < exact.area_um2
    # a tree has a shorter critical path than the ripple-row array
    assert estimate_cost(dadda_multiplier(8, 8, signed=False)).delay_ns < exact.delay_ns
    assert 0.3 < exact.power_mw < 0.5 and 600 < exact.area_um2 < 800


def test_histograms_weight_activity():
    netlist = array_multiplier(6, 6, signed=False)
    uniform = estimate_cost(netlist)
    flat = np.ones(64)
    same = estimate_cost(netlist, activity=OperandDistribution.from_histograms(flat, flat))
    assert same.power_mw == pytest.approx(uniform.power_mw, rel=1e-9)
    assert same.area_um2 == uniform.area_um2
    small = np.zeros(64)
    small[:4] = 1.0  # operand a only takes codes 0..3: most of the array never toggles
    quiet = estimate_cost(netlist, activity=OperandDistribution.from_histograms(small, flat))
    assert quiet.power_mw < 0.5 * uniform.power_mw
    with pytest.raises(ConfigError):
        estimate_cost(netlist, activity=OperandDistribution.from_histograms(np.ones(16), flat))
    with pytest.raises(ConfigError):
        OperandDistribution.from_histograms(-flat, flat)


def test_sampled_activity_for_wide_circuits():
    cost = estimate_cost(array_multiplier(12, 12, signed=True))
    assert cost.power_mw > estimate_cost(array_multiplier(8, 8, signed=True)).power_mw


def test_spearman_against_known_values():
    assert list(rankdata(np.array([3.0, 1.0, 2.0, 2.0]))) == [4.0, 1.0, 2.5, 2.5]
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)


@pytest.mark.slow
def test_calibration_on_the_corpus(corpus):
    result = calibrate(corpus)
    # measured: Spearman 0.986, median relative error 0.084 over 68 8x8 circuits (all 108: 0.994, 0.095)
    assert result.n >= 60
    assert result.spearman >= 0.95
    assert result.median_rel_error < 0.2


def test_wide_gates_and_covers_map_to_cell_trees():
    from approxlut.circuits.netlist import Cover, Kind
    from approxlut.synth.cells45 import AREA_SCALE, CELLS
    from approxlut.synth.logic import Logic

    lg = Logic("mix")
    a, b = lg.input_bus("A", 3), lg.input_bus("B", 3)
    g = lg.builder.gate
    outs = [
        g(Kind.AND, [*a, *b[:2]]),  # 5 inputs: AND3 + AND2 + AND2
        g(Kind.NOR, [*a, b[0]]),  # 4 inputs: OR3 + NOR2
        g(Kind.XOR, [*a]),  # 3 inputs: two XOR2
        g(Kind.SOP, [a[0], b[1], b[2]], cover=Cover(("1-0", "011"), 0)),  # 2 INV, AND2, AND3, OR2, INV
        g(Kind.SOP, [a[1], b[0]], cover=Cover(("0-", "-0"), 1)),  # a NAND2 written as a cover
        g(Kind.MUX, [a[2], b[0], b[1]]),
    ]
    cost = estimate_cost(lg.build(outs))
    cells = ["AND3X1", "AND2X1", "AND2X1", "OR3X1", "NOR2X1", "XOR2X1", "XOR2X1"]
    cells += ["INVX1", "INVX1", "AND2X1", "AND3X1", "OR2X1", "INVX1", "NAND2X1", "MUX2X1"]
    assert cost.cells == len(cells)
    assert cost.area_um2 == pytest.approx(sum(CELLS[c].area_um2 for c in cells) * AREA_SCALE)


def test_operand_streams_count_consecutive_toggles():
    from approxlut.synth.power import OperandStream

    netlist = array_multiplier(8, 8, signed=True)
    uniform = estimate_cost(netlist)
    rng = np.random.default_rng(3)
    a, b = rng.integers(-128, 128, 20000), rng.integers(-128, 128, 20000)
    random_stream = estimate_cost(netlist, activity=OperandStream(a, b))
    assert random_stream.power_mw == pytest.approx(uniform.power_mw, rel=0.03)
    stationary = estimate_cost(netlist, activity=OperandStream(a, np.full_like(b, 77)))
    assert stationary.power_mw < uniform.power_mw
    zero_weight = estimate_cost(netlist, activity=OperandStream(a, np.zeros_like(b)))
    assert zero_weight.dynamic_mw == 0.0  # every partial product is constant
    frozen = estimate_cost(netlist, activity=OperandStream(np.full(100, 5), np.full(100, -3)))
    assert frozen.dynamic_mw == 0.0 and frozen.power_mw == frozen.leakage_mw > 0
    # two pairs that differ in exactly one input bit: that bit toggles with probability 1
    one = estimate_cost(netlist, activity=OperandStream(np.array([0, 1]), np.array([1, 1])))
    assert one.dynamic_mw > 0
    with pytest.raises(ConfigError):
        OperandStream(np.array([1]), np.array([2]))


def test_operands_wider_than_62_bits_are_sampled():
    """64-bit operands (a Yosys 64x64 multiplier, say): the top bits toggle too (it was a numpy traceback)."""
    from approxlut.circuits import Kind, NetlistBuilder

    b = NetlistBuilder("top64")
    x, y = b.input_bus("a", 64), b.input_bus("b", 64)
    cost = estimate_cost(b.build([b.gate(Kind.AND, [x[63], y[63]])]))
    assert cost.power_mw > 0
