"""fileio: atomic writes leave nothing behind on failure, folders made or refused, JSON nesting and size limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from approxlut.errors import ParseError, WriteError
from approxlut.fileio import atomic_write, atomic_write_text, check_writable, make_dirs, parse_json, read_bytes


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")

    def fail(handle: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)  # type: ignore[arg-type]
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["t.txt"]


def test_targets_are_checked(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        check_writable(tmp_path / "no" / "x")
    with pytest.raises(WriteError, match="is a directory"):
        atomic_write_text(tmp_path, "x")
    assert check_writable(tmp_path / "deep" / "x", make_parents=True) == tmp_path / "deep" / "x"
    assert os.listdir(tmp_path / "deep") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"file/sub: cannot create the folder"):
        make_dirs(tmp_path / "file" / "sub")


def test_json_in() -> None:
    assert parse_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    with pytest.raises(ParseError, match="nested 65 levels"):
        parse_json("[" * 65 + "]" * 65, "x")
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000, "x")
    with pytest.raises(ParseError, match=r"^x: invalid JSON: NaN is not a JSON number"):
        parse_json('{"a": NaN}', "x")


def test_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, limit=100) == b"x" * 100
    with pytest.raises(ParseError, match="at most 99 bytes"):
        read_bytes(path, limit=99)
