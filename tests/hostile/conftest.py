"""The hostile-input battery: shared helpers, a small library template, and a per-test hang guard.

Every case checks the same promises: no traceback (a ``LutgenError`` or click error reaches the user as
one line on stderr, ``error: ...``, exit code 2 for bad input, 1 for other failures), no hang (a test
running past :data:`HANG_S` fails), no data loss (tables in a library are never deleted while its
index is damaged) and no code execution (poisoned files never run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from approxlut.cli import main

REPO = Path(__file__).resolve().parents[2]
#: Longest a single hostile case may run before it counts as a hang.
HANG_S = 60

#: A 2x2 unsigned multiplier (exact), in each netlist format lutgen reads.
MUL2_BLIF = """.model mul2
.inputs A[0] A[1] B[0] B[1]
.outputs O[0] O[1] O[2] O[3]
.names A[0] B[0] O[0]
11 1
.names A[1] B[0] p10
11 1
.names A[0] B[1] p01
11 1
.names A[1] B[1] p11
11 1
.names p10 p01 O[1]
01 1
10 1
.names p10 p01 c1
11 1
.names p11 c1 O[2]
01 1
10 1
.names p11 c1 O[3]
11 1
.end
"""
MUL2_VERILOG = """module mul2(A, B, O);
  input [1:0] A;
  input [1:0] B;
  output [3:0] O;
  assign O = A * B;
endmodule
"""


class Hang(BaseException):
    """Raised by the hang guard (a BaseException, so ``except Exception`` in the code under test cannot eat it)."""


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Fail a case that runs longer than :data:`HANG_S` instead of blocking the suite."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {HANG_S} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(args: Sequence[str], *, env: dict[str, str] | None = None) -> Result:
    """Invoke ``lutgen ARGS`` in this process (stdout and stderr apart)."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_clean(result: Result, *codes: int) -> None:
    """No traceback; the exit code is one of ``codes`` (default 0, 1, 2); an error is exactly one line."""
    allowed = codes or (0, 1, 2)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"traceback (exit {result.exit_code}):\n{trace}")
    assert result.exit_code in allowed, (result.exit_code, result.stdout, result.stderr)
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def strict_json(text: str, command: str | None = None) -> dict[str, Any]:
    """A command's ``--json``: strict JSON (no NaN, no Infinity), one object with ``schema_version`` and
    ``command`` (``command`` when given), valid against that command's JSON Schema."""
    import jsonschema

    from approxlut.schema import SCHEMA_VERSION, json_schema

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output")

    data = json.loads(text, parse_constant=refuse)
    assert isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION, text[:200]
    assert command is None or data["command"] == command, (data["command"], command)
    jsonschema.validate(data, json_schema(data["command"]))
    return data


def run_process(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = HANG_S
) -> subprocess.CompletedProcess[str]:
    """Run ``lutgen ARGS`` as its own process (for files, signals and caches a test must not share)."""
    full_env = {**os.environ, **(env or {})}
    command = [sys.executable, "-c", "from approxlut.cli import main; main()", *map(str, args)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lutgen {' '.join(map(str, args))}: no answer after {timeout} s (a hang)")
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), done.stderr
    return done


@pytest.fixture(scope="session")
def template_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sound library: the built-in set plus two imported files (whose sources stay in place)."""
    root = tmp_path_factory.mktemp("hostile-template")
    sources = root / "sources"
    sources.mkdir()
    (sources / "mul2.blif").write_text(MUL2_BLIF)
    (sources / "mul2v.v").write_text(MUL2_VERILOG.replace("module mul2(", "module mul2v("))
    library = root / "lib"
    assert_clean(run(["library", "init", "--library", library]), 0)
    assert_clean(run(["library", "import", sources, "--library", library]), 0)
    return library


@pytest.fixture
def library(template_library: Path, tmp_path: Path) -> Path:
    """A private copy of the template library."""
    target = tmp_path / "lib"
    shutil.copytree(template_library, target)
    return target


def blob_files(library: Path) -> set[str]:
    """Names of the table files in a library."""
    return {p.name for p in (library / "blobs").glob("*.npz")}
