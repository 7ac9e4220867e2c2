"""Where the library lives: ``--library DIR``, else ``$LUTGEN_LIBRARY``, else the platform data dir.

Only the platform data dir is created (with the built-in set) on first use; a library named by
``--library`` or ``$LUTGEN_LIBRARY`` must exist already for commands that read it (``lutgen library init``
or ``import`` create one), so that a mistyped path is an error rather than a new, nearly empty library.

The platform data dir is ``$XDG_DATA_HOME/lutgen/library`` (``~/.local/share/lutgen/library`` when
``XDG_DATA_HOME`` is unset) on Linux and other Unix systems, ``~/Library/Application Support/lutgen/library``
on macOS and ``%LOCALAPPDATA%\\lutgen\\library`` on Windows. This is the only place that reads them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "LUTGEN_LIBRARY"


def data_dir() -> Path:
    """The per-user data directory of lutgen (not created)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "lutgen"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "lutgen"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base_path = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_path / "lutgen"


#: Where a library location came from (see :func:`library_location`).
FROM_OPTION = "--library"
FROM_ENV = f"${ENV_VAR}"
FROM_DEFAULT = "the default location"


def library_location(path: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The library directory and who named it: :data:`FROM_OPTION`, :data:`FROM_ENV` or :data:`FROM_DEFAULT`."""
    if path is not None and str(path) != "":
        return Path(path).expanduser(), FROM_OPTION
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser(), FROM_ENV
    return data_dir() / "library", FROM_DEFAULT


def library_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The library directory: ``path`` when given, else ``$LUTGEN_LIBRARY``, else ``data_dir()/library``."""
    return library_location(path)[0]
