"""``lutgen bench --quick --json`` through click's runner: keys present, every timed result verified."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.native.bench import NATIVE_ISA_ENV, limit_native_isa, native_isa
from approxlut.native.cpu_features import ISA_ENV, detect


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


def test_bench_isa_forces_the_path_and_caps_native(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ISA_ENV, *NATIVE_ISA_ENV):
        monkeypatch.delenv(name, raising=False)  # restored after the test: the CLI sets them in-process
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--no-networks", "--isa", "scalar"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all("scalar" in r["path"] and r["verified"] for r in rows)
    assert all(r["native_isa"].startswith("AVX2 (ONEDNN_MAX_CPU_ISA=AVX2") for r in rows)


def test_native_isa_respects_a_cap_set_by_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NATIVE_ISA_ENV:
        monkeypatch.delenv(name, raising=False)
    assert native_isa() == "full"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    limit_native_isa("AVX2")
    assert native_isa() == "AVX512_CORE (ONEDNN_MAX_CPU_ISA=AVX512_CORE, MKL_ENABLE_INSTRUCTIONS=AVX2)"


@pytest.mark.skipif("avx2" not in detect().paths(), reason="the CPU has no AVX2")
def test_bench_lut_kinds_pick_the_avx2_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """approx (error spans 63 values): exact product + one plane of the error; wide: two planes of T."""
    for name in (ISA_ENV, *NATIVE_ISA_ENV):
        monkeypatch.delenv(name, raising=False)
    paths = {}
    for kind in ("approx", "wide"):
        args = ["bench", "--quick", "--json", "--no-networks", "--isa", "avx2", "--lut", kind]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert all(r["verified"] for r in rows)
        paths[kind] = rows[0]["path"]
    assert "exact int8 + 1 plane of E" in paths["approx"], paths
    assert "2 planes" in paths["wide"], paths
