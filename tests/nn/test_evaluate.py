"""`lutgen evaluate` end to end on a tiny configuration (LeNet-5, few samples, reference engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from approxlut import fileio
from approxlut.cli import main
from approxlut.errors import ConfigError
from approxlut.nn.evaluate import parse_candidates
from approxlut.nn.zoo import build_model

CANDIDATES = "trunc8s_k6,bam8s_h3v8,loa8s_k4"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("evaluate")
    variables = {
        "LUTGEN_LIBRARY": str(root / "library"),
        "LUTGEN_CACHE": str(root / "cache"),
        "LUTGEN_ENGINE": "reference",
    }
    created = CliRunner().invoke(main, ["library", "init"], env=variables)
    assert created.exit_code == 0, created.output
    return variables


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lenet.pt"
    torch.save(build_model("lenet5").state_dict(), path)
    return path


def _run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, ["evaluate", *args], env=env, catch_exceptions=False)


def test_evaluate_auto_json_save_and_replay(env, weights, tmp_path, json_output) -> None:
    saved = tmp_path / "assignment.json"
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "48", "--json"]
    result = _run(env, *common, "--candidates", CANDIDATES, "--save", str(saved), "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    assert data["test_samples"] == 48 and data["dataset"] == "digits" and data["budget_points"] == 1
    assert data["quantised_accuracy_pct"] - data["approx_accuracy_pct"] <= 1.0  # the default budget
    assert 0 < data["relative_energy"] <= 1
    names = [row["name"] for row in data["layers"]]
    assert names == ["features.0", "features.3", "classifier.1", "classifier.3", "classifier.5"]
    assert [row["macs"] for row in data["layers"]] == [117_600, 240_000, 48_000, 10_080, 840]
    for row in data["layers"]:
        assert set(row) == {"name", "macs", "multiplier", "mae_pct", "power_mw", "relative_power", "cost_basis"}
        assert row["multiplier"] in {*CANDIDATES.split(","), "exact8s"}
        assert row["cost_basis"] == "lutgen model" and 0 < row["relative_power"] <= 1
    front = data["front"]
    assert [p["chosen"] for p in front].count(True) == 1
    for point in front:
        assert {"relative_energy", "predicted_accuracy_pct", "verified_accuracy_pct", "assignment"} <= set(point)
        assert point["predicted_accuracy_pct"] is not None
    checked = [p for p in front if p["verified_accuracy_pct"] is not None and p["relative_energy"] < 1]
    assert len(checked) >= 5  # --verify 5 by default
    chosen = next(p for p in front if p["chosen"])
    assert chosen["relative_energy"] == pytest.approx(data["relative_energy"])
    assert chosen["verified_accuracy_pct"] == data["approx_accuracy_pct"]
    assert (tmp_path / "p.png").stat().st_size > 0
    assert f"wrote {saved} (the assignment" in result.stderr and f"wrote {tmp_path / 'p.png'}" in result.stderr
    stored = json.loads(saved.read_text())
    assert set(stored["layers"]) <= set(names) and len(stored["front"]) == len(front)
    # (every layer of LeNet-5 is predicted: none measured, none left out)
    assert not [note for note in data["notes"] if "not searched" in note or "measured, not predicted" in note]

    replay = _run(env, *common, "--assign", str(saved))
    assert replay.exit_code == 0, replay.output
    again = json_output(replay.stdout, "evaluate")
    assert again["approx_accuracy_pct"] == data["approx_accuracy_pct"]
    assert [r["multiplier"] for r in again["layers"]] == [r["multiplier"] for r in data["layers"]]
    # any front point of the saved file replays to its verified accuracy
    index, point = max(enumerate(front), key=lambda item: (item[1]["verified_accuracy_pct"] is not None, -item[0]))
    other = _run(env, *common, "--assign", f"{saved}#{index}")
    assert other.exit_code == 0, other.output
    assert json.loads(other.stdout)["approx_accuracy_pct"] == point["verified_accuracy_pct"]
    missing = _run(env, *common, "--assign", f"{saved}#{len(front)}")
    assert missing.exit_code == 2 and f"no front point #{len(front)}" in missing.output


def test_a_mixed_search_reports_one_energy_scale_and_replays(env, weights, tmp_path, json_output) -> None:
    """Signed and unsigned candidates: the layers of the answer are quantised for their multipliers, every
    relative power is over the signed exact multiplier's power (so the total is one scale), and the saved file
    replays to the verified accuracy with the same table."""
    saved = tmp_path / "mixed.json"
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "48", "--json"]
    result = _run(env, *common, "--candidates", "bam8s_h3v8,bam8u_h3v8", "--budget", "100", "--save", str(saved))
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    assert any("each layer is quantised for its multiplier" in note for note in data["notes"])
    powers = {row["multiplier"]: row["power_mw"] for row in data["layers"]}
    assert powers.keys() <= {"bam8s_h3v8", "bam8u_h3v8", "exact8u", "exact8s"} and "bam8u_h3v8" in powers
    exact = json_output(_run(env, *common, "--assign", "exact8s").stdout, "evaluate")["layers"][0]["power_mw"]
    for row in data["layers"]:
        assert row["relative_power"] == pytest.approx(row["power_mw"] / exact)
    macs = sum(row["macs"] for row in data["layers"])
    total = sum(row["macs"] * row["relative_power"] for row in data["layers"]) / macs
    assert data["relative_energy"] == pytest.approx(total)
    replay = json_output(_run(env, *common, "--assign", str(saved)).stdout, "evaluate")
    assert replay["approx_accuracy_pct"] == data["approx_accuracy_pct"]
    assert replay["layers"] == data["layers"]


def test_the_search_and_its_replay_follow_no_bias_correction(env, weights, tmp_path, json_output, monkeypatch) -> None:
    """``--no-bias-correction`` reaches the search (it verified with corrections before), the saved file records
    it and the seed, and a replay of the file without the flag follows it (with a note), as one with another seed
    says it may differ. A replay reads the file once: the settings it follows and the assignment it runs come from
    one version of the file (it read the file three times)."""
    saved = tmp_path / "plain.json"
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "48", "--json"]
    result = _run(env, *common, "--candidates", CANDIDATES, "--no-bias-correction", "--save", str(saved))
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    assert json.loads(saved.read_text())["search"] == {"seed": 0, "bias_correction": False}
    reads: list[Path] = []
    read_json = fileio.read_json
    monkeypatch.setattr(fileio, "read_json", lambda path, **kw: reads.append(Path(path)) or read_json(path, **kw))
    replay = json_output(_run(env, *common, "--assign", str(saved)).stdout, "evaluate")
    assert reads.count(saved) == 1
    assert replay["approx_accuracy_pct"] == data["approx_accuracy_pct"]
    assert "bias correction off, as the search that saved the file ran" in replay["notes"]
    corrected = json_output(_run(env, *common, "--assign", str(saved), "--bias-correction").stdout, "evaluate")
    assert not [n for n in corrected["notes"] if n.startswith("bias correction")]
    other = json_output(_run(env, *common, "--assign", f"{saved}#0", "--seed", "1").stdout, "evaluate")
    assert any(n.startswith(f"the front of {saved} was searched and verified with --seed 0") for n in other["notes"])


@pytest.mark.parametrize("budget", [1.0, 1e308])
def test_the_front_plot_takes_any_budget(tmp_path, budget: float) -> None:
    """A budget as large as --budget takes once put the plot's lower limit at -inf (a traceback after the search)."""
    from approxlut.nn.evaluate import EvaluateResult, plot_pareto

    point = {"relative_energy": 1.0, "predicted_accuracy_pct": 97.0, "verified_accuracy_pct": 97.0, "chosen": False}
    cheap = {"relative_energy": 0.4, "predicted_accuracy_pct": 96.0, "verified_accuracy_pct": 96.5, "chosen": True}
    result = EvaluateResult("lenet5", "digits", 360, None, 97.5, 97.0, 96.5, 0.4, [], {}, budget, [point, cheap])
    plot_pareto(result, tmp_path / "front.png")
    assert (tmp_path / "front.png").read_bytes().startswith(b"\x89PNG")


