"""Hostile input files: deeply nested JSON, netlists beyond the stated limits (refused quickly, the limit in
the message), huge names, and random damage to netlists and LUT files (one line, never a traceback)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approxlut.circuits import blif, netlist, verilog
from approxlut.errors import LutgenError, ParseError
from approxlut.nn.config import AssignmentMapping

from .conftest import MUL2_BLIF, MUL2_VERILOG, assert_clean, run, strict_json

# ----------------------------------------------------------------------------------------- JSON


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"default": ' + "[" * depth + '"exact"' + "]" * depth + "}"


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "object", "assignment"])
def test_deeply_nested_assignment_json(tmp_path: Path, depth: int, kind: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(_nested(depth, kind))
    with pytest.raises(ParseError, match="nested"):
        AssignmentMapping.parse(str(path))


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_cell_file(tmp_path: Path, depth: int) -> None:
    (tmp_path / "cells.json").write_text('{"cells": ' + _nested(depth, "list") + "}")
    (tmp_path / "m.v").write_text(MUL2_VERILOG)
    assert_clean(run(["sim", tmp_path / "m.v", "--cells", tmp_path / "cells.json", "--no-write"]), 2)


@pytest.mark.parametrize(
    "text",
    [
        *("NaN", '{"default": Infinity}', '{"default": "exact"', "", "\x00", "1" * 5000, "[1]"),
        *('{"layers": 5}', '{"default": {"bogus": 1}}', '{"types": {"NoSuchLayer": "exact"}}', '{"x": 1}'),
    ],
)
def test_malformed_assignment_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(LutgenError):
        AssignmentMapping.parse(str(path))


# ------------------------------------------------------------------------------------- limits


def _blif_chain(gates: int) -> str:
    lines = [".model big", ".inputs A[0] A[1] B[0] B[1]", ".outputs O[0] O[1] O[2] O[3]"]
    lines += [".names A[0] B[0] n0", "11 1"]
    lines += [f".names n{i} A[1] n{i + 1}\n10 1" for i in range(gates)]
    lines += [f".names n{gates} O[{k}]\n1 1" for k in range(4)]
    return "\n".join([*lines, ".end", ""])


def test_a_blif_netlist_beyond_the_gate_limit_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "big.blif"
    path.write_text(_blif_chain(netlist.MAX_GATES + 1))
    result = run(["sim", path, "--no-write"])
    assert_clean(result, 2)
    assert f"limited to {netlist.MAX_GATES} gates" in result.stderr


def test_flattening_beyond_the_gate_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested .subckt instances multiply: 10 levels of 10 copies would be 10^10 gates."""
    monkeypatch.setattr(blif, "MAX_GATES", 5000)
    models = [".model top\n.inputs A[0] A[1] B[0] B[1]\n.outputs O[0]\n.subckt l0 x=A[0] y=O[0]\n.end"]
    for level in range(10):
        body = "".join(f".subckt l{level + 1} x=x y=t{i}\n" for i in range(10)) if level < 9 else ""
        models.append(f".model l{level}\n.inputs x\n.outputs y\n{body}.names x y\n1 1\n.end")
    with pytest.raises(LutgenError, match="more than 5000 gates"):
        blif.read_blif("\n".join(models))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("items", "module m(A, B, O);\n" + "wire w;\n" * (verilog.MAX_VERILOG_ITEMS + 1) + "endmodule\n", "limited"),
        ("bytes", "// " + "x" * (verilog.MAX_VERILOG_BYTES + 10) + "\n" + MUL2_VERILOG, "limited"),
        ("identifier", MUL2_VERILOG.replace("mul2", "m" * 3_000_000), "longer than"),
        ("number", MUL2_VERILOG.replace("A * B", "A * " + "1" * 2000), "longer than"),
        ("escaped name", MUL2_VERILOG.replace("mul2", "\\" + "q" * 5000 + " "), "longer than"),
    ],
    ids=["items", "bytes", "identifier", "number", "escaped name"],
)
def test_verilog_beyond_the_limits_is_refused_quickly(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / f"{name}.v"
    path.write_text(text)
    result = run(["sim", path, "--no-write"])
    assert_clean(result, 2)
    assert message in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        ".i 999999999999\n.o 4\n.e\n",
        ".i 4\n.o 99999999\n.e\n",
        ".i 4\n.o 8\n" + "0000 00000000\n" * 3 + ".e\n",
    ],
)
def test_pla_headers_cannot_demand_memory(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.pla"
    path.write_text(text)
    assert_clean(run(["sim", path, "--no-write"]), 2)


def test_sampling_is_bounded_by_the_work_limit(tmp_path: Path) -> None:
    path = tmp_path / "chain.blif"
    path.write_text(_blif_chain(10_000))
    result = run(["sim", path, "--no-write", "--samples", str(1 << 30)])
    assert_clean(result, 2)
    assert "limit" in result.stderr and "--samples" in result.stderr


def test_huge_names_in_blif_stay_cheap(tmp_path: Path) -> None:
    import tracemalloc

    name = "n" * 3_000_000
    path = tmp_path / "names.blif"
    path.write_text(MUL2_BLIF.replace("p10", name))
    tracemalloc.start()
    try:
        result = run(["sim", path, "--no-write", "--json"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_clean(result, 0)
    assert strict_json(result.stdout, "sim")["bits_a"] == 2
    assert peak < 200 << 20


# ------------------------------------------------------------------------- netlists as shipped

_CELLS = """// Library = EvoApprox8b
module mul2(A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  wire n;
  CELL U0 (.A(A[0]), .B(B[0]), .Y(O[0]));
  AND2X1 U1 (.A(A[1]), .B(B[1]), .Y(O[3]));
  AND2X1 U2 (.A(A[1]), .B(B[0]), .Y(O[1]));
  AND2X1 U3 (.A(A[0]), .B(B[1]), .Y(O[2]));
endmodule
"""


@pytest.mark.parametrize("cell", ["NOSUCHCELL", "MUX2X1", "AND2X1", "NPDKGEPDKGENNAND2X1", "X" * 2000])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", "\ufeff\r\n"])
def test_cells_and_line_endings_of_shipped_netlists(tmp_path: Path, cell: str, ending: str) -> None:
    """Unknown, ambiguous and misspelled cell names under every line ending: an answer or one line, exit 2."""
    path = tmp_path / "mul2u_x.v"
    path.write_bytes(_CELLS.replace("CELL", cell).replace("\n", ending).encode("utf-8"))
    result = run(["sim", path, "--no-write", "--json"])
    assert_clean(result, 0, 2)
    if result.exit_code == 0:
        assert strict_json(result.stdout, "sim")["mre_convention"] == "max1"
    else:
        assert f"{path}:" in result.stderr
    imported = run(["library", "import", path, "--library", tmp_path / "lib", "--json"])
    assert_clean(imported, 0, 2)
    assert strict_json(imported.stdout, "library import")["failed"] == ([] if result.exit_code == 0 else [ANY_FAILURE])


class _AnyFailure:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and set(other) == {"file", "error"} and "\n" not in other["error"]


ANY_FAILURE = _AnyFailure()


@pytest.mark.parametrize(
    "text",
    ["", "\r\n\r\n", "0 0 0\r\n" * 3, "\ufeff" + "1 " * 300 + "\r\n", "# lutfp\r\n" + "x y\r\n" * 4],
)
def test_text_luts_with_any_line_endings_are_one_line_or_imported(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "t_lutfp.txt").write_text(text, newline="")
    imported = run(["library", "import", folder / "t_lutfp.txt", "--library", tmp_path / "lib", "--json"])
    assert_clean(imported, 0, 2)
    walked = run(["library", "import", folder, "--library", tmp_path / "lib2", "--json"])
    assert_clean(walked, 0, 2)


# ------------------------------------------------------------------------------------- fuzzing


def _mutate(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            pieces = [b"(", b")", b";", b"\n", b"[99999999:0]", b"\\", b".names", b"#", b"\x00", b"\xff"]
            out[at:at] = rng.choice(pieces)
        elif op == 2:
            del out[at : at + rng.randint(1, 20)]
        else:
            out[at:at] = out[max(0, at - 30) : at] * rng.randint(1, 3)
    return bytes(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["v", "blif"]))
def test_mutated_netlists_are_one_line_or_simulated(tmp_path: Path, seed: int, kind: str) -> None:
    source = (MUL2_VERILOG if kind == "v" else MUL2_BLIF).encode()
    path = tmp_path / f"m{seed}.{kind}"
    path.write_bytes(_mutate(source, seed))
    result = run(["sim", path, "--no-write", "--json"])
    assert_clean(result)
    if result.exit_code == 0:
        strict_json(result.stdout, "sim")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_lut_files_are_refused_in_one_line(tmp_path: Path, seed: int) -> None:
    from approxlut.lutgen.formats import load_npz, save_npz
    from approxlut.lutgen.lut import Lut

    codes = np.arange(8)
    path = tmp_path / f"t{seed}.npz"
    save_npz(Lut(np.outer(codes, codes).astype(np.int32), 3, 3, False, name="t").with_gradients(2), path)
    path.write_bytes(_mutate(path.read_bytes(), seed))
    try:
        lut = load_npz(path)
    except ParseError as error:
        assert "\n" not in str(error) and str(error).startswith(str(path))
    else:
        assert lut.forward.shape == (8, 8)  # the damage missed the data (load_npz verified the hashes)
