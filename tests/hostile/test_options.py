"""Every option is checked before work starts: a bad value is one line and exit code 2, whatever the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import MUL2_BLIF, assert_clean, run, strict_json

#: (command words, bad option words); ``{src}`` is a small BLIF multiplier, ``{tmp}`` the test folder.
BAD: list[tuple[str, list[str]]] = [
    *[("sim {src}", ["--samples", v]) for v in ("0", "-5", "63", "1000000000000", str(2**31), "abc", "1e9", "")],
    *[("sim {src}", ["--half-window", v]) for v in ("-1", "129", "x", "1e3")],
    ("sim {src}", ["--grad", "magic"]),
    ("sim {src}", ["--format", "vhdl"]),
    *[("sim {src}", ["--operands", v]) for v in ("A", "A,B,C", ",", " , ", "X,Y")],
    ("sim {src}", ["--top", "mul2"]),
    ("sim {src}", ["--cells", "{tmp}/none.json"]),
    ("sim {tmp}/none.blif", []),
    ("sim {tmp}", []),
    ("sim {src}", ["--frobnicate"]),
    *[("library list", ["--bits", v]) for v in ("x", "8x8x8", "0", "-3", "99999999999999999999", "8x", "x8", "")],
    *[("library list", ["--max-mae", v]) for v in ("nan", "inf", "-inf", "-1", "abc", "1e400")],
    *[("library list", ["--sort", v]) for v in ("bogus", "-", "--", "name;drop")],
    *[("library show", [v]) for v in ("", "no_such_multiplier", "x" * 100_000, "%", "_", "abcd")],
    *[("library pareto", v) for v in (["--x", "bogus"], ["--y", "speed"], ["--bits", "nan"])],
    ("library pareto", ["--plot", "{tmp}/plot.txt"]),
    *[("library pareto", ["--plot", v]) for v in ("{tmp}/front", "{tmp}/no-such-folder/front.png")],
    *[("library show exact8s", ["--plot", v]) for v in ("{tmp}/map", "{tmp}/no-such-folder/map.png")],
    *[("library export exact8s", v) for v in (["--format", "csv"], ["--half-window", "999"])],
    ("library export exact8s", ["--format", "tfapprox"]),
    ("library export exact8s", ["--format", "lutfp"]),
    ("library export nope", []),
    ("library remove nope", []),
    ("library import {tmp}/none", []),
    *[("library import {src}", ["--workers", v]) for v in ("0", "-2", "257", "x")],
    *[("library import {src}", ["--ray-address", v]) for v in ("", "head", "head:0", "a b:1")],
    ("library import {src}", ["--workers", "2", "--ray-address", "auto"]),
    *[("sim {src}", ["--cells", v]) for v in ("nosuchprofile", "", "{tmp}")],
    *[("sim {src}", ["--mre-convention", v]) for v in ("max", "", "NONZERO")],
    *[("library calibrate {tmp}", ["--bits", v]) for v in ("0", "33", "x")],
    *[("bench --quick", ["--repeat", v]) for v in ("0", "1001", str(2**40))],
    *[("evaluate --model lenet5", ["--budget", v]) for v in ("nan", "inf", "-inf", "-1", "1e400", "abc", "")],
    *[("evaluate --model lenet5", ["--seed", v]) for v in ("-1", str(2**32), str(2**64), str(2**70), "1.5", "x")],
    *[
        ("evaluate", ["--model", v])
        for v in ("os:system", "builtins:exec", "subprocess:call", "", ":", "x.py:", "x.py:1x", "/etc/passwd:x", "vgg")
    ],
    ("evaluate", ["--model", "{tmp}/none.py:build"]),
    *[("evaluate --model lenet5", ["--limit", v]) for v in ("0", "-1", "x")],
    *[("evaluate --model lenet5", ["--assign", v]) for v in ("", "a=", "=b", "{tmp}/none.json", "x=y=z,,")],
    *[("evaluate --model lenet5", ["--candidates", v]) for v in ("bits=x", "max_mae=nan", "bits=99", "a=b", "bits=-8")],
    *[("evaluate --model lenet5", ["--verify", v]) for v in ("0", "-1", "65", str(2**40), "x", "")],
    *[("evaluate --model lenet5", ["--workers", v]) for v in ("0", "-2", "257", str(2**40), "x")],
    *[("evaluate --model lenet5", ["--ray-address", v]) for v in ("", "head", "head:0", "head:99999", "a b:1")],
    ("evaluate --model lenet5", ["--workers", "2", "--ray-address", "auto"]),
    ("evaluate --model lenet5", ["--assign", "{tmp}/none.json#0"]),
    ("evaluate --model lenet5", ["--assign", "no_such_multiplier"]),
    ("evaluate --model lenet5", ["--assign", "{tmp}/none.npz"]),
    ("evaluate --model lenet5", ["--save", "/proc/version"]),
    *[("library list", ["--filter", v]) for v in ("max_mae=nan", "bits=0", "colour=red", "max_power=-1", "signed=x")],
    *[("library pareto", ["--filter", v]) for v in ("max_mae=inf", "family=nonsense", "origin=mars")],
    ("library report {tmp}/site", ["--filter", "release=v1999"]),
    ("library report", [""]),
    ("evaluate --model lenet5", ["--data", "{tmp}/no-such-dataset"]),
    ("evaluate --model lenet5", ["--save", "{tmp}/no-such-folder/a.json"]),
    ("evaluate --model lenet5", ["--plot", "{tmp}"]),
    ("evaluate --model lenet5", ["--plot", "{tmp}/front.pgf"]),  # (needs LaTeX: it failed after the search)
    *[("evaluate --model lenet5", ["--save", v]) for v in ("{tmp}/front.txt", "{tmp}/folder/")],  # (not .json)
    *[("retrain --model lenet5 --assign exact8s", ["--lr", v]) for v in ("0", "-1", "nan", "inf", "1e300", "11", "x")],
    *[
        ("retrain --model lenet5 --assign exact8s", ["--device", v])
        for v in ("nonsense", "cuda:7", "cuda:-1", "cpu:1", "", "meta", "cuda:x")
    ],
    *[("retrain --model lenet5 --assign exact8s", ["--epochs", v]) for v in ("-1", "0", "1000000000")],
    *[("retrain --model lenet5 --assign exact8s", ["--batch-size", v]) for v in ("0", str(2**40))],
    *[("retrain --model lenet5 --assign exact8s", ["--half-window", v]) for v in ("-1", "x", "", "129")],
    *[("retrain --model lenet5 --assign exact8s", ["--seed", v]) for v in ("-1", str(2**64))],
    *[("retrain --model lenet5 --assign exact8s", ["--threads", v]) for v in ("0", "-1", "1025", str(2**40), "x")],
    *[("retrain --model lenet5 --assign exact8s", ["--protocol", v]) for v in ("paper", "", "DATE25x")],
    ("retrain --model lenet5 --assign auto", []),
    ("retrain --model lenet5 --assign exact8s", ["--resume"]),
    ("retrain --model lenet5 --assign exact8s", ["--out", "{tmp}"]),
    ("retrain --model lenet5 --assign exact8s", ["--out", "/proc/version"]),
    ("retrain --model lenet5 --assign exact8s", ["--out", "{tmp}/no-such-folder/ck.pt"]),  # (not created)
    ("retrain --model lenet5 --assign exact8s", ["--library", "{tmp}/no-such-library"]),
    ("retrain --model lenet5", ["--assign", "{tmp}/none.json"]),
    *[("synth generate array", ["--bits", v]) for v in ("0", "33", "-1", "x")],
    *[("synth generate truncated", ["--param", v]) for v in ("k=abc", "k", "=3", "q=1", "k=1000000000")],
    ("synth generate nonsense", []),
    ("synth generate array", ["--bits-b", "0"]),
    *[("synth als {src}", v) for v in (["--max-mae", "nan"], ["--steps", "0"], ["--steps", "1000001"])],
    ("synth als {tmp}/none.blif", []),
    *[("bench", ["--threads", v]) for v in ("0", "1025", str(2**40))],
    *[("bench", v) for v in (["--repeat", "0"], ["--lut", "nope"], ["--engine", "nope"])],
    *[("bench", v) for v in (["--isa", "sse"], ["--corpus", "{tmp}/none"])],
    ("frobnicate", []),
    ("library frobnicate", []),
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "mul2.blif"
    path.write_text(MUL2_BLIF)
    return path


@pytest.mark.parametrize(("command", "options"), BAD, ids=[f"{c} {' '.join(o)}"[:80] for c, o in BAD])
def test_bad_options_are_one_line_exit_2(
    tmp_path: Path, source: Path, library: Path, monkeypatch: pytest.MonkeyPatch, command: str, options: list[str]
) -> None:
    monkeypatch.setenv("LUTGEN_LIBRARY", str(library))
    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))
    words = [w.replace("{src}", str(source)).replace("{tmp}", str(tmp_path)) for w in [*command.split(), *options]]
    result = run(words)
    assert_clean(result, 2)


#: (command words, what the one-line error must say): the real problem, not a guess made on the way to it
MESSAGES: list[tuple[str, str]] = [
    ("sim {tmp}/mistyped_lutfp.txt", "mistyped_lutfp.txt: no such file"),
    ("sim {tmp}/foreign.npz", "not a lutgen LUT file"),
    ("synth generate array --bits 3 --out {tmp}/t.txt", "name the file .v, .sv, .blif, .sop, .pla"),
    ("evaluate --model lenet5 --candidates bits=8,signd", "'signd' is not a filter (fields: signed, unsigned"),
    ("evaluate --model lenet5 --assign exact --data {tmp}/no-such-dataset", "no-such-dataset: no such folder"),
    ("evaluate --model lenet5 --assign exact --data {src}", "mul2.blif: not a folder"),
    # the search's options with an assignment that runs no search are refused, as --plot is, not ignored
    ("evaluate --model lenet5 --assign exact8s --budget 2", "--budget needs --assign auto"),
    ("evaluate --model lenet5 --assign exact --verify 3", "--verify needs --assign auto"),
    ("evaluate --model lenet5 --assign features.0=exact --workers 2", "--workers needs --assign auto"),
]


@pytest.mark.parametrize(("command", "says"), MESSAGES, ids=[c[:60] for c, _ in MESSAGES])
def test_errors_name_the_real_problem(
    tmp_path: Path, source: Path, library: Path, monkeypatch: pytest.MonkeyPatch, command: str, says: str
) -> None:
    import numpy as np

    monkeypatch.setenv("LUTGEN_LIBRARY", str(library))
    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))  # (an .npz, not lutgen's)
    result = run([w.replace("{src}", str(source)).replace("{tmp}", str(tmp_path)) for w in command.split()])
    assert_clean(result, 2)
    assert says in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["1e-300", "0", "1e308"])
def test_json_output_is_strict_json(tmp_path: Path, source: Path, library: Path, value: str) -> None:
    """--json never prints NaN or Infinity, whatever the numbers are."""
    data = strict_json(run(["sim", source, "--json", "--no-write"]).stdout, "sim")
    assert data["bits_a"] == 2
    listed = run(["library", "list", "--json", "--max-mae", value, "--library", library])
    assert_clean(listed, 0)
    assert isinstance(strict_json(listed.stdout, "library list")["entries"], list)


def test_library_and_overflow_errors_that_are_the_users_fault_exit_2(library: Path) -> None:
    for args in (["library", "show", "no_such"], ["library", "export", "no_such"], ["library", "remove", "no_such"]):
        assert_clean(run([*args, "--library", library]), 2)
    import torch

    from approxlut.errors import InputError
    from approxlut.native.prepared import PreparedLut
    from approxlut.native.reference import check_int32

    lut = PreparedLut.__new__(PreparedLut)
    object.__setattr__(lut, "name", "big")
    with pytest.raises(InputError):
        check_int32(torch.tensor([2**40]), lut)


def test_a_library_path_that_is_a_file_is_a_usage_error_however_named(tmp_path: Path) -> None:
    """``--library FILE`` was refused by click (exit 2); ``LUTGEN_LIBRARY=FILE`` read as a damaged index (exit 1)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = run(["library", "list"], env={"LUTGEN_LIBRARY": str(blocker)})
    assert_clean(result, 2)
    assert "is a file, not a library folder" in result.stderr and blocker.read_text() == "x"


def test_workers_given_win_over_a_ray_address_from_the_environment(tmp_path: Path, source: Path) -> None:
    """$RAY_ADDRESS fills --ray-address; with --workers given it used to refuse the two as given together."""
    env = {"RAY_ADDRESS": "127.0.0.1:1", "LUTGEN_CACHE": str(tmp_path / "cache")}
    local = run(["library", "import", str(source), "--library", str(tmp_path / "lib"), "--workers", "1"], env=env)
    assert_clean(local, 0)
    joined = run(["library", "import", str(source), "--library", str(tmp_path / "lib")], env=env)
    assert_clean(joined, 2)
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in joined.stderr
