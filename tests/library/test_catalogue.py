"""The catalogue: round trips, lookups, filters, sorting, duplicates, migrations, configuration."""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import ConfigError, LibraryError, LibraryUsageError, NameTakenError
from approxlut.fileio import new_file_mode
from approxlut.library import Cost, Library
from approxlut.library.catalogue import DB_NAME, MIGRATIONS, column, create_index, numeric_column, numeric_names
from approxlut.library.config import library_dir
from approxlut.lutgen.simulate import simulate_lut, simulate_metrics


def _add(lib, multiplier, bits, signed, drop=0, *, name=None, release="", cost=None):
    netlist = multiplier(bits, signed, drop=drop)
    lut = simulate_lut(netlist, signed=signed)
    return lib.add(lut, netlist, name=name or netlist.name, release=release, cost=cost)


def test_round_trip_add_query_load(lib, multiplier):
    netlist = multiplier(6, True, drop=3)
    lut = simulate_lut(netlist, signed=True, name="t6s")
    entry = lib.add(lut, netlist, name="t6s", cost=Cost(0.1, 200.0, 1.0, "estimated"), licence="MIT")
    assert (entry.name, entry.bits_a, entry.bits_b, entry.signed) == ("t6s", 6, 6, True)
    assert entry.hash == lut.hash and entry.has_lut
    assert entry.gates == netlist.gate_count()
    metrics = lut.metrics()
    assert entry.mae_pct == pytest.approx(metrics.mae_pct) and entry.mae_pct > 0
    assert entry.ep_pct == pytest.approx(metrics.ep_pct)
    assert entry.bias == pytest.approx(metrics.bias)
    assert (entry.power_mw, entry.area_um2, entry.delay_ns, entry.power_source) == (0.1, 200.0, 1.0, "estimated")
    assert [e.id for e in lib.query()] == [entry.id]
    loaded = lib.load_lut("t6s")
    assert np.array_equal(loaded.forward, lut.forward) and loaded.signed and loaded.hash == lut.hash
    reference = lut.with_gradients(8)
    assert loaded.grad_a is not None and loaded.grad_b is not None
    assert np.array_equal(loaded.grad_a, reference.grad_a) and np.array_equal(loaded.grad_b, reference.grad_b)
    bare = lib.load_lut("t6s", gradients=False)
    assert bare.grad_a is None and bare.grad_b is None and "half_window" not in bare.meta
    other = lib.load_lut("t6s", half_window=2)
    assert np.array_equal(other.grad_b, lut.with_gradients(2).grad_b)
    # survives closing and reopening
    lib.close()
    with Library.open(lib.root) as again:
        assert again.entry("t6s") == entry
        assert np.array_equal(again.load_lut(entry.hash[:8]).forward, lut.forward)


def test_lookup_by_name_release_and_hash(lib, multiplier):
    old = _add(lib, multiplier, 4, True, 0, name="mul4s_X", release="v1.1")
    new = _add(lib, multiplier, 4, True, 2, name="mul4s_X", release="v2022")
    assert lib.entry("v1.1_mul4s_X") == old
    assert lib.entry("v2022_mul4s_X") == new
    assert lib.entry(new.hash[:6]) == new
    with pytest.raises(LibraryError, match=r"ambiguous: v1\.1_mul4s_X .*v2022_mul4s_X"):
        lib.entry("mul4s_X")
    with pytest.raises(LibraryError, match="ambiguous"):
        lib.load_lut("mul4s_X")
    with pytest.raises(LibraryError, match=r"no multiplier 'mul4s_Y'.*did you mean mul4s_X"):
        lib.entry("mul4s_Y")
    # an entry without a release is named by its name alone, however many releases share the name
    plain = _add(lib, multiplier, 4, True, 1, name="mul4s_X")
    assert lib.entry("mul4s_X") == plain and lib.load_lut("mul4s_X").hash == plain.hash


