"""A netlist is never taken for a LUT file by its size: a ``.v`` file of exactly 131072 bytes (a
TFApprox table's size) with a byte order mark or a non-ASCII comment is simulated as the netlist it is,
in ``sim`` and ``library import``; a real TFApprox table is still recognised by its content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from approxlut.library import Library
from approxlut.lutgen.formats import TFAPPROX_BYTES, sniff_lut_format, write_tfapprox
from approxlut.lutgen.lut import Lut

from .conftest import MUL2_BLIF, MUL2_VERILOG, assert_clean, run, strict_json

#: Non-ASCII starts of a netlist: a UTF-8 byte order mark, or a comment (after its comment marker).
HEADS = {"bom": b"\xef\xbb\xbf", "comment": " written by Jürgen\n".encode()}


def _netlist_of_tfapprox_size(path: Path, text: str, head: str, comment: str) -> Path:
    """``text`` after :data:`HEADS` ``[head]``, padded with comment lines to exactly :data:`TFAPPROX_BYTES` bytes."""
    data = (HEADS[head] if head == "bom" else comment.encode() + HEADS[head]) + text.encode()
    line = f"{comment} {'x' * 60}\n".encode()
    data += line * ((TFAPPROX_BYTES - len(data)) // len(line) - 1)
    rest = TFAPPROX_BYTES - len(data) - len(comment) - 1
    data += comment.encode() + b"y" * rest + b"\n"
    assert len(data) == TFAPPROX_BYTES
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize(("suffix", "text", "comment"), [(".v", MUL2_VERILOG, "//"), (".blif", MUL2_BLIF, "#")])
def test_a_netlist_of_tfapprox_size_is_a_netlist(
    tmp_path: Path, library: Path, head: str, suffix: str, text: str, comment: str
) -> None:
    path = _netlist_of_tfapprox_size(tmp_path / f"plainnet{suffix}", text, head, comment)
    assert sniff_lut_format(path) is None
    result = run(["sim", path, "--json", "--no-write"])
    assert_clean(result, 0)
    data = strict_json(result.stdout, "sim")
    assert (data["input_format"], data["bits_a"], data["bits_b"], data["gates"]) == ("netlist", 2, 2, 8)
    assert data["mae_pct"] == 0.0
    assert_clean(run(["library", "import", path, "--library", library]), 0)
    with Library.open(library) as lib:
        entry = lib.entry("plainnet")
        assert (entry.bits_a, entry.gates, entry.params) == (2, 8, {})


@pytest.mark.parametrize("head", sorted(HEADS))
def test_utf8_text_of_tfapprox_size_is_not_a_table_whatever_its_name(tmp_path: Path, head: str) -> None:
    path = _netlist_of_tfapprox_size(tmp_path / "notes", MUL2_VERILOG, head, "//")
    assert sniff_lut_format(path) is None


def _tfapprox(path: Path) -> Path:
    table = np.outer(range(256), range(256)).astype(np.int32)
    table[3, 5] = 16
    write_tfapprox(Lut(table, 8, 8, False, name="t"), path)
    return path


@pytest.mark.parametrize("name", ["t.bin", "t", "t.txt"])
def test_a_tfapprox_table_is_still_recognised(tmp_path: Path, name: str) -> None:
    assert sniff_lut_format(_tfapprox(tmp_path / name)) == "tfapprox"


def test_a_tfapprox_table_named_as_a_netlist_is_read_as_one(tmp_path: Path) -> None:
    path = _tfapprox(tmp_path / "t.v")
    assert sniff_lut_format(path) is None
    assert_clean(run(["sim", path, "--no-write"]), 2)


def test_sim_says_why_sampling_gives_no_table(tmp_path: Path) -> None:
    path = tmp_path / "mul2.blif"
    path.write_text(MUL2_BLIF)
    result = run(["sim", path, "--samples", "64"])
    assert_clean(result, 0)
    assert "--samples measures a random sample only" in result.stdout and "for this width" not in result.stdout
    assert not (tmp_path / "mul2.npz").exists()


@pytest.mark.parametrize("name", ["d", "d.v"])
def test_sim_of_a_folder_says_it_is_a_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    result = run(["sim", tmp_path / name])
    assert_clean(result, 2)
    assert "is a directory" in result.stderr
