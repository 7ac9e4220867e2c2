"""Files lutgen reads from users and writes for them: one place for the rules every command follows.

- :func:`atomic_write` writes through a temporary file in the target's folder, ``fsync``, a rename over
  the target and an ``fsync`` of the folder, so a reader sees the old file or the new one, never half
  of one. It refuses targets that are not regular files (folders, device nodes, named pipes, sockets,
  and symbolic links to those) with one line, instead of replacing them; a symbolic link to a regular
  file is written through (the link stays). A new file gets ``0o666`` less the umask, an existing one
  keeps its permission bits, as ``cp`` does.
- :func:`read_bytes` reads a regular file only (a named pipe would block, ``/dev/zero`` never ends) and
  at most ``limit`` bytes.
- :func:`parse_json` turns malformed and too deeply nested JSON into one located error.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ParseError, WriteError

#: Deepest nesting of arrays and objects accepted in a JSON file (lutgen's own files use 4 levels).
MAX_JSON_DEPTH = 64
#: Largest JSON file read (assignments, cell libraries).
MAX_JSON_BYTES = 16 << 20

_UMASK_LOCK = threading.Lock()

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def denied(error: OSError) -> bool:
    """Whether ``error`` is the storage refusing a write: no permission, or a read-only file or file system."""
    return error.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def new_file_mode() -> int:
    """The permissions a new file gets: ``0o666`` less the process umask (as ``open()`` would create it)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask (read from /proc where it is offered, else set and restored under a lock)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _target(path: str | os.PathLike[str]) -> tuple[Path, os.stat_result | None]:
    """Where a write to ``path`` lands (symbolic links followed) and the stat of what is there now."""
    target = Path(path)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise WriteError(target, f"cannot write ({exc.strerror or exc})", denied=denied(exc)) from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise WriteError(target, f"is {_kind(info.st_mode)}; lutgen writes regular files only")
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    return target, info


def check_writable(path: str | os.PathLike[str], *, make_parents: bool = False) -> Path:
    """Raise :class:`WriteError` now if :func:`atomic_write` to ``path`` would fail later; return the target.

    Call it before long work whose result goes to ``path`` (an unwritable ``--out`` found after an epoch
    of training wastes the epoch). A temporary file is created in the folder and removed.
    """
    target, info = _target(path)
    if info is not None and not os.access(target, os.W_OK):
        raise WriteError(target, "is read-only", denied=True)
    folder = target.parent
    if make_parents:
        make_dirs(folder)
    elif not folder.is_dir():
        raise WriteError(target, f"the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise WriteError(target, f"cannot write into {folder} ({exc.strerror or exc})", denied=denied(exc)) from None
    os.close(fd)
    os.unlink(probe)
    return target


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, make_parents: bool = False
) -> Path:
    """Write a file atomically by calling ``write(handle)``; returns the path written (links resolved).

    Raises :class:`WriteError` (one line naming the file) when the target is not a regular file or
    cannot be written. Nothing is left behind on failure, including on KeyboardInterrupt.
    """
    target, info = _target(path)
    if info is not None and not os.access(target, os.W_OK):
        raise WriteError(target, "is read-only", denied=True)
    folder = target.parent
    mode = stat.S_IMODE(info.st_mode) if info is not None else new_file_mode()
    try:
        if make_parents:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WriteError(target, f"cannot write ({exc.strerror or exc})", denied=denied(exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise WriteError(target, f"cannot write ({exc.strerror or exc})", denied=denied(exc)) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_dir(folder)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, make_parents: bool = False) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda handle: handle.write(data), make_parents=make_parents)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, make_parents: bool = False) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), make_parents=make_parents)


def make_dirs(path: str | os.PathLike[str]) -> Path:
    """Create the folder ``path`` and its parents (kept when present); :class:`WriteError` when that fails."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(folder, f"cannot create the folder ({exc.strerror or exc})", denied=denied(exc)) from None
    return folder


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_bytes(path: str | os.PathLike[str], *, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refusing special files and files over ``limit`` bytes."""
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ParseError("no such file", where) from None
    except IsADirectoryError:
        raise ParseError(f"is a directory, not a {what}", where) from None
    except OSError as exc:
        raise ParseError(f"cannot read ({exc.strerror or exc})", where) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ParseError(f"is {_kind(info.st_mode)}, not a {what}", where)
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise ParseError(f"{info.st_size} bytes: lutgen reads a {what} of at most {limit} bytes", where)
        try:  # read what stat says, then to the end in pieces (read(n) would reserve n bytes up front)
            parts = [handle.read(info.st_size)]
            size = len(parts[0])
            while size <= limit and (part := handle.read(min(1 << 20, limit + 1 - size))):
                parts.append(part)
                size += len(part)
        except OSError as exc:
            raise ParseError(f"cannot read ({exc.strerror or exc})", where) from None
        data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) > limit:
        raise ParseError(f"more than {limit} bytes: lutgen reads a {what} of at most {limit} bytes", where)
    return data


def parse_json(text: str | bytes, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text; malformed or too deeply nested input raises :class:`ParseError`.

    ``NaN`` and ``Infinity`` (which JSON does not have) are refused too.
    """
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError("not UTF-8 text", where, raw[: exc.start].count(b"\n") + 1) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", where, exc.lineno, exc.colno) from None
    except RecursionError:
        raise ParseError(f"JSON nested too deeply; at most {max_depth} levels are accepted", where) from None
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}", where) from None
    depth = _depth(data)
    if depth > max_depth:
        raise ParseError(f"JSON nested {depth} levels deep; at most {max_depth} are accepted", where)
    return data


def read_json(path: str | os.PathLike[str], *, what: str = "JSON file") -> Any:
    """:func:`parse_json` of the regular file ``path`` (at most :data:`MAX_JSON_BYTES`)."""
    return parse_json(read_bytes(path, limit=MAX_JSON_BYTES, what=what), str(path))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(data: Any) -> int:
    """Deepest nesting of lists and dicts in parsed JSON (iterative: no recursion limit to hit)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            stack.extend((item, level + 1) for item in value)
    return deepest
