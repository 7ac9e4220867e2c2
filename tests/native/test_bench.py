"""``lutgen bench --quick --json`` through click's runner: keys present, every timed result verified."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from approxlut.cli import main


def test_bench_quick_json_verified() -> None:
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--backward", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"case", "native_s", "engine_s", "ratio", "path"} <= set(rows[0])
    assert any(r["direction"] == "backward" for r in rows)
    assert any("resnet18" in r["case"] for r in rows) and any("vgg16" in r["case"] for r in rows)
    for r in rows:
        assert r["verified"] is True, r
        assert r["native_s"] > 0 and r["engine_s"] > 0
        assert abs(r["ratio"] - r["engine_s"] / r["native_s"]) < 1e-9 * max(1.0, r["ratio"])
        assert r["path"]


def test_bench_exact_lut_runs_decomp_path() -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--no-networks", "--lut", "exact"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["path"].startswith("decomp") and r["verified"] for r in rows)


def test_bench_unknown_engine_is_one_line_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", "--no-networks", "--engine", "nope"])
    assert result.exit_code == 2
    assert "unknown LUT-GEMM engine 'nope'" in result.output