def test_the_verified_points_table_marks_the_all_exact_baseline() -> None:
    """The notes count the points the LUT engine verified; the table also lists the all-exact one, now labelled."""
    from rich.console import Console

    from approxlut.nn.evaluate import EvaluateResult, render

    exact = {"relative_energy": 1.0, "predicted_accuracy_pct": 97.0, "verified_accuracy_pct": 97.0}
    cheap = {"relative_energy": 0.4, "predicted_accuracy_pct": 96.0, "verified_accuracy_pct": 96.5}
    front = [{**exact, "chosen": False, "found_by": "exact"}, {**cheap, "chosen": True, "found_by": "pareto"}]
    result = EvaluateResult("lenet5", "digits", 360, None, 97.5, 97.0, 96.5, 0.4, [], {}, 1.0, front)
    console = Console(record=True, width=120)
    render(result, console)
    rows = [line for line in console.export_text().splitlines() if line.lstrip("│ ").startswith(("1.000", "0.400"))]
    assert "all exact" in rows[0] and "chosen" in rows[1]


def test_the_per_layer_table_never_cuts_a_name_at_100_columns() -> None:
    """Long layer and multiplier names (a ViT's with EvoApproxLib's) stay whole in a 100-column terminal (the
    other columns give way); they ended in an ellipsis, which left `v2022_mul8s_1L…` for two multipliers."""
    from rich.console import Console

    from approxlut.nn.evaluate import EvaluateResult, LayerRow, render

    layers = [
        LayerRow("blocks.0.attn.qkv", 208_896, "v2022_mul8s_1L2L", 0.2286, 0.2, 0.471, "published v2022"),
        LayerRow("blocks.0.attn.proj", 69_632, "v2022_mul8s_1L2N", 0.5187, 0.126, 0.296, "published v2022"),
    ]
    result = EvaluateResult("vit", "digits", 360, None, 96.4, 96.7, 95.8, 0.37, layers, {}, None, [])
    console = Console(record=True, width=100)
    render(result, console)
    text = console.export_text()
    assert "…" not in text
    for name in ("blocks.0.attn.qkv", "blocks.0.attn.proj", "v2022_mul8s_1L2L", "v2022_mul8s_1L2N"):
        assert name in text, text


