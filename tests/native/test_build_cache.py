"""Pruning of old native build folders: what is removed, what is never touched, and the CLI."""

from __future__ import annotations

import fcntl
import os
import shutil
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.native import build


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$LUTGEN_CACHE``; returns its ``native`` folder."""
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    return tmp_path / "native"


def make_build(folder: Path, size: int) -> int:
    """A fake build folder holding ``size`` bytes in two files (one in a sub-folder); returns ``size``."""
    (folder / "sub").mkdir(parents=True)
    (folder / "lib.so").write_bytes(b"x" * (size // 2))
    (folder / "sub" / "a.o").write_bytes(b"y" * (size - size // 2))
    return size


def test_prune_removes_other_builds_and_nothing_else(cache: Path) -> None:
    current = cache / "2.13.0+cpu-0123456789abcdef"
    make_build(current, 10)
    freed = make_build(cache / "2.13.0+cpu-fedcba9876543210", 1000)
    freed += make_build(cache / "2.4.1-00000000000000aa", 333)
    freed += make_build(cache / "2.13.0+cpu-00000000000000bb.removing-4242", 7)  # a removal cut short
    untouched = [cache / "cuda-2.13.0+cpu-0123456789abcdef", cache / "my-notes", cache / "2.13.0-short"]
    for folder in untouched:
        make_build(folder, 5)
    (cache / "2.4.1-00000000000000cc").write_text("a file, not a build folder")

    report = build.prune_builds(keep=current)

    assert sorted(report.removed) == sorted(
        str(cache / name)
        for name in (
            "2.13.0+cpu-fedcba9876543210",
            "2.4.1-00000000000000aa",
            "2.13.0+cpu-00000000000000bb.removing-4242",
        )
    )
    assert report.freed_bytes == freed
    assert report.busy == [] and report.failed == []
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [current.name, "2.4.1-00000000000000cc", *(f.name for f in untouched)]
    )
    assert (current / "lib.so").is_file()


def test_prune_skips_a_folder_being_built(cache: Path) -> None:
    busy = cache / "2.13.0+cpu-fedcba9876543210"
    make_build(busy, 100)
    idle = cache / "2.13.0+cpu-00000000000000aa"
    make_build(idle, 50)
    with build.build_lock(busy):  # flock conflicts between separate opens, even in one process
        report = build.prune_builds(keep=None)
        assert report.busy == [str(busy)]
        assert report.removed == [str(idle)] and report.freed_bytes == 50
        assert (busy / "lib.so").is_file()
    report = build.prune_builds(keep=None)
    assert report.removed == [str(busy)] and report.busy == []
    assert not busy.exists() and not any(cache.iterdir())


def test_build_lock_follows_a_folder_pruned_while_it_waited(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder blocked on the lock of a folder that a pruner then deletes must lock a fresh folder."""
    folder = cache / "2.13.0+cpu-fedcba9876543210"
    make_build(folder, 10)
    real_flock = fcntl.flock
    calls = []

    def flock_after_prune(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not calls:  # the pruner wins the race while we wait
            calls.append(fd)
            assert build.prune_builds(keep=None).removed == [str(folder)]
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_prune)
    with build.build_lock(folder):
        monkeypatch.setattr(fcntl, "flock", real_flock)
        assert calls, "the blocking lock was never taken"
        assert folder.is_dir() and not (folder / "lib.so").exists()
        assert build.prune_builds(keep=None).busy == [str(folder)]  # the lock we hold is the one on disk
    assert [p.name for p in cache.iterdir()] == [folder.name]


def test_a_fresh_build_prunes_old_builds_and_a_load_does_not(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils import cpp_extension

    old = cache / f"{torch.__version__}-00000000000000aa"
    other_torch = cache / "2.4.1-00000000000000aa"  # another environment's build: left alone
    make_build(old, 64)
    make_build(other_torch, 64)

    def fake_load(*, name: str, build_directory: str, **_: object) -> types.ModuleType:
        (Path(build_directory) / f"{name}.so").write_bytes(b"")
        return types.ModuleType(name)

    monkeypatch.setattr(build, "compiler", lambda: "/usr/bin/c++")
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    build._build(verbose=False)
    assert not old.exists() and other_torch.is_dir() and build.is_built()
    assert "removed 1 old native build(s), 64 bytes" in capsys.readouterr().err

    make_build(old, 64)
    build._build(verbose=False)  # already built: loads, prunes nothing
    assert old.is_dir()
    assert "removed" not in capsys.readouterr().err


def test_cli_clean_keeps_the_current_build_unless_all(cache: Path) -> None:
    current = build.build_dir()
    make_build(current, 30)
    old = cache / "2.4.1-00000000000000aa"
    make_build(old, 2000)

    result = CliRunner().invoke(main, ["native", "clean"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"removed {old}", "freed 2000 bytes (0.0 MiB) in 1 folder(s)"]
    assert current.is_dir() and not old.exists()

    result = CliRunner().invoke(main, ["native", "clean", "--all", "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f'{{"schema_version": 1, "command": "native clean", "removed": ["{current}"], "freed_bytes": 30, "busy": [], '
        '"failed": []}'
    )
    assert not current.exists()

    result = CliRunner().invoke(main, ["native", "clean"])
    assert result.exit_code == 0 and result.output.strip() == "freed 0 bytes (0.0 MiB) in 0 folder(s)"


def test_cli_clean_reports_a_permission_error_on_one_line(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = cache / "2.4.1-00000000000000aa"
    make_build(old, 10)

    def refuse(path: object) -> None:
        raise PermissionError(13, os.strerror(13), str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    result = CliRunner().invoke(main, ["native", "clean"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last == f"error: could not remove native build {old}: Permission denied"
    assert "Traceback" not in result.output


def test_source_hash_covers_every_cpu_source_and_header() -> None:
    """Every C++ file beside the kernels is compiled (SOURCES) or hashed as a header (HEADERS): a header left out
    would leave a stale build in use after it changed."""
    on_disk = {path.name for pattern in ("*.cpp", "*.h") for path in build.source_dir().glob(pattern)}
    assert on_disk == set(build.SOURCES) | set(build.HEADERS)


ISA_OBJECTS = ("gemm_avx2.o", "gemm_avx512bw.o", "gemm_avx512vbmi.o")


def test_isa_objects_define_no_shared_inline_code(native: object) -> None:
    """The kernels compiled for AVX2 or AVX-512 define no weak (inline, template) symbols: the linker keeps one
    copy of such a function for the whole library, and an AVX-512 copy of, say, std::vector's growth would fault
    on a CPU without AVX-512 when baseline code calls it."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm here")
    import subprocess

    for name in ISA_OBJECTS:
        path = build.build_dir() / name
        assert path.is_file(), path
        symbols = subprocess.run([nm, "--defined-only", str(path)], capture_output=True, text=True, check=True)
        weak = [line for line in symbols.stdout.splitlines() if line.split()[-2:-1] in (["W"], ["V"], ["u"])]
        assert not weak, (name, weak[:5])
