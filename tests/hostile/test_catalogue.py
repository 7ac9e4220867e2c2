"""A damaged library index is an error naming the file, never a new library; no table is deleted while the
index cannot account for it; ``library check --repair`` mends what it can and says what it cannot."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from approxlut.library.catalogue import DB_NAME

from .conftest import MUL2_BLIF, assert_clean, blob_files, run, strict_json


def _zero(db: Path) -> None:
    db.write_bytes(b"")


def _garbage(db: Path) -> None:
    db.write_bytes(random.Random(1).randbytes(8192))


def _text(db: Path) -> None:
    db.write_text("this is not a database\n" * 100)


def _foreign(db: Path) -> None:
    db.unlink()
    with sqlite3.connect(db) as other:
        other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO customers VALUES (1, 'x')")


def _empty_sqlite(db: Path) -> None:
    db.unlink()
    sqlite3.connect(db).execute("PRAGMA user_version = 1").connection.close()


def _truncated(db: Path) -> None:
    db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2])


def _header_only(db: Path) -> None:
    db.write_bytes(db.read_bytes()[:100])


def _flipped(seed: int) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        data = bytearray(db.read_bytes())
        rng = random.Random(seed)
        page = 4096
        for _ in range(8):  # spoil bytes in pages after the first (the header stays valid)
            at = rng.randrange(page, len(data))
            data[at] ^= 0xFF
        db.write_bytes(bytes(data))

    return damage


def _zeroed_page(index: int) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        data = bytearray(db.read_bytes())
        page = 4096
        start = min(index * page, len(data) - page)
        data[start : start + page] = bytes(page)
        db.write_bytes(bytes(data))

    return damage


def _newer_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO migrations VALUES (99, 'future')")


def _no_entries_table(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DROP TABLE sources")
        conn.execute("DROP TABLE entries")


def _directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def _wal_garbage(db: Path) -> None:
    Path(str(db) + "-wal").write_bytes(random.Random(2).randbytes(5000))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "0 bytes": _zero,
    "random bytes": _garbage,
    "text file": _text,
    "foreign SQLite": _foreign,
    "empty SQLite": _empty_sqlite,
    "truncated half": _truncated,
    "header only": _header_only,
    "flipped bytes 1": _flipped(1),
    "flipped bytes 2": _flipped(2),
    "zeroed page 2": _zeroed_page(1),
    "zeroed page 5": _zeroed_page(4),
    "newer schema": _newer_schema,
    "entries table dropped": _no_entries_table,
    "a directory": _directory,
    "garbage write-ahead log": _wal_garbage,
}

COMMANDS: dict[str, list[str]] = {
    "list": ["library", "list", "--json"],
    "show": ["library", "show", "exact8s", "--json"],
    "pareto": ["library", "pareto", "--json"],
    "export": ["library", "export", "exact8s", "--out", "{tmp}/x.npz"],
    "import": ["library", "import", "{tmp}/new.blif"],
    "remove": ["library", "remove", "trunc8s_k6"],
    "init": ["library", "init"],
    "check": ["library", "check", "--json"],
    "check --repair": ["library", "check", "--repair", "--json"],
}


def _checkpoint(library: Path) -> None:
    """Fold the write-ahead log into the main file so that damage to the file is damage to the data
    (closing the last connection also removes the ``-wal`` and ``-shm`` files)."""
    conn = sqlite3.connect(library / DB_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert not Path(f"{library / DB_NAME}-shm").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_never_loses_tables(tmp_path: Path, library: Path, damage: str, command: str) -> None:
    _checkpoint(library)
    (tmp_path / "new.blif").write_text(MUL2_BLIF.replace("mul2", "newmul"))
    tables = blob_files(library)
    DAMAGE[damage](library / DB_NAME)
    args = [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[command]]
    result = run([*args, "--library", library])
    assert_clean(result)
    after = blob_files(library)
    if command != "remove" or result.exit_code != 0:
        assert after >= tables, f"tables deleted: {sorted(tables - after)[:3]}"
    if result.exit_code == 0 and "--json" in args and result.stdout.strip():
        strict_json(result.stdout)
    if damage in ("0 bytes", "random bytes", "text file", "foreign SQLite") and command in ("list", "import", "init"):
        assert result.exit_code != 0 and DB_NAME in result.stderr  # an error naming the file, not a new library


@pytest.mark.parametrize("damage", ["0 bytes", "random bytes", "truncated half", "zeroed page 2", "flipped bytes 1"])
def test_repair_then_every_reading_command_works(library: Path, damage: str) -> None:
    _checkpoint(library)
    tables = blob_files(library)
    DAMAGE[damage](library / DB_NAME)
    repaired = run(["library", "check", "--repair", "--library", library, "--json"])
    assert_clean(repaired, 0, 1)
    report = strict_json(repaired.stdout)
    assert report["findings"], "the damage went unnoticed"
    assert blob_files(library) >= tables
    for args in (["library", "list", "--json"], ["library", "show", "exact8s"]):
        assert_clean(run([*args, "--library", library]), 0)
    again = run(["library", "check", "--json", "--library", library])
    assert_clean(again, 0, 1)
    left = [f["problem"] for f in strict_json(again.stdout)["findings"] if not f["fixed"]]
    assert all("kept, because a damaged index" in problem for problem in left), left


def test_garbage_index_then_import_keeps_every_table(tmp_path: Path, library: Path) -> None:
    """The reported loss: a garbage index was taken for a new library and the next import deleted 94 tables."""
    _checkpoint(library)
    tables = blob_files(library)
    (library / DB_NAME).write_bytes(b"")
    (tmp_path / "new.blif").write_text(MUL2_BLIF.replace("mul2", "newmul"))
    result = run(["library", "import", tmp_path / "new.blif", "--library", library])
    assert_clean(result, 1)
    assert "is empty (0 bytes)" in result.stderr and str(library / DB_NAME) in result.stderr
    assert blob_files(library) == tables
    assert (library / DB_NAME).stat().st_size == 0  # left as found


def test_check_of_an_unreadable_index_counts_the_tables_on_disk(library: Path) -> None:
    """It said '0 tables' beside 60 table files, and advised --repair twice in one line."""
    _checkpoint(library)
    tables = blob_files(library)
    (library / DB_NAME).write_bytes(b"garbage")
    shown = run(["library", "check", "--library", library])
    assert_clean(shown, 1)
    assert shown.stdout.endswith(f"damaged; index not read, {len(tables)} tables\n") and tables
    assert shown.stdout.count("--repair") == 1
    assert strict_json(run(["library", "check", "--json", "--library", library]).stdout)["table_files"] == len(tables)


def test_missing_index_beside_tables_is_not_a_new_library(library: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(library / DB_NAME) + suffix).unlink(missing_ok=True)
    tables = blob_files(library)
    result = run(["library", "list", "--library", library])
    assert_clean(result, 1)
    assert "is missing" in result.stderr and blob_files(library) == tables
    check = run(["library", "check", "--repair", "--library", library])
    assert_clean(check, 1)
    assert blob_files(library) == tables


# ----------------------------------------------------------------------------------------- rows


ROW_DAMAGE: dict[str, str] = {
    "params not JSON": "UPDATE entries SET params = '{broken' WHERE name = 'trunc8s_k6'",
    "published a list": "UPDATE entries SET published = '[1, 2]' WHERE name = 'trunc8s_k6'",
    "params deeply nested": f"UPDATE entries SET params = '{'[' * 100_000}{']' * 100_000}' WHERE name = 'trunc8s_k6'",
    "width is text": "UPDATE entries SET bits_a = 'eight' WHERE name = 'trunc8s_k6'",
    "hash is a number": "UPDATE entries SET hash = 12345 WHERE name = 'trunc8s_k6'",
    "metric is text": "UPDATE entries SET mae_pct = 'lots' WHERE name = 'trunc8s_k6'",
    "name is a blob": "UPDATE entries SET name = X'00FF' WHERE name = 'trunc8s_k6'",
    "negative width": "UPDATE entries SET bits_b = -3 WHERE name = 'trunc8s_k6'",
    "text not UTF-8": "UPDATE entries SET mre_convention = CAST(X'6E6FFF' AS TEXT) WHERE name = 'trunc8s_k6'",
    "user text not UTF-8": "UPDATE entries SET origin = CAST(X'FF' AS TEXT) WHERE name = 'mul2'",
    "source path not UTF-8": "UPDATE sources SET path = CAST(X'2FFF' AS TEXT)",
    "half window hash not UTF-8": "INSERT INTO half_windows VALUES (CAST(X'FF' AS TEXT), '{}', 'now')",
    "dangling source": "INSERT INTO sources VALUES ('00', '/x.v', 99999, 'primary')",
    "half window not JSON": "INSERT INTO half_windows VALUES ('ab', '{{{', 'now')",
    "half window deeply nested": "INSERT INTO half_windows VALUES ('ab', '" + "[" * 50_000 + "]" * 50_000 + "', 'now')",
}


def _damage_rows(library: Path, sql: str) -> None:
    with sqlite3.connect(library / DB_NAME) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(sql)


@pytest.mark.parametrize("command", ["list", "show", "pareto", "check", "check --repair"])
@pytest.mark.parametrize("damage", list(ROW_DAMAGE))
def test_damaged_rows_are_one_line_and_repairable(library: Path, damage: str, command: str) -> None:
    _damage_rows(library, ROW_DAMAGE[damage])
    tables = blob_files(library)
    args = [a.replace("{tmp}", "/nonexistent") for a in COMMANDS[command]]
    result = run([*args, "--library", library])
    assert_clean(result)
    assert blob_files(library) >= tables
    if command == "check --repair":
        assert_clean(run(["library", "list", "--json", "--library", library]), 0)
        again = run(["library", "check", "--json", "--library", library])
        assert_clean(again, 0, 1)
        left = [f["problem"] for f in strict_json(again.stdout)["findings"] if not f["fixed"]]
        assert all("kept, because a damaged index" in p or "is missing" in p for p in left), left


def test_a_built_in_row_of_unreadable_text_is_added_again(library: Path) -> None:
    """Text that is not UTF-8 (a flipped byte in a text column) failed every query, ``check --repair`` included,
    which advised itself; the row goes, and a built-in circuit comes back as it was."""
    _damage_rows(library, ROW_DAMAGE["text not UTF-8"])
    assert_clean(run(["library", "list", "--library", library]), 1)
    repaired = run(["library", "check", "--repair", "--json", "--library", library])
    assert_clean(repaired, 0)
    (finding,) = strict_json(repaired.stdout)["findings"]
    assert "not UTF-8" in finding["problem"] and "added the built-in circuit again" in finding["problem"]
    shown = strict_json(run(["library", "show", "trunc8s_k6", "--json", "--library", library]).stdout)
    assert shown["origin"] == "builtin" and shown["mre_convention"] == "nonzero"


# ---------------------------------------------------------------------------------------- blobs


def _blob_of(library: Path, name: str) -> Path:
    from approxlut.library import Library

    with Library.open(library, readonly=True) as lib:
        return lib.blobs.path(lib.entry(name).hash)


BLOB_DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: p.unlink(),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "flipped": lambda p: p.write_bytes(bytes(b ^ (0xFF if i % 97 == 50 else 0) for i, b in enumerate(p.read_bytes()))),
    "empty": lambda p: p.write_bytes(b""),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
    "a pipe": lambda p: (p.unlink(), os.mkfifo(p)),
    "link to /dev/zero": lambda p: (p.unlink(), p.symlink_to("/dev/zero")),
}


@pytest.mark.parametrize("command", ["show --plot", "export", "check", "check --repair", "reimport", "remove+import"])
@pytest.mark.parametrize("damage", list(BLOB_DAMAGE))
def test_damaged_tables_are_reported_and_repaired(tmp_path: Path, library: Path, damage: str, command: str) -> None:
    source = Path(strict_json(run(["library", "show", "mul2", "--json", "--library", library]).stdout)["source"])
    blob = _blob_of(library, "mul2")
    BLOB_DAMAGE[damage](blob)
    lib = ["--library", str(library)]
    if command == "show --plot":
        result = run(["library", "show", "mul2", "--plot", tmp_path / "h.png", *lib])
        assert_clean(result, 1)
        return
    if command == "export":
        assert_clean(run(["library", "export", "mul2", "--out", tmp_path / "x.npz", *lib]), 1)
        return
    if command == "check":
        result = run(["library", "check", "--json", *lib])
        assert_clean(result, 1)
        assert not strict_json(result.stdout)["healthy"]
        return
    if command == "remove+import":
        assert_clean(run(["library", "remove", "mul2", *lib]), 0)
        assert_clean(run(["library", "remove", "mul2v", *lib]), 0)
    if command == "check --repair":
        assert_clean(run(["library", "check", "--repair", *lib]), 0)
    else:
        shutil.rmtree(blob) if blob.is_dir() and not blob.is_symlink() else blob.unlink(missing_ok=True)
        imported = run(["library", "import", source, "--json", *lib])
        assert_clean(imported, 0)
    assert_clean(run(["library", "export", "mul2", "--out", tmp_path / "x.npz", *lib]), 0)
    assert_clean(run(["library", "check", *lib]), 0)


def test_reimport_repairs_a_corrupted_table_in_place(tmp_path: Path, library: Path) -> None:
    """The reported trap: re-import said 'unchanged' and left the corrupt file."""
    lib = ["--library", str(library)]
    source = Path(strict_json(run(["library", "show", "mul2", "--json", *lib]).stdout)["source"])
    blob = _blob_of(library, "mul2")
    blob.write_bytes(blob.read_bytes()[:200])
    imported = run(["library", "import", source, "--json", *lib])
    assert_clean(imported, 0)
    assert strict_json(imported.stdout)["repaired"] == ["mul2"]
    assert_clean(run(["library", "export", "mul2", "--out", tmp_path / "x.npz", *lib]), 0)


def test_check_repair_rebuilds_builtin_tables(library: Path) -> None:
    lib = ["--library", str(library)]
    blob = _blob_of(library, "trunc8s_k6")
    blob.unlink()
    result = run(["library", "check", "--repair", "--json", *lib])
    assert_clean(result, 0)
    assert any("rebuilt" in f["problem"] for f in strict_json(result.stdout)["findings"])
    assert blob.is_file()


def test_orphans_are_removed_only_by_repair_of_a_sound_index(library: Path) -> None:
    lib = ["--library", str(library)]
    orphan = library / "blobs" / f"{'ab' * 32}.npz"
    orphan.write_bytes(b"whatever")
    tmp = library / "blobs" / ".leftover.npz.123.tmp"
    tmp.write_bytes(b"half")
    assert_clean(run(["library", "import", Path(os.devnull).parent / "nonexistent", *lib]), 2)
    assert_clean(run(["library", "init", *lib]), 0)
    assert orphan.exists() and tmp.exists()  # no command but check --repair deletes files
    assert_clean(run(["library", "check", *lib]), 1)
    assert orphan.exists()
    assert_clean(run(["library", "check", "--repair", *lib]), 0)
    assert not orphan.exists() and not tmp.exists()


# ------------------------------------------------------------------------------------- read-only


def _read_only(library: Path) -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    """Run lutgen with ``library`` unwritable: permissions for users, a read-only bind mount for root."""
    from .conftest import run_process

    if os.geteuid() != 0:
        for path in [library, *library.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return lambda args: run_process([*args, "--library", str(library)])
    if shutil.which("unshare") is None:
        pytest.skip("no unshare to make a read-only mount as root")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here")

    def runner(args: list[str]) -> subprocess.CompletedProcess[str]:
        import shlex
        import sys

        command = " ".join(
            shlex.quote(a)
            for a in [sys.executable, "-c", "from approxlut.cli import main; main()", *args, "--library", str(library)]
        )
        script = f"mount --bind {library} {library} && mount -o remount,ro,bind {library} && {command}"
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)

    return runner


@pytest.mark.parametrize(
    "args",
    [
        ["library", "list", "--json"],
        ["library", "show", "exact8s", "--json"],
        ["library", "pareto", "--json"],
        ["library", "check", "--json"],
    ],
    ids=["list", "show", "pareto", "check"],
)
def test_a_read_only_library_can_be_read(library: Path, args: list[str]) -> None:
    _checkpoint(library)
    done = _read_only(library)(args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    strict_json(done.stdout)


def _files(library: Path) -> dict[str, bytes]:
    """The library's index and table files by name (not SQLite's ``-wal``/``-shm``, which a reader may create)."""
    return {
        str(path.relative_to(library)): path.read_bytes()
        for path in sorted(library.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


@pytest.mark.parametrize(
    "args", [["library", "import", "NEW"], ["library", "remove", "mul2"], ["library", "init"]], ids=lambda a: a[1]
)
def test_each_write_to_a_read_only_library_is_refused_as_such(library: Path, tmp_path: Path, args: list[str]) -> None:
    """They said "the library index ... is damaged (unable to open database file): run `lutgen library check
    --repair`" (exit 1): wrong, and the advice would set the sound index aside."""
    _checkpoint(library)
    (tmp_path / "new.blif").write_text(MUL2_BLIF.replace("mul2", "newmul"))
    before = _files(library)
    done = _read_only(library)([str(tmp_path / "new.blif") if a == "NEW" else a for a in args])
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: the library at {library} is read-only (lutgen cannot write its folder or its index): make it "
        "writable, or name another library with --library\n"
    )
    assert _files(library) == before


def test_a_read_only_library_refuses_writes_in_one_line(library: Path, tmp_path: Path) -> None:
    _checkpoint(library)
    (tmp_path / "new.blif").write_text(MUL2_BLIF.replace("mul2", "newmul"))
    done = _read_only(library)(["library", "import", str(tmp_path / "new.blif")])
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