def test_a_name_holds_one_table(lib, multiplier):
    """A second table under a held release and name made two entries of one full name, which no name could then
    tell apart (`remove smul` was ambiguous); it is refused, and nothing of it is written."""
    held = _add(lib, multiplier, 4, True, 0, name="smul")
    message = (
        f"^smul already names another circuit \\(4x4s, table {held.hash[:10]}\\) and a name holds one table: "
        "`lutgen library remove smul` first to replace it, or catalogue this one under another name "
        "\\(for an import, rename the file\\)$"
    )
    with pytest.raises(NameTakenError, match=message):
        _add(lib, multiplier, 4, False, 0, name="smul")
    metrics = simulate_lut(multiplier(4, False), signed=False).metrics()
    with pytest.raises(NameTakenError, match=r"^smul already names another circuit"):
        lib.add_untabulated(name="smul", bits=(12, 12), signed=False, function_hash="f" * 64, metrics=metrics)
    assert [e.id for e in lib.query()] == [held.id] and lib.blobs.hashes() == {held.hash}
    assert _add(lib, multiplier, 4, False, 0, name="smul", release="v2").full_name == "v2_smul"  # (another release)


def test_two_entries_of_one_full_name_are_told_apart_by_hash(lib, multiplier):
    """A library written before names were kept unique may hold two `smul`: the release prefix cannot help."""
    one = _add(lib, multiplier, 4, True, 0, name="smul")
    two = _add(lib, multiplier, 4, False, 0, name="other")
    lib._db.execute("UPDATE entries SET name = 'smul' WHERE id = ?", (two.id,))
    lib._db.commit()
    listing = f"smul \\({one.hash[:10]}\\), smul \\({two.hash[:10]}\\)"
    with pytest.raises(LibraryError, match=f"^'smul' is ambiguous: {listing}; use a hash prefix$"):
        lib.remove("smul")
    assert lib.remove(two.hash[:10]).id == two.id and lib.entry("smul").id == one.id


def test_a_builtin_whose_row_lost_its_hash_is_replaced_by_check_repair(lib):
    """Repair added the built-in again beside its damaged row: two entries of one name, one of them still broken."""
    from approxlut.library.builtin import install_builtin
    from approxlut.library.check import check_library

    install_builtin(lib, only={"exact4u"})
    lib._db.execute("UPDATE entries SET hash = '12345' WHERE name = 'exact4u'")
    lib._db.commit()
    report = check_library(lib.root, repair=True)
    assert report.healthy and [f.problem for f in report.findings] == [
        "the table of exact4u (12345) is missing; rebuilt it"
    ]
    assert [e.name for e in lib.query()] == ["exact4u"] and lib.intact(lib.entry("exact4u"))


def test_same_table_under_two_names_shares_one_blob(lib, multiplier):
    a = _add(lib, multiplier, 4, False, 0, name="exact4u")
    b = _add(lib, multiplier, 4, False, 0, name="mul4u_copy", release="v1.0")
    assert a.id != b.id and a.hash == b.hash
    assert lib.blobs.hashes() == {a.hash}
    # a hash prefix names two entries but one table: loading is fine, the entry is ambiguous
    assert lib.load_lut(a.hash[:10]).is_exact()
    with pytest.raises(LibraryError, match=r"ambiguous: exact4u .*, v1\.0_mul4u_copy .* hold one table; name one"):
        lib.entry(a.hash[:10])
    lib.remove("mul4u_copy")
    assert lib.blobs.hashes() == {a.hash}
    lib.remove("exact4u")
    assert lib.blobs.hashes() == set() and len(lib) == 0


