"""``lutgen library ...`` through click's CliRunner, each with ``--library`` in a temporary folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from approxlut.circuits.blif import write_blif
from approxlut.cli import main
from approxlut.errors import ConfigError
from approxlut.library import Library
from approxlut.library.pareto import pareto_front_reference
from approxlut.schema import json_schema
from approxlut.synth.builtin import builtin_circuits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["library", *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(*args: str) -> dict:
    """``lutgen library ARGS --json``: the object, validated against the command's schema."""
    result = run(*args, "--json")
    data = json.loads(result.stdout)
    jsonschema.validate(data, json_schema(f"library {args[0]}"))
    return data


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    """A library holding the built-in set, created by `library init`."""
    root = tmp_path_factory.mktemp("cli") / "lib"
    run("init", "--library", str(root))
    listed = run_json("list", "--library", str(root))["entries"]
    assert len(listed) == len(builtin_circuits()) and {e["origin"] for e in listed} == {"builtin"}
    return root


def test_a_mistyped_library_is_refused_not_created(tmp_path, monkeypatch, multiplier):
    typo = tmp_path / "libary"
    site = str(tmp_path / "site")
    for args in (["list"], ["show", "exact8s"], ["pareto"], ["report", site], ["remove", "x"], ["check"]):
        refused = run(*args, "--library", str(typo), ok=False)
        assert refused.exit_code == 2, refused.output
        assert refused.output == (
            f"error: no library at {typo} (named by --library); check the path, or create one there with "
            f"`lutgen library init --library {typo}`\n"
        )
    for args in (  # commands that read the library deep inside, or not at all for these arguments
        ["evaluate", "--model", "lenet5", "--assign", "exact"],
        ["retrain", "--model", "lenet5", "--assign", "exact"],
        ["bench", "--quick", "--no-networks"],
    ):
        refused = CliRunner().invoke(main, [*args, "--library", str(typo)])
        assert refused.exit_code == 2 and refused.output.startswith(f"error: no library at {typo} (named by --library)")
    monkeypatch.setenv("LUTGEN_LIBRARY", str(typo))
    from_env = run("list", ok=False)
    assert from_env.exit_code == 2 and "(named by $LUTGEN_LIBRARY)" in from_env.output
    assert not typo.exists()
    (tmp_path / "m.blif").write_text(write_blif(multiplier(3, False)))
    imported = run("import", str(tmp_path / "m.blif"))
    assert f"created a new library at {typo} (the built-in set joins it when a command next reads it" in imported.output
    empty = run("list", "--bits", "3", "--signed")
    assert f"no multipliers match in the library at {typo}" in empty.output
    monkeypatch.delenv("LUTGEN_LIBRARY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the default location is created on first use
    assert len(run_json("list")["entries"]) == len(builtin_circuits())


def test_init_is_idempotent(initialised):
    with Library.open(initialised) as lib:
        before = len(lib)
    data = run_json("init", "--library", str(initialised))
    assert data["builtin_entries"] == before and data["library"] == str(initialised)
    with Library.open(initialised) as lib:
        assert len(lib) == before
        for name in ("exact8s", "exact8u", "exact4s", "exact4u"):
            entry = lib.entry(name)
            assert entry.mae_pct == 0 and entry.origin == "builtin"
            assert entry.power_source == "estimated" and entry.power_mw > 0


def test_init_says_which_builtins_a_users_entry_kept_out(tmp_path, multiplier):
    """A user's circuit catalogued under a built-in's name keeps it: init leaves that built-in out, and says so
    (it said nothing, and counted one built-in fewer)."""
    root = tmp_path / "lib"
    (tmp_path / "exact4u.blif").write_text(write_blif(multiplier(4, False, drop=2)))
    run("import", "--library", str(root), str(tmp_path / "exact4u.blif"))
    with Library.open(root) as lib:
        mine = lib.entry("exact4u")
    why = (
        f"the library's exact4u is another circuit (origin import, table {mine.hash[:10]}) and a name holds one "
        "table: `lutgen library remove exact4u`, then `lutgen library init`, to add the built-in"
    )
    text = run("init", "--library", str(root))
    assert f"left out the built-in exact4u: {why}\n" in text.stdout
    data = run_json("init", "--library", str(root))
    assert data["left_out"] == [{"name": "exact4u", "reason": why}]
    assert data["builtin_entries"] == len(builtin_circuits()) - 1
    with Library.open(root) as lib:
        assert lib.entry("exact4u") == mine
    quiet = run_json("init", "--library", str(tmp_path / "fresh"))
    assert quiet["left_out"] == [] and quiet["builtin_entries"] == len(builtin_circuits())


def test_list_filters_and_sorts(initialised):
    lib = str(initialised)
    everything = run_json("list", "--library", lib)["entries"]
    assert len(everything) == len(builtin_circuits())
    chosen = run_json("list", "--library", lib, "--bits", "8", "--signed", "--max-mae", "0.2", "--sort", "power")[
        "entries"
    ]
    assert chosen and all(e["bits_a"] == e["bits_b"] == 8 and e["signed"] and e["mae_pct"] <= 0.2 for e in chosen)
    expected = sorted(
        (e for e in everything if e["bits_a"] == 8 and e["signed"] and e["mae_pct"] <= 0.2),
        key=lambda e: e["power_mw"],
    )
    assert [e["power_mw"] for e in chosen] == [e["power_mw"] for e in expected]
    unsigned = run_json("list", "--library", lib, "--unsigned", "--sort", "-mae")["entries"]
    assert all(not e["signed"] for e in unsigned)
    assert [e["mae_pct"] for e in unsigned] == sorted((e["mae_pct"] for e in unsigned), reverse=True)
    table = run("list", "--library", lib, "--bits", "8", "--family", "exact").output
    assert "exact8u" in table and "exact8s" in table and "exact4u" not in table
    bad = run("list", "--library", lib, "--bits", "eight", ok=False)
    assert bad.exit_code == 2
    wrong = run("list", "--library", lib, "--sort", "speed", ok=False)
    assert wrong.exit_code == 2 and "error: unknown column 'speed'" in wrong.output


def test_sort_keys_filter_keys_and_table_columns_agree(initialised):
    """``--sort wce`` orders by the WCE% column the table shows and ``max_wce`` bounds, across widths too."""
    lib = str(initialised)
    for short, key in (("mae", "mae_pct"), ("wce", "wce_pct"), ("ep", "ep_pct"), ("wce_abs", "wce")):
        values = [e[key] for e in run_json("list", "--library", lib, "--sort", short)["entries"]]
        assert values == sorted(values), short
    by_pct = [e["wce_pct"] for e in run_json("list", "--library", lib, "--sort", "wce_abs")["entries"]]
    assert by_pct != sorted(by_pct)  # (the built-ins span widths: the absolute order is another one)
    bounded = run_json("list", "--library", lib, "--filter", "max_wce=1", "--sort", "-wce")["entries"]
    assert bounded and bounded[0]["wce_pct"] <= 1 and any(e["wce"] > 1 for e in bounded)
    front = run_json("pareto", "--library", lib, "--x", "wce", "--y", "wce_abs", "--bits", "8")
    assert (front["x"], front["y"]) == ("wce_pct", "wce")
    # the table and plot show the column asked for (the key 'wce' was looked up again as the name 'wce': WCE %)
    text = run("pareto", "--library", lib, "--x", "wce_abs", "--y", "power", "--bits", "8", "--unsigned").output
    assert "minimising wce and power_mw" in text
    cells = [line.strip("│ ").split() for line in text.splitlines() if "trunc8u" in line]
    shown = {row[0]: float(row[2]) for row in cells}  # (name │ wce │ power)
    assert shown and all(value == run_json("show", name, "--library", lib)["wce"] for name, value in shown.items())


@pytest.mark.parametrize("command", [("list", "--sort"), ("pareto", "--x")])
def test_the_help_names_every_column_name(command):
    from approxlut.library.catalogue import COLUMN_ALIASES

    name, option = command
    text = " ".join(run(name, "--help").output.split())
    shown = text.split(option, 1)[1]
    words = set(re.findall(r"[\w%]+", shown))
    for alias in COLUMN_ALIASES:  # (whole words: 'power' inside 'power_mw' would not count)
        assert alias in words or alias == "wce%", alias  # ('wce%' is the heading WCE% typed as a name)
    assert "wce_abs (max |error|, JSON key wce)" in shown and "mae, wce, mre, wcre, ep in percent" in shown


def test_show_and_heatmap(initialised, tmp_path):
    lib = str(initialised)
    data = run_json("show", "exact8s", "--library", lib)
    assert data["full_name"] == "exact8s" and data["mae_pct"] == 0 and data["signed"]
    out = run("show", "trunc8u_k6", "--library", lib, "--plot", str(tmp_path / "heat.png")).output
    assert "trunc8u_k6" in out and "mae_pct" in out
    png = (tmp_path / "heat.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 1000
    missing = run("show", "exact9s", "--library", lib, ok=False)
    assert missing.exit_code == 2 and missing.output.startswith("error: no multiplier 'exact9s'")  # as a bad model


def test_pareto(initialised, tmp_path):
    lib = str(initialised)
    data = run_json("pareto", "--library", lib, "--x", "power", "--y", "mae", "--bits", "8")
    assert (data["x"], data["y"]) == ("power_mw", "mae_pct")
    assert [front["kind"] for front in data["fronts"]] == ["8x8u", "8x8s"]  # one front per kind, never mixed
    with Library.open(initialised) as library:
        for front in data["fronts"]:
            kind = library.query(bits=8, signed=front["kind"].endswith("s"))
            expected = [e.full_name for e in pareto_front_reference(kind, "power", "mae")]
            assert [e["full_name"] for e in front["front"]] == expected and len(expected) >= 3
            assert front["total"] == len(kind)
    everything = run_json("pareto", "--library", lib)
    assert [f["kind"] for f in everything["fronts"]][:3] == ["4x4u", "4x4s", "5x5u"]  # widths in numeric order
    assert sum(f["total"] for f in everything["fronts"]) == everything["total"] == len(builtin_circuits())
    out = run("pareto", "--library", lib, "--x", "area", "--y", "wce", "--plot", str(tmp_path / "front.png")).output
    assert "Pareto front of the 4x4u multipliers" in out and "Pareto front of the 8x8s multipliers" in out
    assert (tmp_path / "front-8x8s.png").read_bytes()[:8] == PNG_SIGNATURE and not (tmp_path / "front.png").exists()
    single = run("pareto", "--library", lib, "--bits", "8", "--signed", "--plot", str(tmp_path / "one.png")).output
    assert f"wrote {tmp_path / 'one.png'}" in single


@pytest.mark.parametrize("option", ["--x", "--y"])
@pytest.mark.parametrize("name", ["name", "origin", "family", "release", "created", "bogus"])
def test_pareto_takes_numeric_columns_only(initialised, option, name):
    result = run("pareto", "--library", str(initialised), option, name, ok=False)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # not a ValueError
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"'{name}' is " in line and "numeric columns: area" in line
    assert "name" not in line.split("numeric columns:")[1]


def test_pareto_fronts_refuse_text_columns(initialised):
    with Library.open(initialised) as lib, pytest.raises(ConfigError, match="a text column, not a numeric one"):
        pareto_front_reference(lib.query(), "name", "mae")


def test_export_and_report(initialised, tmp_path):
    lib = str(initialised)
    out = tmp_path / "t.bin"
    run("export", "trunc8u_k6", "--library", lib, "--format", "tfapprox", "--out", str(out))
    assert out.stat().st_size == 65536 * 2
    run("export", "exact8u", "--library", lib, "--format", "lutfp", "--out", str(tmp_path / "e_lutfp.txt"))
    assert (tmp_path / "e_lutfp.txt").read_text().count("\n") > 65536
    bad = run("export", "exact8s", "--library", lib, "--format", "tfapprox", "--out", str(tmp_path / "s.bin"), ok=False)
    assert bad.exit_code != 0 and bad.output.startswith("error:")
    said = run("report", str(tmp_path / "report"), "--library", lib, "--no-downloads").output
    index = tmp_path / "report" / "index.html"
    assert said.startswith(f"wrote {index} ({len(builtin_circuits())} circuit pages, ")
    assert index.resolve().as_uri() in said
    page = index.read_text()
    assert page.count("<tr class=") == len(builtin_circuits())
    assert ">exact8s</a></td>" in page and "plots/power-mae-8x8u.png" in page
    assert not list((tmp_path / "report").rglob("*.npz"))
    data = run_json("report", str(tmp_path / "r2"), "--library", lib, "--no-downloads", "--filter", "bits=8,unsigned")
    assert data["out"] == str(tmp_path / "r2" / "index.html") and data["filter"] == "bits=8,unsigned"
    assert data["plots"] == [str(tmp_path / "r2" / "plots" / "power-mae-8x8u.png")]
    assert data["pages"] > 0 and data["written_bytes"] > 0


def test_import_and_remove(tmp_path, multiplier):
    lib = str(tmp_path / "lib")
    src = tmp_path / "src"
    src.mkdir()
    (src / "mul4u_t1.blif").write_text(write_blif(multiplier(4, False, drop=1)))
    (src / "mine.blif").write_text(write_blif(multiplier(3, True)))
    data = run_json("import", str(src), "--library", lib)
    assert sorted(data["added"]) == ["mine", "mul4u_t1"] and not data["failed"]
    again = run_json("import", str(src), "--library", lib)
    assert not again["added"] and len(again["unchanged"]) == 2
    signed = run_json("import", str(src / "mine.blif"), "--library", str(tmp_path / "l2"), "--signed")
    assert signed["added"] == ["mine"]
    (src / "broken.blif").write_text(".model x\n.inputs a\n.bogus\n")
    failed = run("import", str(src), "--library", lib, ok=False)
    assert failed.exit_code == 2 and "broken.blif" in failed.output
    assert "1 file(s) could not be imported; the others were" in failed.output
    assert f"failed: {src / 'broken.blif'}:3" in failed.output and failed.output.count("broken.blif") == 1
    alone = run("import", str(src / "broken.blif"), "--library", lib, ok=False)
    assert "1 file(s) could not be imported; no other file was imported" in alone.output
    assert "removed mine" in run("remove", "mine", "--library", lib).output
    with Library.open(lib) as library:
        assert [e.name for e in library.query()] == ["mul4u_t1"]


def test_import_prints_no_progress_residue_where_stdout_is_not_a_terminal(tmp_path, multiplier):
    """The progress bar goes to stderr and is off off a terminal: stdout holds the summary alone (no blank line)."""
    (tmp_path / "m.blif").write_text(write_blif(multiplier(3, False)))
    lib = str(tmp_path / "lib")
    result = run("import", str(tmp_path / "m.blif"), "--library", lib)
    assert result.stdout.startswith("created a new library at "), repr(result.stdout)
    assert result.stdout.splitlines()[1].startswith("1 added (1 new circuits"), repr(result.stdout)
    assert result.stderr == ""


def test_library_from_environment(tmp_path, monkeypatch, multiplier):
    monkeypatch.setenv("LUTGEN_LIBRARY", str(tmp_path / "env"))
    (tmp_path / "m.blif").write_text(write_blif(multiplier(3, False)))
    run("import", str(tmp_path / "m.blif"))
    with Library.open(tmp_path / "env") as lib:
        assert lib.entry("m").mae_pct == 0


def test_calibrate(corpus):
    data = run_json("calibrate", str(corpus / "evoapprox"))
    assert data["circuits"] == 68 and data["spearman"] >= 0.9 and 0 <= data["median_relative_error"] < 1
    text = run("calibrate", str(corpus / "evoapprox"), "--bits", "7").output
    assert "over 18 circuits: Spearman" in text
    missing = run("calibrate", str(corpus / "date25"), ok=False)
    assert missing.exit_code != 0 and missing.output.startswith("error:")
    none = run("calibrate", str(corpus / "evoapprox"), "--bits", "4", ok=False)  # (it said 'only 0 ... estimated')
    assert none.exit_code == 2 and "lists no circuits of 4x4 with published power" in none.output


def test_one_filter_language_for_list_pareto_report_and_candidates(initialised, tmp_path):
    from approxlut.nn.evaluate import parse_candidates

    lib = str(initialised)
    by_options = run_json("list", "--library", lib, "--bits", "8", "--signed", "--family", "trunc", "--max-mae", "0.2")
    by_text = run_json("list", "--library", lib, "--filter", "bits=8,signed,family=trunc,max-mae=0.2")
    names = [e["name"] for e in by_options["entries"]]
    assert names == [e["name"] for e in by_text["entries"]] == ["trunc8s_k4", "trunc8s_k6", "trunc8s_k7c"]
    assert by_options["filter"] == by_text["filter"] == "bits=8,signed,family=truncated,max_mae=0.2"
    filter_, _ = parse_candidates(by_options["filter"])  # evaluate --candidates reads the same text
    with Library.open(initialised) as library:
        assert [e.name for e in filter_.select(library)] == names
    bam = run_json("list", "--library", lib, "--family", "bam", "--bits", "7")["entries"]
    assert [e["name"] for e in bam] == ["bam7u_h1v4"]  # the built-ins' name prefix names the family
    assert run_json("list", "--library", lib, "--origin", "evoapprox")["entries"] == []  # valid: none here
    powered = run_json("pareto", "--library", lib, "--filter", "unsigned,max_power=0.2")
    assert all(e["power_mw"] <= 0.2 and not e["signed"] for f in powered["fronts"] for e in f["front"])
    for command in (["list"], ["pareto"], ["report", str(tmp_path / "r")]):
        wrong = run(*command, "--library", lib, "--family", "trnc", ok=False)
        assert wrong.exit_code == 2 and "unknown family 'trnc' (valid: broken_array (bam), drum," in wrong.output
        field = run(*command, "--library", lib, "--filter", "speed=3", ok=False)
        assert field.exit_code == 2 and "unknown field 'speed' (fields: signed, unsigned, bits=," in field.output
        origin = run(*command, "--library", lib, "--origin", "evo", ok=False)
        assert origin.exit_code == 2 and "unknown origin 'evo' (valid: builtin, evoapprox, import" in origin.output
    twice = run("list", "--library", lib, "--bits", "8", "--filter", "bits=4", ok=False)
    assert twice.exit_code == 2 and "bits is given twice (bits=8 and bits=4)" in twice.output
    said = run("report", str(tmp_path / "few"), "--library", lib, "--filter", "bits=5", "--no-downloads").output
    assert said.startswith(f"wrote {tmp_path / 'few' / 'index.html'} (4 circuit pages, 0 plots")


def test_check_and_repair_in_json(tmp_path, multiplier, json_output):
    """`library check --json` and the `repaired` list of `library import --json`, in the shared schema."""
    lib = ["--library", str(tmp_path / "lib")]
    source = tmp_path / "m.blif"
    source.write_text(write_blif(multiplier(3, False)))
    imported = run_json("import", str(source), *lib)
    assert imported["added"] == ["m"] and imported["repaired"] == [] and imported["library_created"]
    sound = run_json("check", *lib)
    assert sound["healthy"] and not sound["repair"] and sound["findings"] == []
    assert sound["index_entries"] == sound["table_files"] == 1
    with Library.open(tmp_path / "lib", readonly=True) as library:
        blob = library.blobs.path(library.entry("m").hash)
    blob.write_bytes(b"damaged")
    damaged = run("check", *lib, "--json", ok=False)
    assert damaged.exit_code == 1
    found = json_output(damaged.stdout, "library check")
    assert not found["healthy"] and [f["fixed"] for f in found["findings"]] == [False]
    assert found["findings"][0]["advice"]
    mended = run_json("check", "--repair", *lib)
    assert mended["healthy"] and mended["repair"] and [f["fixed"] for f in mended["findings"]] == [True]
    assert mended["findings"][0]["advice"] is None
    blob.write_bytes(b"damaged again")
    again = run_json("import", str(source), *lib)
    assert again["repaired"] == ["m"] and again["added"] == [] and not again["library_created"]


@pytest.mark.parametrize("value", ["1_0", "\uff18", " 1_0 "])
def test_numbers_are_decimal_digits_in_options_and_filters_alike(initialised, value: str) -> None:
    """float() reads '1_0' as 10 and a full-width '８' as 8: an option and a filter refuse both, as they refuse
    'abc', rather than bound the list by a number the user did not type."""
    option = run("list", "--library", str(initialised), "--max-mae", value, ok=False)
    assert option.exit_code == 2 and "is not a number" in option.output
    bound = run("list", "--library", str(initialised), "--filter", f"max_mae={value.strip()}", ok=False)
    assert bound.exit_code == 2 and "needs a non-negative number" in bound.output


def test_a_sort_key_takes_one_minus(initialised) -> None:
    """``--sort -mae`` is descending; ``---mae`` was too (the dashes were stripped), now it is refused."""
    names = [e["name"] for e in run_json("list", "--library", str(initialised), "--sort", "-mae")["entries"]]
    ascending = [e["name"] for e in run_json("list", "--library", str(initialised), "--sort", "mae")["entries"]]
    assert names and names != ascending
    result = run("list", "--library", str(initialised), "--sort", "---mae", ok=False)
    assert result.exit_code == 2 and "unknown column '--mae'" in result.output


def test_wce_is_an_integer_in_library_json(initialised) -> None:
    """The absolute worst-case error is an integer of product units, as ``sim --json`` gives it: ``library show``
    and ``list --json`` gave 321.0 (the catalogue's REAL column)."""
    entry = run_json("show", "trunc8s_k6", "--library", str(initialised))
    assert type(entry["wce"]) is int and entry["wce"] > 0
    listed = run_json("list", "--library", str(initialised))["entries"]
    assert listed and all(type(e["wce"]) is int for e in listed if e["wce"] is not None)


def test_export_and_remove_print_json_like_every_library_command(tmp_path, multiplier):
    """`library export --json` and `library remove --json` print one object of their schema, as the others do."""
    lib = str(tmp_path / "lib")
    (tmp_path / "mul4u_t1.blif").write_text(write_blif(multiplier(4, False, drop=1)))
    run("import", str(tmp_path / "mul4u_t1.blif"), "--library", lib)
    out = tmp_path / "t.npz"
    exported = run_json("export", "mul4u_t1", "--library", lib, "--out", str(out))
    assert exported["entry"] == "mul4u_t1" and exported["format"] == "npz"
    assert exported["out"] == str(out) and exported["out_bytes"] == out.stat().st_size > 0
    assert run_json("remove", "mul4u_t1", "--library", lib)["entry"] == "mul4u_t1"
    with Library.open(lib) as library:
        assert "mul4u_t1" not in [e.name for e in library.query()]
