"""``lutgen bench --quick --json`` through click's runner: keys present, every timed result verified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.lutgen.formats import save_npz
from approxlut.lutgen.lut import Lut
from approxlut.native.bench import NATIVE_ISA_ENV, limit_native_isa, native_isa, short_path
from approxlut.native.cpu_features import ISA_ENV, cpu_isa, detect
from approxlut.native.engines import PLAN_PATHS, exact_kind


def test_bench_quick_json_verified(json_output) -> None:
    threads = torch.get_num_threads()
    other = 1 if threads > 1 else 2
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--backward", "--threads", str(other)])
    assert torch.get_num_threads() == threads  # (an in-process caller keeps its thread count)
    assert result.exit_code == 0, result.output
    rows = json_output(result.stdout, "bench")["results"]
    assert any(r["direction"] == "backward" for r in rows)
    assert any("resnet18" in r["case"] for r in rows) and any("vgg16" in r["case"] for r in rows)
    attention = [(r["case"].split()[1], r["direction"]) for r in rows if ".attention" in r["case"]]
    assert sorted(attention) == [("av", "backward"), ("av", "forward"), ("qk", "backward"), ("qk", "forward")]
    for r in rows:
        assert r["verified"] is True, r
        assert r["native_s"] > 0 and r["engine_s"] > 0
        assert abs(r["ratio"] - r["engine_s"] / r["native_s"]) < 1e-9 * max(1.0, r["ratio"])
        assert r["path"]


def test_bench_exact_lut_runs_the_exact_product_alone() -> None:
    """An exact multiplier: the int8 GEMM alone (a plan of no planes) where plans have it, else decomp."""
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--no-networks", "--lut", "exact"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    int8_plans = cpu_isa() in PLAN_PATHS and exact_kind() == "int8"
    want = "exact int8 + 0 planes" if int8_plans else "decomp"
    assert rows and all(want in r["path"] and r["verified"] for r in rows), rows


def test_bench_unknown_engine_is_one_line_error() -> None:
    """Checked before any case runs: one line, no progress log."""
    result = CliRunner().invoke(main, ["bench", "--quick", "--no-networks", "--engine", "nope"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "unknown LUT-GEMM engine 'nope'" in result.output


def _unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset ``names`` for the test; monkeypatch puts back each one's value or its absence afterwards (a bare
    ``delenv`` of an unset name records nothing, so a value set later in the test would stay)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_bench_isa_forces_the_path_and_caps_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--isa scalar`` runs the scalar kernels and caps native PyTorch at AVX2 for the command, and the caller's
    environment is as it was after the command (the CLI sets the variables in-process)."""
    _unset(monkeypatch, ISA_ENV, *NATIVE_ISA_ENV)
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--no-networks", "--isa", "scalar"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert rows and all("scalar" in r["path"] and r["verified"] for r in rows)
    assert all(r["native_isa"].startswith("AVX2 (ONEDNN_MAX_CPU_ISA=AVX2") for r in rows)
    assert not any(name in os.environ for name in (ISA_ENV, *NATIVE_ISA_ENV))


def test_native_isa_respects_a_cap_set_by_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    _unset(monkeypatch, *NATIVE_ISA_ENV)
    assert native_isa() == "full"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    limit_native_isa("AVX2")
    assert native_isa() == "AVX512_CORE (ONEDNN_MAX_CPU_ISA=AVX512_CORE, MKL_ENABLE_INSTRUCTIONS=AVX2)"


@pytest.mark.skipif("avx2" not in detect().paths(), reason="the CPU has no AVX2")
def test_bench_lut_kinds_pick_the_avx2_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """approx (error spans 63 values): exact product (int8 where this machine's int8 GEMM is exact, else float
    values) + one plane of the error; wide: two planes of T."""
    _unset(monkeypatch, ISA_ENV, *NATIVE_ISA_ENV)
    paths = {}
    for kind in ("approx", "wide"):
        args = ["bench", "--quick", "--json", "--no-networks", "--isa", "avx2", "--lut", kind]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["results"]
        assert all(r["verified"] for r in rows)
        paths[kind] = rows[0]["path"]
    assert f"exact {exact_kind()} + 1 plane of E" in paths["approx"], paths
    assert "2 planes" in paths["wide"], paths


def _tables(folder: Path) -> None:
    """Two distinct 4x4 tables (signed, unsigned), a twin of the first and a file that is not a table."""
    rng = np.random.default_rng(5)
    values = np.arange(-8, 8)
    signed = np.multiply.outer(values, values)[np.ix_((np.arange(16) + 8) % 16, (np.arange(16) + 8) % 16)]
    signed = signed + rng.integers(-3, 4, signed.shape) * (signed != 0)
    unsigned = np.multiply.outer(np.arange(16), np.arange(16)) & ~3
    save_npz(Lut(signed.astype(np.int32), 4, 4, True, name="s4"), folder / "a_s4.npz")
    save_npz(Lut(unsigned.astype(np.int32), 4, 4, False, name="u4"), folder / "b_u4.npz")
    save_npz(Lut(signed.astype(np.int32), 4, 4, True, name="s4"), folder / "c_twin.npz")
    (folder / "d_broken.txt").write_text("not a table\n")


