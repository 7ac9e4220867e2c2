"""Importing files and folders: names, headers, twins, re-import, failures, interruption."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from approxlut.circuits.blif import write_blif
from approxlut.errors import InputError
from approxlut.library import importer
from approxlut.library.catalogue import Library
from approxlut.library.evoapprox import parse_header
from approxlut.library.importer import import_paths, parse_name, walk_paths
from approxlut.lutgen.simulate import simulate_lut

HEADER = """/***
* This code is a part of EvoApproxLib library (ehw.fit.vutbr.cz/approxlib) distributed under The MIT License.
* When used, please cite the following article(s): A. Author, "A paper". Venue, 2020. doi: 10/xyz
***/
// MAE% = 0.0018 %
// MAE = 1.2
// WCE% = 5.24 %
// MSE = 3.8e3
// PDK45_PWR = 0.422 mW
// PDK45_AREA = 711.0 um2
// PDK45_DELAY = 1.48 ns

module mul8s_1KV8 ( A, B, O );
// MAE% = 99 %
"""


def test_parse_header():
    header = parse_header(HEADER)
    assert header.published == {
        "MAE%": "0.0018",
        "MAE": "1.2",
        "WCE%": "5.24",
        "MSE": "3.8e3",
        "PDK45_PWR": "0.422",
        "PDK45_AREA": "711.0",
        "PDK45_DELAY": "1.48",
    }
    assert header.licence == "MIT"
    assert header.citation == 'A. Author, "A paper". Venue, 2020. doi: 10/xyz'
    cost = header.cost()
    assert cost is not None and (cost.power_mw, cost.area_um2, cost.delay_ns) == (0.422, 711.0, 1.48)
    assert cost.power_source == "published"
    plain = parse_header("module m(a, b, y);\n")
    assert not plain.is_evoapprox and plain.cost() is None and plain.licence is None


@pytest.mark.parametrize(
    ("file", "release", "name", "pdk45", "bits", "signed"),
    [
        ("v2022_mul8s_1KV8.v", "v2022", "mul8s_1KV8", False, (8, 8), True),
        ("v1.1_mul8u_1JFF_pdk45.v", "v1.1", "mul8u_1JFF", True, (8, 8), False),
        ("v2022_mul8x4u_1K7.v", "v2022", "mul8x4u_1K7", False, (8, 4), False),
        ("mul12u_2BV.v", "", "mul12u_2BV", False, (12, 12), False),
        ("evoapprox/v1.0/mul16s_GQU.v", "v1.0", "mul16s_GQU", False, (16, 16), True),
        ("my_circuit.blif", "", "my_circuit", False, None, None),
    ],
)
def test_parse_name(file, release, name, pdk45, bits, signed):
    info = parse_name(Path(file))
    assert (info.release, info.name, info.pdk45, info.bits, info.signed) == (release, name, pdk45, bits, signed)


def _write(path: Path, netlist) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(write_blif(netlist))
    return path


def test_import_folder_recursively_and_reimport_is_a_no_op(lib, multiplier, tmp_path):
    src = tmp_path / "src"
    _write(src / "mul4u_exact.blif", multiplier(4, False))
    _write(src / "deep" / "er" / "mul4s_t2.blif", multiplier(4, True, drop=2))
    _write(src / "deep" / "mine.blif", multiplier(3, True, drop=1))
    (src / "notes.txt").write_text("not a netlist")
    summary = import_paths(lib, [src])
    assert not summary.failed and len(summary.added) == 3
    by_name = {e.name: e for e in lib.query()}
    assert set(by_name) == {"mul4u_exact", "mul4s_t2", "mine"}
    assert by_name["mul4s_t2"].signed and not by_name["mul4u_exact"].signed
    assert not by_name["mine"].signed  # no hint: unsigned by default
    assert by_name["mul4u_exact"].origin == "import" and by_name["mul4u_exact"].mae_pct == 0
    assert by_name["mul4u_exact"].source == str((src / "mul4u_exact.blif").resolve())
    assert lib.load_lut("mul4s_t2").hash == simulate_lut(multiplier(4, True, drop=2), signed=True).hash
    again = import_paths(lib, [src])
    assert not again.added and len(again.unchanged) == 3 and len(lib) == 3
    # a copy elsewhere under the same name holds the same bytes: also a no-op (under another name: a new name)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(src / "deep" / "mine.blif", tmp_path / "elsewhere" / "mine.blif")
    assert len(import_paths(lib, [tmp_path / "elsewhere" / "mine.blif"]).unchanged) == 1 and len(lib) == 3


def test_signed_override(lib, multiplier, tmp_path):
    path = _write(tmp_path / "m.blif", multiplier(3, True))
    import_paths(lib, [path], signed=True)
    entry = lib.entry("m")
    assert entry.signed and entry.mae_pct == 0


def test_pdk45_twin_becomes_an_alternative_source(lib, multiplier, tmp_path):
    netlist = multiplier(4, False, drop=3)
    plain = _write(tmp_path / "v2022_mul4u_ABC.blif", netlist)
    twin = tmp_path / "v2022_mul4u_ABC_pdk45.blif"
    twin.write_text("# mapped to cells\n" + write_blif(netlist))  # other bytes, same function
    summary = import_paths(lib, [twin, plain])  # the plain file is taken first whatever the order given
    assert len(summary.added) == 1 and len(summary.merged) == 1
    (entry,) = lib.query()
    assert entry.full_name == "v2022_mul4u_ABC"
    assert entry.source == str(plain.resolve())
    assert entry.alt_sources == (str(twin.resolve()),)
    assert len(import_paths(lib, [tmp_path]).unchanged) == 2


def test_failures_are_collected_and_the_rest_imported(lib, multiplier, tmp_path):
    _write(tmp_path / "good.blif", multiplier(3, False))
    (tmp_path / "bad.blif").write_text(".model bad\n.inputs a\n.outputs y\n.names a y\n1 1\n0 0 0\n.end\n")
    _write(tmp_path / "mul8u_liar.blif", multiplier(3, False, drop=1))
    summary = import_paths(lib, [tmp_path])
    assert [e.name for e in summary.added] == ["good"]
    failed = {p.name: msg for p, msg in summary.failed}
    assert set(failed) == {"bad.blif", "mul8u_liar.blif"}
    assert "bad.blif" in failed["bad.blif"]
    assert "the name says 8x8 but the netlist has 3x3" in failed["mul8u_liar.blif"]


def test_interrupted_import_keeps_committed_files(lib, multiplier, tmp_path, monkeypatch):
    for i in range(4):
        _write(tmp_path / f"m{i}.blif", multiplier(3, False, drop=i))
    real = importer.characterise
    calls = []

    def interrupted(files, **kwargs):
        calls.append(files.primary.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(files, **kwargs)

    monkeypatch.setattr(importer, "characterise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_paths(lib, [tmp_path])
    monkeypatch.undo()
    assert sorted(e.name for e in lib.query()) == ["m0", "m1"]
    summary = import_paths(lib, [tmp_path])  # resuming imports the rest only
    assert len(summary.unchanged) == 2 and sorted(e.name for e in summary.added) == ["m2", "m3"]


def test_the_walk_orders_twins_last(tmp_path):
    for name in ("b_pdk45.v", "b.v", "a.blif", "z.sop", "readme.md"):
        (tmp_path / name).write_text("")
    assert [p.name for p in walk_paths([tmp_path]).files] == ["a.blif", "b.v", "z.sop", "b_pdk45.v"]
    with pytest.raises(Exception, match="no such file or folder"):
        walk_paths([tmp_path / "missing"])


def test_wide_circuit_is_recorded_without_a_table(lib, multiplier, tmp_path, monkeypatch):
    """Above the table limit the importer stores streamed metrics and a sampled function hash."""
    netlist = multiplier(4, False, drop=2)
    expected = simulate_lut(netlist, signed=False).metrics()
    monkeypatch.setattr("approxlut.lutgen.simulate.MAX_LUT_BITS", 6)
    path = _write(tmp_path / "wide.blif", netlist)
    summary = import_paths(lib, [path])
    (entry,) = summary.added
    assert not entry.has_lut and entry.metrics_method == "exhaustive"
    assert entry.mae_pct == pytest.approx(expected.mae_pct) and entry.mse == pytest.approx(expected.mse)
    assert lib.blobs.hashes() == set()
    twin = tmp_path / "wide_pdk45.blif"
    twin.write_text("# twin\n" + path.read_text())
    assert len(import_paths(lib, [twin]).merged) == 1


def test_function_fingerprint_depends_on_the_function(multiplier):
    a = importer.function_fingerprint(multiplier(4, False), signed=False)
    b = importer.function_fingerprint(multiplier(4, False, drop=1), signed=False)
    assert a != b and a == importer.function_fingerprint(multiplier(4, False), signed=False)
    assert np.unique([a, b]).size == 2


def test_date25_text_luts_are_imported_by_content(lib, multiplier, tmp_path):
    from approxlut.lutgen.formats import write_lutfp, write_tfapprox

    lut = simulate_lut(multiplier(4, False, drop=2), signed=False, name="mine")
    folder = tmp_path / "flow"
    folder.mkdir()
    write_lutfp(lut.with_gradients(2), folder / "mine_lutfp+bp_avg_2_2.txt", gradients=True)
    (folder / "notes.txt").write_text("not a table\n")
    unnamed = tmp_path / "table.dat"  # an odd name: the content says what it is
    write_lutfp(lut, unnamed, gradients=False)
    summary = import_paths(lib, [folder, unnamed])
    assert [e.name for e in summary.added] == ["mine", "table"] and not summary.failed  # notes.txt not taken
    mine = lib.entry("mine")
    assert mine.hash == lut.hash and mine.mae_pct == pytest.approx(lut.metrics().mae_pct) and mine.gates is None
    assert np.array_equal(lib.load_lut("mine").forward, lut.forward)
    eight = simulate_lut(multiplier(8, False, drop=5), signed=False, name="tf")
    write_tfapprox(eight, tmp_path / "tf.raw")
    assert [e.hash for e in import_paths(lib, [tmp_path / "tf.raw"]).added] == [eight.hash]
    fresh = tmp_path / "fresh.dat"
    write_lutfp(lut.with_gradients(1), fresh, gradients=True)
    refused = import_paths(lib, [folder / "notes.txt", fresh], signed=True)
    messages = [message for _, message in refused.failed]
    assert "neither a netlist" in messages[0] and "--format" not in messages[0]
    # a table says its kind: --signed is for files that do not, so the table is read as it is, with a warning
    assert len(messages) == 1 and [e.signed for e in refused.added] == [False]
    assert refused.warnings == [
        f"{fresh}: read as unsigned, as its lutfp table says (--signed/--unsigned is for files that do not say)"
    ]


def test_a_name_that_says_its_kind_wins_over_the_option(lib, multiplier, tmp_path):
    """--signed on a folder is for the files whose names do not say; mul4u_ stays unsigned (it was read signed, with
    a wrong MAE and no word)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "mul4u_named.blif").write_text(write_blif(multiplier(4, False)))
    (folder / "plain.blif").write_text(write_blif(multiplier(4, True)))
    summary = import_paths(lib, [folder], signed=True)
    kinds = {e.name: e.signed for e in summary.added}
    assert kinds == {"mul4u_named": False, "plain": True}
    assert lib.entry("mul4u_named").mae_pct == 0  # (exact as unsigned)
    assert summary.warnings == [
        f"{folder / 'mul4u_named.blif'}: read as unsigned, as its name says "
        "(--signed/--unsigned is for files that do not say)"
    ]


