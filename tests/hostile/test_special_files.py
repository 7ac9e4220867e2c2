"""Writers refuse targets that are not regular files (one line, the target untouched), honour the umask,
and readers never block on a named pipe or read an endless device."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import MUL2_BLIF, assert_clean, run


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _chardev(path: Path) -> Path:
    """A character device like /dev/full (major 1, minor 7), made in the test folder; root only."""
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _link_to_fifo(path: Path) -> Path:
    os.symlink(_fifo(path.with_name(path.name + ".pipe")), path)
    return path


def _link_to_directory(path: Path) -> Path:
    os.symlink(_directory(path.with_name(path.name + ".dir")), path)
    return path


def _socket(path: Path) -> Path:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path


TARGETS: dict[str, Callable[[Path], Path]] = {
    "named pipe": _fifo,
    "device node": _chardev,
    "directory": _directory,
    "link to a pipe": _link_to_fifo,
    "link to a directory": _link_to_directory,
    "socket": _socket,
}


def _writers(tmp: Path, library: Path) -> dict[str, Callable[[Path], list[str]]]:
    source = tmp / "mul2.blif"
    source.write_text(MUL2_BLIF)
    lib = ["--library", str(library)]
    return {
        "sim --out": lambda out: ["sim", str(source), "--out", str(out)],
        "library export --out": lambda out: ["library", "export", "exact8s", "--out", str(out), *lib],
        "library export tfapprox": lambda out: [
            *("library", "export", "exact8u", "--format", "tfapprox", "--out", str(out)),
            *lib,
        ],
        "library show --plot": lambda out: ["library", "show", "exact8s", "--plot", str(out), *lib],
        "library pareto --plot": lambda out: ["library", "pareto", "--bits", "8", "--signed", "--plot", str(out), *lib],
        "synth generate --out": lambda out: ["synth", "generate", "array", "--bits", "2", "--out", str(out)],
        "evaluate --save": lambda out: ["evaluate", "--model", "lenet5", "--assign", "exact8s", "--save", str(out)],
        "evaluate --plot": lambda out: ["evaluate", "--model", "lenet5", "--plot", str(out)],
        "retrain --out": lambda out: ["retrain", "--model", "lenet5", "--assign", "exact8s", "--out", str(out)],
    }


WRITERS = [
    "sim --out",
    "library export --out",
    "library export tfapprox",
    "library show --plot",
    "library pareto --plot",
    "synth generate --out",
    "evaluate --save",
    "evaluate --plot",
    "retrain --out",
]
SUFFIX = {
    "library show --plot": ".png",
    "library pareto --plot": ".png",
    "synth generate --out": ".blif",
    "evaluate --save": ".json",
    "evaluate --plot": ".png",
    "retrain --out": ".pt",
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_writers_refuse_special_targets(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch, writer: str, target: str
) -> None:
    monkeypatch.setenv("LUTGEN_LIBRARY", str(library))
    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))  # a model would be trained here: none must be
    out = TARGETS[target](tmp_path / f"out{SUFFIX.get(writer, '.bin')}")
    before = os.lstat(out)
    result = run(_writers(tmp_path, library)[writer](out))
    assert_clean(result, 2)
    assert "regular files only" in result.stderr or "directory" in result.stderr
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_report_refuses_a_pipe_as_its_page(tmp_path: Path, library: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _fifo(site / "index.html")
    result = run(["library", "report", site, "--library", library])
    assert_clean(result, 2)
    assert stat.S_ISFIFO(os.lstat(site / "index.html").st_mode)


def _report_part(site: Path, library: Path, part: str) -> Path:
    """Put a special file where ``library report`` writes ``part`` (a circuit page: exact8s's)."""
    from approxlut.library import Library
    from approxlut.library.report import page_slug

    with Library.open(library, readonly=True) as lib:
        slug = page_slug(lib.entry("exact8s"))
    place = {
        "report.css": site / "report.css",
        "a circuit page": site / "circuits" / f"{slug}.html",
        "a heat-map": site / "circuits" / slug / "heatmap.png",
        "a download": site / "circuits" / slug / "exact8s.npz",
        "the plots folder": site / "plots",
        "the circuits folder": site / "circuits",
    }[part]
    place.parent.mkdir(parents=True, exist_ok=True)
    if part.endswith("folder"):
        place.write_text("a file where a folder goes")
        return place
    return _fifo(place)


REPORT_PARTS = ["report.css", "a circuit page", "a heat-map", "a download", "the plots folder", "the circuits folder"]


@pytest.mark.parametrize("part", REPORT_PARTS)
def test_report_refuses_special_files_among_its_parts(tmp_path: Path, library: Path, part: str) -> None:
    site = tmp_path / "site"
    place = _report_part(site, library, part)
    before = os.lstat(place)
    result = run(["library", "report", site, "--library", library])
    assert_clean(result, 2)
    assert str(place) in result.stderr
    after = os.lstat(place)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not [p for p in site.rglob(".*.tmp")]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    source = tmp_path / "mul2.blif"
    source.write_text(MUL2_BLIF)
    old = os.umask(umask)
    try:
        assert_clean(run(["sim", source, "--out", tmp_path / "new.npz"]), 0)
        assert_clean(run(["synth", "generate", "array", "--bits", "2", "--out", tmp_path / "new.blif"]), 0)
    finally:
        os.umask(old)
    for name in ("new.npz", "new.blif"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_an_existing_file_keeps_its_mode_and_a_link_stays_a_link(tmp_path: Path) -> None:
    source = tmp_path / "mul2.blif"
    source.write_text(MUL2_BLIF)
    kept = tmp_path / "kept.npz"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    assert_clean(run(["sim", source, "--out", kept]), 0)
    assert_clean(run(["sim", source, "--out", link]), 0)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_bytes() != b"old"
    assert link.is_symlink() and real.read_bytes() != b"old"


def _sources(tmp: Path) -> dict[str, Path]:
    pipe = _fifo(tmp / "pipe.blif")
    link = tmp / "link.blif"
    link.symlink_to(pipe)
    zero = tmp / "zero.blif"
    zero.symlink_to("/dev/zero")
    folder = _directory(tmp / "folder.blif")
    return {"pipe": pipe, "link to a pipe": link, "endless device": zero, "directory": folder}


LINKED = {"sim LUT": ".npz", "evaluate --assign": ".json", "evaluate LUT": ".npz"}


@pytest.mark.parametrize("kind", ["pipe", "link to a pipe", "endless device", "directory"])
@pytest.mark.parametrize("reader", ["sim", "sim LUT", "sim --cells", "import", "evaluate --assign", "evaluate LUT"])
def test_readers_refuse_special_sources(tmp_path: Path, library: Path, kind: str, reader: str) -> None:
    source = _sources(tmp_path)[kind]
    plain = tmp_path / "mul2.v"
    plain.write_text("module m(A, B, O); input [1:0] A; input [1:0] B; output [3:0] O; assign O = A * B; endmodule\n")
    args = {
        "sim": ["sim", source, "--format", "blif", "--no-write"],
        "sim --cells": ["sim", plain, "--cells", source, "--no-write"],
        "import": ["library", "import", source, "--library", library],
        "sim LUT": ["sim", source.with_suffix(".npz"), "--no-write"],
        "evaluate --assign": ["evaluate", "--model", "lenet5", "--assign", source.with_suffix(".json")],
        "evaluate LUT": ["evaluate", "--model", "lenet5", "--assign", source.with_suffix(".npz")],
    }[reader]
    if reader in LINKED:  # readers that go by a file's suffix get a link with theirs
        source.with_suffix(LINKED[reader]).symlink_to(source)
    result = run(args)
    assert_clean(result, *((0,) if (kind, reader) == ("directory", "import") else (1, 2)))
