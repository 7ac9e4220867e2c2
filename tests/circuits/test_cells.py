"""Cell profiles: EvoApprox8b's netlists as shipped (CRLF, garbled names, its own MUX2X1) give the C models' tables."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from approxlut.circuits.cells import PROFILES, CellLibrary, cell_library, generator_names, profile_from_header
from approxlut.circuits.io import read_netlist
from approxlut.circuits.verilog import cells_from_verilog, read_verilog
from approxlut.errors import ConfigError, ParseError
from approxlut.lutgen.simulate import simulate_lut


def _names(corpus: Path) -> list[str]:
    with open(corpus / "evoapprox8b" / "metrics.csv", newline="") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def _table(path: Path, **options: str) -> np.ndarray:
    return simulate_lut(read_netlist(path, **options), signed=False).forward.astype(np.int64)


def _cell_table(library: CellLibrary, name: str) -> list[int]:
    cell = library.get(name)
    assert cell is not None and cell.inputs == ("A", "B") and cell.outputs == ("Y",)
    text = f"module t(input [1:0] A, input B, output O); {name} u (.A(A[0]), .B(A[1]), .Y(O)); endmodule"
    lut = simulate_lut(read_verilog(text, cells=library), signed=False)
    return [int(lut.forward[a, 0]) for a in range(4)]


def test_every_netlist_gives_the_c_model_table_without_flags(corpus: Path) -> None:
    folder = corpus / "evoapprox8b"
    truth = np.load(folder / "truth.npz")
    for name in _names(corpus):
        for path in (folder / f"{name}.v", folder / f"{name}_pdk45.v"):
            assert b"\r\n" in path.read_bytes()  # shipped with Windows line endings
            netlist = read_netlist(path)
            assert np.array_equal(simulate_lut(netlist, signed=False).forward, truth[name]), path.name
            if netlist.cell_use is not None:  # library cells were used: say whose
                assert netlist.cell_use.profile == "evoapprox8b" and "Library = EvoApprox8b" in netlist.cell_use.reason


def test_garbled_names_follow_the_generator_model(corpus: Path) -> None:
    """Names the files define themselves agree with the model; the undefined ones are checked above."""
    names = generator_names()
    assert len(names) == len(set(names)) and set(names.values()) == {
        "AND2X1",
        "NAND2X1",
        "OR2X1",
        "NOR2X1",
        "XOR2X1",
        "XNOR2X1",
    }
    evo = CellLibrary.for_profile("evoapprox8b")
    checked = set()
    for path in sorted(p for p in (corpus / "evoapprox8b").glob("mul8_*.v") if not p.stem.endswith("_pdk45")):
        text = path.read_text()
        rest = re.sub(r"(?s)^.*?endmodule", "", text, count=1)
        defined = {c.name: c for c in cells_from_verilog(rest)} if "module" in rest else {}
        for name in set(defined) & set(names):
            own = CellLibrary([defined[name]])
            assert _cell_table(own, name) == _cell_table(evo, name) == _cell_table(evo, names[name]), name
            checked.add(name)
        used = set(re.findall(r"^\s+(\w+) n\d+\(", text, re.MULTILINE))
        assert not (used - set(defined)) - set(names)  # every undefined cell is a garbled name
    assert checked == {"PDKGEPDKGENNAND2X1", "PDKGEPDKGENNOR2X1", "PDKGENXPDKGENOR2X1", "PDKGENNPDKGENOR2X1"}


def test_mux2x1_means_what_the_library_means(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "evoapprox8b"
    truth = np.load(folder / "truth.npz")["mul8_038"]
    shipped = folder / "mul8_038_pdk45.v"
    text = shipped.read_text()
    assert "MUX2X1 " in text and profile_from_header(text) is not None
    # without its header the file no longer says where it comes from: refused, at the first MUX2X1
    bare = tmp_path / "mul8_038_pdk45.v"
    bare.write_text(text[text.index("module") :])
    with pytest.raises(ParseError, match=r"MUX2X1 is inverting in OSU.*--cells osu or --cells evoapprox8b") as info:
        read_netlist(bare)
    line = bare.read_text().splitlines()[info.value.line - 1]
    assert line.index("MUX2X1") + 1 == info.value.col
    assert np.array_equal(_table(bare, cells="evoapprox8b"), truth)
    assert not np.array_equal(_table(bare, cells="osu"), truth)  # the OSU cell inverts: a different circuit
    assert read_netlist(bare, cells="osu").cell_use.reason == "--cells osu"
    # an explicit profile wins over the header, and says so
    assert not np.array_equal(_table(shipped, cells="osu"), truth)


def test_garbled_names_without_provenance_get_a_hint(corpus: Path) -> None:
    text = (corpus / "evoapprox8b" / "mul8_044.v").read_text()
    with pytest.raises(ParseError, match=r"EvoApprox8b .* library: pass --cells evoapprox8b"):
        read_verilog(text[text.index("module") :], "mul8_044.v")


def test_profiles_from_options_and_cell_files(tmp_path: Path) -> None:
    assert cell_library(None, "module m; endmodule").profile is None
    assert cell_library("evoapprox8b", "").reason == "--cells evoapprox8b"
    cells = tmp_path / "cells.json"
    cells.write_text(
        '{"profile": "osu", "cells": [{"name": "ANDNOT", "inputs": ["A", "B"], "outputs": {"Y": "A & ~B"}}]}'
    )
    library = cell_library(cells, "// Library = EvoApprox8b\nmodule m; endmodule")
    assert library.profile == "osu" and "ANDNOT" in library and library.notes["ANDNOT"] == "from cells.json"
    cells.write_text('{"cells": []}')
    assert cell_library(cells, "// Library = EvoApprox8b\nmodule m; endmodule").profile == "evoapprox8b"
    cells.write_text('{"profile": "tsmc"}')
    with pytest.raises(ParseError, match="unknown cell profile"):
        cell_library(cells, "")
    with pytest.raises(ConfigError, match="unknown cell profile"):
        CellLibrary.for_profile("tsmc")
    assert set(PROFILES) == {"osu", "evoapprox8b"}


def test_two_top_modules_name_the_real_option() -> None:
    text = "module a(input [1:0] A, B, output [1:0] O); assign O = A & B; endmodule\n" + (
        "module b(input [1:0] A, B, output [1:0] O); assign O = A | B; endmodule\n"
    )
    with pytest.raises(ParseError, match="name it with --top"):
        read_verilog(text)
