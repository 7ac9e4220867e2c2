"""One exception hierarchy for every user-facing failure.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code`` (2 for bad input, 1 for
other failures); nothing below ``LutgenError`` ever reaches a user as a traceback.
"""

from __future__ import annotations


class LutgenError(Exception):
    """Base class of all errors lutgen reports to users."""

    exit_code = 1


class InputError(LutgenError):
    """The user gave something lutgen cannot use (bad file, bad option value)."""

    exit_code = 2


class ParseError(InputError):
    """A netlist or table file is malformed; ``str()`` is ``path:line:col: message``."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, col: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.col = col
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.message}"


class UndefinedValueError(ParseError):
    """A netlist output depends on an undefined value (Yosys's ``$undef``: an x bit or an undriven net)."""


class WriteError(InputError):
    """A file cannot be written where the user asked; ``reason`` is the message without the path, ``denied`` that
    the storage refused (no permission, a read-only file or file system)."""

    def __init__(self, path: object, reason: str, *, denied: bool = False):
        self.path = path
        self.reason = reason
        self.denied = denied
        super().__init__(f"{path}: {reason}")


class NetlistError(InputError):
    """A netlist is structurally wrong (loops, undriven or multiply-driven nets, wrong widths)."""


class LibraryError(LutgenError):
    """The multiplier catalogue cannot do what was asked (damaged index, corrupted blob)."""


class DamagedIndexError(LibraryError):
    """The library's SQLite index has damaged pages or rows (``lutgen library check --repair`` may mend it)."""


class LibraryUsageError(InputError, LibraryError):
    """A library request that cannot be met as asked (a missing library, a read-only one): exit code 2."""


class NotInLibraryError(LibraryUsageError):
    """A name or hash prefix matches no library entry, or several: the user's to fix (exit code 2)."""


class ConfigError(InputError):
    """An option or configuration value is invalid."""


class NameTakenError(ConfigError):
    """A library entry name (release and name) already names a circuit with another table."""


class NativeUnavailableError(LutgenError):
    """A native kernel was requested explicitly but cannot be built or loaded here."""
