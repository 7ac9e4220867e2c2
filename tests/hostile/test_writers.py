"""Writers killed at any moment (SIGKILL) and writers racing each other leave a sound library: every entry's
table loads, nothing half-written is visible, and no entry is reported as added twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from approxlut.library import Library
from approxlut.lutgen.formats import load_npz

from .conftest import MUL2_BLIF, assert_clean, run, strict_json

LUTGEN = [sys.executable, "-c", "from approxlut.cli import main; main()"]


def _started(count: int, *args: str) -> list[subprocess.Popen[str]]:
    """``count`` lutgen processes running ``args`` at the same time (output captured)."""
    return [
        subprocess.Popen([*LUTGEN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]


def _added(processes: list[subprocess.Popen[str]], timeout: float) -> list[str]:
    """The names every ``library import --json`` process reported as added (each must succeed)."""
    added = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0 and "Traceback" not in err, err
        added += strict_json(out, "library import")["added"]
    return added


def _variant(index: int) -> str:
    """A 3x3 multiplier whose product at one input pair is changed: a distinct function per ``index``."""
    products = [a * b for a in range(8) for b in range(8)]
    products[index % 64] ^= 1 << (index // 64 % 6)
    inputs = "A[0] A[1] A[2] B[0] B[1] B[2]"
    lines = [f".model v{index}", f".inputs {inputs}", ".outputs " + " ".join(f"O[{k}]" for k in range(6))]
    for k in range(6):
        lines.append(f".names {inputs} O[{k}]")
        for code, value in enumerate(products):
            if value >> k & 1:
                a, b = code >> 3, code & 7
                bits = "".join(str(a >> i & 1) for i in range(3)) + "".join(str(b >> i & 1) for i in range(3))
                lines.append(f"{bits} 1")
    return "\n".join([*lines, ".end", ""])


@pytest.fixture(scope="module")
def netlists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("variants")
    for index in range(48):
        (folder / f"v{index:02d}.blif").write_text(_variant(index))
    return folder


def _entries_all_load(library: Path) -> int:
    with Library.open(library, readonly=True) as lib:
        entries = lib.query()
        for entry in entries:
            if entry.has_lut:
                lib.load_lut(entry, gradients=False)  # raises if a table is missing or corrupt
        return len(entries)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.4, 0.8, 1.2, 1.6, 2.0, 2.6, 3.2])
def test_import_killed_at_any_moment_leaves_a_sound_library(tmp_path: Path, netlists: Path, delay: float) -> None:
    library = tmp_path / "lib"
    Library.open(library).close()
    process = subprocess.Popen([*LUTGEN, "library", "import", str(netlists), "--library", str(library), "--json"])
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done = _entries_all_load(library)
    check = run(["library", "check", "--json", "--library", library])
    assert_clean(check, 0, 1)
    left = [f["problem"] for f in strict_json(check.stdout)["findings"] if not f["fixed"]]
    assert all("no entry refers to" in problem for problem in left), left  # at most leftovers of the kill
    assert_clean(run(["library", "check", "--repair", "--library", library]), 0)
    resumed = run(["library", "import", netlists, "--library", library, "--json"])
    assert_clean(resumed, 0)
    added = strict_json(resumed.stdout, "library import")["added"]
    assert done + len(added) == 48 == _entries_all_load(library)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.0, 1.5])
def test_sim_killed_while_writing_leaves_the_old_file_or_the_new_one(tmp_path: Path, delay: float) -> None:
    source = tmp_path / "v.blif"
    source.write_text(_variant(5).replace(".model v5", ".model big"))
    out = tmp_path / "out.npz"
    out.write_bytes(b"old contents")
    process = subprocess.Popen([*LUTGEN, "sim", str(source), "--out", str(out)], stdout=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if out.read_bytes() != b"old contents":  # a killed writer may leave its temporary file, never a torn target
        assert load_npz(out).bits_a == 3


@pytest.mark.slow
def test_concurrent_imports_report_each_entry_added_once(tmp_path: Path, netlists: Path) -> None:
    library = tmp_path / "lib"
    added = _added(_started(3, "library", "import", str(netlists), "--library", str(library), "--json"), 180)
    assert len(added) == len(set(added)) == 48, sorted(added)
    assert _entries_all_load(library) == 48
    assert_clean(run(["library", "check", "--library", library]), 0)


@pytest.mark.slow
def test_concurrent_first_use_creates_one_library(tmp_path: Path) -> None:
    library = tmp_path / "new"
    source = tmp_path / "m.blif"
    source.write_text(MUL2_BLIF)
    added = _added(_started(4, "library", "import", str(source), "--library", str(library), "--json"), 120)
    assert added == ["m"]
    assert_clean(run(["library", "check", "--library", library]), 0)
    assert not [p for p in library.iterdir() if p.name.endswith(".new")]


def test_a_writer_is_never_seen_half_done(tmp_path: Path) -> None:
    """Readers racing a writer see the old table or the new one (atomic rename), never a torn file."""
    source = tmp_path / "m.blif"
    source.write_text(MUL2_BLIF)
    out = tmp_path / "m.npz"
    assert_clean(run(["sim", source, "--out", out]), 0)
    first = out.read_bytes()
    writer = subprocess.Popen(
        [*LUTGEN, "sim", str(source), "--out", str(out), "--half-window", "1"], stdout=subprocess.DEVNULL
    )
    seen = set()
    while writer.poll() is None:
        data = out.read_bytes()
        seen.add(data == first)
        if data != first:
            assert np.array_equal(load_npz(out).forward, np.outer(range(4), range(4)))
    assert writer.returncode == 0
    assert os.stat(out).st_size > 0 and seen
