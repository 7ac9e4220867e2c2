"""JIT build and loading of the CPU kernels (``torch.utils.cpp_extension``), cached per source hash.

Nothing compiles at import: :func:`load` builds on first use (one line on stderr says so) into
``$LUTGEN_CACHE/native/<torch version>-<hash>`` (default cache ``~/.cache/lutgen``), or ``lutgen native
build`` does it ahead of time. One build holds every ISA path: the per-ISA sources select their
instruction sets with ``#pragma GCC target``, and the path is chosen at run time.

A fresh build removes the other CPU build folders of its torch version (older sources) unless another
process holds their build lock (builds of other torch versions may belong to another environment sharing
the cache); ``lutgen native clean`` removes every other build on demand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..environ import environ_scope
from ..errors import InputError, LutgenError, NativeUnavailableError

CACHE_ENV = "LUTGEN_CACHE"
SOURCES = (
    "lut_gemm.cpp",
    "gemm_scalar.cpp",
    "gemm_avx2.cpp",
    "gemm_avx512bw.cpp",
    "gemm_avx512vbmi.cpp",
    "lut_gemm_backward.cpp",
    "conv_lowering.cpp",
    "table_parts.cpp",
    "operands.cpp",
    "convert_simd.cpp",
)
HEADERS = ("lut_gemm_common.h", "conv_lowering.h", "table_parts.h", "operands.h", "operands_isa.h", "rows_order.h")
CFLAGS = ("-O3", "-fopenmp", "-ffp-contract=off")
"""``-fopenmp``: ATen's ``at::parallel_for`` is an inline ``#pragma omp parallel`` (torch's OpenMP backend), so
without it the kernels would run on one thread whatever ``torch.set_num_threads`` says. ``-ffp-contract=off``:
float arithmetic that must round like torch's (quantisation, rescaling) is never fused into FMAs."""
LDFLAGS = ("-fopenmp",)
BUILD_SECONDS = 60
LOCK_FILE = "build.flock"
BUILD_NAME = re.compile(r"\d[^/]*-[0-9a-f]{16}(\.removing-\d+)?")
"""CPU build folders ``<torch version>-<hash>`` (CUDA builds are ``cuda-...``), and ones a removal left behind."""


def source_dir() -> Path:
    """The folder holding the C++ sources."""
    return Path(__file__).resolve().parent / "csrc"


def cache_root() -> Path:
    """``$LUTGEN_CACHE/native``, default ``~/.cache/lutgen/native``."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "lutgen") / "native"


def source_hash() -> str:
    """SHA-256 (16 hex digits) over the sources, headers, flags, torch version and Python ABI."""
    import torch

    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{sysconfig.get_config_var('SOABI')}|{' '.join(CFLAGS)}".encode())
    for name in (*HEADERS, *SOURCES):
        h.update(name.encode())
        h.update((source_dir() / name).read_bytes())
    return h.hexdigest()[:16]


def build_dir() -> Path:
    """Where this exact set of sources is (or will be) built."""
    import torch

    return cache_root() / f"{torch.__version__}-{source_hash()}"


def module_name() -> str:
    """The extension's module name (unique per source hash, so versions never clash)."""
    return f"lutgen_native_{source_hash()}"


def compiler() -> str | None:
    """Path of the C++ compiler cpp_extension will use, or ``None`` when there is none."""
    return shutil.which(os.environ.get("CXX", "c++"))


def is_built() -> bool:
    """Whether a compiled library for the current sources is in the cache."""
    return (build_dir() / f"{module_name()}.so").is_file()


@dataclass
class _State:
    module: ModuleType | None = None
    error: str | None = None


_STATE = _State()


def loaded() -> Any | None:
    """The extension if this process has already loaded it, else ``None`` (never builds)."""
    return _STATE.module


def load(*, verbose: bool = False) -> Any:
    """The compiled extension, building it first if needed.

    Raises:
        NativeUnavailableError: no compiler, or the build failed (the reason is kept: no retry).
    """
    if _STATE.module is not None:
        return _STATE.module
    if _STATE.error is not None:
        raise NativeUnavailableError(_STATE.error)
    try:
        _STATE.module = _build(verbose=verbose)
    except NativeUnavailableError as error:
        _STATE.error = str(error)
        raise
    return _STATE.module