def test_npz_files_in_a_folder_are_counted_as_skipped(lib, multiplier, tmp_path):
    from approxlut.lutgen.formats import save_npz

    folder = tmp_path / "in"
    _write(folder / "net.blif", multiplier(4, False))
    (folder / "sub").mkdir()
    table = folder / "sub" / "tab.npz"
    save_npz(simulate_lut(multiplier(4, False, drop=2), signed=False, name="tab"), table)
    summary = import_paths(lib, [folder])
    assert [e.name for e in summary.added] == ["net"]
    assert summary.skipped == [(table, importer.FOLDER_TABLE_SKIPPED)]
    named = import_paths(lib, [folder, table])  # named as well: imported, not skipped
    assert [e.name for e in named.added] == ["tab"] and not named.skipped


def test_planning_reads_each_folder_once(multiplier, tmp_path, monkeypatch):
    """One walk finds the netlists, the ``.npz`` tables to report and the ``meta.json`` files of a tree."""
    import json
    import os

    from approxlut.lutgen.formats import save_npz

    root = _tree(tmp_path / "tree", multiplier)
    (root / "b" / "deep").mkdir()
    save_npz(simulate_lut(multiplier(3, False, drop=1), signed=False, name="tab"), root / "b" / "deep" / "tab.npz")
    (root / "a" / "meta.json").write_text(
        json.dumps([{"instances": [{"name": "d0", "files": [{"file": "mul3u_d0.blif"}]}]}])
    )
    scanned: list[str] = []
    real = os.scandir

    def scandir(path=".", *rest):
        scanned.append(os.fspath(path))
        return real(path, *rest)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", lambda path=".": scanned.append(f"listdir {path}") or [])
    plan = importer.plan_import([root])  # (a twin looked up in a walked folder is found among its walked names)
    assert sorted(scanned) == sorted({os.fspath(d) for d in (root, root / "a", root / "b", root / "b" / "deep")})
    assert plan.skipped == [(root / "b" / "deep" / "tab.npz", importer.FOLDER_TABLE_SKIPPED)]
    assert {c.primary.name: c.meta.name for c in plan.circuits if c.meta} == {"mul3u_d0.blif": "d0"}
    assert len(plan.circuits) == 7 and not plan.warnings