def test_a_table_from_a_file_reports_its_error(env, weights, tmp_path, json_output) -> None:
    """A multiplier given as a file (not in the library) shows the MAE of its table (it showed '-')."""
    from dataclasses import replace

    from approxlut.lutgen.formats import save_npz
    from approxlut.nn.multipliers import load_multiplier

    lut = replace(load_multiplier("trunc8s_k6"), name="mine_k6")
    save_npz(lut, tmp_path / "mine_k6.npz")
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "16", "--json"]
    result = _run(env, *common, "--assign", f"features.0={tmp_path / 'mine_k6.npz'}")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json_output(result.stdout, "evaluate")["layers"]}
    assert rows["features.0"]["multiplier"] == "mine_k6"
    assert rows["features.0"]["mae_pct"] == pytest.approx(lut.metrics().mae_pct)
    assert rows["features.0"]["relative_power"] is not None  # (trunc8s_k6's table: its entry's figures)
    forward = lut.forward.copy()
    forward[3, 5] += 1
    save_npz(replace(lut, forward=forward, name="mine_plus"), tmp_path / "mine_plus.npz")
    other = _run(env, *common, "--assign", f"features.0={tmp_path / 'mine_plus.npz'}")
    data = json_output(other.stdout, "evaluate")  # (a table of no library entry: the notes say so, not a guess)
    assert data["relative_energy"] is None and data["layers"][0]["relative_power"] is None
    assert "energy unknown: features.0 (mine_plus): not a library multiplier, so no power figure" in data["notes"]
    # a file's table is known by its hash, never by the name it states: drum8s_k3's table called trunc8s_k4 has
    # drum8s_k3's figures (it had trunc8s_k4's)
    save_npz(replace(load_multiplier("drum8s_k3"), name="trunc8s_k4"), tmp_path / "renamed.npz")
    named = _run(env, *common, "--assign", f"features.0={tmp_path / 'renamed.npz'}")
    row = json_output(named.stdout, "evaluate")["layers"][0]
    plain = json_output(_run(env, *common, "--assign", "features.0=drum8s_k3").stdout, "evaluate")["layers"][0]
    assert row["multiplier"] == "trunc8s_k4" and row["mae_pct"] == plain["mae_pct"] != 0
    assert row["power_mw"] == plain["power_mw"] and row["relative_power"] == plain["relative_power"]