def _build(*, verbose: bool) -> ModuleType:
    if compiler() is None:
        raise NativeUnavailableError("no C++ compiler found (install g++ or set CXX)")
    from torch.utils import cpp_extension

    directory = build_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # (a file, a dangling link or an unwritable folder where the cache goes)
        raise InputError(
            f"{directory}: cannot create the native build folder ({error.strerror or error}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from None
    fresh = not is_built()
    if fresh:
        print(f"lutgen: building native kernels (first use, ~{BUILD_SECONDS} s) in {directory}", file=sys.stderr)
    # cpp_extension looks ninja up on PATH: make the one installed beside this interpreter visible.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    start = time.monotonic()
    try:
        with environ_scope(PATH=path), build_lock(directory):
            module = cpp_extension.load(
                name=module_name(),
                sources=[str(source_dir() / name) for name in SOURCES],
                extra_cflags=list(CFLAGS),
                extra_ldflags=list(LDFLAGS),
                extra_include_paths=[str(source_dir())],
                build_directory=str(directory),
                verbose=verbose,
            )
    except (RuntimeError, OSError, ImportError, SystemExit) as error:
        last = str(error).strip().splitlines()
        raise NativeUnavailableError(
            f"building the native kernels failed ({last[-1] if last else type(error).__name__}); "
            f"run 'lutgen native build --verbose' to see the compiler output"
        ) from error
    if fresh:
        print(f"lutgen: native kernels built in {time.monotonic() - start:.0f} s", file=sys.stderr)
        pruned = prune_builds(keep=directory, same_torch=True)
        if pruned.removed:
            removed = f"{len(pruned.removed)} old native build(s), {pruned.freed_bytes} bytes"
            print(f"lutgen: removed {removed}", file=sys.stderr)
        if pruned.failed:
            print(f"lutgen: warning: could not remove an old native build: {pruned.failed[0]}", file=sys.stderr)
    return module


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on ``directory`` for a build, and clear a stale torch build lock.

    ``cpp_extension.load`` guards builds with a ``lock`` file that stays behind when a build is killed,
    and every later build then waits on it forever. An ``fcntl`` lock dies with its process, so while
    we hold it no other lutgen build runs here and a leftover ``lock`` file can only be stale.
    The folder is (re)created if a concurrent :func:`prune_builds` removed it while we waited.
    """
    fd = _lock(directory, blocking=True)
    assert fd is not None
    try:
        (directory / "lock").unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)


def _lock(directory: Path, *, blocking: bool) -> int | None:
    """A descriptor holding the exclusive lock of ``directory``'s lock file as it is on disk now.

    Non-blocking: ``None`` when another process holds it or the folder is gone. The lock file is
    checked after locking because a pruner may have removed the folder while we waited on it.
    """
    path = directory / LOCK_FILE
    while True:
        if blocking:
            directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if blocking:
                continue
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@dataclass
class PruneReport:
    """What :func:`prune_builds` did: folders removed, bytes freed, folders skipped or not removable."""

    removed: list[str]
    freed_bytes: int
    busy: list[str]
    failed: list[str]
    """``"<folder>: <reason>"`` per folder that could not be removed."""

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {"removed": self.removed, "freed_bytes": self.freed_bytes, "busy": self.busy, "failed": self.failed}

    def check(self) -> None:
        """Raise :class:`LutgenError` (one line) when a folder could not be removed."""
        if self.failed:
            more = f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
            raise LutgenError(f"could not remove native build {self.failed[0]}{more}")


def cpu_builds() -> list[Path]:
    """The CPU build folders in the cache (every torch version and source hash), sorted by name."""
    root = cache_root()
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if path.is_dir() and BUILD_NAME.fullmatch(path.name))


def prune_builds(*, keep: Path | None, same_torch: bool = False) -> PruneReport:
    """Remove every CPU build folder but ``keep`` (with ``same_torch``, only the builds of this torch version:
    another environment with another torch may share the cache); skip those whose build lock another
    process holds.

    A folder is locked, renamed aside (so a build starting now gets a fresh folder) and then deleted.
    Permission and other OS errors are collected in ``failed``, never raised.
    """
    report = PruneReport(removed=[], freed_bytes=0, busy=[], failed=[])
    prefix = ""
    if same_torch:
        import torch

        prefix = f"{torch.__version__}-"
    for folder in cpu_builds():
        if (keep is not None and folder == keep) or not folder.name.startswith(prefix):
            continue
        try:
            fd = _lock(folder, blocking=False)
        except OSError as error:
            report.failed.append(f"{folder}: {error.strerror or error}")
            continue
        if fd is None:
            if folder.exists():
                report.busy.append(str(folder))
            continue
        try:
            size = _size(folder)
            doomed = folder
            if not folder.name.partition(".removing-")[2]:
                doomed = folder.with_name(f"{folder.name}.removing-{os.getpid()}")
                folder.rename(doomed)
            shutil.rmtree(doomed)
        except OSError as error:
            report.failed.append(f"{folder}: {error.strerror or error}")
            continue
        finally:
            os.close(fd)
        report.removed.append(str(folder))
        report.freed_bytes += size
    return report


def _size(folder: Path) -> int:
    """Total size in bytes of the regular files under ``folder``."""
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def clean_builds(*, all_builds: bool = False) -> PruneReport:
    """What ``lutgen native clean`` does: remove every CPU build but the current one (all with ``all_builds``)."""
    return prune_builds(keep=None if all_builds else build_dir())


def build_now(*, verbose: bool = False) -> dict[str, Any]:
    """Build (or find up to date) the native kernels; what ``lutgen native build`` reports."""
    was_built = is_built()
    start = time.monotonic()
    module = load(verbose=verbose)
    return {
        "cache_dir": str(build_dir()),
        "status": "up to date" if was_built else "built",
        "elapsed_s": round(time.monotonic() - start, 1),
        "kernels": list(module.kernels()),
    }


def native_info() -> dict[str, Any]:
    """CPU features, ISA paths, the chosen path and the build's state; never builds anything."""
    from .cpu_features import ISA_ENV, SHOWN_FLAGS, choose_path, detect

    features = detect()
    try:
        chosen = choose_path()
    except LutgenError as error:
        chosen = f"none ({error})"
    built = is_built()
    kernels: list[str] = []
    if built:
        try:
            kernels = list(load().kernels())
        except NativeUnavailableError as error:
            kernels = [f"load failed: {error}"]
    from .costs import COSTS_ENV, DEFAULT_COSTS, costs_path, read_cached

    prices = DEFAULT_COSTS if os.environ.get(COSTS_ENV) == "default" else read_cached(costs_path())
    return {
        "cpu": features.model or features.machine,
        "flags": {flag: features.has(flag) for flag in SHOWN_FLAGS},
        "isa_paths": features.paths(),
        "chosen_path": chosen,
        "forced_by_env": os.environ.get(ISA_ENV),
        "compiler": compiler(),
        "cache_dir": str(build_dir()),
        "built": built,
        "compiled_kernels": kernels,
        "kernel_costs": None if prices is None else prices.as_dict(),
        "kernel_costs_file": str(costs_path()),
    }