def _tree(root: Path, multiplier) -> Path:
    """A small import tree: circuits, a twin, a copy in a second folder, an alias, a failure."""
    for bits, signed, drop in ((3, False, 0), (3, False, 2), (4, True, 1), (4, False, 3)):
        name = f"mul{bits}{'s' if signed else 'u'}_d{drop}"
        _write(root / "a" / f"{name}.blif", multiplier(bits, signed, drop=drop))
        _write(root / "a" / f"{name}_pdk45.blif", multiplier(bits, signed, drop=drop))
    _write(root / "b" / "mul3u_same.blif", multiplier(3, False, drop=0))  # the table of mul3u_d0
    shutil.copy(root / "a" / "mul3u_d2.blif", root / "b" / "mul3u_d2.blif")
    (root / "b" / "broken.blif").write_text(".model x\n.inputs a\n.names a\n")
    return root


def _import_json(args: list[str], json_output) -> dict:
    from click.testing import CliRunner

    from approxlut.cli import main

    result = CliRunner().invoke(main, ["library", "import", *args, "--json"])
    assert result.exit_code == 2, result.output  # the broken file
    return json_output(result.stdout, "library import")


def _catalogue(folder: Path) -> list[tuple]:
    with Library.open(folder, readonly=True) as lib:
        return [
            (e.full_name, e.hash, e.source, e.alt_sources, e.aliases, e.mae_pct, e.mre_convention, e.gates)
            for e in lib.query()
        ]