def test_an_unsigned_circuit_whose_source_has_no_signed_exact_says_why_its_energy_is_unknown(
    corpus, env, tmp_path, weights, json_output
) -> None:
    """EvoApproxLib v1.1 published unsigned circuits only: on the signed baseline's scale their power is unknown,
    and the note says why and what helps (it said 'a multiplier has no power figure', and the mixed search's
    advice was to import the exact circuit of a release that has none of that kind)."""
    env = env | {"LUTGEN_LIBRARY": str(tmp_path / "lib")}
    folder = corpus / "evoapprox" / "8x8"
    files = [str(folder / f"v1.1_mul8u_{name}.v") for name in ("17C8", "1JFF")]
    imported = CliRunner().invoke(main, ["library", "import", *files], env=env)
    assert imported.exit_code == 0, imported.output
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "16", "--json"]
    result = _run(env, *common, "--assign", "features.3=v1.1_mul8u_17C8,classifier.1=v1.1_mul8u_17C8")
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    assert data["relative_energy"] is None
    (note,) = [n for n in data["notes"] if n.startswith("energy unknown: ")]
    assert note.startswith(  # (one note for the layers sharing a multiplier)
        "energy unknown: features.3, classifier.1 (v1.1_mul8u_17C8): 'v1.1_mul8u_17C8' has published power"
    )
    assert "published no exact 8x8s multiplier" in note and note.endswith("compare multipliers of one signedness")
    alone = _run(env, *common, "--assign", "features.3=v1.1_mul8u_17C8", "--candidates", "bits=8,unsigned")
    assert json_output(alone.stdout, "evaluate")["relative_energy"] < 1  # (its own kind's exact: known)


def test_evaluate_auto_searches_recurrent_layers(env, tmp_path, json_output) -> None:
    """An LSTM's recurrent layer is searched too (its options measured through the LUT engine), and the notes
    say which layers were measured with their share of the MACs; assigning it by name still applies."""
    torch.manual_seed(0)
    weights = tmp_path / "lstm.pt"
    torch.save(build_model("lstm").state_dict(), weights)
    common = ["--model", "lstm", "--weights", str(weights), "--limit", "48", "--json"]
    result = _run(env, *common, "--candidates", CANDIDATES, "--budget", "100")
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["lstm"]["multiplier"] != "exact8s"  # any drop passes: the cheapest multiplier is taken
    assert set(data["assignment"]["layers"]) == {"lstm", "fc"}
    note = "auto: lstm (99.9% of the MACs) measured, not predicted"
    assert any(n.startswith(note) for n in data["notes"]), data["notes"]
    named = _run(env, *common, "--assign", "lstm=trunc8s_k6")
    assert named.exit_code == 0, named.output
    layers = json_output(named.stdout, "evaluate")["layers"]
    assert {row["name"]: row["multiplier"] for row in layers}["lstm"] == "trunc8s_k6"


