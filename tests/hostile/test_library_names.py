"""Library entry names become file names: a name that a file states is refused unless it is a plain
file name, names taken from file names are made plain, and every writer keeps even a bad name that an
older catalogue holds inside the folder it writes to. File names that are not UTF-8 get one line."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from approxlut.circuits.names import name_problem, safe_name
from approxlut.errors import ConfigError
from approxlut.library import Library
from approxlut.lutgen.formats import load_npz, save_npz
from approxlut.lutgen.lut import Lut

from .conftest import MUL2_BLIF, assert_clean, run, run_process, strict_json

#: The 2x2 multiplier in a file of its own (the template library knows MUL2_BLIF's bytes already).
OTHER_BLIF = MUL2_BLIF.replace(".model mul2", ".model other")

#: Names that leave a folder, hide a file, pass for an option, or are no file name at all.
UNSAFE = ["../../../../trav/pwn", "/abs/pwn", "..", ".hidden", "-rf", "a\nb", "a\\b", "", "x" * 129]


def _approximate_2x2(name: str) -> Lut:
    table = np.outer(range(4), range(4)).astype(np.int32)
    table[1, 1] = 3
    return Lut(table, 2, 2, False, name=name)


@pytest.mark.parametrize("name", ["mul8s_1L2J", "v2022_mul8s_1L2J", "trunc8s_k6", "mult.v2", "a+b-c", "_x"])
def test_real_names_are_valid_and_kept(name: str) -> None:
    assert name_problem(name) is None and safe_name(name) == name


@pytest.mark.parametrize("name", UNSAFE)
def test_safe_name_makes_any_text_a_valid_name(name: str) -> None:
    assert name_problem(name) is not None
    assert name_problem(safe_name(name)) is None and "/" not in safe_name(name)


@pytest.mark.parametrize("name", UNSAFE)
def test_an_unsafe_name_inside_a_table_file_is_refused_on_import(tmp_path: Path, library: Path, name: str) -> None:
    source = tmp_path / "e.npz"
    save_npz(_approximate_2x2(name), source)
    result = run(["library", "import", source, "--library", library, "--json"])
    assert_clean(result, 2)
    [failed] = strict_json(result.stdout, "library import")["failed"]
    assert "names the circuit" in failed["error"] and "an entry name" in failed["error"]
    with Library.open(library) as lib:
        assert not any(e.hash == _approximate_2x2("x").hash for e in lib.query())


def test_an_unsafe_name_in_meta_json_is_refused(tmp_path: Path, library: Path) -> None:
    (tmp_path / "mul2.blif").write_text(OTHER_BLIF)
    meta = {"instances": [{"name": "../../evil", "files": [{"file": "mul2.blif"}]}]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    result = run(["library", "import", tmp_path / "mul2.blif", "--library", library, "--json"])
    assert_clean(result, 2)
    [failed] = strict_json(result.stdout, "library import")["failed"]
    assert "meta.json names the circuit '../../evil'" in failed["error"]


def test_the_catalogue_refuses_an_unsafe_name_from_any_caller(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(ConfigError, match="cannot catalogue"):
            lib.add(_approximate_2x2("../x"))
        with pytest.raises(ConfigError, match="cannot catalogue"):
            lib.add(_approximate_2x2("x"), release="../v1")


def test_names_from_file_names_are_made_valid(tmp_path: Path, library: Path) -> None:
    netlist = tmp_path / "my mult (v2).blif"
    netlist.write_text(OTHER_BLIF)
    assert_clean(run(["sim", netlist]), 0)
    assert load_npz(tmp_path / "my mult (v2).npz").name == "my_mult_v2_"
    assert_clean(run(["library", "import", netlist, "--library", library]), 0)
    with Library.open(library) as lib:
        assert lib.entry("my_mult_v2_").source == str(netlist.resolve())


def _older_catalogue_entry(library: Path, name: str) -> None:
    """Give the imported ``mul2`` entry the name ``name``, as a catalogue written before names were checked."""
    db = sqlite3.connect(library / "catalogue.sqlite")
    with db:
        db.execute("UPDATE entries SET name = ? WHERE name = 'mul2'", (name,))
    db.close()


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_writers_keep_an_older_catalogues_bad_name_in_their_folder(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    escape = tmp_path / "escape"
    name = "../../../../escape/pwn" if kind == "relative" else f"{escape}/pwn"
    _older_catalogue_entry(library, name)
    site = tmp_path / "x" / "site"
    assert_clean(run(["library", "report", site, "--library", library, "--bits", "2"]), 0)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for fmt in ("npz", "lutfp"):
        assert_clean(run(["library", "export", name, "--library", library, "--format", fmt]), 0)
    assert not escape.exists()
    stem = safe_name(name)
    assert f"{stem}.npz" in {p.name for p in site.rglob("*.npz")}
    assert {p.name for p in here.iterdir()} == {f"{stem}.npz", f"{stem}_lutfp.txt"}


@pytest.mark.skipif(sys.platform == "darwin", reason="the file system refuses names that are not UTF-8")
def test_a_file_name_that_is_not_utf8(tmp_path: Path, library: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bad = Path(os.fsdecode(bytes(folder) + b"/bad\xffname.blif"))
    bad.write_text(OTHER_BLIF)
    (folder / "good.blif").write_text(MUL2_BLIF.replace(".model mul2", ".model good"))
    done = run_process(["library", "import", bad, "--library", library])
    assert done.returncode == 2 and "bad\\xffname.blif: the path is not valid UTF-8" in done.stdout
    done = run_process(["library", "import", folder, "--library", library, "--json"])
    assert done.returncode == 2
    data = strict_json(done.stdout, "library import")
    assert [f["file"] for f in data["failed"]] == [f"{folder}/bad\\xffname.blif"]
    assert data["added"] == ["good"]
    assert run_process(["sim", bad, "--no-write"]).returncode == 0


def test_a_table_hash_that_is_a_path_never_leaves_the_blob_folder(tmp_path: Path, library: Path) -> None:
    """A hostile index's hash column (``../../x``) was joined into a blob path as it was: reads and checks now
    treat it as a damaged row (one line), and nothing is read or written outside ``blobs/``."""
    name = "trunc8s_k6"
    with sqlite3.connect(library / "catalogue.sqlite") as db:
        db.execute("UPDATE entries SET hash = ? WHERE name = ?", (f"../../{tmp_path.name}/evil", name))
    export = run(["library", "export", name, "--out", tmp_path / "x.npz", "--library", library])
    assert_clean(export, 1)
    assert "not a SHA-256 hash" in export.stderr and not (tmp_path / "x.npz").exists()
    check = run(["library", "check", "--library", library])
    assert_clean(check, 1)
    assert f"the table of {name}" in check.stdout + check.stderr and "is missing" in check.stdout + check.stderr
    assert not list(tmp_path.parent.glob("evil*"))