def test_small_imports_stay_in_process_with_workers(multiplier, tmp_path, json_output):
    pytest.importorskip("ray")
    src = _tree(tmp_path / "src", multiplier)
    summary = _import_json([str(src), "--library", str(tmp_path / "lib"), "--workers", "2"], json_output)
    limit = importer.RAY_MIN_CIRCUITS
    assert summary["engine"] == f"in-process (7 circuits to characterise: Ray starts for {limit} or more)"
    assert "ray_start" not in summary["timings_s"] and len(summary["failed"]) == 1


@pytest.mark.slow
def test_import_on_two_ray_workers_gives_the_in_process_catalogue(multiplier, tmp_path, json_output, monkeypatch):
    """Characterised on a local Ray instance (lutgen starts it), written by the driver: the same outcome."""
    pytest.importorskip("ray")
    src = _tree(tmp_path / "src", multiplier)
    local = _import_json([str(src), "--library", str(tmp_path / "local")], json_output)
    monkeypatch.setattr(importer, "RAY_MIN_CIRCUITS", 1)
    remote = _import_json([str(src), "--library", str(tmp_path / "ray"), "--workers", "2"], json_output)
    assert local["engine"] == "in-process" and remote["engine"] == "Ray, 2 local workers"
    assert "ray_start" in remote["timings_s"] and "ray_start" not in local["timings_s"]
    for key in ("added", "new_circuits", "added_aliases", "unchanged", "merged", "skipped", "failed"):
        assert remote[key] == local[key], key
    assert local["new_circuits"] == 4 and local["added_aliases"][0]["aliases"] == ["mul3u_d0"]
    assert len(local["merged"]) == 4  # the twins; the copy has the same bytes as its original
    assert local["unchanged"] == [str(src / "b" / "mul3u_d2.blif")]
    assert _catalogue(tmp_path / "ray") == _catalogue(tmp_path / "local")