def test_bench_corpus_json_and_80_columns(tmp_path: Path, json_output) -> None:
    """--corpus: one row per distinct table with its plan class and ratios, a summary by plan class and
    overall, and the files left out with why; the plain output fits 80 columns."""
    _tables(tmp_path)
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--corpus", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "bench")
    assert [t["name"] for t in data["tables"]] == ["a_s4", "b_u4"]
    assert all(t["verified"] and t["worst_ratio"] >= t["median_ratio"] > 0 for t in data["tables"])
    assert {t["plan"] for t in data["tables"]} <= {"E1", "E2", "T1", "T2", "other"}
    assert len(data["results"]) == 2 * 2 and all(r["case"].split(": ")[0] in ("a_s4", "b_u4") for r in data["results"])
    summary = {s["plan"]: s for s in data["summary"]}
    assert summary["all"]["table_count"] == 2
    assert summary["all"]["min_ratio"] <= summary["all"]["median_ratio"] <= summary["all"]["max_ratio"]
    assert [s["file"] for s in data["skipped"]] == ["c_twin.npz", "d_broken.txt"]
    assert "same table as a_s4.npz" in data["skipped"][0]["reason"]
    text = CliRunner().invoke(main, ["bench", "--quick", "--corpus", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert "a_s4" in text.stdout and "left out c_twin.npz" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80
    header = next(line for line in text.stdout.splitlines() if line.split()[:2] == ["table", "path"]).split()
    assert len(set(header)) == len(header)  # (the two cases' columns were both headed '8')


def test_bench_lut_file_times_that_table(tmp_path: Path, json_output) -> None:
    """--lut FILE: an unsigned table runs the layer cases and the nn layers (affine quantisation; no networks:
    they quantise symmetrically); the plain output fits 80 columns, --wide gives the full path."""
    _tables(tmp_path)
    lut_file = str(tmp_path / "b_u4.npz")
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--lut", lut_file])
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "bench")
    assert data["tables"] == [] and data["summary"] == [] and data["skipped"] == []
    rows = data["results"]
    assert rows and all(r["verified"] for r in rows)
    assert not any("network" in r["case"] for r in rows)
    layers = [r["case"].split(" ")[0] for r in rows if r["op_s"] is not None]
    assert layers == ["nn.ApproxConv2d", "nn.ApproxLinear"]
    assert sum(".attention" in r["case"] for r in rows) == 2  # Q·Kᵀ and A·V over the unsigned codes
    text = CliRunner().invoke(main, ["bench", "--quick", "--no-networks", "--lut", lut_file])
    assert text.exit_code == 0 and max(len(line) for line in text.stdout.splitlines()) <= 80
    wide = CliRunner().invoke(main, ["bench", "--quick", "--no-networks", "--wide", "--lut", lut_file])
    assert wide.exit_code == 0 and rows[0]["path"] in wide.stdout


def test_bench_nn_layer_cases_are_verified(json_output) -> None:
    """The nn layer cases of a signed multiplier (a conv and a linear layer): layer, op and native timed; each
    layer equals its step-by-step twin on the reference engine."""
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--no-networks"])
    assert result.exit_code == 0, result.output
    layers = [r for r in json_output(result.stdout, "bench")["results"] if r["op_s"] is not None]
    assert [r["case"].split(" ")[0] for r in layers] == ["nn.ApproxConv2d", "nn.ApproxLinear"]
    assert all(r["verified"] for r in layers)


def test_bench_missing_lut_file_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", "--lut", str(tmp_path / "nope.npz")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "not found" in result.output


def test_bench_corpus_without_tables_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no netlists here\n")
    result = CliRunner().invoke(main, ["bench", "--quick", "--corpus", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no multiplier tables or netlists" in result.output


@pytest.mark.parametrize(
    ("path", "short"),
    [
        ("cpu avx512vbmi/planes a7: exact int8 + 1 plane of E (32 values)", "vbmi a7 E1 i8 32v"),
        ("cpu avx2/nibble a8: exact values + 2 planes of E (381 values)", "avx2 a8 E2 f32 381v"),
        ("cpu avx512vbmi/planes a7: 2 planes of T (15362 values)", "vbmi a7 T2 15362v"),
        ("cpu avx512vbmi/fold a8: exact int8 + 2 planes of E (865 values, folded on bit 7)", "vbmi a8 E2 i8 865v f7"),
        ("cpu avx2/fold a7: exact values + 1 plane of E (63 values, folded on bit 6)", "avx2 a7 E1 f32 63v f6"),
        (
            "cpu avx512vbmi/planes a8: exact int8 + 1 plane of E (2 values, folded on bit 7 into the int8 product)",
            "vbmi a8 E1 i8 2v f7i8",
        ),
        ("cpu avx512vbmi/planes a8: exact int8 + 1 plane of E (2 values, 2 of 8 code bits)", "vbmi a8 E1 i8 2v n2"),
        ("cpu avx2/nibble a7: exact values + 2 planes of E (450 values, 5 of 7 code bits)", "avx2 a7 E2 f32 450v n5"),
        ("cpu avx512vbmi/planes a3: 2 planes of T (14198 values) (a >> 5)", "vbmi a3 T2 14198v >>5"),
        ("cpu avx512vbmi/planes a8: 2 planes of T (8192 values, high plane on a >> 2)", "vbmi a8 T2 8192v h2"),
        ("cpu avx2/nibble a8: 1 plane of T (63 values) (operands swapped)", "avx2 a8 T1 63v sw"),
        (
            "cpu avx512vbmi/planes a6: exact int8 (a << 1) + 1 plane of E (64 values) (a >> 1)",
            "vbmi a6 E1 i8 64v >>1",
        ),
        ("cpu (avx512vbmi)", "(avx512vbmi)"),
    ],
)
def test_short_path(path: str, short: str) -> None:
    assert short_path(path) == short