def test_evaluate_one_multiplier_everywhere_and_table(env, weights, json_output) -> None:
    args = ["--model", "lenet5", "--weights", str(weights), "--limit", "32"]
    result = _run(env, *args, "--assign", "trunc8s_k6", "--json")
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    assert {row["multiplier"] for row in data["layers"]} == {"trunc8s_k6"}
    assert data["relative_energy"] < 1 and data["front"] == [] and data["budget_points"] is None
    table = _run(env, *args, "--assign", "classifier.5=trunc8s_k6")
    assert table.exit_code == 0, table.output
    assert "per-layer assignment" in table.output and "relative multiplier energy" in table.output
    assert "exact8s" in table.output and "trunc8s_k6" in table.output


def test_evaluate_errors_are_one_line(env, weights, tmp_path) -> None:
    bad = _run(env, "--model", "alexnet")
    assert bad.exit_code == 2 and bad.output.startswith("error:") and "unknown model 'alexnet'" in bad.output
    (tmp_path / "broken.json").write_text("{not json")
    result = _run(env, "--model", "lenet5", "--weights", str(weights), "--assign", str(tmp_path / "broken.json"))
    assert result.exit_code == 2 and "broken.json:1:2: invalid JSON" in result.output
    mixed = _run(env, "--model", "lenet5", "--weights", str(weights), "--candidates", "signed,max_mae=0.3")
    assert mixed.exit_code == 2 and "mixes widths of multiplier (" in mixed.output
    assert " 17 8x8)" in mixed.output and mixed.output.rstrip().endswith("add a width (e.g. 'bits=8')")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    junk = _run(env, "--model", "lenet5", "--weights", str(tmp_path / "junk.pt"))
    assert junk.exit_code == 2 and "not a readable torch weights file" in junk.output
    vae = _run(env, "--model", "vae")
    assert vae.exit_code == 2 and "reconstruction model" in vae.output
    unknown = _run(env, "--model", "lenet5", "--weights", str(weights), "--assign", "trunc8s_k66")
    assert unknown.exit_code == 2 == bad.exit_code  # an unknown multiplier is the user's to fix, as a model is
    assert unknown.stderr.strip().startswith("error: no multiplier 'trunc8s_k66' in the library at ")
    assert "(did you mean trunc8s_k6" in unknown.output
    family = _run(env, "--model", "lenet5", "--weights", str(weights), "--candidates", "bits=8,signed,family=trnc")
    assert family.exit_code == 2 and "unknown family 'trnc' (valid: broken_array (bam)," in family.output
    only_exact = _run(env, "--model", "lenet5", "--weights", str(weights), "--candidates", "exact8s")
    assert only_exact.exit_code == 2 and only_exact.stderr.strip() == (
        "error: --candidates 'exact8s' leaves no approximate multiplier to search (an exact multiplier is the "
        "baseline every layer starts from)"
    )


def test_candidates_count_the_library_entries_of_the_other_signedness() -> None:
    """A filter that fixes the signedness says how many approximate multipliers of the same widths it left out by
    that alone, and the filter that searches both kinds (the evaluate note prints both)."""
    from approxlut.nn.evaluate import library_candidates

    signed, unsigned = library_candidates("bits=8,signed"), library_candidates("bits=8,unsigned")
    assert signed.other_filter == "bits=8" == unsigned.other_filter
    assert signed.other_sign == len(unsigned.entries) + len(unsigned.left_out) > 0
    assert unsigned.other_sign == len(signed.entries) + len(signed.left_out) > 0
    assert not signed.mixed and not unsigned.mixed
    assert library_candidates("trunc8s_k6,bam8s_h3v8").other_sign == 0
    # the filter the note suggests is one evaluate takes, whatever widths the other signedness comes in
    for family in ("broken_array", "rounding", "perforated", "lower_or"):
        first = library_candidates(f"bits=8,signed,family={family}")
        assert first.other_sign > 0 and first.other_filter == f"bits=8,family={family}"
        both = library_candidates(first.other_filter)
        assert both.mixed and len(both.entries) == len(first.entries) + first.other_sign + 1  # (+ exact8u)
    with pytest.raises(ConfigError, match=r"mixes widths of multiplier \(1 6x6, 1 8x8\); name multipliers of one"):
        library_candidates("bam8s_h1v5,mitchell6s")