def test_a_copy_under_another_name_and_an_exported_table_are_recognised(lib, multiplier, tmp_path):
    """A netlist copied under a new name was 'already present' and its name lost; a table exported and imported
    again became a new entry v2022_v2022_... (the release taken twice)."""
    from click.testing import CliRunner

    from approxlut.cli import main

    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "v2022_mul4u_x.blif").write_text(write_blif(multiplier(4, False, drop=2)))
    assert [e.full_name for e in import_paths(lib, [folder]).added] == ["v2022_mul4u_x"]
    shutil.copy(folder / "v2022_mul4u_x.blif", folder / "mine.blif")
    again = import_paths(lib, [folder])
    assert [e.full_name for e in again.added] == ["mine"] and again.aliases  # (a new name for a known table)
    assert not import_paths(lib, [folder]).added
    for fmt in ("npz", "lutfp"):
        out = tmp_path / f"v2022_mul4u_x.{fmt}"
        args = ["library", "export", "v2022_mul4u_x", "--format", fmt, "--out", str(out), "--library", str(lib.root)]
        assert CliRunner().invoke(main, args).exit_code == 0
        back = import_paths(lib, [out])
        assert not back.added and [e.full_name for _, e in back.merged] == ["v2022_mul4u_x"]


def test_reimporting_with_the_other_kind_says_the_entry_stays(lib, multiplier, tmp_path):
    """A file whose name does not say its kind, imported --unsigned, then --signed: 'already present' without a
    word left the user believing it was now signed."""
    path = _write(tmp_path / "plain.blif", multiplier(3, True))
    import_paths(lib, [path], signed=False)
    again = import_paths(lib, [path], signed=True)
    assert not again.added and not lib.entry("plain").signed
    assert again.warnings == [
        f"{path}: imported before as unsigned (plain), so kept as it is; to read it as signed, "
        "`lutgen library remove plain`, then import it again with --signed"
    ]
    lib.remove("plain")
    import_paths(lib, [path], signed=True)
    assert lib.entry("plain").signed


