"""The shipped built-in set: builds quickly, unique names, exact ones exact, errors span a range."""

from __future__ import annotations

import numpy as np

from approxlut.lutgen.lut import code_values
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.approx import family, formula_table
from approxlut.synth.builtin import builtin_circuits


def test_builtin_set():
    circuits = builtin_circuits()
    names = [c.name for c in circuits]
    assert len(names) == len(set(names)) >= 40
    for bits in range(4, 9):
        for tag in "us":
            assert f"exact{bits}{tag}" in names
    maes = {}
    for c in circuits:
        lut = simulate_lut(c.netlist, signed=c.signed)
        bits_a, bits_b = c.bits
        if c.family == "exact":
            exact = np.outer(code_values(bits_a, c.signed), code_values(bits_b, c.signed))
            assert np.array_equal(lut.forward, exact), c.name
        else:
            ref = formula_table(family(c.family), bits_a, bits_b, signed=c.signed, **c.params)
            assert np.array_equal(lut.forward, ref), c.name
        maes[c.name] = lut.metrics().mae_pct
    for tag in "us":
        eight = [v for k, v in maes.items() if k.endswith(tuple(f"8{tag}{s}" for s in ("", "_"))) or f"8{tag}_" in k]
        assert min(v for v in eight if v > 0) < 0.02
        assert max(eight) > 0.4
    assert {"trunc8u_k4", "bam8s_h2v6", "loa8u_k6", "drum8u_k4", "mitchell8u", "perf8u_r2", "round8s_k3"} <= set(names)
