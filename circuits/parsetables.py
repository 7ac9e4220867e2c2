"""pyverilog's LALR parser tables, shipped with lutgen as data, so that no table is read from a writable cache.

Building the tables takes about a second per process; ply can cache them as a pickle or as a
``parsetab.py`` module, but loading either from a folder other processes can write runs whatever
code someone put there. lutgen instead ships the tables inside the package as JSON
(``data/pyverilog_tables.json.gz``, written by :func:`write_tables`; package files are as trusted as
the code) and checks their structure before handing them to ply, which also checks that they were
built from the same grammar (its signature). When they do not fit the installed pyverilog, the
tables are built in memory and nothing is written anywhere.

Regenerate after upgrading pyverilog or ply: ``python -m approxlut.circuits.parsetables``.
"""

from __future__ import annotations

import gzip
import json
import types
from pathlib import Path
from typing import Any

#: The shipped tables.
TABLES = Path(__file__).parent / "data" / "pyverilog_tables.json.gz"
#: Largest (decompressed) table file read; the tables are about 0.3 MB.
MAX_TABLE_BYTES = 16 << 20


def grammar_signature(parser_object: Any) -> str:
    """ply's signature of the grammar a parser object defines (start, precedence, tokens, rules)."""
    import ply.yacc as yacc

    pdict = {name: getattr(parser_object, name) for name in dir(parser_object)}
    info = yacc.ParserReflect(pdict, log=yacc.NullLogger())
    info.get_all()
    return str(info.signature())


def table_data(lr_parser: Any, signature: str) -> dict[str, Any]:
    """The tables of a built ply ``LRParser`` as JSON-able data."""
    import ply
    import ply.yacc as yacc
    import pyverilog

    return {
        "tabversion": yacc.__tabversion__,
        "ply": ply.__version__,
        "pyverilog": pyverilog.__version__,
        "method": "LALR",
        "signature": signature,
        "action": {str(state): dict(row) for state, row in lr_parser.action.items()},
        "goto": {str(state): dict(row) for state, row in lr_parser.goto.items()},
        "productions": [
            [p.str, p.name, p.len, p.func, Path(p.file).name if p.file else None, p.line] for p in lr_parser.productions
        ],
    }


def table_module(data: Any) -> types.ModuleType | None:
    """A module object in the form ply's ``read_table`` takes, or ``None`` when ``data`` is malformed."""
    try:
        action = _int_keyed(data["action"])
        goto = _int_keyed(data["goto"])
        productions = [_production(p) for p in data["productions"]]
        fields = (data["tabversion"], data["method"], data["signature"])
    except (KeyError, TypeError, ValueError):
        return None
    if not all(isinstance(f, str) for f in fields):
        return None
    module = types.ModuleType("lutgen_pyverilog_tables")
    module.__file__ = str(TABLES)
    module._tabversion = fields[0]  # type: ignore[attr-defined]
    module._lr_method = fields[1]  # type: ignore[attr-defined]
    module._lr_signature = fields[2]  # type: ignore[attr-defined]
    module._lr_action = action  # type: ignore[attr-defined]
    module._lr_goto = goto  # type: ignore[attr-defined]
    module._lr_productions = productions  # type: ignore[attr-defined]
    return module


def shipped_tables() -> types.ModuleType:
    """The shipped tables as a ply table module; an empty one (ply then builds) when absent or damaged."""
    try:
        with gzip.open(TABLES, "rb") as stream:
            text = stream.read(MAX_TABLE_BYTES + 1)
        module = table_module(json.loads(text)) if len(text) <= MAX_TABLE_BYTES else None
    except (OSError, EOFError, ValueError, RecursionError):
        module = None
    return module if module is not None else no_tables()


def no_tables() -> types.ModuleType:
    """A table module ply rejects (wrong version), so that it builds the tables in memory."""
    module = types.ModuleType("lutgen_pyverilog_tables")
    module.__file__ = str(TABLES)
    module._tabversion = "none"  # type: ignore[attr-defined]
    return module


def _int_keyed(table: Any) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for state, row in table.items():
        if not isinstance(row, dict) or not all(isinstance(k, str) and type(v) is int for k, v in row.items()):
            raise ValueError("bad table row")
        out[int(state)] = dict(row)
    return out


def _production(item: Any) -> tuple[str, str, int, str | None, str | None, int | None]:
    text, name, length, func, file, line = item
    ok = (
        isinstance(text, str)
        and isinstance(name, str)
        and type(length) is int
        and (func is None or (isinstance(func, str) and func.isidentifier()))
        and (file is None or isinstance(file, str))
        and (line is None or type(line) is int)
    )
    if not ok:
        raise ValueError("bad production")
    return text, name, length, func, file, line


def write_tables(path: Path = TABLES) -> Path:
    """Build the tables for the installed pyverilog and ply and write them to ``path`` (gzip-compressed JSON)."""
    from ..fileio import atomic_write_bytes
    from .verilog import build_parser

    parser = build_parser(tables=no_tables())
    data = table_data(parser.parser, grammar_signature(parser))
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return atomic_write_bytes(path, gzip.compress(text.encode(), mtime=0), make_parents=True)


if __name__ == "__main__":
    print(f"wrote {write_tables()}")
