"""Greedy approximate logic synthesis: points within the bound, fewer gates, errors as simulated."""

from __future__ import annotations

import itertools

import pytest

from approxlut.circuits.blif import read_blif
from approxlut.errors import ConfigError
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.als import approximate
from approxlut.synth.generators import array_multiplier


@pytest.mark.parametrize(("signed", "wires"), [(False, True), (True, True), (False, False)])
def test_points_within_bound_save_gates(signed, wires):
    start = array_multiplier(6, 6, signed=signed)
    points = approximate(start, signed=signed, max_mae_pct=0.3, max_steps=25, wires=wires)
    assert len(points) >= 3
    assert points[0].mae_pct == 0.0
    assert points[-1].gates < start.gate_count() * 0.9
    for prev, point in itertools.pairwise(points):
        assert point.gates < prev.gates and point.mae_pct >= prev.mae_pct
    for point in points:
        metrics = simulate_lut(point.netlist, signed=signed).metrics()
        assert metrics.mae_pct == pytest.approx(point.mae_pct, abs=1e-9)
        assert metrics.wce_pct == pytest.approx(point.wce_pct, abs=1e-9)
        assert point.mae_pct <= 0.3
    kinds = {"<-" in sub for sub in points[-1].substitutions}
    assert kinds == ({False, True} if wires else {False})


def test_wce_bound_and_power_objective():
    start = array_multiplier(8, 8, signed=False)
    points = approximate(start, signed=False, max_wce_pct=0.5, objective="power", max_steps=8, candidates=16)
    assert points[-1].power_mw < points[0].power_mw
    assert all(p.wce_pct <= 0.5 for p in points)
    assert simulate_lut(points[-1].netlist, signed=False).metrics().wce_pct <= 0.5


def test_needs_a_bound():
    with pytest.raises(ConfigError):
        approximate(array_multiplier(4, 4, signed=False), signed=False)
    with pytest.raises(ConfigError):
        approximate(array_multiplier(4, 4, signed=False), signed=False, max_mae_pct=1, objective="area")


#: An exact 2x2 multiplier whose bit 0 carries redundant logic: ``O0 = a0b0 | (a0b0 & a1)``.
REDUNDANT_MUL2 = """.model mul2r
.inputs A[0] A[1] B[0] B[1]
.outputs O[0] O[1] O[2] O[3]
.names A[0] B[0] p00
11 1
.names p00 A[1] r
11 1
.names p00 r O[0]
1- 1
-1 1
.names A[1] B[0] p10
11 1
.names A[0] B[1] p01
11 1
.names A[1] B[1] p11
11 1
.names p10 p01 O[1]
01 1
10 1
.names p10 p01 c1
11 1
.names p11 c1 O[2]
01 1
10 1
.names p11 c1 O[3]
11 1
.end
"""


@pytest.mark.parametrize("bounds", [{"max_mae_pct": 0.0}, {"max_wce_pct": 0.0}, {"max_mae_pct": 0, "max_wce_pct": 5}])
def test_a_zero_bound_removes_redundant_logic_only(bounds):
    start = read_blif(REDUNDANT_MUL2, "mul2r.blif")
    exact = simulate_lut(start, signed=False)
    points = approximate(start, signed=False, **bounds)
    assert points[-1].gates < start.gate_count()
    for point in points:
        assert point.mae_pct == point.wce_pct == 0.0
        assert (simulate_lut(point.netlist, signed=False).forward == exact.forward).all()
