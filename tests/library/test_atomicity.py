"""Crashes between blob write and commit, interrupted imports, corrupted blobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import LibraryError
from approxlut.library import Library
from approxlut.library.catalogue import Library as CatalogueLibrary
from approxlut.lutgen.simulate import simulate_lut

REPO = Path(__file__).resolve().parents[2]


def test_crash_between_blob_and_commit_leaves_no_half_entry(lib, multiplier, monkeypatch):
    keep = lib.add(simulate_lut(multiplier(4, False), signed=False), name="kept")
    netlist = multiplier(4, False, drop=2)
    lut = simulate_lut(netlist, signed=False)

    def crash(self, *args):
        raise RuntimeError("power cut")

    monkeypatch.setattr(CatalogueLibrary, "_insert_sources", crash)  # (the row inserted, the blob written)
    with pytest.raises(RuntimeError, match="power cut"):
        lib.add(lut, netlist, name="lost")
    monkeypatch.undo()
    assert lib.blobs.path(lut.hash).is_file()  # the orphan blob is there ...
    with Library.open(lib.root) as again:  # ... but the library is readable and has no half entry
        assert [e.name for e in again.query()] == ["kept"]
        assert again.load_lut("kept").hash == keep.hash
        with pytest.raises(LibraryError, match="no multiplier 'lost'"):
            again.entry("lost")
        assert again.clean() == 1
        assert again.blobs.hashes() == {keep.hash}
        entry = again.add(lut, netlist, name="lost")  # adding again works
        assert again.load_lut(entry.name).hash == lut.hash


def test_killed_process_between_blob_and_commit(tmp_path, multiplier):
    """A real crash (``os._exit`` inside the write transaction) leaves a readable library."""
    root = tmp_path / "lib"
    with Library.open(root) as lib:
        lib.add(simulate_lut(multiplier(3, False), signed=False), name="before")
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(REPO / "tests" / "library")!r})
        from conftest import build_multiplier
        from approxlut.library import Library
        from approxlut.library.catalogue import Library as L
        from approxlut.lutgen.simulate import simulate_lut

        def die(self, *args):
            self._db.execute("CREATE TABLE half_done (x)")
            os._exit(3)

        L._insert_sources = die
        lib = Library.open({str(root)!r})
        lib.add(simulate_lut(build_multiplier(3, False, drop=2), signed=False), name="during")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    with Library.open(root) as lib:
        assert [e.name for e in lib.query()] == ["before"]
        assert not lib._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone()
        assert len(lib.blobs.hashes()) == 2  # the orphan
        lib.clean()
        assert len(lib.blobs.hashes()) == 1
        assert lib.load_lut("before").is_exact()


def test_leftover_temporary_files_are_cleaned(lib, multiplier):
    lib.add(simulate_lut(multiplier(3, True), signed=True), name="x")
    tmp = lib.blobs.root / f".{'0' * 64}.12345.tmp"
    tmp.write_bytes(b"half a blob")
    assert lib.clean() == 1 and not tmp.exists()
    assert lib.load_lut("x").is_exact()


def _blob(lib, name):
    return lib.blobs.path(lib.entry(name).hash)


def test_corrupted_blob_is_detected(lib, multiplier):
    lib.add(simulate_lut(multiplier(4, True, drop=1), signed=True), name="victim")
    path = _blob(lib, "victim")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(
        LibraryError, match=r"^blob [0-9a-f]{12} is corrupted: re-import victim \(or run `lutgen library check"
    ):
        lib.load_lut("victim")


def test_truncated_and_missing_blobs_are_reported(lib, multiplier):
    lib.add(simulate_lut(multiplier(4, False, drop=1), signed=False), name="short")
    path = _blob(lib, "short")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LibraryError, match="is corrupted: re-import short"):
        lib.load_lut("short")
    path.unlink()
    with pytest.raises(LibraryError, match="is missing: re-import short"):
        lib.load_lut("short")


def test_blob_with_a_consistent_but_wrong_table_is_detected(lib, multiplier):
    """A well-formed file whose contents do not match its name (hash) or gradient hash."""
    lut = simulate_lut(multiplier(4, False), signed=False)
    lib.add(lut, name="swap")
    path = _blob(lib, "swap")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    forged = dict(arrays, forward=arrays["forward"] + 1)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **forged)
    with pytest.raises(LibraryError, match="is corrupted: re-import swap"):
        lib.load_lut("swap")
    grad = arrays["grad_a"].copy()
    grad[3, 3] += 1
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **dict(arrays, grad_a=grad))
    with pytest.raises(LibraryError, match="is corrupted: re-import swap"):
        lib.load_lut("swap")
    meta = json.loads(str(arrays["meta"]))
    assert meta["blob"]["grad_hash"]
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    assert lib.load_lut("swap").hash == lut.hash


def test_blob_writes_are_atomic_renames(lib, multiplier, monkeypatch):
    """A failure inside the blob write leaves neither a blob nor a temporary file."""
    lut = simulate_lut(multiplier(3, False), signed=False)

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(LibraryError, match=r"cannot write blob .*disk full"):
        lib.add(lut, name="nope")
    monkeypatch.undo()
    assert list(lib.blobs.root.iterdir()) == []
    assert len(lib) == 0


def test_writer_racing_another_writer_reuses_its_row(lib, multiplier, monkeypatch):
    """The existence check before the transaction can be stale; the insert under the lock is not."""
    netlist = multiplier(3, True, drop=1)
    lut = simulate_lut(netlist, signed=True)
    first = lib.add(lut, netlist, name="race")
    monkeypatch.setattr(CatalogueLibrary, "same_circuit", lambda self, **kwargs: None)
    second = lib.add(lut, netlist, name="race", source="other.v", source_sha256="f" * 64)
    assert second.id == first.id and len(lib) == 1
    assert lib.find_source("f" * 64).id == first.id
    assert lib.entry("race").alt_sources == ("other.v",)


def test_busy_library_is_reported(lib, multiplier, monkeypatch):
    monkeypatch.setattr("approxlut.library.catalogue.BUSY_TIMEOUT_S", 0.1)
    other = Library.open(lib.root)
    lib._db.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(LibraryError, match=r"cannot write to the library at .*locked"):
            other.add(simulate_lut(multiplier(3, False), signed=False), name="blocked")
    finally:
        lib._db.execute("ROLLBACK")
        other.close()


def _library_with_a_user_circuit(tmp_path: Path, multiplier) -> tuple[Path, Path]:
    """A library (built-ins and ``mine``), and a circuit file not in it."""
    from click.testing import CliRunner

    from approxlut.circuits.blif import write_blif
    from approxlut.cli import main

    root = tmp_path / "lib"
    (tmp_path / "mine.blif").write_text(write_blif(multiplier(3, False, drop=1)))
    (tmp_path / "new.blif").write_text(write_blif(multiplier(3, False, drop=2)))
    for args in (["init"], ["import", str(tmp_path / "mine.blif")]):
        assert CliRunner().invoke(main, ["library", *args, "--library", str(root)]).exit_code == 0
    return root, tmp_path / "new.blif"


def _library_files(root: Path) -> dict[str, bytes]:
    """The index and table files (SQLite's ``-wal``/``-shm`` left out), the index's log folded in first."""
    import sqlite3

    connection = sqlite3.connect(root / "catalogue.sqlite")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def _refused(root: Path, new: Path) -> dict[str, tuple[int, str]]:
    """``library import``, ``remove`` and ``init`` run against ``root``: exit code and stderr of each."""
    from click.testing import CliRunner

    from approxlut.cli import main

    done = {}
    for args in (["import", str(new)], ["remove", "mine"], ["init"]):
        result = CliRunner().invoke(main, ["library", *args, "--library", str(root)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        done[args[0]] = (result.exit_code, result.stderr)
    return done


def test_an_index_sqlite_will_not_write_is_read_only_not_damaged(tmp_path, multiplier, monkeypatch):
    """Where the folder takes files but SQLite refuses to write the index (SQLITE_READONLY), import, remove and init
    said "the library index ... is damaged (attempt to write a readonly database): run `lutgen library check
    --repair`" (exit 1), advice that sets a sound index aside."""
    from approxlut.library import catalogue

    root, new = _library_with_a_user_circuit(tmp_path, multiplier)
    before = _library_files(root)
    connect = catalogue._connect
    monkeypatch.setattr(catalogue, "_connect", lambda db_path, *, readonly: connect(db_path, readonly=True))
    refusal = (
        f"error: the library at {root} is read-only (lutgen cannot write its folder or its index): make it writable, "
        "or name another library with --library\n"
    )
    assert _refused(root, new) == {command: (2, refusal) for command in ("import", "remove", "init")}
    monkeypatch.undo()
    assert _library_files(root) == before


def test_a_table_folder_that_refuses_writes_is_refused_in_one_line(tmp_path, multiplier, monkeypatch):
    """Tables that cannot be written or deleted (the index writable): `library remove` ended in a traceback
    (PermissionError), `library import` in exit code 1, where a file lutgen cannot write is exit code 2."""
    root, new = _library_with_a_user_circuit(tmp_path, multiplier)
    before = _library_files(root)
    blobs = (root / "blobs").resolve()
    replace, unlink = os.replace, os.unlink

    def refuse(call):
        def guarded(*args, **kwargs):
            target = Path(args[-1] if call is replace else args[0])
            if target.suffix == ".npz" and target.resolve().parent == blobs:
                raise PermissionError(13, "Permission denied", str(target))
            return call(*args, **kwargs)

        return guarded

    monkeypatch.setattr(os, "replace", refuse(replace))
    monkeypatch.setattr(os, "unlink", refuse(unlink))
    done = _refused(root, new)
    monkeypatch.undo()
    for command in ("import", "remove"):
        code, stderr = done[command]
        assert code == 2 and stderr.count("\n") == 1 and "Permission denied" in stderr, (command, stderr)
    assert done["init"] == (0, "")  # (nothing to write: every built-in is there)
    assert _library_files(root) == before
