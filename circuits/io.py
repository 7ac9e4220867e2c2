"""One entry point for netlist files: pick the reader or writer by extension or explicit format."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, NetlistError, ParseError
from ..fileio import atomic_write_text, read_bytes
from .netlist import Netlist

#: Largest netlist file read (a one-million-gate BLIF netlist takes about 40 MB).
MAX_NETLIST_BYTES = 64 << 20

#: Format names and the file extensions that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "verilog": (".v", ".sv"),
    "blif": (".blif",),
    "sop": (".sop", ".pla"),
}
#: Every extension of :data:`FORMATS`: a file with one of these is a netlist.
NETLIST_SUFFIXES = tuple(suffix for suffixes in FORMATS.values() for suffix in suffixes)
_ALIASES = {"v": "verilog", "sv": "verilog", "pla": "sop"}


def format_for(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The netlist format of ``path``: ``format`` when given, else from the extension."""
    if format is not None:
        name = _ALIASES.get(format.lower(), format.lower())
        if name not in FORMATS:
            raise ConfigError(f"unknown netlist format '{format}'; choose one of {', '.join(FORMATS)}")
        return name
    suffix = Path(path).suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    known = ", ".join(NETLIST_SUFFIXES)
    raise ParseError(f"cannot tell the netlist format from the extension (known: {known}); pass --format", str(path))


def read_netlist(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    operands: tuple[str, str] | None = None,
    top: str | None = None,
    cells: str | os.PathLike[str] | None = None,
) -> Netlist:
    """Read a Verilog, BLIF or SOP netlist; every problem with the file is a :class:`ParseError`.

    Verilog only: ``top`` names the top module; ``cells`` is a cell profile name (``osu``,
    ``evoapprox8b``) or a JSON file of extra standard cells (:func:`~.cells.cell_library`).
    """
    where = str(path)
    kind = format_for(path, format)
    text = read_netlist_text(path)
    if kind != "verilog" and (top is not None or cells is not None):
        raise ConfigError("--top and --cells apply to Verilog netlists only")
    try:
        if kind == "verilog":
            from .cells import cell_library
            from .verilog import read_verilog

            library = cell_library(cells, text)
            return read_verilog(text, where, top=top, operands=operands, cells=library)
        if kind == "blif":
            from .blif import read_blif

            return read_blif(text, where, operands=operands)
        from .sop import read_sop

        return read_sop(text, where, operands=operands)
    except NetlistError as exc:  # structural faults found by validate() are faults of the file
        raise ParseError(str(exc), where) from None


def source_library(path: str | os.PathLike[str], format: str | None = None) -> tuple[str, str] | None:
    """``(library, evidence)`` when a Verilog file's header says which library it comes from, else ``None``.

    The library is a cell profile name (:func:`~.cells.profile_from_header`); the metric conventions
    of that library follow from it (:data:`approxlut.lutgen.metrics.LIBRARY_MRE_CONVENTIONS`).
    """
    if format_for(path, format) != "verilog":
        return None
    from .cells import profile_from_header

    return profile_from_header(read_netlist_text(path))


def write_netlist(netlist: Netlist, path: str | os.PathLike[str], format: str | None = None) -> None:
    """Write ``netlist`` as Verilog or BLIF (``sop`` writes BLIF with SOP covers, which reads back as SOP)."""
    if format is None and Path(path).suffix.lower() not in NETLIST_SUFFIXES:
        raise ConfigError(
            f"{path}: the extension says which netlist format to write: name the file {', '.join(NETLIST_SUFFIXES)}"
        )
    kind = format_for(path, format)
    if kind == "verilog":
        from .verilog_writer import write_verilog

        text = write_verilog(netlist)
    else:
        from .blif import write_blif

        text = write_blif(netlist)
    atomic_write_text(path, text)


def read_netlist_text(path: str | os.PathLike[str]) -> str:
    """The text of a netlist file: UTF-8 (a BOM dropped); binary, empty, oversized or unreadable files raise a
    located :class:`ParseError`."""
    where = str(path)
    data = read_bytes(path, limit=MAX_NETLIST_BYTES, what="netlist file")
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise ParseError("binary data (NUL byte): not a netlist text file", where, line)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError("not a UTF-8 text file", where, line) from None
    if not text.strip():
        raise ParseError("empty file", where, 1)
    return text