def test_signed_and_unsigned_candidates_share_one_energy_scale() -> None:
    """Mixed candidates: the baseline is the signed exact multiplier, every power is measured against the signed
    exact one of its own source, and the unsigned exact multiplier is a candidate (unsigned quantisation alone may
    save energy)."""
    from approxlut.library import Library
    from approxlut.nn.evaluate import library_candidates

    lib = Library.open_default()
    both = library_candidates("bam8s_h3v8,bam8u_h3v8")
    assert both.mixed and both.exact.full_name == "exact8s"
    assert [e.full_name for e in both.entries] == ["bam8s_h3v8", "bam8u_h3v8", "exact8u"]
    signed_power = lib.entry("exact8s").power_mw
    for name in ("bam8s_h3v8", "bam8u_h3v8", "exact8u"):
        relative, basis = both.relative[name]
        assert relative == pytest.approx(lib.entry(name).power_mw / signed_power) and basis.exact_name == "exact8s"
    alone = library_candidates("bam8u_h3v8")  # one kind: measured against its own exact multiplier, as before
    assert not alone.mixed and alone.exact.full_name == "exact8u"
    assert alone.relative["bam8u_h3v8"][0] == pytest.approx(
        lib.entry("bam8u_h3v8").power_mw / lib.entry("exact8u").power_mw
    )


def test_parse_candidates() -> None:
    from approxlut.library.filters import Filter

    assert parse_candidates("bits=8,signed") == (Filter(bits=(8, 8), signed=True), [])
    assert parse_candidates("unsigned,max_mae=0.5") == (Filter(signed=False, limits=(("mae_pct", 0.5),)), [])
    assert parse_candidates("a, b") == (None, ["a", "b"])
    with pytest.raises(ConfigError, match=r"unknown field 'power' \(fields: signed, unsigned, bits=, origin="):
        parse_candidates("power=3")
    with pytest.raises(ConfigError, match="not both"):
        parse_candidates("bits=8,mul8s_1KV6")
    with pytest.raises(ConfigError, match=r"'signd' is not a filter"):  # a mistyped flag, not a name
        parse_candidates("bits=8,signd")
    for empty in ("", " , "):
        with pytest.raises(ConfigError, match="--candidates is empty"):
            parse_candidates(empty)


def test_evaluate_workers_without_ray_says_how_to_install_it(env, weights, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    result = _run(env, "--model", "lenet5", "--weights", str(weights), "--workers", "2")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "pip install 'lutgen[ray]'" in result.output


@pytest.mark.slow
def test_evaluate_auto_on_two_ray_workers_gives_the_in_process_answer(env, weights, json_output) -> None:
    pytest.importorskip("ray")
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "48", "--json", "--candidates", CANDIDATES]
    local = json_output(_run(env, *common).stdout, "evaluate")
    remote_run = _run(env, *common, "--workers", "2")
    assert remote_run.exit_code == 0, remote_run.output
    remote = json_output(remote_run.stdout, "evaluate")
    assert "ray_start" in remote["timings_s"] and "ray_start" not in local["timings_s"]
    for key in ("approx_accuracy_pct", "relative_energy", "layers", "assignment", "front"):
        assert remote[key] == local[key], key


def test_the_header_says_which_width_of_a_zoo_model_ran() -> None:
    from rich.console import Console

    from approxlut.nn.evaluate import EvaluateResult, render

    result = EvaluateResult("vgg19", "digits", 360, 0.25, 98.9, 98.9, 98.3, 0.45, [], {})
    console = Console(record=True, width=120)
    render(result, console)
    assert console.export_text().splitlines()[0] == "vgg19 (width 0.25) on digits (360 test samples)"


