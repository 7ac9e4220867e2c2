"""Where the library lives: ``--library DIR``, else ``$LUTGEN_LIBRARY``, else the platform data dir.

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


def library_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The library directory: ``path`` when given, else ``$LUTGEN_LIBRARY``, else ``data_dir()/library``."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return data_dir() / "library"