def test_reimporting_unsigned_a_file_whose_ports_say_signed_says_what_works(lib, tmp_path):
    """A file read as signed from its ports, imported again --unsigned, was told to `library remove` it first; but
    then the ports won again. The warning names what does catalogue it as unsigned: a name that says so."""
    path = tmp_path / "smul.v"
    path.write_text(
        "module smul(input signed [3:0] a, input signed [3:0] b, output signed [7:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    import_paths(lib, [path])
    assert import_paths(lib, [path], signed=False).warnings == [
        f"{path}: imported before as signed (smul), as its operand ports are declared signed, so kept as it is: "
        "--signed/--unsigned is for files that do not say, also after `lutgen library remove smul`; to catalogue it "
        "as unsigned, import it under a name that says so, e.g. mul4u_smul.v"
    ]
    lib.remove("smul")
    import_paths(lib, [path], signed=False)
    assert lib.entry("smul").signed  # (removing did not help)
    named = tmp_path / "mul4u_smul.v"
    named.write_text(path.read_text())
    import_paths(lib, [named], signed=False)
    assert not lib.entry("mul4u_smul").signed


def test_reimporting_a_damaged_entry_with_the_other_kind_reads_the_file_once_and_warns_once(lib, tmp_path, monkeypatch):
    """An entry whose table was lost, imported again --unsigned from a file whose ports say signed: the file was parsed
    twice (once only to word the warning) and the import gave two warnings for the one file."""
    import approxlut.circuits.io as io

    path = tmp_path / "smul.v"
    path.write_text(
        "module smul(input signed [3:0] a, input signed [3:0] b, output signed [7:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    import_paths(lib, [path])
    lib.blobs.path(lib.entry("smul").hash).unlink()
    parsed = []
    read_netlist = io.read_netlist
    monkeypatch.setattr(
        io, "read_netlist", lambda *args, **kwargs: parsed.append(args[0]) or read_netlist(*args, **kwargs)
    )
    again = import_paths(lib, [path], signed=False)
    assert [e.name for e in again.repaired] == ["smul"] and lib.entry("smul").signed
    assert parsed == [path]
    assert again.warnings == [
        f"{path}: read as signed, as its ports are declared (--signed/--unsigned is for files that do not say)"
    ]


def test_another_circuit_under_a_held_name_is_refused_saying_how_to_keep_either(lib, tmp_path):
    """`smul.v` edited (ports no longer signed: another table) and imported beside the entry `smul` made a second
    entry `smul`, after which `library remove smul` was ambiguous."""
    first, edited = tmp_path / "a" / "smul.v", tmp_path / "b" / "smul.v"
    first.parent.mkdir()
    edited.parent.mkdir()
    first.write_text(
        "module smul(input signed [3:0] a, input signed [3:0] b, output signed [7:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    edited.write_text(first.read_text().replace("signed ", ""))
    held = import_paths(lib, [first]).added[0]
    summary = import_paths(lib, [edited])
    assert not summary.added and summary.failed == [
        (
            edited,
            f"smul already names another circuit (4x4s, table {held.hash[:10]}, from {first.resolve()}) and a name "
            "holds one table: `lutgen library remove smul` first to replace it, or catalogue this one under another "
            "name (for an import, rename the file)",
        )
    ]
    assert [e.id for e in lib.query()] == [held.id]
    lib.remove("smul")
    assert not import_paths(lib, [edited]).failed and not lib.entry("smul").signed


def test_a_builtin_whose_name_a_users_circuit_holds_is_left_out(lib, multiplier, tmp_path):
    """The built-in set joins a library when a command first reads it: a user's `exact4u` with another table must
    neither stop that nor be doubled by it."""
    from approxlut.library.builtin import install_builtin

    mine = import_paths(lib, [_write(tmp_path / "exact4u.blif", multiplier(4, False, drop=2))]).added[0]
    assert install_builtin(lib, only={"exact4u", "exact4s"}) == [lib.entry("exact4s")]
    assert lib.entry("exact4u") == mine


def test_a_twin_with_an_upper_case_extension_is_still_checked(lib, multiplier, tmp_path):
    """``X.v`` and ``X_PDK45.V`` are one circuit's two files: a twin with another table is refused naming both (the
    case of the extension took it past the check, into a second entry of the same name)."""
    from approxlut.errors import InputError

    _write(tmp_path / "v2022_mul4u_ABC.blif", multiplier(4, False, drop=3))
    _write(tmp_path / "v2022_mul4u_ABC_PDK45.BLIF", multiplier(4, False, drop=1))
    plan = importer.plan_import([tmp_path])
    assert [(c.primary.name, c.twin.name if c.twin else None) for c in plan.circuits] == [
        ("v2022_mul4u_ABC.blif", "v2022_mul4u_ABC_PDK45.BLIF")
    ]
    named = importer.plan_import([tmp_path / "v2022_mul4u_ABC.blif"])  # (named alone, the twin is found too)
    assert [c.twin.name if c.twin else None for c in named.circuits] == ["v2022_mul4u_ABC_PDK45.BLIF"]
    summary = import_paths(lib, [tmp_path])
    assert not summary.added and len(summary.failed) == 1 and len(lib) == 0
    assert "v2022_mul4u_ABC_PDK45.BLIF" in summary.failed[0][1]
    with pytest.raises(InputError):
        importer.characterise(plan.circuits[0])


def test_a_circuit_named_by_meta_json_takes_its_kind_from_that_name(lib, multiplier, tmp_path):
    """A file whose name says nothing, listed in a release's ``meta.json`` as ``mul4s_…``, is read as signed (it
    was read as unsigned, 'mul4s' holding a table far off its own published MAE)."""
    import json

    _write(tmp_path / "circuit_a.blif", multiplier(4, True, drop=1))
    (tmp_path / "meta.json").write_text(
        json.dumps([{"instances": [{"name": "mul4s_KVA", "files": [{"file": "circuit_a.blif"}]}]}])
    )
    summary = import_paths(lib, [tmp_path])
    assert not summary.failed, summary.failed
    entry = lib.entry("mul4s_KVA")
    assert entry.signed and entry.bits_a == 4
    assert entry.hash == simulate_lut(multiplier(4, True, drop=1), signed=True).hash


def test_release_folders_count_from_the_import_root_down(lib, multiplier, tmp_path, monkeypatch):
    """A folder named like a release above the folder imported says nothing: the same file imported by a relative
    and by an absolute path is one entry (it became a second one, 'v3_my_mult'); release folders inside the tree,
    or a named file's own folder, still give the release."""
    _write(tmp_path / "v3" / "d" / "my_mult.blif", multiplier(3, False, drop=1))
    _write(tmp_path / "v3" / "d" / "v1.0" / "mul3u_X.blif", multiplier(3, False, drop=2))
    monkeypatch.chdir(tmp_path / "v3")
    first = import_paths(lib, [Path("d")])
    assert sorted(e.full_name for e in first.added) == ["my_mult", "v1.0_mul3u_X"]
    again = import_paths(lib, [tmp_path / "v3" / "d"])
    assert not again.added and len(again.unchanged) == 2 and len(lib) == 2
    named = importer.plan_import([tmp_path / "v3" / "d" / "v1.0" / "mul3u_X.blif"]).circuits[0]
    assert parse_name(named.primary, named.root).release == "v1.0"


def test_names_that_differ_in_case_alone_are_one_circuit(lib, multiplier, tmp_path):
    """``mul3u_x.blif`` and ``MUL3U_X_pdk45.blif`` are a file and its twin: planned once (they were planned twice,
    characterised twice and reported as merged and already present)."""
    _write(tmp_path / "mul3u_x.blif", multiplier(3, False, drop=1))
    _write(tmp_path / "MUL3U_X_pdk45.blif", multiplier(3, False, drop=1))
    plan = importer.plan_import([tmp_path])
    assert [(c.primary.name, c.twin.name if c.twin else None) for c in plan.circuits] == [
        ("mul3u_x.blif", "MUL3U_X_pdk45.blif")
    ]
    summary = import_paths(lib, [tmp_path])
    assert len(summary.added) == 1 and len(summary.merged) == 1 and not summary.unchanged


def test_one_file_under_several_spellings_is_one_circuit(lib, multiplier, tmp_path, monkeypatch):
    """A file named relatively, absolutely, through a link and inside a folder also given, with its twin named by
    another spelling, is one circuit with one twin (it was characterised once per spelling and reported as twins
    merged and already present)."""
    folder = tmp_path / "d"
    folder.mkdir()
    plain = _write(folder / "v2022_mul3u_X.blif", multiplier(3, False, drop=1))
    twin = _write(folder / "v2022_mul3u_X_pdk45.blif", multiplier(3, False, drop=1))
    (tmp_path / "link.blif").symlink_to(plain)
    monkeypatch.chdir(folder)
    given = [Path("v2022_mul3u_X.blif"), plain, tmp_path / "link.blif", folder, tmp_path / "d" / ".." / "d" / twin.name]
    plan = importer.plan_import(given)
    assert [(c.primary.name, c.twin.name if c.twin else None) for c in plan.circuits] == [
        ("v2022_mul3u_X.blif", "v2022_mul3u_X_pdk45.blif")
    ]
    summary = import_paths(lib, given)
    assert len(summary.added) == 1 and len(summary.merged) == 1 and not summary.unchanged


def test_verilog_ports_declared_signed_say_the_kind(lib, tmp_path):
    """Ports declared ``signed`` say what the file multiplies, as a name does: --unsigned does not override them."""
    path = tmp_path / "smul.v"
    path.write_text(
        "module smul(input signed [3:0] a, input signed [3:0] b, output signed [7:0] y);\n"
        "  assign y = a * b;\nendmodule\n"
    )
    summary = import_paths(lib, [path], signed=False)
    entry = lib.entry("smul")
    assert entry.signed and entry.mae_pct == 0
    assert summary.warnings == [
        f"{path}: read as signed, as its ports are declared (--signed/--unsigned is for files that do not say)"
    ]
    named = tmp_path / "mul4u_x.v"
    named.write_text(path.read_text())
    assert import_paths(lib, [named]).warnings == [
        f"{named}: read as unsigned, as its name says, though its operand ports are declared signed"
    ]


def test_a_text_lut_of_one_row_is_refused_and_the_catalogue_stays_sound(lib, tmp_path):
    """A table with a 0-bit operand was catalogued as a row the library then read as damaged, failing every command."""
    path = tmp_path / "zero_lutfp.txt"
    path.write_text("LUT for approximate multiplier:\n0 0 0\n")
    summary = import_paths(lib, [path])
    assert [p for p, _ in summary.failed] == [path] and "at least 2" in summary.failed[0][1]
    assert len(lib.query()) == len(lib)  # every row still reads


@pytest.mark.parametrize(("line", "value"), [("PDK45_PWR = 0.422", "-5"), ("PDK45_DELAY = 1.48", "1e400")])
def test_a_published_cost_that_is_negative_or_infinite_is_refused(lib, corpus, tmp_path, line, value):
    """A header claiming -5 mW put the circuit at the cheap end of every Pareto front (1e400 mW gave no power)."""
    assert line in HEADER
    header = parse_header(HEADER.replace(line, line.split("=")[0] + f"= {value}"))
    with pytest.raises(InputError, match=f"{line.split()[0]} = {value}: .*finite number"):
        header.cost()
    src = corpus / "evoapprox" / "8x8" / "v1.0_mul8u_96D.v"
    key = line.split()[0]
    text = "\n".join(
        f"// {key} = {value} {rest.split()[-1]}" if rest.startswith(f"// {key} ") else rest
        for rest in src.read_text().splitlines()
    )
    path = tmp_path / src.name
    path.write_text(text + "\n")
    summary = import_paths(lib, [path])
    assert [p for p, _ in summary.failed] == [path] and f"{key} = {value}" in summary.failed[0][1]