def test_library_option_names_the_library(env, weights, tmp_path) -> None:
    """``--library DIR`` reads multipliers from DIR even where ``$LUTGEN_LIBRARY`` names no library (as the
    library commands do), and leaves the environment as it found it; without it, the missing library is a
    one-line error naming its folder."""
    import os

    missing = tmp_path / "no-library-here"
    elsewhere = {**env, "LUTGEN_LIBRARY": str(missing)}
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "24", "--assign", "trunc8s_k6", "--json"]
    before = os.environ.get("LUTGEN_LIBRARY")
    result = _run(elsewhere, *common, "--library", env["LUTGEN_LIBRARY"])
    assert result.exit_code == 0, result.output
    assert os.environ.get("LUTGEN_LIBRARY") == before
    failed = _run(elsewhere, *common)
    assert failed.exit_code != 0 and str(missing) in failed.output
    assert failed.output.strip().count("\n") == 0, failed.output
    timed = CliRunner().invoke(
        main,
        ["bench", "--quick", "--json", "--no-networks", "--lut", "trunc8s_k6", "--library", env["LUTGEN_LIBRARY"]],
        env=elsewhere,
    )
    assert timed.exit_code == 0, timed.output


def test_a_layer_assigned_float_is_listed_and_counts_as_exact(env, weights, json_output) -> None:
    """A layer run in float stays in the per-layer table, and its MACs count as exact ones in the relative energy
    (it was left out of both, so the energy saved was overstated)."""
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "16", "--json"]
    result = _run(env, *common, "--assign", "default=trunc8s_k6,classifier.1=float")
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    rows = {row["name"]: row for row in data["layers"]}
    assert list(rows) == ["features.0", "features.3", "classifier.1", "classifier.3", "classifier.5"]
    assert rows["classifier.1"]["multiplier"] == "float" and rows["classifier.1"]["macs"] == 48_000
    relative = rows["features.0"]["relative_power"]
    total = sum(row["macs"] for row in data["layers"])
    assert data["relative_energy"] == pytest.approx(((total - 48_000) * relative + 48_000) / total)


def test_a_fixed_assignment_of_other_widths_is_measured_against_their_exact_multiplier(
    env, weights, json_output
) -> None:
    """`--assign` of 4-bit multipliers: the quantised-exact model runs the 4x4 exact multiplier in those layers (as
    a 4-bit search measures, and as their powers are relative to `exact4s`), the candidates' 8x8 elsewhere, and a
    note says so. Before, the baseline stayed the 8x8 model: the search's chosen assignment, replayed, showed another
    drop than the search had reported (LeNet-5, three 4-bit candidates: +0.00 against +0.56 points)."""
    from approxlut.nn.config import AssignmentMapping, LayerConfig
    from approxlut.nn.evaluate import _exact_twin
    from approxlut.nn.swap import approx_layers, approximate

    args = ["--model", "lenet5", "--weights", str(weights), "--limit", "32", "--json"]
    for assign, note in (("trunc4u_k2", "features.0, features.3, classifier.1"), ("exact", None)):
        result = _run(env, *args, "--assign", assign)
        assert result.exit_code == 0, result.output
        notes = json_output(result.stdout, "evaluate")["notes"]
        found = [n for n in notes if "layers assigned other widths than 8x8" in n]
        assert (note in found[0] and "at 4x4" in found[0]) if note else not found
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    x = torch.rand(8, 1, 28, 28)
    exact8 = LayerConfig("exact", bits=(8, 8), scheme="symmetric")
    qmodel = approximate(model, exact8, [x])
    four = LayerConfig("exact", bits=(4, 4), scheme="symmetric")
    assigned = approximate(qmodel, AssignmentMapping.build(default=exact8, names={"features.0": four}))
    twin, note = _exact_twin(qmodel, assigned, exact8)
    widths = {n: (layer.resolved.bits_a, layer.resolved.bits_b) for n, layer in approx_layers(twin).items()}
    assert widths["features.0"] == (4, 4) and widths["features.3"] == (8, 8) and note is not None
    with torch.no_grad():
        assert torch.equal(twin(x), assigned(x)) and not torch.equal(twin(x), qmodel(x))
    assert _exact_twin(qmodel, qmodel, exact8) == (qmodel, None)
