"""Every approximation family's circuit equals its numpy formula on every input pair."""

from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.approx import FAMILIES, family, formula_table, mitchell_formula

# (family, parameters at 8x8 operands); narrower operands scale k/vbl/start down with the width
CASES = [
    ("truncated", {"k": 5}),
    ("truncated", {"k": 7, "compensate": True}),
    ("broken_array", {"hbl": 2, "vbl": 6}),
    ("perforated", {"rows": 2}),
    ("perforated", {"rows": 1, "start": 3}),
    ("lower_or", {"k": 6}),
    ("mitchell", {}),
    ("drum", {"k": 3}),
    ("drum", {"k": 5}),
    ("rounding", {"k": 2}),
    ("rounding", {"k": 3, "mode": "truncate"}),
]
SHAPES = [(8, 8), (6, 6), (7, 5), (4, 4)]


def _scaled(params: dict, bits_a: int, bits_b: int) -> dict:
    """Parameters for narrower operands: shrink by the width difference, keep them in range."""
    narrow = min(bits_a, bits_b)
    out = dict(params)
    for key, low in (("k", 2), ("vbl", 1), ("start", 0)):
        if key in out:
            out[key] = max(low, out[key] - (8 - narrow))
    if "k" in out:
        out["k"] = min(out["k"], narrow - 2)
    return out


@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda x: str(x))
@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize(("bits_a", "bits_b"), SHAPES)
def test_circuit_equals_formula(name, params, signed, bits_a, bits_b):
    params = _scaled(params, bits_a, bits_b)
    fam = family(name)
    netlist = fam.build(bits_a, bits_b, signed=signed, **params)
    lut = simulate_lut(netlist, signed=signed)
    assert np.array_equal(lut.forward, formula_table(fam, bits_a, bits_b, signed=signed, **params))


@pytest.mark.parametrize("method", ["wallace", "dadda"])
def test_matrix_families_with_tree_reductions(method):
    for name, params in [("truncated", {"k": 6}), ("broken_array", {"hbl": 1, "vbl": 4}), ("lower_or", {"k": 5})]:
        fam = family(name)
        for signed in (False, True):
            netlist = fam.build(8, 8, signed=signed, method=method, **params)
            ref = formula_table(fam, 8, 8, signed=signed, **params)
            assert np.array_equal(simulate_lut(netlist, signed=signed).forward, ref)


def test_approximations_are_cheaper_and_inexact():
    exact_gates = family("truncated").build(8, 8, signed=False, k=0).gate_count()
    for name, params in CASES:
        netlist = family(name).build(8, 8, signed=False, **params)
        assert netlist.gate_count() < exact_gates, name
        assert simulate_lut(netlist, signed=False).metrics().mae_pct > 0, name


def test_mitchell_formula_by_hand():
    # 3 x 3: k=1, f=1 each; s = 1*2 + 1*2 = 4 >= 4 -> 2s = 8 (exact 9)
    assert int(mitchell_formula(np.array(3), np.array(3), 8, 8, signed=False)) == 8
    # 5 x 9 (one set bit below the leading one each): s = 1*8 + 1*4 = 12 < 32 -> 44 (exact 45)
    assert int(mitchell_formula(np.array(5), np.array(9), 8, 8, signed=False)) == 44
    assert int(mitchell_formula(np.array(-128), np.array(-128), 8, 8, signed=True)) == 16384
    assert int(mitchell_formula(np.array(0), np.array(77), 8, 8, signed=False)) == 0


def test_parameter_checks():
    with pytest.raises(ConfigError):
        family("truncated").build(8, 8, signed=False, k=17)
    with pytest.raises(ConfigError):
        family("rounding").build(8, 8, signed=True, k=7)
    with pytest.raises(ConfigError):
        family("nope")
    assert set(FAMILIES) >= {"truncated", "broken_array", "perforated", "lower_or", "mitchell", "drum", "rounding"}
