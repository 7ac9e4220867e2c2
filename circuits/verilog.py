"""Structural Verilog reader: pyverilog parses the text, this module elaborates it into the Netlist IR.

Supported: several modules in one file (the hierarchy is flattened), gate primitives, standard cells
from a :class:`~.cells.CellLibrary`, continuous assigns with the bitwise, arithmetic (``+ - *``, unary
``-``), shift, comparison, logical, reduction and conditional operators, concatenation, replication,
bit and (indexed) part selects, parameters and ``localparam``, ``$signed``/``$unsigned``, escaped
identifiers, with the Verilog-2005 rules for expression width and signedness. Word-level arithmetic
is lowered to gates (ripple-carry adders, carry-save array multipliers, Baugh-Wooley when signed).
Generate constructs (``for`` loops over a ``genvar`` and ``if`` with constant conditions, with or
without ``generate ... endgenerate``) are unrolled; the nets of a generate block are named after it
(``row[2].t``, ``genblk1.t`` when unnamed). Behavioural code (``always``, ``initial``, ``reg``,
functions, tasks) is refused with a pointer to the Yosys path; every problem is a
:class:`~approxlut.errors.ParseError` with its line.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import types
from collections import ChainMap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import NetlistError, ParseError
from .cells import AmbiguousCellError, Cell, CellGate, CellLibrary, cell_library
from .netlist import MAX_GATES, CellUse, Gate, Kind, Netlist, NetlistBuilder, SourceLoc, find_loop
from .ports import group_bits, group_input_ports, order_operands
from .text import Positions, lines, normalise
from .verilog_writer import write_verilog

__all__ = ["cells_from_verilog", "parse_ast", "read_verilog", "write_verilog"]

#: Keywords of procedural code: a syntax error at one of them is code for ``lutgen synth``, not a typo.
_PROCEDURAL = frozenset({"always", "initial", "always_comb", "always_ff", "always_latch", "task", "function"})
_SYNTH_HINT = "synthesize it to gates first with `lutgen synth FILE.v` (Yosys)"
_OUTPUT_NAMES = ("o", "z", "y", "p", "out", "product", "result", "prod")
_PRIMITIVES = {
    "and": (Kind.AND, Kind.BUF),
    "or": (Kind.OR, Kind.BUF),
    "xor": (Kind.XOR, Kind.BUF),
    "nand": (Kind.NAND, Kind.NOT),
    "nor": (Kind.NOR, Kind.NOT),
    "xnor": (Kind.XNOR, Kind.NOT),
    "not": (Kind.NOT, Kind.NOT),
    "buf": (Kind.BUF, Kind.BUF),
}
_BEHAVIOURAL = {
    "Always": "an always block",
    "AlwaysFF": "an always_ff block",
    "AlwaysComb": "an always_comb block",
    "AlwaysLatch": "an always_latch block",
    "Initial": "an initial block",
    "Function": "a function",
    "Task": "a task",
}
_MAX_GATES = MAX_GATES  # a flattened design beyond this is refused rather than exhausting memory
_MAX_NETS = 2 * MAX_GATES  # nets, declared bits included (a generate loop of wide wires)
_MAX_WIDTH = 1 << 16  # widest expression or net
#: Most generate-loop iterations unrolled in one design (all loops together).
MAX_GENERATE_ITERATIONS = 1_000_000
_DIRECTIVES_OK = {"`timescale", "`celldefine", "`endcelldefine", "`resetall", "`default_nettype"}

# ----------------------------------------------------------------------------------------------
# pyverilog adapter: one parser per process, LALR tables shipped as package data (parsetables.py)
# ----------------------------------------------------------------------------------------------

_PARSER: Any = None
_PARSER_LOCK = threading.Lock()


def build_parser(*, tables: types.ModuleType | None = None) -> Any:
    """A ``VerilogParser`` using ``tables`` (default: the shipped ones, :mod:`.parsetables`).

    pyverilog's own constructor builds the tables (about a second) and writes them to a folder;
    this subclass hands ply the verified shipped tables instead, and never reads or writes a cache:
    when the tables do not match the installed grammar, ply builds them in memory.

    It also adds two Verilog-2001 forms pyverilog's grammar lacks: one ``assign`` with several
    comma-separated targets (an ``AssignList`` of ``Assign`` nodes) and a ``for``/``if`` generate
    construct directly among the module items, without ``generate ... endgenerate``.
    """
    import ply.yacc as yacc
    from pyverilog.vparser.ast import Assign, GenerateStatement, Node
    from pyverilog.vparser.lexer import VerilogLexer
    from pyverilog.vparser.parser import VerilogParser

    from .parsetables import shipped_tables

    table_module = tables if tables is not None else shipped_tables()

    class AssignList(Node):
        """``assign a = x, b = y;``: its ``Assign`` nodes, each located at its target (the first at ``assign``)."""

        attr_names = ()

        def __init__(self, assigns: tuple[Any, ...], lineno: int = 0) -> None:
            self.lineno = lineno
            self.list = assigns

        def children(self) -> tuple[Any, ...]:
            return self.list

    class ShippedTablesParser(VerilogParser):
        def p_assignment_list(self, p: Any) -> None:
            "assignment : ASSIGN lvalue EQUALS rvalue COMMA assignment_targets SEMICOLON"
            first = Assign(p[2], p[4], lineno=p.lineno(1))
            first.lexpos = p.lexpos(1)
            p[0] = AssignList((first, *p[6]), lineno=p.lineno(1))
            p.set_lineno(0, p.lineno(1))

        def p_assignment_list_delay(self, p: Any) -> None:
            "assignment : ASSIGN delays lvalue EQUALS delays rvalue COMMA assignment_targets SEMICOLON"
            first = Assign(p[3], p[6], p[2], p[5], lineno=p.lineno(1))
            first.lexpos = p.lexpos(1)
            p[0] = AssignList((first, *p[8]), lineno=p.lineno(1))
            p.set_lineno(0, p.lineno(1))

        def p_assignment_targets(self, p: Any) -> None:
            "assignment_targets : assignment_targets COMMA assignment_target"
            p[0] = (*p[1], p[3])

        def p_assignment_targets_one(self, p: Any) -> None:
            "assignment_targets : assignment_target"
            p[0] = (p[1],)

        def p_assignment_target(self, p: Any) -> None:
            "assignment_target : lvalue EQUALS rvalue"
            p[0] = Assign(p[1], p[3], lineno=p.lineno(1))
            p.set_lineno(0, p.lineno(1))

        def p_item_bare_generate(self, p: Any) -> None:
            """item : generate_for
            | generate_if
            """
            p[0] = GenerateStatement((p[1],), lineno=p.lineno(1))
            p.set_lineno(0, p.lineno(1))

        def __init__(self) -> None:
            self.lexer = VerilogLexer(error_func=self._lexer_error_func)
            self.lexer.build()
            self.tokens = self.lexer.tokens
            self.parser = yacc.yacc(
                module=self,
                method="LALR",
                tabmodule=table_module,
                debug=False,
                write_tables=False,
                errorlog=yacc.NullLogger(),
            )

    return ShippedTablesParser()


#: Largest Verilog text parsed (pyverilog's parser is pure Python: about 4 MiB take a minute here).
MAX_VERILOG_BYTES = 4 << 20
#: Most statements and list items (``;`` and ``,``) in a Verilog text: pyverilog builds its lists by
#: tuple concatenation, so time grows with the square of the longest list (50,000 items: ~11 s here,
#: 100,000: ~55 s). About 12,000 gate instances fit.
MAX_VERILOG_ITEMS = 50_000
#: Longest identifier or number (Verilog-2005 asks tools to support at least 1024 characters).
MAX_TOKEN_CHARS = 1024
_DELIMITERS = r"\s;,()\[\]{}"
_LONG_TOKEN = re.compile(rf"(?<![^{_DELIMITERS}])[^{_DELIMITERS}]{{{MAX_TOKEN_CHARS + 1},}}")
_LARGER = "convert larger netlists to BLIF (e.g. yosys -p 'read_verilog x.v; write_blif x.blif')"


def check_size(text: str, path: str) -> None:
    """Refuse, before parsing, Verilog beyond the limits above (the reasons are stated in the message)."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_VERILOG_BYTES:
        raise ParseError(f"{size} bytes: Verilog input is limited to {MAX_VERILOG_BYTES} bytes; {_LARGER}", path)
    items = text.count(";") + text.count(",")
    if items > MAX_VERILOG_ITEMS:
        raise ParseError(
            f"{items} statements and list items: Verilog input is limited to {MAX_VERILOG_ITEMS}; {_LARGER}", path
        )
    long_token = _LONG_TOKEN.search(text)
    if long_token is not None:
        line = text.count("\n", 0, long_token.start()) + 1
        col = long_token.start() - (text.rfind("\n", 0, long_token.start()) + 1) + 1
        raise ParseError(f"a name or number longer than {MAX_TOKEN_CHARS} characters", path, line, col)


def parse_ast(text: str, path: str = "<input>") -> Any:
    """Parse Verilog ``text`` with pyverilog; returns its ``Source`` node or raises :class:`ParseError`.

    Any line endings and a leading byte order mark are accepted (:func:`~.text.normalise`). Every node
    carries ``lexpos``, the offset in the normalised text of the first token of the rule that built it.
    """
    global _PARSER
    text = normalise(text)
    check_size(text, path)
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = _instrument(build_parser())
        parser = _PARSER
        lexer = parser.lexer
        lexer.reset_lineno()
        lexer.directives = []
        lexer.default_nettype = "wire"
        try:
            ast = parser.parser.parse(text + "\n", lexer=lexer.lexer, tracking=True)
        except _SyntaxAt as exc:
            raise _located(exc, text, path) from None
        except RecursionError:
            raise ParseError("expression nesting too deep", path) from None
        except Exception as exc:  # pyverilog and ply raise assorted errors on garbage input
            detail = " ".join(str(exc).split())[:200]
            raise ParseError(f"cannot parse as Verilog ({type(exc).__name__}: {detail})", path) from None
        directives = list(lexer.directives)
    for line, directive in directives:
        word = directive.split()[0] if directive.split() else "`"
        if word not in _DIRECTIVES_OK:
            col = lines(text)[line - 1].find("`") + 1
            raise ParseError(
                f"compiler directive {word} is not supported (no preprocessor); {_SYNTH_HINT}", path, line, col or None
            )
    return ast


class _SyntaxAt(Exception):
    """A lexer or parser error at a character offset (``None``: at the end of the input)."""

    def __init__(self, message: str, offset: int | None):
        super().__init__(message)
        self.message = message
        self.offset = offset


def _instrument(parser: Any) -> Any:
    """Locate errors and nodes by character offset, from the tokens themselves.

    pyverilog's own error columns are one too high on every line after the first, and its parser
    errors carry none. Here the lexer's and the parser's error hooks raise :class:`_SyntaxAt` at the
    offending token, and every grammar rule stamps the nodes it builds with ``lexpos`` (ply's
    position tracking gives each rule the offset of its first token).
    """
    from pyverilog.vparser.ast import Node

    raw = parser.lexer.lexer

    def lexer_error(message: str, line: int, column: int) -> None:
        raise _SyntaxAt(message, raw.lexpos)

    def parser_error(token: Any) -> None:
        if token is None:
            raise _SyntaxAt("unexpected end of input (truncated file?)", None)
        if token.value in _PROCEDURAL:  # (a structural grammar has no place for them: say what they are)
            raise _SyntaxAt(f"'{token.value}' belongs to procedural (behavioural) code; {_SYNTH_HINT}", token.lexpos)
        raise _SyntaxAt(f"syntax error near '{token.value}'", token.lexpos)

    parser.lexer.error_func = lexer_error
    parser.parser.errorfunc = parser_error
    for production in parser.parser.productions:
        if production.callable is not None:
            production.callable = _stamping(production.callable, Node)
    return parser


