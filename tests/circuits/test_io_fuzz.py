"""Random damage to valid netlists: the readers either succeed or raise ParseError, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approxlut.circuits.io import read_netlist
from approxlut.errors import ParseError

BLIF_SMALL = b"""\
.model mul2
.inputs A[0] A[1] \\
  B[0] B[1]
.outputs O[0] O[1] O[2] O[3]
.names A[0] B[0] O[0]
11 1
.subckt and2 x=A[1] y=B[0] z=p10
.names A[0] B[1] p01
11 1
.names p10 p01 O[1]
10 1
01 1
.names p10 p01 c1
11 0
.names A[1] B[1] p11
1- 1
.names p11 c1 O[2]
1- 1
-0 1
.names p11 c1 O[3]
11 1
.end
.model and2
.inputs x y
.outputs z
.names x y z
11 1
.end
"""

VERILOG_SMALL = b"""\
module mul2(A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  wire p10, p01, c1;
  assign O[0] = A[0] & B[0];
  assign p10 = A[1] & B[0];
  assign p01 = A[0] & B[1];
  assign O[1] = p10 ^ p01;
  assign c1 = p10 & p01;
  assign O[2] = (A[1] & B[1]) ^ c1;
  assign O[3] = A[1] & B[1] & c1;
endmodule
"""

GARBAGE = [b"\x00", b"\xff\xfe", b"#", b"\\", b".", b"=", b"[", b"]", b";", b"(", b"1'b", b" ", b"\n", b"-", b"0"]


@st.composite
def mutations(draw: st.DrawFn, source: bytes) -> bytes:
    """``source`` after one to four random edits: line deletes/duplicates/swaps, flips, cuts, inserts."""
    data = source
    for _ in range(draw(st.integers(1, 4))):
        lines = data.split(b"\n")
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "flip", "truncate", "insert", "replace"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        data = b"\n".join(lines)
        if not data:
            continue
        k = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data = data[:k] + bytes([data[k] ^ (1 << draw(st.integers(0, 7)))]) + data[k + 1 :]
        elif op == "truncate":
            data = data[:k]
        elif op == "insert":
            data = data[:k] + draw(st.sampled_from(GARBAGE) | st.binary(min_size=1, max_size=4)) + data[k:]
        elif op == "replace":
            data = data[:k] + draw(st.sampled_from(b"01-_ xyzAB[]")).to_bytes(1, "little") + data[k + 1 :]
    return data


def _check(tmp: Path, suffix: str, data: bytes) -> None:
    path = tmp / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        netlist = read_netlist(path)
    except ParseError as err:
        assert err.path == str(path)
        assert "\n" not in str(err)
    else:
        netlist.validate()


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@_FUZZ
@given(data=mutations(BLIF_SMALL))
def test_mutated_small_blif(scratch: Path, data: bytes) -> None:
    _check(scratch, ".blif", data)


@_FUZZ
@given(data=st.data())
def test_mutated_corpus_blif(scratch: Path, corpus: Path, data: st.DataObject) -> None:
    source = (corpus / "date25" / "mul8u_17C8_sop.blif").read_bytes()
    _check(scratch, ".blif", data.draw(mutations(source)))


@_FUZZ
@given(data=mutations(BLIF_SMALL.replace(b".model and2", b"# .model and2")))
def test_mutated_sop(scratch: Path, data: bytes) -> None:
    _check(scratch, ".sop", data)


@_FUZZ
@given(data=mutations(VERILOG_SMALL))
def test_mutated_small_verilog(scratch: Path, data: bytes) -> None:
    pytest.importorskip("approxlut.circuits.verilog")
    _check(scratch, ".v", data)


@_FUZZ
@given(data=st.data())
def test_mutated_corpus_verilog(scratch: Path, corpus: Path, data: st.DataObject) -> None:
    pytest.importorskip("approxlut.circuits.verilog")
    source = (corpus / "evoapprox" / "narrow" / "v2022_mul7u_06Q.v").read_bytes()
    _check(scratch, ".v", data.draw(mutations(source)))


def test_sources_are_valid(tmp_path: Path) -> None:
    (tmp_path / "s.blif").write_bytes(BLIF_SMALL)
    assert read_netlist(tmp_path / "s.blif").widths == (2, 2)
    pytest.importorskip("approxlut.circuits.verilog")
    (tmp_path / "s.v").write_bytes(VERILOG_SMALL)
    assert read_netlist(tmp_path / "s.v").widths == (2, 2)


@pytest.mark.parametrize("suffix", [".blif", ".sop", ".v", ".sv"])
@pytest.mark.parametrize(
    "content", [b"", b"   \n\n", b"\x00\x01\x02\xff" * 64, bytes(range(256)), b"\x89PNG\r\n\x1a\n", b"\xef\xbb\xbf"]
)
def test_empty_and_binary_files(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_bytes(content)
    with pytest.raises(ParseError) as info:
        read_netlist(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("suffix", [".blif", ".v"])
def test_missing_file_and_directory(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ParseError, match="no such file"):
        read_netlist(tmp_path / f"missing{suffix}")
    (tmp_path / f"d{suffix}").mkdir()
    with pytest.raises(ParseError, match="directory"):
        read_netlist(tmp_path / f"d{suffix}")