def test_filters_and_sort(lib, multiplier):
    e1 = _add(lib, multiplier, 4, False, 0, cost=Cost(0.30, 10.0, 1.0))
    e2 = _add(lib, multiplier, 4, False, 3, cost=Cost(0.10, 5.0, 1.0))
    e3 = _add(lib, multiplier, 4, True, 2)  # no cost
    e4 = _add(lib, multiplier, 3, False, 1, cost=Cost(0.05, 2.0, 0.5))
    assert {e.id for e in lib.query(bits=4)} == {e1.id, e2.id, e3.id}
    assert {e.id for e in lib.query(bits=(3, 3))} == {e4.id}
    assert {e.id for e in lib.query(signed=True)} == {e3.id}
    assert {e.id for e in lib.query(signed=False, bits=4)} == {e1.id, e2.id}
    assert {e.id for e in lib.query(max_mae=0.0)} == {e1.id}
    limit = e2.mae_pct
    assert all(e.mae_pct <= limit for e in lib.query(max_mae=limit))
    assert [e.id for e in lib.query(sort="power")] == [e4.id, e2.id, e1.id, e3.id]  # unknown power last
    assert [e.id for e in lib.query(sort="-power")] == [e1.id, e2.id, e4.id, e3.id]
    maes = [e.mae_pct for e in lib.query(sort="mae")]
    assert maes == sorted(maes)
    with pytest.raises(ConfigError, match="unknown column 'speed'"):
        lib.query(sort="speed")


def test_a_metric_sorts_by_the_column_the_tables_show(lib, multiplier):
    """``--sort wce`` orders by WCE %, as ``mae`` by MAE % and ``max_wce`` bounds WCE %: across widths the
    absolute worst case (``wce``, reachable as ``wce_abs``) orders otherwise."""
    entries = [_add(lib, multiplier, bits, False, drop) for bits, drop in ((3, 1), (4, 3), (5, 4), (6, 6))]
    by_pct = [e.id for e in sorted(entries, key=lambda e: e.wce_pct)]
    by_abs = [e.id for e in sorted(entries, key=lambda e: e.wce)]
    assert by_pct != by_abs and len({e.wce_pct for e in entries}) == len({e.wce for e in entries}) == 4
    assert [e.id for e in lib.query(sort="wce")] == by_pct == [e.id for e in lib.query(sort="wce_pct")]
    assert [e.id for e in lib.query(sort="wce_abs")] == by_abs
    assert [e.id for e in lib.query(sort="-wce")] == by_pct[::-1]
    for short in ("mae", "wce", "mre", "wcre", "ep"):
        assert column(short) == numeric_column(short) == f"{short}_pct"
    assert "wce_abs" in numeric_names() and "wce" in numeric_names()


def test_cost_from_the_power_model_counts_as_estimated(lib, multiplier):
    from approxlut.synth.power import estimate_cost

    netlist = multiplier(4, False, drop=2)
    cost = estimate_cost(netlist)
    entry = lib.add(simulate_lut(netlist, signed=False), netlist, name="est", cost=cost)
    assert entry.power_source == "estimated" and cost.power_mw > 0
    assert entry.power_mw == pytest.approx(cost.power_mw)
    assert entry.area_um2 == pytest.approx(cost.area_um2) and entry.delay_ns == pytest.approx(cost.delay_ns)


def test_duplicate_add_is_a_no_op(lib, multiplier):
    netlist = multiplier(4, True, drop=1)
    lut = simulate_lut(netlist, signed=True)
    first = lib.add(lut, netlist, name="d4")
    blob = lib.blobs.path(lut.hash)
    stamp = blob.stat().st_mtime_ns
    second = lib.add(lut, netlist, name="d4")
    assert first == second and len(lib) == 1
    assert blob.stat().st_mtime_ns == stamp


def test_untabulated_entry_has_metrics_but_no_table(lib, multiplier):
    netlist = multiplier(4, False, drop=2)
    metrics = simulate_metrics(netlist, signed=False, samples=4096)
    entry = lib.add_untabulated(
        name="wide", bits=(4, 4), signed=False, function_hash="ab" * 32, metrics=metrics, gates=netlist.gate_count()
    )
    assert not entry.has_lut and entry.metrics_method.startswith("monte-carlo")
    assert entry.mae_pct == pytest.approx(metrics.mae_pct)
    with pytest.raises(LibraryError, match="metrics only"):
        lib.load_lut("wide")
    assert lib.blobs.hashes() == set()


def test_migrations_are_recorded_once(tmp_path):
    with Library.open(tmp_path) as lib:
        assert lib.schema_version() == MIGRATIONS[-1][0]
    with Library.open(tmp_path) as lib:
        assert lib.schema_version() == MIGRATIONS[-1][0]
    rows = sqlite3.connect(tmp_path / DB_NAME).execute("SELECT version FROM migrations").fetchall()
    assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS]