def _stamping(rule: Callable[[Any], None], node_type: Any) -> Callable[[Any], None]:
    """``rule``, then ``lexpos`` on the nodes it built (its result, and their children built with it).

    Runs once per grammar reduction, so it reads ply's slice directly and does nothing for results
    already stamped (rules that pass a node through).
    """

    def stamp(node: Any, offset: int) -> None:
        fields = node.__dict__
        if "lexpos" not in fields:
            fields["lexpos"] = offset
            for child in node.children():
                if isinstance(child, node_type):
                    child.__dict__.setdefault("lexpos", offset)

    def stamped(p: Any) -> None:
        rule(p)
        symbols = p.slice
        value = symbols[0].value
        if isinstance(value, node_type):
            if "lexpos" not in value.__dict__:
                stamp(value, symbols[1].lexpos if len(symbols) > 1 else symbols[0].lexpos)
        elif isinstance(value, (tuple, list)) and value:
            offset = symbols[1].lexpos if len(symbols) > 1 else symbols[0].lexpos
            for item in value:
                if isinstance(item, node_type):
                    stamp(item, offset)

    return stamped


def _located(error: _SyntaxAt, text: str, path: str) -> ParseError:
    if error.offset is not None:
        return ParseError(error.message, path, *Positions(text).at(error.offset))
    body = text.rstrip()
    if not body:
        return ParseError(error.message, path, 1, 1)
    line, col = Positions(text).at(len(body) - 1)
    return ParseError(error.message, path, line, col + 1)


# ----------------------------------------------------------------------------------------------
# Elaboration target: nets, gates and net aliases (from assigns and port connections)
# ----------------------------------------------------------------------------------------------


class _Pos(NamedTuple):
    """A 1-based source position; ``col`` is ``None`` where only the line is known."""

    line: int
    col: int | None


@dataclass
class _Gate:
    kind: Kind
    inputs: list[int]
    output: int
    at: _Pos


class _Design:
    """Flat gates over integer nets; ``connect`` makes one net an alias of another."""

    def __init__(self, path: str):
        self.path = path
        self.names: list[str | None] = []
        self.driven: dict[int, _Pos] = {}  # net -> where its driver is
        self.alias: dict[int, int] = {}
        self.gates: list[_Gate] = []
        self.gate_of: dict[int, int] = {}
        self.consts: dict[int, int] = {}
        self.const_of: dict[int, int] = {}
        self.ports: dict[int, str] = {}  # nets of input ports that cannot be assigned
        self.item_at: _Pos | None = None  # the item being elaborated (for errors without a node)

    def error(self, message: str, at: _Pos | None) -> ParseError:
        return ParseError(message, self.path, *(at or (None, None)))

    def net(self, name: str | None = None) -> int:
        if len(self.names) >= _MAX_NETS:
            raise self.error(f"the flattened circuit exceeds {_MAX_NETS} nets", self.item_at)
        self.names.append(name)
        return len(self.names) - 1

    def name(self, net: int) -> str:
        return self.names[net] or f"n{net}"

    def gate(self, kind: Kind, inputs: Sequence[int], at: _Pos) -> int:
        if len(self.gates) >= _MAX_GATES:
            raise self.error(f"the flattened circuit exceeds {_MAX_GATES} gates", at)
        out = self.net()
        self.gate_of[out] = len(self.gates)
        self.gates.append(_Gate(kind, list(inputs), out, at))
        self.driven[out] = at
        return out

    def const(self, value: int, at: _Pos) -> int:
        if value not in self.consts:
            net = self.gate(Kind.CONST1 if value else Kind.CONST0, [], at)
            self.consts[value] = net
            self.const_of[net] = value
        return self.consts[value]

    def connect(self, dst: int, src: int, at: _Pos, *, port: bool = False) -> None:
        if dst in self.ports and not port:
            raise self.error(f"assignment to input port '{self.ports[dst]}'", at)
        if dst in self.driven:
            raise self.error(
                f"net '{self.name(dst)}' has more than one driver (lines {self.driven[dst].line} and {at.line})", at
            )
        self.driven[dst] = at
        self.alias[dst] = src

    def find(self, net: int) -> int:
        seen = []
        while net in self.alias:
            seen.append(net)
            net = self.alias[net]
            if len(seen) > len(self.alias):
                names = " -> ".join(self.name(n) for n in seen[-8:])
                raise self.error(f"combinational loop through {names}", self.driven.get(seen[-1]))
        for n in seen:
            self.alias[n] = net
        return net

    def value(self, net: int) -> int | None:
        """The constant on ``net`` (0/1) or ``None``."""
        return self.const_of.get(self.find(net))

    # Constant-folding helpers, used only for lowered word-level operators.
    def and2(self, a: int, b: int, at: _Pos) -> int:
        va, vb = self.value(a), self.value(b)
        if va == 0 or vb == 0:
            return self.const(0, at)
        if va == 1:
            return b
        if vb == 1 or a == b:
            return a
        return self.gate(Kind.AND, [a, b], at)

    def or2(self, a: int, b: int, at: _Pos) -> int:
        va, vb = self.value(a), self.value(b)
        if va == 1 or vb == 1:
            return self.const(1, at)
        if va == 0:
            return b
        if vb == 0 or a == b:
            return a
        return self.gate(Kind.OR, [a, b], at)

    def xor2(self, a: int, b: int, at: _Pos) -> int:
        va, vb = self.value(a), self.value(b)
        if va is not None and vb is not None:
            return self.const(va ^ vb, at)
        if a == b:
            return self.const(0, at)
        if va is not None:
            return b if va == 0 else self.not1(b, at)
        if vb is not None:
            return a if vb == 0 else self.not1(a, at)
        return self.gate(Kind.XOR, [a, b], at)

    def not1(self, a: int, at: _Pos) -> int:
        va = self.value(a)
        if va is not None:
            return self.const(1 - va, at)
        return self.gate(Kind.NOT, [a], at)

    def mux(self, sel: int, d0: int, d1: int, at: _Pos) -> int:
        vs = self.value(sel)
        if vs is not None:
            return d1 if vs else d0
        if d0 == d1:
            return d0
        return self.gate(Kind.MUX, [sel, d0, d1], at)


# ----------------------------------------------------------------------------------------------
# Word-level operators lowered to gates (bit lists are LSB first)
# ----------------------------------------------------------------------------------------------


def _add_columns(d: _Design, columns: list[list[int]], at: _Pos) -> list[int]:
    """Sum weighted bits (``columns[i]`` has weight 2^i) modulo 2^len(columns).

    Constants are summed first; each column is then reduced with full/half adders whose carries go
    to the next column (for two operands this is exactly a ripple-carry adder).
    """
    width = len(columns)
    constant = 0
    cols: list[list[int]] = []
    for i, col in enumerate(columns):
        live = []
        for net in col:
            v = d.value(net)
            if v is None:
                live.append(net)
            else:
                constant += v << i
        cols.append(live)
    for i in range(width):
        if constant >> i & 1:
            cols[i].append(d.const(1, at))
    out = []
    for i in range(width):
        col = cols[i]
        carry_to = cols[i + 1] if i + 1 < width else None
        while len(col) > 1:
            if len(col) >= 3:
                a, b, c = col.pop(0), col.pop(0), col.pop(0)
                t = d.xor2(a, b, at)
                col.append(d.xor2(t, c, at))
                if carry_to is not None:
                    carry_to.append(d.or2(d.and2(a, b, at), d.and2(t, c, at), at))
            else:
                a, b = col.pop(0), col.pop(0)
                col.append(d.xor2(a, b, at))
                if carry_to is not None:
                    carry_to.append(d.and2(a, b, at))
        out.append(col[0] if col else d.const(0, at))
    return out


def _significant(d: _Design, bits: list[int], signed: bool) -> list[int]:
    """Drop the top bits that only repeat the extension (zeros, or copies of the sign bit)."""
    n = len(bits)
    if signed:
        while n > 1 and d.find(bits[n - 1]) == d.find(bits[n - 2]):
            n -= 1
    else:
        while n > 1 and d.value(bits[n - 1]) == 0:
            n -= 1
    return bits[:n]


def _multiply(d: _Design, a: list[int], b: list[int], signed: bool, at: _Pos) -> list[int]:
    """The product of two ``w``-bit operands modulo 2^w (array multiplier, Baugh-Wooley if signed)."""
    width = len(a)
    x, y = _significant(d, a, signed), _significant(d, b, signed)
    n, m = len(x), len(y)
    columns: list[list[int]] = [[] for _ in range(min(width, n + m))]

    def put(pos: int, net: int) -> None:
        if pos < len(columns):
            columns[pos].append(net)

    for i in range(n):
        for j in range(m):
            if i + j >= len(columns):
                continue
            pp = d.and2(x[i], y[j], at)
            if signed and (i == n - 1) != (j == m - 1):
                pp = d.not1(pp, at)
            put(i + j, pp)
    if signed:  # Baugh-Wooley correction: + 2^(n-1) + 2^(m-1) + 2^(n+m-1)
        for pos in (n - 1, m - 1, n + m - 1):
            put(pos, d.const(1, at))
    product = _add_columns(d, columns, at)
    fill = product[-1] if signed else d.const(0, at)
    return product + [fill] * (width - len(product))


def _less(d: _Design, a: list[int], b: list[int], signed: bool, at: _Pos) -> int:
    """1 when a < b (a + ~b + 1 produces no carry out); signed compares with flipped sign bits."""
    if signed:
        a = [*a[:-1], d.not1(a[-1], at)]
        b = [*b[:-1], d.not1(b[-1], at)]
    carry = d.const(1, at)
    for x, y in zip(a, b, strict=True):
        ny = d.not1(y, at)
        t = d.xor2(x, ny, at)
        carry = d.or2(d.and2(x, ny, at), d.and2(t, carry, at), at)
    return d.not1(carry, at)


def _equal(d: _Design, a: list[int], b: list[int], at: _Pos) -> int:
    result = d.const(1, at)
    for x, y in zip(a, b, strict=True):
        result = d.and2(result, d.not1(d.xor2(x, y, at), at), at)
    return result


# ----------------------------------------------------------------------------------------------
# Module elaboration
# ----------------------------------------------------------------------------------------------


@dataclass
class _Signal:
    name: str
    bits: list[int]  # LSB first
    msb: int
    lsb: int
    signed: bool
    direction: str  # "input", "output" or "wire"
    at: _Pos

    def position(self, index: int) -> int | None:
        """Position (0 = LSB) of declared index ``index``, or ``None`` when out of range."""
        pos = index - self.lsb if self.msb >= self.lsb else self.lsb - index
        return pos if 0 <= pos < len(self.bits) else None

    def range_text(self) -> str:
        return f"{self.name}[{self.msb}:{self.lsb}]"


@dataclass
class _Param:
    value: int
    width: int
    signed: bool
    lsb: int = 0  # the declared range's lsb (its bit 0)
    ascending: bool = False  # declared [lsb:msb]
    loop: bool = False  # a generate loop's genvar: the localparam of that name its block implicitly declares

    def offset(self, index: int) -> int | None:
        """The bit of the value that select ``index`` names, ``None`` outside the parameter's range."""
        offset = self.lsb - index if self.ascending else index - self.lsb
        return offset if 0 <= offset < self.width else None


@dataclass
class _Genvar:
    """A declared genvar (it has a value only inside a loop over it, where a :class:`_Param` of its name hides it)."""

    at: _Pos


#: What a name in a scope can be.
_Decl = _Signal | _Param | _Genvar


