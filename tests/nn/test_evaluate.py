"""`lutgen evaluate` end to end on a tiny configuration (LeNet-5, few samples, reference engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.errors import ConfigError
from approxlut.nn.evaluate import parse_candidates
from approxlut.nn.zoo import build_model

CANDIDATES = "trunc8s_k6,bam8s_h3v8,loa8s_k4"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("evaluate")
    return {"LUTGEN_LIBRARY": str(root / "library"), "LUTGEN_CACHE": str(root / "cache"), "LUTGEN_ENGINE": "reference"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lenet.pt"
    torch.save(build_model("lenet5").state_dict(), path)
    return path


def _run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, ["evaluate", *args], env=env, catch_exceptions=False)


def test_evaluate_auto_json_save_and_replay(env, weights, tmp_path) -> None:
    saved = tmp_path / "assignment.json"
    common = ["--model", "lenet5", "--weights", str(weights), "--limit", "48", "--json"]
    result = _run(env, *common, "--candidates", CANDIDATES, "--save", str(saved), "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("float_accuracy", "quantized_accuracy", "approx_accuracy", "relative_energy", "layers"):
        assert key in data
    assert data["samples"] == 48 and data["dataset"] == "digits"
    assert data["quantized_accuracy"] - data["approx_accuracy"] <= 1.0  # the default budget
    assert 0 < data["relative_energy"] <= 1
    names = [row["name"] for row in data["layers"]]
    assert names == ["features.0", "features.3", "classifier.1", "classifier.3", "classifier.5"]
    assert [row["macs"] for row in data["layers"]] == [117_600, 240_000, 48_000, 10_080, 840]
    for row in data["layers"]:
        assert set(row) == {"name", "macs", "multiplier", "mae", "power"}
        assert row["multiplier"] in {*CANDIDATES.split(","), "exact8s"}
    assert any(point["chosen"] for point in data["pareto"])
    assert (tmp_path / "p.png").stat().st_size > 0
    stored = json.loads(saved.read_text())
    assert set(stored["layers"]) <= set(names)

    replay = _run(env, *common, "--assign", str(saved))
    assert replay.exit_code == 0, replay.output
    again = json.loads(replay.output)
    assert again["approx_accuracy"] == data["approx_accuracy"]
    assert [r["multiplier"] for r in again["layers"]] == [r["multiplier"] for r in data["layers"]]


def test_evaluate_one_multiplier_everywhere_and_table(env, weights) -> None:
    args = ["--model", "lenet5", "--weights", str(weights), "--limit", "32"]
    result = _run(env, *args, "--assign", "trunc8s_k6", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {row["multiplier"] for row in data["layers"]} == {"trunc8s_k6"}
    assert data["relative_energy"] < 1 and data["pareto"] == []
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
    mixed = _run(env, "--model", "lenet5", "--weights", str(weights), "--candidates", "bits=8")
    assert mixed.exit_code == 2 and "mixes widths/signedness" in mixed.output
    (tmp_path / "junk.pt").write_bytes(b"junk")
    junk = _run(env, "--model", "lenet5", "--weights", str(tmp_path / "junk.pt"))
    assert junk.exit_code == 2 and "not a readable torch weights file" in junk.output
    vae = _run(env, "--model", "vae")
    assert vae.exit_code == 2 and "reconstruction model" in vae.output


def test_parse_candidates() -> None:
    assert parse_candidates("bits=8,signed") == ({"bits": 8, "signed": True}, [])
    assert parse_candidates("unsigned,max_mae=0.5") == ({"signed": False, "max_mae": 0.5}, [])
    assert parse_candidates("a, b") == ({}, ["a", "b"])
    with pytest.raises(ConfigError, match="unknown filter"):
        parse_candidates("power=3")
    with pytest.raises(ConfigError, match="not both"):
        parse_candidates("bits=8,mul8s_1KV6")