def test_an_old_library_gains_the_half_window_table_and_imports_the_json_once(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr("approxlut.library.catalogue.MIGRATIONS", MIGRATIONS[:1])
        with Library.open(tmp_path) as old:
            assert old.schema_version() == 1
    legacy = tmp_path / "half_windows.json"
    text = json.dumps({"ab" * 32: {"half_window": 4, "losses": {"4": 0.5}}, "ef" * 32: "not a choice"})
    legacy.write_text(text)
    with Library.open(tmp_path) as lib:
        assert lib.schema_version() == MIGRATIONS[-1][0]
        assert lib.half_window_choice("ab" * 32) == {"half_window": 4, "losses": {"4": 0.5}}
        assert lib.half_window_choice("ef" * 32) is None
        lib.store_half_window_choice("ab" * 32, {"half_window": 16})
    assert legacy.read_text() == text  # left for whoever still reads it
    legacy.write_text(json.dumps({"ab" * 32: {"half_window": 4}, "cd" * 32: {"half_window": 2}}))
    with Library.open(tmp_path) as lib:
        assert lib.half_window_choice("ab" * 32) == {"half_window": 16}  # the newer choice stays
        assert lib.half_window_choice("cd" * 32) is None  # imported once only


def test_an_older_library_named_by_option_passes_the_up_front_check(tmp_path, monkeypatch):
    """evaluate/retrain/bench check --library before their work, read-only: an older schema is no reason to refuse
    (the command's own opening upgrades it); a missing library is."""
    from approxlut.cli import _require_library

    with monkeypatch.context() as patch:
        patch.setattr("approxlut.library.catalogue.MIGRATIONS", MIGRATIONS[:1])
        Library.open(tmp_path / "old").close()
    _require_library(tmp_path / "old")
    with pytest.raises(SystemExit) as refused:
        _require_library(tmp_path / "absent")
    assert refused.value.code == 2


def test_a_damaged_half_windows_json_imports_nothing(tmp_path):
    (tmp_path / "half_windows.json").write_text('{"ab": {"half_window": ')
    with Library.open(tmp_path) as lib:
        assert lib.schema_version() == MIGRATIONS[-1][0]
        assert lib._db.execute("SELECT COUNT(*) FROM half_windows").fetchone()[0] == 0
        lib._db.execute("INSERT INTO half_windows VALUES ('cd', '[1, 2', 'now')")
        assert lib.half_window_choice("cd") is None


def test_only_the_opening_that_created_the_index_says_so(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        assert lib.created
    assert (tmp_path / "lib" / DB_NAME).stat().st_mode & 0o777 == new_file_mode()  # (0600 from mkstemp before)
    with Library.open(tmp_path / "lib") as lib:
        assert not lib.created
    index = (tmp_path / "lib" / DB_NAME).stat().st_ino
    # two processes that both found no index: the second one's is not linked, the first one's stays
    assert create_index(tmp_path / "lib") is False
    assert (tmp_path / "lib" / DB_NAME).stat().st_ino == index
    assert [p.name for p in (tmp_path / "lib").iterdir() if p.name.startswith(f".{DB_NAME}")] == []


def test_newer_schema_is_refused(tmp_path):
    Library.open(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("INSERT INTO migrations VALUES (999, 'future')")
    with pytest.raises(LibraryError, match="schema version 999, newer than this lutgen"):
        Library.open(tmp_path)


def test_wal_mode_and_concurrent_reader(lib, multiplier):
    entry = _add(lib, multiplier, 4, False, 1)
    assert lib._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = Library.open(lib.root)
    lib._db.execute("BEGIN IMMEDIATE")  # a writer holding the lock ...
    lib._db.execute("UPDATE entries SET gates = 0")
    try:
        assert reader.entry(entry.name).gates == entry.gates  # ... does not block readers, who see committed data
        assert reader.load_lut(entry.name).hash == entry.hash
    finally:
        lib._db.execute("ROLLBACK")
        reader.close()


def test_unreadable_index_is_reported(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError, match="unreadable"):
        Library.open(tmp_path)


def test_location_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("LUTGEN_LIBRARY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert library_dir() == tmp_path / "xdg" / "lutgen" / "library"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert library_dir() == tmp_path / "home" / ".local" / "share" / "lutgen" / "library"
    monkeypatch.setenv("LUTGEN_LIBRARY", str(tmp_path / "env"))
    assert library_dir() == tmp_path / "env"
    assert library_dir(tmp_path / "flag") == tmp_path / "flag"
    with Library.open() as lib:
        assert lib.root == Path(tmp_path / "env") and (lib.root / DB_NAME).is_file()


def test_wide_tables_are_stored_without_gradients_as_deflated_row_deltas(lib, multiplier, monkeypatch):
    """Wide tables (limits lowered here: gradients up to 6 bits, flat up to 16 entries) keep a row-delta forward."""
    monkeypatch.setattr("approxlut.library.catalogue.GRADIENT_MAX_BITS", 6)
    monkeypatch.setattr("approxlut.library.blobs.COMPRESS_MAX_ENTRIES", 16)
    netlist = multiplier(7, True, drop=2)
    lut = simulate_lut(netlist, signed=True)
    lib.add(lut, netlist, name="big")
    blob = lib.blobs.path(lut.hash)
    with np.load(blob) as data:
        assert sorted(data.files) == ["forward_delta", "meta"]
    with zipfile.ZipFile(blob) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert blob.stat().st_size < lut.forward.nbytes / 10
    loaded = lib.load_lut("big")
    assert np.array_equal(loaded.forward, lut.forward)
    assert np.array_equal(loaded.grad_a, lut.with_gradients(8).grad_a)


def test_mre_convention_is_stored_and_old_entries_read_as_nonzero(tmp_path, multiplier):
    lut = simulate_lut(multiplier(4, False, drop=2), signed=False, name="t4")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("approxlut.library.catalogue.MIGRATIONS", MIGRATIONS[:3])
        with Library.open(tmp_path) as old:  # an entry written by a lutgen without the column
            old._db.execute(
                "INSERT INTO entries (name, bits_a, bits_b, signed, hash, has_lut, origin, created, mre_pct) "
                "VALUES ('old', 4, 4, 0, 'abcd', 0, 'user', 'then', 1.5)"
            )
    from approxlut.library.check import check_library

    assert check_library(tmp_path).healthy  # a library of the previous schema is upgraded, not called damaged
    with Library.open(tmp_path) as lib:
        assert lib.entry("old").mre_convention == "nonzero"
        lib.add(lut)
        legacy = lut.metrics(mre_convention="max1")
        entry = lib.add(lut, name="t4_8b", metrics=legacy)
        assert entry.mre_convention == "max1" and entry.mre_pct == pytest.approx(legacy.mre_pct)
        assert entry.mre_pct != lib.entry("t4").mre_pct
        # one table, two names: each lists the other
        assert entry.aliases == ("t4",) and lib.entry("t4").aliases == ("t4_8b",)
        assert lib.entry("t4").to_dict()["aliases"] == ["t4_8b"]


def test_sampled_figures_are_explained_not_silently_kept(lib, multiplier):
    from dataclasses import replace

    from rich.console import Console

    from approxlut.library.render import difference_notes, entries_table
    from approxlut.lutgen.simulate import simulate_lut

    entry = lib.add(simulate_lut(multiplier(3, False, drop=2), signed=False, name="m"), name="m")
    published = {"WCE%": "0.41", "MRE%": "2.07", "EP%": f"{entry.ep_pct:.2f}"}
    exhaustive = replace(entry, published=published, wce_pct=0.38, mre_pct=2.06)
    assert set(exhaustive.published_differences()) == {"wce_pct", "mre_pct"} and not exhaustive.sampled_differences()
    sampled = replace(exhaustive, metrics_method="monte-carlo (4194304 samples, seed 0)")
    assert not sampled.published_differences() and set(sampled.sampled_differences()) == {"wce_pct", "mre_pct"}
    wce, mre = difference_notes(sampled)
    assert wce.startswith("wce_pct = 0.38 is the largest in the sample, a lower bound (monte-carlo (4194304 samples")
    assert wce.endswith("published 0.41") and mre.startswith("mre_pct = 2.06 is a sampled estimate")
    console = Console(record=True, width=200)
    console.print(entries_table([sampled]))
    text = console.export_text()
    assert "≥0.38" in text and "a lower bound" in text


def test_one_opening_policy(tmp_path, monkeypatch, multiplier):
    """Named and absent: the user's mistake (exit code 2, who named it); damaged or foreign: an error naming the
    file, never a new library; an absent index beside tables: an error even where creating is allowed."""
    absent = tmp_path / "absent"
    for call in (lambda: Library.open(absent, create=False), lambda: Library.open(absent, readonly=True)):
        with pytest.raises(LibraryUsageError, match=r"no library at .*absent \(named by --library\)") as error:
            call()
        assert error.value.exit_code == 2
    monkeypatch.setenv("LUTGEN_LIBRARY", str(absent))
    with pytest.raises(LibraryUsageError, match=r"named by \$LUTGEN_LIBRARY"):
        Library.open_default()
    assert not absent.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / DB_NAME).execute("CREATE TABLE t (x)").connection.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / DB_NAME).write_bytes(b"")
    for root in (foreign, empty):
        for call in (lambda r=root: Library.open(r), lambda r=root: Library.open_default(r)):
            with pytest.raises(LibraryError, match=re.escape(str(root / DB_NAME))) as error:
                call()
            assert error.value.exit_code == 1 and not isinstance(error.value, LibraryUsageError)
    orphaned = tmp_path / "orphaned"
    with Library.open(orphaned) as lib:
        _add(lib, multiplier, 3, False)
    (orphaned / DB_NAME).unlink()
    for create in (True, False):
        with pytest.raises(LibraryError, match=r"is missing but .* holds 1 tables") as error:
            Library.open(orphaned, create=create)
        assert not isinstance(error.value, LibraryUsageError)
    assert not (orphaned / DB_NAME).exists()


def test_built_ins_a_user_removed_stay_removed_and_an_interrupted_install_completes(tmp_path, monkeypatch):
    """The built-in set joins a library the first time a command reads it; one the user emptied of built-ins got
    the whole set back at every reading command, and an install interrupted after its first circuit was never
    completed (any built-in counted as installed)."""
    from approxlut.library import builtin

    real_add, added = Library.add, []

    def interrupted(self, *args, **kwargs):
        if added:
            raise KeyboardInterrupt
        added.append(kwargs["name"])
        return real_add(self, *args, **kwargs)

    Library.open(tmp_path).close()
    with monkeypatch.context() as patch:
        patch.setattr(Library, "add", interrupted)
        with pytest.raises(KeyboardInterrupt), Library.open_default(tmp_path):
            pass
    with Library.open(tmp_path) as lib:
        assert [e.name for e in lib.query()] == added and not lib.builtin_installed()
    with Library.open_default(tmp_path) as lib:  # completed
        names = {e.name for e in lib.query()}
        assert len(names) > 10 and lib.builtin_installed()
        for name in names:
            lib.remove(name)
    with Library.open_default(tmp_path) as lib:
        assert lib.query() == []
        assert {e.name for e in builtin.install_builtin(lib)} == names  # (`lutgen library init` adds them back)


def test_an_older_library_with_built_ins_counts_them_installed(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr("approxlut.library.catalogue.MIGRATIONS", MIGRATIONS[:4])
        patch.setattr(Library, "builtin_installed", lambda self: False)  # (that version had no record)
        patch.setattr(Library, "mark_builtin_installed", lambda self: None)
        Library.open(tmp_path).close()
        with Library.open_default(tmp_path) as old:
            removed = old.remove("exact8s")
    with Library.open_default(tmp_path) as lib:
        assert lib.builtin_installed() and removed.name not in {e.name for e in lib.query()}