def _unescape(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _module_items(items: Sequence[Any]) -> list[Any]:
    """A module's items, each ``generate ... endgenerate`` region replaced by the items it holds."""
    out: list[Any] = []
    for item in items:
        if type(item).__name__ == "GenerateStatement":
            out += item.items
        else:
            out.append(item)
    return out


def _block(node: Any) -> tuple[Sequence[Any], str | None]:
    """The items and the name of a generate block (a single item is an unnamed block of one)."""
    if type(node).__name__ == "Block":
        return node.statements, node.scope
    return (node,), None


def _nested_items(items: Sequence[Any]) -> Iterator[Any]:
    """Every item of a module at any depth of generate constructs, taken or not."""
    for item in _module_items(items):
        kind = type(item).__name__
        if kind == "ForStatement":
            yield from _nested_items(_block(item.statement)[0])
        elif kind == "IfStatement":
            for branch in (item.true_statement, item.false_statement):
                if branch is not None:
                    yield from _nested_items(_block(branch)[0])
        else:
            yield item


def _declared_names(items: Sequence[Any]) -> set[str]:
    """The names that ``items`` declare in their scope: nets, parameters, genvars, instances and the named generate
    blocks of their constructs (of every branch, taken or not)."""
    names: set[str] = set()
    for item in items:
        kind = type(item).__name__
        if kind == "Decl":
            names.update(_unescape(sub.name) for sub in item.list if type(sub).__name__ != "Assign")
        elif kind == "InstanceList":
            names.update(_unescape(inst.name) for inst in item.instances if inst.name)
        elif kind == "ForStatement":
            names.add(_block(item.statement)[1] or "")
        elif kind == "IfStatement":
            branches = [item.true_statement, item.false_statement]
            while branches:
                branch = branches.pop()
                if type(branch).__name__ == "IfStatement":  # (else if: the same construct, in the same scope)
                    branches += [branch.true_statement, branch.false_statement]
                elif branch is not None:
                    names.add(_block(branch)[1] or "")
    names.discard("")
    return names


def _int_const(text: str) -> tuple[int, int, bool] | None:
    """(value, width, signed) of a Verilog integer literal; ``None`` for x/z digits."""
    text = text.replace("_", "")
    match = re.fullmatch(r"(\d*)'([sS]?)([bBoOdDhH])(.+)", text)
    if match is None:
        value = int(text)
        return value & 0xFFFFFFFF, 32, True
    size, sign, base, digits = match.groups()
    if re.search(r"[xXzZ?]", digits):
        return None
    value = int(digits, {"b": 2, "o": 8, "d": 10, "h": 16}[base.lower()])
    width = int(size) if size else 32
    if width == 0:
        raise ValueError("zero-width literal")
    return value & ((1 << width) - 1), width, bool(sign)


#: Most declarations in a row that each refer to a later one (a chain evaluated by recursion).
_MAX_AHEAD = 64


class _Module:
    """One instance of a module: its signals and parameters; elaborates its items into the design.

    A generate block is elaborated by a scope of its own (:meth:`_scope`): a copy that sees the names
    of the scopes around it and declares its own under a longer prefix. Nets, parameters and genvars
    share one name space per scope, and a name refers to the innermost scope that declares it
    (IEEE 1364-2005 12.7): a block's ``wire t`` hides a module's ``localparam t`` inside the block.
    """

    def __init__(
        self,
        reader: _Reader,
        moddef: Any,
        prefix: str,
        overrides: dict[str, int],
        stack: tuple[str, ...],
        *,
        top: bool = False,
    ):
        self.reader = reader
        self.d = reader.design
        self.moddef = moddef
        self.prefix = prefix
        self.stack = stack
        self.top = top
        self.items = _module_items(moddef.items)
        self.scope_items: Sequence[Any] = self.items  # the items of this scope (a generate block's, in a block)
        self.declared: set[str] | None = None  # the names they declare (:meth:`_implicit_name`), once needed
        self.names: ChainMap[str, _Decl] = ChainMap()  # this scope's declarations first, then the enclosing ones
        self.blocks: dict[str, _Pos] = {}  # generate blocks named in this scope
        self.in_block = False  # a generate block's scope, not the module's
        self.dry = False  # a scope of :meth:`_measure`: it declares no net
        self.pending: dict[str, list[Any]] = {}  # declarations of this scope not made yet, by name
        self.declaring: set[str] = set()  # names whose declarations are being made
        self.ports: list[str] = []
        self.types: dict[int, tuple[int, bool]] = {}
        self.nettype_none = getattr(moddef, "default_nettype", "wire") == "none"
        self._declare(overrides)

    def error(self, message: str, node: Any) -> ParseError:
        return self.d.error(message, self.at(node))

    def at(self, node: Any) -> _Pos:
        """Where ``node`` starts in the source."""
        return self.reader.at(node)

    # -- declarations ----------------------------------------------------------------------------

    def _declare(self, overrides: dict[str, int]) -> None:
        moddef = self.moddef
        self._expect(self.items, overrides)
        for item in self._header_params():
            self._param(item, overrides)
        for port in moddef.portlist.ports if moddef.portlist is not None else ():
            kind = type(port).__name__
            if kind == "Ioport":
                self.ports.append(_unescape(port.first.name))
                self._variable(port.first)
                if port.second is not None:
                    self._variable(port.second)
            elif kind == "Port":
                self.ports.append(_unescape(port.name))
            else:
                raise self.error("unsupported port declaration", port)
        for item in _nested_items(moddef.items):
            kind = type(item).__name__
            if kind in _BEHAVIOURAL:
                raise self.error(
                    f"{_BEHAVIOURAL[kind]} is behavioural code, not a structural netlist; {_SYNTH_HINT}", item
                )
        self._declare_items(self.items)
        unknown = [name for name in overrides if not isinstance(self.names.get(name), _Param)]
        if unknown:
            raise self.error(f"module {moddef.name} has no parameter '{unknown[0]}'", moddef)
        for name in self.ports:
            signal = self.names.get(name)
            if not isinstance(signal, _Signal) or signal.direction == "wire":
                raise self.error(f"port '{name}' of module {moddef.name} has no input/output declaration", moddef)
        self._implicit_nets(self.items)

    def _expect(self, items: Sequence[Any], overrides: dict[str, int]) -> None:
        """Note the parameters, genvars and nets that ``items`` declare (not those of generate blocks within them) as
        this scope's, to be declared by :meth:`_declare_items`, or earlier where a declaration refers to them."""
        for item in items:
            if type(item).__name__ == "Decl":
                for sub in item.list:
                    if type(sub).__name__ != "Assign":
                        self.pending.setdefault(_unescape(sub.name), []).append((sub, overrides))

    def _declare_items(self, items: Sequence[Any]) -> None:
        """Make the declarations of ``items`` noted by :meth:`_expect`, in order."""
        for item in items:
            if type(item).__name__ == "Decl":
                for sub in item.list:
                    if type(sub).__name__ != "Assign":
                        self._declare_pending(_unescape(sub.name))

    def _declare_pending(self, name: str) -> None:
        """Make this scope's declarations of ``name`` not made yet."""
        self.declaring.add(name)
        for sub, overrides in self.pending.pop(name, ()):
            sub_kind = type(sub).__name__
            if sub_kind in ("Parameter", "Localparam"):
                if sub_kind == "Parameter" and self.in_block:
                    raise self.error("a generate block cannot declare a parameter; use localparam", sub)
                self._param(sub, overrides)
            elif sub_kind == "Genvar":
                self._genvar(sub)
            elif self.dry:
                raise _Unmeasured
            else:
                self._variable(sub)
        self.declaring.discard(name)

    def _lookup(self, name: str, node: Any) -> _Decl | None:
        """What ``name`` refers to at ``node``: the innermost declaration of it. A declaration of this scope that comes
        later in the text counts (``localparam B = A + 1; localparam A = 5;`` in a block uses the block's ``A``, as
        Yosys does: the outer ``A`` was used instead, a wrong table); one that refers to itself is refused."""
        if name in self.declaring:
            raise self.error(f"'{name}' depends on itself (a circular declaration)", node)
        if name in self.pending:
            if len(self.declaring) > _MAX_AHEAD:  # (each one nests the evaluation deeper)
                raise self.error(
                    f"more than {_MAX_AHEAD} declarations in a row refer to later ones (here '{name}'); "
                    "declare names before they are used",
                    node,
                )
            self._declare_pending(name)
        return self.names.get(name)

    def _param(self, node: Any, overrides: dict[str, int]) -> None:
        name = _unescape(node.name)
        existing = self.names.maps[0].get(name)
        if existing is not None:
            if isinstance(existing, _Signal):
                raise self.error(f"'{name}' is declared as a parameter or genvar and as a net", node)
            raise self.error(f"'{name}' is declared twice", node)
        expr = node.value.var if type(node.value).__name__ == "Rvalue" else node.value
        overridden = name in overrides and type(node).__name__ != "Localparam"
        declared = self._range(node.width) if node.width is not None else None
        size = None if declared is None else abs(declared[0] - declared[1]) + 1
        value = overrides[name] if overridden else self.const(expr, size)
        lsb, ascending = 0, False
        if declared is not None and size is not None:  # (the value converted to the declared type, as assigned)
            msb, lsb = declared
            width, signed, ascending = size, bool(node.signed), msb < lsb
            value &= (1 << width) - 1
            if signed and value >> (width - 1):
                value -= 1 << width
        elif overridden:  # an integer from the instantiating module
            width, signed = max(32, value.bit_length() + 1), True
        else:
            width, signed = self.type_of(expr)
        self.names[name] = _Param(value, width, signed, lsb, ascending)

    def _range(self, width_node: Any) -> tuple[int, int]:
        return self.const(width_node.msb), self.const(width_node.lsb)

    def _range_width(self, width_node: Any) -> int:
        msb, lsb = self._range(width_node)
        return abs(msb - lsb) + 1

    def _variable(self, node: Any) -> None:
        kind = type(node).__name__
        name = _unescape(node.name)
        if kind in ("Reg", "Integer", "Real"):
            raise self.error(
                f"'{kind.lower()} {name}' belongs to procedural (behavioural) code, not a structural netlist; "
                f"{_SYNTH_HINT}",
                node,
            )
        if kind == "Inout":
            raise self.error(f"inout port '{name}' is not supported (combinational circuits only)", node)
        if getattr(node, "dimensions", None) is not None:
            raise self.error(f"array '{name}' is not supported in a structural netlist", node)
        if kind not in ("Input", "Output", "Wire", "Tri", "Supply"):
            raise self.error(f"unsupported declaration '{kind.lower()} {name}'", node)
        if kind in ("Input", "Output") and self.in_block:
            raise self.error(f"port '{name}' is declared inside a generate block", node)
        msb, lsb = self._range(node.width) if node.width is not None else (0, 0)
        direction = {"Input": "input", "Output": "output"}.get(kind, "wire")
        signed = bool(node.signed)
        existing = self.names.maps[0].get(name)
        if existing is not None and not isinstance(existing, _Signal):
            raise self.error(f"'{name}' is declared as a parameter or genvar and as a net", node)
        if existing is not None:
            # `input [3:0] a; wire [3:0] a;` (or `output y; wire y;`) declare one net.
            if (direction != "wire" and existing.direction != "wire") or (existing.msb, existing.lsb) != (msb, lsb):
                raise self.error(f"'{name}' is declared twice", node)
            if direction != "wire":
                existing.direction = direction
            existing.signed = existing.signed or signed
            self._port_bits(existing)
            return
        width = abs(msb - lsb) + 1
        if width > _MAX_WIDTH:
            raise self.error(f"'{name}' is too wide ({width} bits, at most {_MAX_WIDTH})", node)
        if kind == "Supply":
            value = 1 if self.const(node.value) else 0
            bits = [self.d.const(value, self.at(node))] * width
        else:
            step = 1 if msb >= lsb else -1
            bits = [self.d.net(self._bit_name(name, i, width)) for i in range(lsb, msb + step, step)]
        signal = _Signal(name, bits, msb, lsb, signed, direction, self.at(node))
        self.names[name] = signal
        self._port_bits(signal)

    def _genvar(self, node: Any) -> None:
        name = _unescape(node.name)
        if name in self.names.maps[0]:
            raise self.error(f"'{name}' is declared twice", node)
        self.names[name] = _Genvar(self.at(node))

    def _bit_name(self, name: str, index: int, width: int) -> str:
        return f"{self.prefix}{name}[{index}]" if width > 1 else f"{self.prefix}{name}"

    def _port_bits(self, signal: _Signal) -> None:
        if signal.direction == "input":
            for i, net in enumerate(signal.bits):
                self.d.ports[net] = f"{self.prefix}{signal.name}" + (f"[{i}]" if len(signal.bits) > 1 else "")
                if self.top:
                    self.d.driven[net] = signal.at

    def _implicit_nets(self, items: Sequence[Any]) -> None:
        """Declare the implicit 1-bit wires of port connections and assignment targets among ``items``."""
        names: list[tuple[str, Any]] = []
        for item in items:
            kind = type(item).__name__
            if kind == "InstanceList":
                for inst in item.instances:
                    for arg in inst.portlist:
                        if type(arg.argname).__name__ == "Identifier" and arg.argname.scope is None:
                            names.append((arg.argname.name, arg.argname))
            for assign in (item,) if kind == "Assign" else item.list if kind == "AssignList" else ():
                if type(assign.left.var).__name__ == "Identifier" and assign.left.var.scope is None:
                    names.append((assign.left.var.name, assign.left.var))
        for raw, node in names:
            name = _unescape(raw)
            if name in self.names:
                continue
            if self.nettype_none:
                raise self.error(f"undeclared net '{name}' (`default_nettype none)", node)
            net = self.d.net(self.prefix + name)
            self.names[name] = _Signal(name, [net], 0, 0, False, "wire", self.at(node))

    # -- items -----------------------------------------------------------------------------------

    def elaborate(self) -> None:
        self._elaborate_items(self.items)

    def _elaborate_items(self, items: Sequence[Any]) -> None:
        constructs = 0  # generate constructs so far: an unnamed block is genblk<that number>
        for item in items:
            kind = type(item).__name__
            self.d.item_at = self.at(item)
            if kind == "Assign":
                self._assign(item)
            elif kind in ("Decl", "AssignList"):
                for sub in item.list:
                    if type(sub).__name__ == "Assign":
                        self._assign(sub)
            elif kind == "InstanceList":
                for inst in item.instances:
                    self._instance(inst)
            elif kind == "ForStatement":
                constructs += 1
                self._generate_for(item, constructs)
            elif kind == "IfStatement":
                constructs += 1
                self._generate_if(item, constructs)
            elif kind == "Pragma":
                continue
            else:
                raise self.error(f"unsupported construct ({kind}) in a structural netlist; {_SYNTH_HINT}", item)

    # -- generate constructs ---------------------------------------------------------------------

    def _scope(self, prefix: str) -> _Module:
        """A nested scope: it sees this scope's names; the nets it declares are named ``prefix`` + name."""
        scope = copy.copy(self)
        scope.prefix = prefix
        scope.names = self.names.new_child()
        scope.declared = None
        scope.pending = {}
        scope.declaring = set()
        scope.blocks = {}
        scope.types = {}  # (a genvar gives one expression other widths in other iterations)
        scope.in_block = True
        return scope

    def _generate_block(self, node: Any, name: str, loop: tuple[str, int] | None = None) -> None:
        """Declare and elaborate one generate block: ``name``, or ``name[value]`` for the iteration of a loop over
        genvar ``var`` (``loop`` is ``(var, value)``: the block declares a localparam ``var``, IEEE 1364-2005
        12.4.1)."""
        items, _ = _block(node)
        if loop is None:
            scope = self._scope(f"{self.prefix}{name}.")
        else:
            var, value = loop
            scope = self._scope(f"{self.prefix}{name}[{value}].")
            scope.names[var] = _Param(value, 32, True, loop=True)
        scope.scope_items = items
        scope._expect(items, {})
        scope._declare_items(items)
        scope._implicit_nets(items)
        scope._elaborate_items(items)

    def _block_name(self, node: Any, construct: int, owner: Any) -> str:
        """The name of the generate block ``node`` of ``owner`` (:meth:`_implicit_name` when unnamed), claimed here."""
        name = _block(node)[1] or self._implicit_name(construct)
        here = self.at(owner)
        if name in self.blocks:
            raise self.d.error(
                f"generate block '{name}' is named twice in one scope (lines {self.blocks[name].line} and {here.line})",
                here,
            )
        self.blocks[name] = here
        return name

    def _implicit_name(self, construct: int) -> str:
        """The name of an unnamed generate block of this scope's ``construct``-th generate construct: ``genblk<n>``,
        zeros put before the number until no name declared in this scope is the same (IEEE 1364-2005 12.4.3: beside
        a block named ``genblk2``, the second construct's unnamed block is ``genblk02``)."""
        taken = self.declared
        if taken is None:
            taken = self.declared = _declared_names(self.scope_items)
            if not self.in_block:
                taken |= set(self.ports) | {_unescape(p.name) for p in self._header_params()}
        zeros = ""
        while f"genblk{zeros}{construct}" in taken:
            zeros += "0"
        return f"genblk{zeros}{construct}"

    def _header_params(self) -> list[Any]:
        """The parameters declared in the module's header, ``#(...)``."""
        paramlist = self.moddef.paramlist
        return [
            p for decl in (paramlist.params if paramlist is not None else ()) for p in getattr(decl, "list", (decl,))
        ]

    def _generate_const(self, node: Any, what: str) -> int:
        value = self.try_const(node)
        if value is None:
            raise self.error(
                f"the {what} of a generate construct must be a constant expression "
                "(numbers, parameters, genvars), but it refers to a net",
                node,
            )
        return value

    def _genvar_value(self, node: Any, what: str) -> int:
        """A value given to a genvar: a 32-bit signed integer, as Verilog's genvars are."""
        return (self._generate_const(node, what) + (1 << 31)) % (1 << 32) - (1 << 31)

    def _loop_variable(self, step: Any) -> str:
        target = step.left.var
        name = self._name(target) if type(target).__name__ == "Identifier" else None
        decl = None if name is None else self.names.get(name)
        if name is None or not (isinstance(decl, _Genvar) or (isinstance(decl, _Param) and decl.loop)):
            raise self.error("a generate loop must count with a genvar (declare it with 'genvar NAME;')", step.left)
        return name

    def _loop_genvar(self, node: Any) -> str:
        """The genvar that generate loop ``node`` counts with (its header checked)."""
        if node.pre is None or node.cond is None or node.post is None:
            raise self.error("a generate loop needs an initial assignment, a condition and a step", node)
        var = self._loop_variable(node.pre)
        if self._loop_variable(node.post) != var:
            raise self.error(f"the step of this generate loop assigns another genvar than '{var}'", node.post.left)
        if isinstance(self.names.get(var), _Param):
            raise self.error(f"genvar '{var}' already counts an enclosing generate loop", node.pre.left)
        return var

    def _generate_for(self, node: Any, construct: int) -> None:
        var = self._loop_genvar(node)
        name = self._block_name(node.statement, construct, node)
        start = self._genvar_value(node.pre.right, "start")
        measured = not self.reader.measured and _has_loop(_block(node.statement)[0])
        if measured:  # (a nested loop: count all of them before elaborating any)
            budget = MAX_GENERATE_ITERATIONS - self.reader.iterations
            try:
                if self._measure((node,), budget) > budget:
                    raise self._runaway(node)
            except _Unmeasured:
                measured = False
        self.reader.measured |= measured
        for value in self._loop_values(node, var, start):
            self.reader.iterations += 1
            if self.reader.iterations > MAX_GENERATE_ITERATIONS:
                raise self._runaway(node)
            self._generate_block(node.statement, name, (var, value))
        if measured:
            self.reader.measured = False

    def _measure(self, items: Sequence[Any], budget: int) -> int:
        """How many iterations the generate loops among ``items`` unroll to, at any depth of generate constructs (not
        inside module instances), counted until the count passes ``budget``, without elaborating anything: only the
        constructs' constants and the localparams of their blocks are evaluated. Raises :class:`_Unmeasured` where
        it cannot tell (a loop not counted by a constant step, or constants that refer to a block's nets)."""
        total = 0
        for item in items:
            kind = type(item).__name__
            if kind == "ForStatement":
                var = self._loop_genvar(item)
                start = self._genvar_value(item.pre.right, "start")
                trip = self._trip(item, var, start, budget - total)
                if trip is None:
                    raise _Unmeasured
                steps, step = trip
                inner = _block(item.statement)[0]
                if not _has_loop(inner):
                    total += steps
                    continue
                for k in range(steps):
                    value = (start + k * step + (1 << 31)) % (1 << 32) - (1 << 31)
                    total += 1 + self._dry_scope(inner, (var, value))._measure(inner, budget - total - 1)
                    if total > budget:
                        return total
            elif kind == "IfStatement" and _has_loop((item,)):
                taken = self._taken(item)
                if taken is not None:
                    inner = _block(taken)[0]
                    total += self._dry_scope(inner)._measure(inner, budget - total)
            if total > budget:
                return total
        return total

    def _dry_scope(self, items: Sequence[Any], loop: tuple[str, int] | None = None) -> _Module:
        """A generate block's scope for :meth:`_measure`: its genvars and localparams, no net."""
        scope = self._scope(self.prefix)
        scope.dry = True
        if loop is not None:
            scope.names[loop[0]] = _Param(loop[1], 32, True, loop=True)
        scope._expect(items, {})
        for item in items:
            if type(item).__name__ == "Decl":
                for sub in item.list:
                    if type(sub).__name__ in ("Parameter", "Localparam", "Genvar"):
                        scope._declare_pending(_unescape(sub.name))
        return scope

    def _runaway(self, node: Any) -> ParseError:
        limit = MAX_GENERATE_ITERATIONS
        return self.error(
            f"generate loops unroll to more than {limit} iterations (is the loop condition ever false?)", node
        )

    def _trip(self, node: Any, var: str, start: int, budget: int) -> tuple[int, int] | None:
        """``(iterations, step)`` of a loop ``node`` over ``var`` from ``start`` counted by a constant step against a
        constant bound (``i < N``, ``i >= 0``, ``i != N``; ``i = i + S``, ``i = i - S``), computed before its first
        iteration (:func:`_iterations`): one that would run more than ``budget`` iterations, or never end, is
        refused. ``None`` for any other loop."""
        form = _counted_form(node, var)
        if form is None:
            return None
        counter = self._scope(self.prefix)
        counter.names[var] = _Param(start, 32, True, loop=True)
        if not counter._generate_const(node.cond, "condition"):
            return 0, 0
        step = (counter._genvar_value(node.post.right, "step") - start) % (1 << 32)
        op, bound_node, counter_node = form
        (width, signed), (other, other_signed) = counter.type_of(counter_node), counter.type_of(bound_node)
        width, signed = max(width, other), signed and other_signed  # (the comparison's operand type)
        if width > 32 and not _is_name(counter_node, var):
            return None  # (var + S wider than the genvar does not wrap with it)
        first = counter._in_context(counter_node, width, signed)  # (its values step with the genvar's, modulo 2^32)
        bound = counter._in_context(bound_node, width, signed)
        period = (1 << 32) // math.gcd(step, 1 << 32)  # (the values repeat after this many steps)
        low = -(1 << 31) if signed else 0  # (where they lie as the comparison reads them)
        steps = _iterations(first - low, step, op, bound - low, min(period, budget + 1))
        if steps is None and period <= budget:
            raise self.error(f"generate loop over '{var}' repeats the value {start}: it would never end", node)
        if steps is None:
            raise self._runaway(node)
        return steps, step

    def _loop_values(self, node: Any, var: str, start: int) -> Iterator[int]:
        """The values genvar ``var`` takes in the iterations of loop ``node``, from ``start``: those of
        :meth:`_trip` for a counted loop; any other loop evaluates its condition and step in turn."""
        trip = self._trip(node, var, start, MAX_GENERATE_ITERATIONS - self.reader.iterations)
        if trip is not None:
            steps, step = trip
            for k in range(steps):
                yield (start + k * step + (1 << 31)) % (1 << 32) - (1 << 31)
            return
        seen: set[int] = set()
        value = start
        while True:
            counter = self._scope(self.prefix)
            counter.names[var] = _Param(value, 32, True, loop=True)
            if not counter._generate_const(node.cond, "condition"):
                return
            if value in seen:
                raise self.error(f"generate loop over '{var}' repeats the value {value}: it would never end", node)
            seen.add(value)
            yield value
            value = counter._genvar_value(node.post.right, "step")

    def _generate_if(self, node: Any, construct: int) -> None:
        taken = self._taken(node)
        if taken is not None:
            self._generate_block(taken, self._block_name(taken, construct, node))

    def _taken(self, node: Any) -> Any:
        """The block that an ``if`` generate construct selects (through ``else if``), ``None`` for none."""
        while True:
            taken = node.true_statement if self._generate_const(node.cond, "condition") else node.false_statement
            if type(taken).__name__ != "IfStatement":  # (`else if`: the same construct, no scope of its own)
                return taken
            node = taken

    def _assign(self, node: Any) -> None:
        lhs = self.lvalue(node.left.var)
        rhs = node.right.var
        width, signed = self.type_of(rhs)
        bits = self.eval(rhs, max(width, len(lhs)), signed)
        for dst, src in zip(lhs, bits, strict=False):
            self.d.connect(dst, src, self.at(node))

    def _connections(self, inst: Any, ports: Sequence[str], what: str) -> dict[str, Any]:
        args = list(inst.portlist)
        named = [a.portname is not None for a in args]
        if any(named) and not all(named):
            raise self.error(f"{what}: mixes named and positional port connections", inst)
        if not any(named):
            if len(args) > len(ports):
                raise self.error(f"{what}: {len(args)} connections for {len(ports)} ports", inst)
            return {ports[i]: a.argname for i, a in enumerate(args)}
        result: dict[str, Any] = {}
        for arg in args:
            port = _unescape(arg.portname)
            if port not in ports:
                raise self.error(f"{what} has no port '{port}'", arg)
            if port in result:
                raise self.error(f"{what}: port '{port}' is connected twice", arg)
            result[port] = arg.argname
        return result

    def _input_bits(self, expr: Any, width: int, what: str) -> list[int]:
        """Bits for an input pin/port of ``width`` bits: same width, or a constant that fits."""
        w, signed = self.type_of(expr)
        if w != width:
            value = self.try_const(expr)
            fits = value is not None and (-(1 << (width - 1)) <= value < (1 << width) if signed else value < 1 << width)
            if not fits:
                raise self.error(f"{what} is {width} bit{'s' * (width > 1)} wide but connected to {w} bits", expr)
            return self.eval(expr, max(w, width), signed)[:width]
        return self.eval(expr, width, signed)

    def _output_bits(self, expr: Any, width: int, what: str) -> list[int]:
        bits = self.lvalue(expr)
        if len(bits) != width:
            raise self.error(f"{what} is {width} bit{'s' * (width > 1)} wide but connected to {len(bits)} bits", expr)
        return bits

    def _instance(self, inst: Any) -> None:
        if getattr(inst, "array", None) is not None:
            raise self.error(f"instance array '{inst.name}' is not supported", inst)
        module = _unescape(inst.module)
        if module in _PRIMITIVES:
            self._primitive(inst, module)
        elif module in self.reader.modules:
            self._submodule(inst, module)
        elif (cell := self.reader.cells.get(module)) is not None:
            self.reader.used.add(module)
            self._cell(inst, cell)
        else:
            why = self.reader.cells.ambiguity(module)
            if why is not None:
                raise AmbiguousCellError(why, self.d.path, *self.at(inst))
            raise self.error(f"unknown module or cell '{module}': {self.reader.cells.hint(module)}", inst)

    def _primitive(self, inst: Any, module: str) -> None:
        args = [a.argname for a in inst.portlist]
        if any(a.portname is not None for a in inst.portlist) or any(a is None for a in args):
            raise self.error(f"gate primitive '{module}' needs positional connections", inst)
        kind, single = _PRIMITIVES[module]
        at = self.at(inst)
        if module in ("not", "buf"):
            if len(args) < 2:
                raise self.error(f"'{module}' needs an output and an input", inst)
            src = self._input_bits(args[-1], 1, f"input of '{module}'")[0]
            for out in args[:-1]:
                self.d.connect(self._output_bits(out, 1, f"output of '{module}'")[0], self.d.gate(kind, [src], at), at)
            return
        if len(args) < 2:
            raise self.error(f"'{module}' needs an output and at least one input", inst)
        ins = [self._input_bits(a, 1, f"input of '{module}'")[0] for a in args[1:]]
        out = self._output_bits(args[0], 1, f"output of '{module}'")[0]
        self.d.connect(out, self.d.gate(kind if len(ins) > 1 else single, ins, at), at)

    def _cell(self, inst: Any, cell: Cell) -> None:
        what = f"pin of cell {cell.name} (instance {inst.name})"
        conns = self._connections(inst, cell.ports, f"cell {cell.name} (instance {inst.name})")
        at = self.at(inst)
        local: dict[str, int] = {}
        for pin in cell.inputs:
            expr = conns.get(pin)
            if expr is None:
                raise self.error(f"input pin {pin} of cell {cell.name} (instance {inst.name}) is not connected", inst)
            local[pin] = self._input_bits(expr, 1, f"input {what.replace('pin', pin, 1)}")[0]
        for gate in cell.gates:
            local[gate.output] = self.d.gate(gate.kind, [local[n] for n in gate.inputs], at)
        for pin in cell.outputs:
            expr = conns.get(pin)
            if expr is not None:
                dst = self._output_bits(expr, 1, f"output {what.replace('pin', pin, 1)}")[0]
                self.d.connect(dst, local[pin], at)

    def _submodule(self, inst: Any, module: str) -> None:
        if module in self.stack:
            raise self.error(f"module {module} instantiates itself (recursive hierarchy)", inst)
        moddef = self.reader.modules[module]
        overrides = self._overrides(inst, moddef)
        sub = _Module(self.reader, moddef, f"{self.prefix}{_unescape(inst.name)}.", overrides, (*self.stack, module))
        what = f"module {module} (instance {inst.name})"
        conns = self._connections(inst, sub.ports, what)
        at = self.at(inst)
        for port in sub.ports:
            signal = sub.port(port)
            expr = conns.get(port)
            if expr is None:
                continue
            if signal.direction == "input":
                bits = self._input_bits(expr, len(signal.bits), f"port {port} of {what}")
                for dst, src in zip(signal.bits, bits, strict=True):
                    self.d.connect(dst, src, at, port=True)
        sub.elaborate()
        for port in sub.ports:
            signal = sub.port(port)
            expr = conns.get(port)
            if expr is not None and signal.direction == "output":
                for dst, src in zip(
                    self._output_bits(expr, len(signal.bits), f"port {port} of {what}"), signal.bits, strict=True
                ):
                    self.d.connect(dst, src, at)

    def _overrides(self, inst: Any, moddef: Any) -> dict[str, int]:
        params = list(inst.parameterlist or ())
        if not params:
            return {}
        names = [
            _unescape(p.name)
            for decl in (moddef.paramlist.params if moddef.paramlist is not None else ())
            for p in getattr(decl, "list", (decl,))
            if type(p).__name__ == "Parameter"
        ]
        names += [
            _unescape(p.name)
            for item in moddef.items
            if type(item).__name__ == "Decl"
            for p in item.list
            if type(p).__name__ == "Parameter"
        ]
        local = {
            _unescape(p.name)
            for item in moddef.items
            if type(item).__name__ == "Decl"
            for p in item.list
            if type(p).__name__ == "Localparam"
        }
        result = {}
        for i, arg in enumerate(params):
            if arg.paramname is None:
                if i >= len(names):
                    raise self.error(f"too many parameter values for module {moddef.name}", inst)
                name = names[i]
            else:
                name = _unescape(arg.paramname)
                if name in local and name not in names:  # (Yosys refuses it too; it was ignored)
                    raise self.error(f"'{name}' is a localparam of module {moddef.name}: it cannot be overridden", arg)
            result[name] = self.const(arg.argname)
        return result

    # -- lvalues ---------------------------------------------------------------------------------

    def lvalue(self, node: Any) -> list[int]:
        kind = type(node).__name__
        if kind == "Lvalue":
            return self.lvalue(node.var)
        if kind in ("LConcat", "Concat"):
            bits: list[int] = []
            for item in reversed(node.list):
                bits += self.lvalue(item)
            return bits
        if kind in ("Identifier", "Pointer", "Partselect"):
            target = node if kind == "Identifier" else node.var
            if type(target).__name__ == "Identifier" and isinstance(self._lookup(self._name(target), target), _Param):
                raise self.error(f"cannot assign to parameter '{self._name(target)}'", node)
            return self._select(node)
        raise self.error("this expression cannot be assigned to", node)

    def _signal(self, node: Any) -> _Signal:
        if type(node).__name__ != "Identifier":
            raise self.error(
                "only a plain net name can be indexed here (multi-dimensional arrays are not supported)", node
            )
        name = self._name(node)
        signal = self._lookup(name, node)
        if not isinstance(signal, _Signal):
            raise self._undeclared(name, "net", node)
        return signal

    def port(self, name: str) -> _Signal:
        """The signal of port ``name`` (every port is declared: :meth:`_declare` checks it)."""
        signal = self.names[name]
        assert isinstance(signal, _Signal)
        return signal

    def _name(self, node: Any) -> str:
        """The name an identifier refers to; a hierarchical one (``g[1].t``, ``u.x``) is refused wherever it is read
        (it was looked up by its last component alone: an outer parameter of that name gave its value)."""
        if node.scope is not None:
            raise self.error("hierarchical names are not supported", node)
        return _unescape(node.name)

    def _undeclared(self, name: str, what: str, node: Any) -> ParseError:
        if isinstance(self.names.get(name), _Genvar):
            return self.error(f"genvar '{name}' has a value only inside a generate loop over it", node)
        return self.error(f"undeclared {what} '{name}'", node)

    def _select(self, node: Any) -> list[int]:
        """Bits of an identifier, bit select or part select (LSB first)."""
        kind = type(node).__name__
        if kind == "Identifier":
            return list(self._signal(node).bits)
        signal = self._signal(node.var)
        if kind == "Pointer":
            index = self.const(node.ptr)
            pos = signal.position(index)
            if pos is None:
                raise self.error(f"bit {index} is outside {signal.range_text()}", node)
            return [signal.bits[pos]]
        msb_node, lsb_node = node.msb, node.lsb
        if type(lsb_node).__name__ in ("Plus", "Minus") and lsb_node.left is msb_node:
            # pyverilog writes a[base +: w] as Partselect(a, base, base + w) (and -: with Minus).
            base, width = self.const(msb_node), self.const(lsb_node.right)
            if width < 1:
                raise self.error("indexed part select needs a positive width", node)
            up = type(lsb_node).__name__ == "Plus"
            first, last = (base, base + width - 1) if up else (base - width + 1, base)
            msb, lsb = (last, first) if signal.msb >= signal.lsb else (first, last)
        else:
            msb, lsb = self.const(msb_node), self.const(lsb_node)
        p_msb, p_lsb = signal.position(msb), signal.position(lsb)
        if p_msb is None or p_lsb is None:
            raise self.error(f"part select [{msb}:{lsb}] is outside {signal.range_text()}", node)
        if p_msb < p_lsb:
            raise self.error(f"part select [{msb}:{lsb}] is reversed with respect to {signal.range_text()}", node)
        return signal.bits[p_lsb : p_msb + 1]

    # -- constant expressions --------------------------------------------------------------------

    def try_const(self, node: Any) -> int | None:
        """The integer value of a constant expression, or ``None`` when it depends on nets."""
        try:
            return self._const(node)
        except _NotConstant:
            return None

    def const(self, node: Any, width: int | None = None) -> int:
        """Evaluate a constant expression (literals, parameters, integer operators) to a Python int; ``width``: as
        the right-hand side of an assignment to that many bits (its operators work at least that wide)."""
        try:
            if width is None:
                return self._const(node)
            own_width, own_signed = self.type_of(node)
            return self._in_context(node, max(width, own_width), own_signed)
        except _NotConstant:
            raise self.error("expected a constant expression here (it refers to a net)", node) from None

    def _const(self, node: Any) -> int:
        """The value of a constant expression in its own (self-determined) type, by Verilog-2005's rules (5.4,
        5.5): each context operator's operands are extended to the context's width before it applies,
        sign-extended only where every operand is signed (:meth:`_in_context`)."""
        kind = type(node).__name__
        if kind in ("Rvalue", "Lvalue"):
            return self._const(node.var)
        if kind in _CONTEXT_BINARY or kind in _CONST_SHIFTS or kind in _CONST_UNARY or kind == "Cond":
            return self._in_context(node, *self.type_of(node))
        if kind == "IntConst":
            try:
                literal = _int_const(node.value)
            except ValueError:
                raise self.error(f"bad number '{node.value}'", node) from None
            if literal is None:
                raise self.error(f"x/z literal '{node.value}' is not supported", node)
            value, width, signed = literal
            return value - (1 << width) if signed and value >> (width - 1) else value
        if kind == "Identifier":
            name = self._name(node)
            decl = self._lookup(name, node)
            if isinstance(decl, _Param):
                return decl.value
            if isinstance(decl, _Signal):
                raise _NotConstant
            raise self._undeclared(name, "name", node)
        if kind == "SystemCall":
            args = list(node.args)
            if node.syscall in ("signed", "unsigned") and len(args) == 1:
                return _fitted(self._const(args[0]), self.type_of(args[0])[0], node.syscall == "signed")
            if node.syscall == "clog2" and len(args) == 1:
                return max(self._const(args[0]) - 1, 0).bit_length()
            raise self.error(f"system function ${node.syscall} is not supported", node)
        if kind in _COMPARISONS:  # (operands at the wider one's width, unsigned unless both are signed)
            (width_l, signed_l), (width_r, signed_r) = self.type_of(node.left), self.type_of(node.right)
            width, signed = max(width_l, width_r), signed_l and signed_r
            left, right = self._in_context(node.left, width, signed), self._in_context(node.right, width, signed)
            return _CONST_BINARY[kind](left, right)
        if kind in ("Land", "Lor"):
            return _CONST_BINARY[kind](self._const(node.left), self._const(node.right))
        if kind == "Ulnot":
            return int(not self._const(node.right))
        if kind in ("Pointer", "Partselect") and (param := self._selected_param(node)) is not None:
            low, count = self._param_bits(node, param)
            return (param.value >> low) & ((1 << count) - 1)
        if kind in ("Concat", "Repeat"):  # (unsigned: the operands' own bits side by side)
            total = self.type_of(node)[0]  # (the count and the width checked)
            value = 0
            for item in node.list if kind == "Concat" else (node.value,):
                width = self.type_of(item)[0]
                value = value << width | self._const(item) & ((1 << width) - 1)
            if kind == "Repeat":  # (times copies: value * 0b0..01..0..01)
                value *= ((1 << total) - 1) // ((1 << width) - 1)
            return value
        if kind in ("Pointer", "Partselect"):
            raise _NotConstant
        raise self.error(f"unsupported expression ({kind})", node)

    def _in_context(self, node: Any, width: int, signed: bool) -> int:
        """The value of constant ``node`` as an operand in a context of ``width`` bits and ``signed``-ness: context
        operators (arithmetic, bitwise, a shift's left operand, ``?:``'s branches) work at that width; any other
        operand is taken in its own type and extended (sign-extended in a signed context only)."""
        kind = type(node).__name__
        if kind in ("Rvalue", "Lvalue"):
            return self._in_context(node.var, width, signed)
        if kind in _CONTEXT_BINARY:
            left, right = self._in_context(node.left, width, signed), self._in_context(node.right, width, signed)
            if kind in ("Divide", "Mod") and right == 0:
                raise self.error("invalid constant expression (division by zero)", node)
            return _fitted(_CONST_BINARY[kind](left, right), width, signed)
        if kind in _CONST_UNARY:
            return _fitted(_CONST_UNARY[kind](self._in_context(node.right, width, signed)), width, signed)
        if kind in _CONST_SHIFTS:
            value, amount, modulus = self._in_context(node.left, width, signed), self._const(node.right), 1 << width
            if kind == "Power":
                if amount < 0:
                    raise self.error("invalid constant expression (a negative power)", node)
                return _fitted(pow(value % modulus, amount, modulus), width, signed)
            if amount < 0 or amount >= width:  # (the amount is unsigned: everything shifted out)
                return -1 if kind == "Sra" and signed and value < 0 else 0
            if kind in ("Sll", "Sla"):
                return _fitted(value << amount, width, signed)
            return _fitted((value if kind == "Sra" and signed else value % modulus) >> amount, width, signed)
        if kind == "Cond":
            return self._in_context(node.true_value if self._const(node.cond) else node.false_value, width, signed)
        own_width, own_signed = self.type_of(node)
        return _fitted(_fitted(self._const(node), own_width, own_signed and signed), width, signed)

    def _selected_param(self, node: Any) -> _Param | None:
        """The parameter (or genvar) a bit or part select names, ``None`` for a net."""
        var = node.var
        if type(var).__name__ != "Identifier":
            return None
        decl = self._lookup(self._name(var), var)
        return decl if isinstance(decl, _Param) else None

    def _param_bits(self, node: Any, param: _Param) -> tuple[int, int]:
        """``(lowest bit, count)`` of a parameter's value that a constant bit or part select names."""
        if type(node).__name__ == "Pointer":
            first = last = self.const(node.ptr)
        else:
            if type(node.lsb).__name__ in ("Plus", "Minus") and node.lsb.left is node.msb:
                raise self.error("an indexed part select of a parameter is not supported; use [msb:lsb]", node)
            first, last = self.const(node.msb), self.const(node.lsb)
        one, other = param.offset(first), param.offset(last)
        if one is None or other is None:
            raise self.error(f"select [{first}:{last}] is outside parameter '{_unescape(node.var.name)}'", node)
        return min(one, other), abs(one - other) + 1

    # -- expression types (Verilog-2005 5.4/5.5) ------------------------------------------------

    def type_of(self, node: Any) -> tuple[int, bool]:
        """Self-determined (width, signed) of an expression."""
        key = id(node)
        cached = self.types.get(key)
        if cached is None:
            cached = self._type(node)
            if cached[0] > _MAX_WIDTH:
                raise self.error(f"expression is {cached[0]} bits wide (at most {_MAX_WIDTH} are supported)", node)
            self.types[key] = cached
        return cached

    def _type(self, node: Any) -> tuple[int, bool]:
        kind = type(node).__name__
        if kind == "IntConst":
            try:
                literal = _int_const(node.value)
            except ValueError:
                raise self.error(f"bad number '{node.value}'", node) from None
            if literal is None:
                raise self.error(f"x/z literal '{node.value}' is not supported", node)
            return literal[1], literal[2]
        if kind == "Identifier":
            decl = self._lookup(self._name(node), node)
            if isinstance(decl, _Param):
                return decl.width, decl.signed
            signal = self._signal(node)
            return len(signal.bits), signal.signed
        if kind in ("Rvalue", "Lvalue"):
            return self.type_of(node.var)
        if kind in ("Pointer", "Partselect"):
            param = self._selected_param(node)
            return (len(self._select(node)) if param is None else self._param_bits(node, param)[1]), False
        if kind in ("Concat", "LConcat"):
            return sum(self.type_of(item)[0] for item in node.list), False
        if kind == "Repeat":
            times = self.const(node.times)
            if times < 1:
                raise self.error("replication count must be positive", node)
            return times * self.type_of(node.value)[0], False
        if kind in ("Unot", "Uminus", "Uplus"):
            return self.type_of(node.right)
        if kind in ("Ulnot", "Uand", "Unand", "Uor", "Unor", "Uxor", "Uxnor"):
            self.type_of(node.right)
            return 1, False
        if kind in _CONTEXT_BINARY:  # (max width, all signed) over a whole tree of them, without recursion
            width, signed = 0, True
            stack = [node.right, node.left]
            while stack:
                cur = stack.pop()
                if type(cur).__name__ in _CONTEXT_BINARY:
                    stack += [cur.right, cur.left]
                else:
                    w, s = self.type_of(cur)
                    width, signed = max(width, w), signed and s
            return width, signed
        if kind in ("Sll", "Srl", "Sla", "Sra", "Power"):
            self.type_of(node.right)
            return self.type_of(node.left)
        if kind in _COMPARISONS or kind in ("Land", "Lor"):
            self.type_of(node.left)
            self.type_of(node.right)
            return 1, False
        if kind == "Cond":
            self.type_of(node.cond)
            (wt, st), (wf, sf) = self.type_of(node.true_value), self.type_of(node.false_value)
            return max(wt, wf), st and sf
        if kind == "SystemCall":
            args = list(node.args)
            if node.syscall in ("signed", "unsigned") and len(args) == 1:
                return self.type_of(args[0])[0], node.syscall == "signed"
            if node.syscall == "clog2" and len(args) == 1:
                return 32, True
            raise self.error(f"system function ${node.syscall} is not supported", node)
        if kind in ("FunctionCall", "TaskCall"):
            raise self.error(f"function call is behavioural code; {_SYNTH_HINT}", node)
        raise self.error(f"unsupported expression ({kind})", node)

    # -- expression evaluation into gates --------------------------------------------------------

    def eval(self, node: Any, width: int, signed: bool) -> list[int]:
        """Bits (LSB first, ``width`` of them) of ``node`` in a context of that width and signedness."""
        kind = type(node).__name__
        handler = _EVAL.get(kind)
        if handler is None:
            self.type_of(node)  # raises the specific error
            raise self.error(f"unsupported expression ({kind})", node)
        return handler(self, node, width, signed)

    def extend(self, bits: list[int], width: int, signed: bool, at: _Pos) -> list[int]:
        if len(bits) >= width:
            return bits[:width]
        fill = bits[-1] if signed else self.d.const(0, at)
        return bits + [fill] * (width - len(bits))

    def _e_const(self, node: Any, width: int, signed: bool) -> list[int]:
        w, _ = self.type_of(node)
        value = self.const(node) & ((1 << w) - 1)
        bits = [self.d.const(value >> i & 1, self.at(node)) for i in range(w)]
        return self.extend(bits, width, signed, self.at(node))

    def _e_ident(self, node: Any, width: int, signed: bool) -> list[int]:
        if isinstance(self._lookup(self._name(node), node), _Param):
            return self._e_const(node, width, signed)
        return self.extend(self._select(node), width, signed, self.at(node))

    def _e_select(self, node: Any, width: int, signed: bool) -> list[int]:
        if self._selected_param(node) is not None:  # (a select is unsigned)
            return self._e_const(node, width, False)
        return self.extend(self._select(node), width, False, self.at(node))

    def _e_wrap(self, node: Any, width: int, signed: bool) -> list[int]:
        return self.eval(node.var, width, signed)

    def _e_concat(self, node: Any, width: int, signed: bool) -> list[int]:
        bits: list[int] = []
        for item in reversed(node.list):
            w, s = self.type_of(item)
            bits += self.eval(item, w, s)
        return self.extend(bits, width, False, self.at(node))

    def _e_repeat(self, node: Any, width: int, signed: bool) -> list[int]:
        w, s = self.type_of(node.value)
        bits = self.eval(node.value, w, s) * self.const(node.times)
        return self.extend(bits, width, False, self.at(node))

    def _e_syscall(self, node: Any, width: int, signed: bool) -> list[int]:
        self.type_of(node)
        if node.syscall == "clog2":
            return self._e_const(node, width, signed)
        arg = next(iter(node.args))
        w, s = self.type_of(arg)
        return self.extend(self.eval(arg, w, s), width, signed, self.at(node))

    def _chain(self, node: Any, kind: str) -> list[Any]:
        """Operands of a left/right nested chain of one associative operator (a & b & c)."""
        out: list[Any] = []
        stack = [node]
        while stack:
            cur = stack.pop()
            if type(cur).__name__ == kind:
                stack += [cur.right, cur.left]
            else:
                out.append(cur)
        return out

    def _bitwise(self, operands: list[Any], kind: Kind, width: int, signed: bool, at: _Pos) -> list[int]:
        values = [self.eval(op, width, signed) for op in operands]
        return [self.d.gate(kind, [v[i] for v in values], at) for i in range(width)]

    def _e_bitwise(self, node: Any, width: int, signed: bool) -> list[int]:
        kind = type(node).__name__
        if kind == "Xnor":
            return self._bitwise([node.left, node.right], Kind.XNOR, width, signed, self.at(node))
        return self._bitwise(self._chain(node, kind), _BITWISE[kind], width, signed, self.at(node))

    def _e_unot(self, node: Any, width: int, signed: bool) -> list[int]:
        inner = type(node.right).__name__
        if inner in _INVERTED:  # ~(a & b & c) is one NAND gate per bit
            return self._bitwise(self._chain(node.right, inner), _INVERTED[inner], width, signed, self.at(node))
        return [self.d.gate(Kind.NOT, [b], self.at(node)) for b in self.eval(node.right, width, signed)]

    def _e_reduce(self, node: Any, width: int, signed: bool) -> list[int]:
        kind = type(node).__name__
        w, s = self.type_of(node.right)
        bits = self.eval(node.right, w, s)
        at = self.at(node)
        if kind == "Ulnot":
            result = self.d.gate(Kind.NOT, [self._truth(bits, at)], at)
        elif len(bits) == 1:
            result = bits[0] if kind in ("Uand", "Uor", "Uxor") else self.d.gate(Kind.NOT, bits, at)
        else:
            result = self.d.gate(_REDUCTIONS[kind], bits, at)
        return self.extend([result], width, False, at)

    def _truth(self, bits: list[int], at: _Pos) -> int:
        return bits[0] if len(bits) == 1 else self.d.gate(Kind.OR, bits, at)

    def _e_logic(self, node: Any, width: int, signed: bool) -> list[int]:
        values = []
        for operand in (node.left, node.right):
            w, s = self.type_of(operand)
            values.append(self._truth(self.eval(operand, w, s), self.at(node)))
        kind = Kind.AND if type(node).__name__ == "Land" else Kind.OR
        return self.extend([self.d.gate(kind, values, self.at(node))], width, False, self.at(node))

    def _e_cond(self, node: Any, width: int, signed: bool) -> list[int]:
        at = self.at(node)
        w, s = self.type_of(node.cond)
        sel = self._truth(self.eval(node.cond, w, s), at)
        value = self.d.value(sel)
        if value is not None:
            return self.eval(node.true_value if value else node.false_value, width, signed)
        true_bits = self.eval(node.true_value, width, signed)
        false_bits = self.eval(node.false_value, width, signed)
        return [self.d.gate(Kind.MUX, [sel, f, t], at) for t, f in zip(true_bits, false_bits, strict=True)]

    def _e_arith(self, node: Any, width: int, signed: bool) -> list[int]:
        kind = type(node).__name__
        d, at = self.d, self.at(node)
        if kind in ("Uminus", "Uplus"):
            bits = self.eval(node.right, width, signed)
            if kind == "Uplus":
                return bits
            negation = [[d.not1(b, at)] for b in bits]
            negation[0].append(d.const(1, at))
            return _add_columns(d, negation, at)
        if kind == "Times":
            return _multiply(d, self.eval(node.left, width, signed), self.eval(node.right, width, signed), signed, at)
        # a + b - c + ...: one multi-operand addition; each subtracted term is ~x + 1
        terms: list[tuple[Any, bool]] = []
        stack = [(node, False)]
        while stack:
            cur, negated = stack.pop()
            cur_kind = type(cur).__name__
            if cur_kind in ("Plus", "Minus"):
                stack += [(cur.right, negated != (cur_kind == "Minus")), (cur.left, negated)]
            else:
                terms.append((cur, negated))
        columns: list[list[int]] = [[] for _ in range(width)]
        for term, negated in terms:
            for column, bit in zip(columns, self.eval(term, width, signed), strict=True):
                column.append(d.not1(bit, at) if negated else bit)
        subtracted = sum(negated for _, negated in terms)
        for i, column in enumerate(columns):
            if subtracted >> i & 1:
                column.append(d.const(1, at))
        return _add_columns(d, columns, at)

    def _e_divide(self, node: Any, width: int, signed: bool) -> list[int]:
        value = self.try_const(node)
        if value is None:
            raise self.error(f"operator {_SYMBOLS[type(node).__name__]} needs constant operands; {_SYNTH_HINT}", node)
        if value < 0 and not signed:
            raise self.error("negative constant in an unsigned context is not supported", node)
        mask = (1 << width) - 1
        return [self.d.const((value & mask) >> i & 1, self.at(node)) for i in range(width)]

    def _e_compare(self, node: Any, width: int, signed: bool) -> list[int]:
        kind = type(node).__name__
        (wl, sl), (wr, sr) = self.type_of(node.left), self.type_of(node.right)
        w, s = max(wl, wr), sl and sr
        a, b = self.eval(node.left, w, s), self.eval(node.right, w, s)
        d, at = self.d, self.at(node)
        if kind in ("Eq", "Eql", "NotEq", "NotEql"):
            result = _equal(d, a, b, at)
            if kind in ("NotEq", "NotEql"):
                result = d.not1(result, at)
        elif kind == "LessThan":
            result = _less(d, a, b, s, at)
        elif kind == "GreaterThan":
            result = _less(d, b, a, s, at)
        elif kind == "LessEq":
            result = d.not1(_less(d, b, a, s, at), at)
        else:
            result = d.not1(_less(d, a, b, s, at), at)
        return self.extend([result], width, False, at)

    def _e_shift(self, node: Any, width: int, signed: bool) -> list[int]:
        kind = type(node).__name__
        d, at = self.d, self.at(node)
        bits = self.eval(node.left, width, signed)
        zero = d.const(0, at)
        fill = bits[-1] if kind == "Sra" and signed else zero
        left = kind in ("Sll", "Sla")
        amount = self.try_const(node.right)
        if amount is not None:
            if amount < 0:
                raise self.error("negative shift amount", node)
            return _shift(bits, amount, left, fill)
        wa, _sa = self.type_of(node.right)
        select = self.eval(node.right, wa, False)
        for k, s in enumerate(select):
            shifted = _shift(bits, 1 << k, left, fill) if k < width.bit_length() else [fill] * width
            bits = [d.mux(s, x, y, at) for x, y in zip(bits, shifted, strict=True)]
        return bits


def _refers_to(node: Any, name: str) -> bool:
    """Whether expression ``node`` names ``name`` anywhere."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if type(cur).__name__ == "Identifier" and cur.scope is None and _unescape(cur.name) == name:
            return True
        stack += cur.children()
    return False


def _unwrapped(node: Any) -> Any:
    while type(node).__name__ in ("Rvalue", "Lvalue"):
        node = node.var
    return node


def _is_name(node: Any, name: str) -> bool:
    node = _unwrapped(node)
    return type(node).__name__ == "Identifier" and node.scope is None and _unescape(node.name) == name


#: A comparison with its operands swapped, or both negated: ``N > i`` is ``i < N``, ``u < b`` is ``-u > -b``.
_SWAPPED = {
    "LessThan": "GreaterThan",
    "GreaterThan": "LessThan",
    "LessEq": "GreaterEq",
    "GreaterEq": "LessEq",
    "Eq": "Eq",
    "NotEq": "NotEq",
    "Eql": "Eq",
    "NotEql": "NotEq",
}


def _offset(node: Any, var: str) -> Any:
    """``S`` where ``node`` is ``var + S``, ``S + var`` or ``var - S``, ``S`` not naming ``var``; else ``None``."""
    node = _unwrapped(node)
    kind = type(node).__name__
    if kind == "Plus":
        offset = node.right if _is_name(node.left, var) else node.left if _is_name(node.right, var) else None
    elif kind == "Minus":
        offset = node.right if _is_name(node.left, var) else None
    else:
        return None
    return None if offset is None or _refers_to(offset, var) else offset


def _counted_form(loop: Any, var: str) -> tuple[str, Any, Any] | None:
    """``(comparison, bound, counter)`` of a generate loop ``counter OP bound`` (or ``bound OP counter``), where
    ``counter`` is ``var`` or ``var`` plus or minus an offset, stepped by ``var = var + S``, ``S + var`` or
    ``var - S``, and neither the bound, the offset nor ``S`` names ``var``; ``None`` for any other loop."""
    if _offset(loop.post.right, var) is None:
        return None
    cond = _unwrapped(loop.cond)
    kind = type(cond).__name__
    if kind not in _SWAPPED:
        return None
    for counter, bound, op in ((cond.left, cond.right, kind), (cond.right, cond.left, _SWAPPED[kind])):
        if (_is_name(counter, var) or _offset(counter, var) is not None) and not _refers_to(bound, var):
            return {"Eql": "Eq", "NotEql": "NotEq"}.get(op, op), bound, counter
    return None


def _iterations(start: int, step: int, op: str, bound: int, limit: int, modulus: int = 1 << 32) -> int | None:
    """How many of ``u_0 = start, u_(k+1) = (u_k + step) % modulus`` pass ``u OP bound`` before the first that fails
    (``op``: ``LessThan``, ``LessEq``, ``GreaterThan``, ``GreaterEq``, ``Eq``, ``NotEq``), or ``None`` when the first
    ``limit`` values all pass. Between two wraps the values are monotonic: each such run is skipped in one step, so
    the time is that of the number of wraps (two for a loop of 2^31 iterations), not of iterations."""
    step %= modulus
    if step > modulus // 2:  # (count down: the runs are as long as they can be)
        step -= modulus
    value, k = start % modulus, 0
    while k < limit:
        if not _COMPARE[op](value, bound):
            return k
        if step == 0:
            return None
        if step > 0:
            wrap = (modulus - value + step - 1) // step  # (the first step that leaves [0, modulus))
            fail = _first_failing(value, step, op, bound)
        else:
            wrap = value // -step + 1
            fail = _first_failing(-value, -step, _SWAPPED[op], -bound)
        if fail is not None and fail < wrap:
            return k + fail if k + fail < limit else None
        k += wrap
        value = (value + wrap * step) % modulus
    return None


def _first_failing(value: int, step: int, op: str, bound: int) -> int | None:
    """The first ``j >= 1`` for which ``value + j * step OP bound`` fails, for ``step > 0``, where it holds at j = 0."""
    if op == "LessThan":
        return (bound - value + step - 1) // step
    if op == "LessEq":
        return (bound - value + step) // step
    if op == "NotEq":
        return (bound - value) // step if bound > value and (bound - value) % step == 0 else None
    if op == "Eq":
        return 1
    return None  # (> and >= hold on as the value grows)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "LessThan": lambda a, b: a < b,
    "LessEq": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterEq": lambda a, b: a >= b,
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
}


class _Unmeasured(Exception):
    """Raised by :meth:`_Module._measure` where it cannot count a loop's iterations without elaborating it."""


def _has_loop(items: Sequence[Any]) -> bool:
    """Whether a generate loop is among ``items``, at any depth of generate constructs."""
    for item in items:
        kind = type(item).__name__
        if kind == "ForStatement":
            return True
        if kind == "IfStatement":
            branches = (item.true_statement, item.false_statement)
            if any(branch is not None and _has_loop(_block(branch)[0]) for branch in branches):
                return True
    return False


class _NotConstant(Exception):
    """Raised inside constant evaluation when an expression refers to a net."""


def _shift(bits: list[int], amount: int, left: bool, fill: int) -> list[int]:
    width = len(bits)
    amount = min(amount, width)
    if left:
        return [fill] * amount + bits[: width - amount]
    return bits[amount:] + [fill] * amount


def _fitted(value: int, width: int, signed: bool) -> int:
    """``value`` in ``width`` bits, two's complement when ``signed``."""
    value &= (1 << width) - 1
    return value - (1 << width) if signed and value >> (width - 1) else value


def _verilog_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _verilog_mod(a: int, b: int) -> int:
    return a - b * _verilog_div(a, b)


_CONST_UNARY: dict[str, Callable[[int], int]] = {
    "Uminus": lambda a: -a,
    "Uplus": lambda a: a,
    "Unot": lambda a: ~a,
}
_CONST_BINARY: dict[str, Callable[[int, int], int]] = {
    "Plus": lambda a, b: a + b,
    "Minus": lambda a, b: a - b,
    "Times": lambda a, b: a * b,
    "Divide": _verilog_div,
    "Mod": _verilog_mod,
    "And": lambda a, b: a & b,
    "Or": lambda a, b: a | b,
    "Xor": lambda a, b: a ^ b,
    "Xnor": lambda a, b: ~(a ^ b),
    "Land": lambda a, b: int(bool(a and b)),
    "Lor": lambda a, b: int(bool(a or b)),
    "LessThan": lambda a, b: int(a < b),
    "GreaterThan": lambda a, b: int(a > b),
    "LessEq": lambda a, b: int(a <= b),
    "GreaterEq": lambda a, b: int(a >= b),
    "Eq": lambda a, b: int(a == b),
    "NotEq": lambda a, b: int(a != b),
    "Eql": lambda a, b: int(a == b),
    "NotEql": lambda a, b: int(a != b),
}
_CONTEXT_BINARY = frozenset({"Plus", "Minus", "Times", "Divide", "Mod", "And", "Or", "Xor", "Xnor"})
_CONST_SHIFTS = frozenset({"Sll", "Sla", "Srl", "Sra", "Power"})  # (the left operand in the context; the right alone)
_COMPARISONS = ("Eq", "NotEq", "Eql", "NotEql", "LessThan", "GreaterThan", "LessEq", "GreaterEq")
_BITWISE = {"And": Kind.AND, "Or": Kind.OR, "Xor": Kind.XOR}
_INVERTED = {"And": Kind.NAND, "Or": Kind.NOR, "Xor": Kind.XNOR}
_REDUCTIONS = {
    "Uand": Kind.AND,
    "Unand": Kind.NAND,
    "Uor": Kind.OR,
    "Unor": Kind.NOR,
    "Uxor": Kind.XOR,
    "Uxnor": Kind.XNOR,
}
_SYMBOLS = {"Divide": "/", "Mod": "%", "Power": "**"}
_EVAL: dict[str, Callable[[_Module, Any, int, bool], list[int]]] = {
    "IntConst": _Module._e_const,
    "Identifier": _Module._e_ident,
    "Pointer": _Module._e_select,
    "Partselect": _Module._e_select,
    "Rvalue": _Module._e_wrap,
    "Lvalue": _Module._e_wrap,
    "Concat": _Module._e_concat,
    "LConcat": _Module._e_concat,
    "Repeat": _Module._e_repeat,
    "SystemCall": _Module._e_syscall,
    "And": _Module._e_bitwise,
    "Or": _Module._e_bitwise,
    "Xor": _Module._e_bitwise,
    "Xnor": _Module._e_bitwise,
    "Unot": _Module._e_unot,
    "Ulnot": _Module._e_reduce,
    "Uand": _Module._e_reduce,
    "Unand": _Module._e_reduce,
    "Uor": _Module._e_reduce,
    "Unor": _Module._e_reduce,
    "Uxor": _Module._e_reduce,
    "Uxnor": _Module._e_reduce,
    "Land": _Module._e_logic,
    "Lor": _Module._e_logic,
    "Cond": _Module._e_cond,
    "Uminus": _Module._e_arith,
    "Uplus": _Module._e_arith,
    "Plus": _Module._e_arith,
    "Minus": _Module._e_arith,
    "Times": _Module._e_arith,
    "Divide": _Module._e_divide,
    "Mod": _Module._e_divide,
    "Power": _Module._e_divide,
    "Sll": _Module._e_shift,
    "Srl": _Module._e_shift,
    "Sla": _Module._e_shift,
    "Sra": _Module._e_shift,
    **{kind: _Module._e_compare for kind in _COMPARISONS},
}


# ----------------------------------------------------------------------------------------------
# The reader: module table, top selection, flattening, final netlist
# ----------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, ast: Any, path: str, cells: CellLibrary, positions: Positions):
        self.path = path
        self.cells = cells
        self.positions = positions
        self.design = _Design(path)
        self.used: set[str] = set()  # library cells instantiated
        self.iterations = 0  # generate-loop iterations unrolled so far
        self.measured = False  # the generate loop being elaborated had its nested loops counted beforehand
        self.modules: dict[str, Any] = {}
        for definition in ast.description.definitions:
            if type(definition).__name__ != "ModuleDef":
                continue
            name = _unescape(definition.name)
            if name in self.modules:
                first, again = self.at(self.modules[name]), self.at(definition)
                raise ParseError(f"module {name} is defined twice (lines {first.line} and {again.line})", path, *again)
            self.modules[name] = definition
        if not self.modules:
            raise ParseError("no module definition found", path, 1, 1)

    def at(self, node: Any) -> _Pos:
        """Where ``node`` starts: from its first token when known, else its line."""
        offset = getattr(node, "lexpos", None)
        if offset is None:
            return _Pos(getattr(node, "lineno", 0) or 0, None)
        return _Pos(*self.positions.at(offset))

    def pick_top(self, top: str | None) -> Any:
        if top is not None:
            if top not in self.modules:
                raise ParseError(f"top module {top} not found; modules: {', '.join(self.modules)}", self.path)
            return self.modules[top]
        used = {
            _unescape(inst.module)
            for moddef in self.modules.values()
            for item in _nested_items(moddef.items)
            if type(item).__name__ == "InstanceList"
            for inst in item.instances
        }
        candidates = [name for name in self.modules if name not in used]
        if len(candidates) > 1:
            stem = Path(self.path).stem.lower()
            by_file = [name for name in candidates if stem.endswith(name.lower())]
            if len(by_file) == 1:
                candidates = by_file
            else:
                multi = [name for name in candidates if len(self._port_names(self.modules[name])) >= 3]
                if len(multi) == 1:
                    candidates = multi
        if len(candidates) != 1:
            listed = ", ".join(candidates or list(self.modules))
            raise ParseError(f"cannot tell the top module among {listed}; name it with --top", self.path)
        return self.modules[candidates[0]]

    @staticmethod
    def _port_names(moddef: Any) -> list[Any]:
        return list(moddef.portlist.ports) if moddef.portlist is not None else []

    def elaborate_top(self, moddef: Any) -> _Module:
        module = _Module(self, moddef, "", {}, (_unescape(moddef.name),), top=True)
        module.elaborate()
        return module

    def _buses(self, module: _Module, direction: str) -> dict[str, list[int]]:
        """The module's ports of ``direction`` as buses; single-bit ports ``A[0]``/``A_0``/``A0`` are grouped (inputs
        by :func:`~.ports.group_input_ports`, as Yosys's output of the module is read)."""
        ports = [p for p in module.ports if module.port(p).direction == direction]
        widths = [len(module.port(p).bits) for p in ports]
        try:
            if direction == "input":
                groups = group_input_ports(ports, widths)
            else:
                groups = group_bits([p for p, width in zip(ports, widths, strict=True) if width == 1])
        except ValueError as exc:
            raise ParseError(f"{direction} ports: {exc}", self.path, *self.at(module.moddef)) from None
        group_of = {name: bus for bus, names in groups.items() for name in names}
        buses: dict[str, list[int]] = {}
        for port in ports:
            if port in group_of:
                bus = group_of[port]
                bits = [module.port(name).bits[0] for name in groups[bus]]
            else:
                bus, bits = port, list(module.port(port).bits)
            if bus in buses and buses[bus] != bits:
                raise ParseError(f"{direction} bus {bus} is declared twice", self.path, *module.port(port).at)
            buses[bus] = bits
        return buses

    def netlist(self, module: _Module, operands: tuple[str, str] | None) -> Netlist:
        d, path = self.design, self.path
        moddef = module.moddef
        inputs = self._buses(module, "input")
        outputs = self._buses(module, "output")
        top_at = self.at(moddef)
        a_name, b_name = order_operands(list(inputs), operands, path=path, line=top_at.line, col=top_at.col)
        if len(outputs) != 1:
            known = [p for p in outputs if p.lower() in _OUTPUT_NAMES]
            if len(known) != 1:
                raise ParseError(
                    f"module {moddef.name} needs one output port (has {', '.join(outputs) or 'none'})", path, *top_at
                )
            outputs = {known[0]: outputs[known[0]]}
        out_name, out_bits = next(iter(outputs.items()))
        out_at = module.port(out_name).at if out_name in module.ports else top_at
        operand_nets = set(inputs[a_name] + inputs[b_name])
        other_inputs = {net: name for name, bits in inputs.items() if name not in (a_name, b_name) for net in bits}

        # Live cone of the output; every net in it must be driven.
        roots = [d.find(net) for net in out_bits]
        live: set[int] = set()
        stack = [(net, out_at) for net in roots]
        while stack:
            net, at = stack.pop()
            if net in live:
                continue
            live.add(net)
            if net in d.gate_of:
                gate = d.gates[d.gate_of[net]]
                stack += [(d.find(i), gate.at) for i in gate.inputs]
            elif net in other_inputs:
                raise ParseError(
                    f"input '{other_inputs[net]}' drives the output but is not one of the operands {a_name}, {b_name}",
                    path,
                    *at,
                )
            elif net not in operand_nets:
                raise ParseError(f"net '{d.name(net)}' is used but never driven", path, *at)

        # Name each live net after the first declared net that aliases it (output port bits last).
        names: dict[int, str] = {}
        port_bits = set(out_bits)
        order = [n for n in range(len(d.names)) if n not in port_bits] + out_bits
        for net in order:
            name = d.names[net]
            if name is not None:
                root = d.find(net)
                if root in live and root not in names:
                    names[root] = name

        builder = NetlistBuilder(_unescape(moddef.name))
        netmap: dict[int, int] = {}
        for name in (a_name, b_name):
            bits = inputs[name]
            nets = builder.input_bus(name, len(bits), [d.name(n) for n in bits])
            netmap.update(zip(bits, nets, strict=True))
        gates = [gate for gate in d.gates if gate.output in live]
        for gate in gates:
            netmap[gate.output] = builder.new_net(names.get(gate.output))
        for gate in gates:
            ins = [netmap[d.find(i)] for i in gate.inputs]
            builder.gate(gate.kind, ins, netmap[gate.output], loc=SourceLoc(path, *gate.at))
        operand_ports = [
            p
            for p in module.ports
            if module.port(p).direction == "input" and operand_nets.intersection(module.port(p).bits)
        ]
        try:
            netlist = builder.build([netmap[n] for n in roots], output_name=out_name)
        except NetlistError as exc:
            loop = find_loop(
                Gate(g.kind, tuple(d.find(i) for i in g.inputs), g.output) for g in d.gates if g.output in live
            )
            if loop:
                at = d.gates[d.gate_of[loop[0]]].at
                raise ParseError(
                    "combinational loop through " + " -> ".join(names.get(n, f"n{n}") for n in loop), path, *at
                ) from None
            raise ParseError(str(exc), path) from None
        netlist.signed_ports = all(module.port(p).signed for p in operand_ports)
        return netlist


def read_verilog(
    text: str,
    path: str = "<input>",
    *,
    top: str | None = None,
    operands: tuple[str, str] | None = None,
    cells: CellLibrary | None = None,
) -> Netlist:
    """Read a structural Verilog multiplier into a validated, topologically sorted :class:`Netlist`.

    The top module (``top``, else the one module no other module instantiates) must have two
    operand input ports (ordered by :func:`~.ports.order_operands`, or named by ``operands``) and
    one output port. Sub-modules are flattened; cells not defined in the file come from ``cells``
    (default: the profile the header shows, else the built-in cells, :func:`~.cells.cell_library`),
    and the netlist's ``cell_use`` says which of them it used. Any line endings are accepted; errors
    carry the 1-based line and column of the offending token. Logic that does not reach the output
    is dropped.

    Example:
        >>> nl = read_verilog("module m(input [1:0] A, B, output [3:0] O); assign O = A * B; endmodule")
        >>> nl.widths
        (2, 2)
    """
    text = normalise(text)
    ast = parse_ast(text, path)
    library = cells if cells is not None else cell_library(None, text)
    reader = _Reader(ast, path, library, Positions(text))
    try:
        module = reader.elaborate_top(reader.pick_top(top))
    except RecursionError:
        raise ParseError(
            "expression or hierarchy nested too deeply; split long expressions into several assigns",
            path,
            *(reader.design.item_at or (None, None)),
        ) from None
    netlist = reader.netlist(module, operands)
    if reader.used:
        notes = library.notes
        netlist.cell_use = CellUse(
            library.profile, library.reason, tuple((n, notes.get(n, "")) for n in sorted(reader.used))
        )
    return netlist


def cells_from_verilog(text: str, path: str = "<cells>", *, cells: CellLibrary | None = None) -> list[Cell]:
    """Turn every module of ``text`` into a :class:`Cell` (single-bit pins; may use ``cells``)."""
    text = normalise(text)
    ast = parse_ast(text, path)
    library = cells if cells is not None else CellLibrary.builtin()
    positions = Positions(text)
    result = []
    for moddef in _Reader(ast, path, library, positions).modules.values():
        reader = _Reader(ast, path, library, positions)  # a fresh design per cell
        result.append(_as_cell(reader.design, reader.elaborate_top(moddef)))
    return result


def _as_cell(d: _Design, module: _Module) -> Cell:
    name = _unescape(module.moddef.name)
    pins: dict[int, str] = {}
    inputs: list[str] = []
    outputs: list[str] = []
    for port in module.ports:
        signal = module.port(port)
        if len(signal.bits) != 1:
            raise d.error(f"cell {name}: pin {port} must be a single bit", signal.at)
        (inputs if signal.direction == "input" else outputs).append(port)
        if signal.direction == "input":
            pins[signal.bits[0]] = port
    local: dict[int, str] = dict(pins)
    gates: list[CellGate] = []
    wanted = {d.find(module.port(p).bits[0]): p for p in reversed(outputs)}
    live: set[int] = set()
    stack = list(wanted)
    while stack:
        net = stack.pop()
        if net in live or net in pins:
            continue
        live.add(net)
        if net not in d.gate_of:
            raise d.error(f"cell {name}: net '{d.name(net)}' is used but never driven", module.at(module.moddef))
        stack += [d.find(i) for i in d.gates[d.gate_of[net]].inputs]
    for gate in d.gates:
        if gate.output in live:
            local[gate.output] = wanted.get(gate.output, f"_t{len(gates)}")
            gates.append(CellGate(gate.kind, tuple(local[d.find(i)] for i in gate.inputs), local[gate.output]))
    for pin in outputs:
        src = local[d.find(module.port(pin).bits[0])]
        if src != pin:
            gates.append(CellGate(Kind.BUF, (src,), pin))
    return Cell(name, tuple(inputs), tuple(outputs), tuple(gates), tuple(module.ports))
