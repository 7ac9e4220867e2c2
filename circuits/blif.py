"""BLIF reader and writer (combinational subset, hierarchy flattened).

Reads ``.model/.inputs/.outputs/.names/.end`` with backslash continuations, ``#`` comments, on-set or
off-set covers with don't-cares, constant nodes, ``.subckt``/``.gate`` instances of models defined in
the same file (flattened) or of Yosys' internal gate cells (``$_AND_``, ``$_MUX_``, ...), Yosys'
``.conn`` and implicit ``$false/$true`` nets. ``$undef``, Yosys's net for x bits and undriven nets, is
refused where an output depends on it. Timing and attribute annotations are ignored;
``.latch`` and other sequential or external constructs are refused. The first model is the top.
Every ``.names`` node becomes a :attr:`Kind.SOP` gate, except covers that are trivially a constant,
a buffer or an inverter.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from sys import intern
from typing import NamedTuple

from ..errors import InputError, NetlistError, ParseError, UndefinedValueError
from .netlist import MAX_GATES, Cover, Gate, Kind, Netlist, SourceLoc, find_loop, topo_order
from .ports import group_bits, group_inputs, order_operands
from .text import normalise

#: Directives that annotate a circuit without changing its function; skipped.
IGNORED = frozenset(
    {
        ".attr",
        ".param",
        ".cname",
        ".area",
        ".delay",
        ".wire_load_slope",
        ".wire",
        ".input_arrival",
        ".output_required",
        ".default_input_arrival",
        ".default_output_required",
        ".input_drive",
        ".default_input_drive",
        ".output_load",
        ".default_output_load",
        ".max_input_load",
        ".default_max_input_load",
        ".clock",
    }
)

#: Directives refused with the reason given.
REFUSED = {
    ".latch": "sequential element .latch: lutgen handles combinational circuits only",
    ".mlatch": "sequential element .mlatch: lutgen handles combinational circuits only",
    ".start_kiss": "state machines (.start_kiss) are not combinational circuits",
    ".end_kiss": "state machines (.end_kiss) are not combinational circuits",
    ".latch_order": "sequential construct .latch_order: lutgen handles combinational circuits only",
    ".code": "state machines (.code) are not combinational circuits",
    ".cycle": "sequential construct .cycle: lutgen handles combinational circuits only",
    ".clock_event": "sequential construct .clock_event: lutgen handles combinational circuits only",
    ".exdc": ".exdc (external don't-care network) is not supported; remove that section",
    ".search": ".search (reading another file) is not supported; put every model in one file",
}

#: Nets Yosys leaves implicit with ``write_blif -impltf``: constant when the file does not drive them.
IMPLICIT_CONSTANTS = {"$false": 0, "$true": 1}

#: Yosys's net for undefined values (x bits, undriven nets), written as ``.names $undef`` (a 0) or implicit:
#: reading it as 0 would give metrics of a circuit nobody designed, so an output that depends on it is refused.
UNDEFINED = "$undef"

#: Flattened designs larger than :data:`~approxlut.circuits.netlist.MAX_GATES` are refused (nested
#: instances can multiply without bound), and so are files with more nodes, before they are flattened.

#: Yosys' internal gate cells (``write_blif -icells``): input ports in order and the cover driving ``Y``.
YOSYS_CELLS: dict[str, tuple[tuple[str, ...], Cover]] = {
    "$_BUF_": (("A",), Cover(("1",))),
    "$_NOT_": (("A",), Cover(("0",))),
    "$_AND_": (("A", "B"), Cover(("11",))),
    "$_NAND_": (("A", "B"), Cover(("11",), 0)),
    "$_OR_": (("A", "B"), Cover(("1-", "-1"))),
    "$_NOR_": (("A", "B"), Cover(("1-", "-1"), 0)),
    "$_XOR_": (("A", "B"), Cover(("01", "10"))),
    "$_XNOR_": (("A", "B"), Cover(("00", "11"))),
    "$_ANDNOT_": (("A", "B"), Cover(("10",))),
    "$_ORNOT_": (("A", "B"), Cover(("1-", "-0"))),
    "$_MUX_": (("A", "B", "S"), Cover(("1-0", "-11"))),
    "$_NMUX_": (("A", "B", "S"), Cover(("1-0", "-11"), 0)),
    "$_AOI3_": (("A", "B", "C"), Cover(("11-", "--1"), 0)),
    "$_OAI3_": (("A", "B", "C"), Cover(("1-1", "-11"), 0)),
    "$_AOI4_": (("A", "B", "C", "D"), Cover(("11--", "--11"), 0)),
    "$_OAI4_": (("A", "B", "C", "D"), Cover(("1-1-", "1--1", "-11-", "-1-1"), 0)),
}

_SAFE_NAME = re.compile(r"^[^\s#=\\.][^\s#=\\]*$")
_WORD = re.compile(r"\S+")
_LINE = re.compile(r"[^\n]*(?:\n|$)")  # one line of normalised text


class _Token(NamedTuple):
    text: str
    line: int
    col: int


@dataclass(slots=True)
class _Node:
    inputs: list[_Token]
    output: _Token
    cubes: list[str] = field(default_factory=list)
    phase: int | None = None


@dataclass
class _Instance:
    model: _Token
    conns: list[tuple[_Token, _Token]]  # (formal, actual)


@dataclass
class _Model:
    name: _Token
    inputs: list[_Token] = field(default_factory=list)
    outputs: list[_Token] = field(default_factory=list)
    nodes: list[_Node] = field(default_factory=list)
    buffers: list[tuple[_Token, _Token]] = field(default_factory=list)  # .conn source target
    instances: list[_Instance] = field(default_factory=list)
    blackbox: bool = False


def _logical_lines(text: str) -> Iterator[list[_Token]]:
    """Tokens per logical line (generated one at a time): comments dropped, backslash continuations joined.

    Token texts are interned: a net's name is used several times but stored once.
    """
    pending: list[_Token] = []
    word = _WORD.finditer
    for number, match in enumerate(_LINE.finditer(normalise(text)), start=1):  # lazily: no list of every line
        stripped = match.group().split("#", 1)[0].rstrip()
        continued = stripped.endswith("\\")
        if continued:
            stripped = stripped[:-1]
        pending.extend([_Token(intern(m.group()), number, m.start() + 1) for m in word(stripped)])
        if not continued:
            if pending:
                yield pending
            pending = []
    if pending:
        yield pending


def _parse_models(text: str, path: str) -> list[_Model]:
    models: list[_Model] = []
    model: _Model | None = None
    node: _Node | None = None

    def fail(message: str, token: _Token) -> ParseError:
        return ParseError(message, path, token.line, token.col)

    for tokens in _logical_lines(text):
        head = tokens[0]
        word = head.text
        if not word.startswith("."):
            if node is None:
                raise fail(f"unexpected '{_clip(word)}': cover rows belong after a .names line", head)
            _add_cube(node, tokens, fail)
            continue
        node = None
        directive = word.lower()
        if directive in REFUSED:
            raise fail(REFUSED[directive], head)
        if directive == ".model":
            if len(tokens) > 2:
                raise fail(".model takes one name", tokens[2])
            model = _Model(tokens[1] if len(tokens) == 2 else _Token("top", head.line, head.col))
            if any(m.name.text == model.name.text for m in models):
                raise fail(f"model '{model.name.text}' is defined twice", model.name)
            models.append(model)
            continue
        if model is None:
            raise fail(f"'{_clip(word)}' before any .model line", head)
        if directive == ".end":
            if len(tokens) > 1:
                raise fail("unexpected text after .end", tokens[1])
            model = None
        elif directive in (".inputs", ".outputs"):
            (model.inputs if directive == ".inputs" else model.outputs).extend(tokens[1:])
        elif directive == ".names":
            if len(tokens) < 2:
                raise fail(".names needs at least an output name", head)
            node = _Node(tokens[1:-1], tokens[-1])
            model.nodes.append(node)
        elif directive in (".subckt", ".gate"):
            if len(tokens) < 2:
                raise fail(f"{directive} needs a model name", head)
            conns = []
            for token in tokens[2:]:
                formal, eq, actual = token.text.partition("=")
                if not eq or not formal or not actual:
                    raise fail(f"expected formal=actual, found '{_clip(token.text)}'", token)
                conns.append(
                    (_Token(formal, token.line, token.col), _Token(actual, token.line, token.col + len(formal) + 1))
                )
            model.instances.append(_Instance(tokens[1], conns))
        elif directive == ".conn":
            if len(tokens) != 3:
                raise fail(".conn takes a source and a target net", head)
            model.buffers.append((tokens[1], tokens[2]))
        elif directive == ".blackbox":
            model.blackbox = True
        elif directive not in IGNORED:
            raise fail(f"unknown BLIF directive '{_clip(word)}'", head)
    if not models:
        raise ParseError("no .model found: not a BLIF file", path, 1, 1)
    return models


def _add_cube(node: _Node, tokens: list[_Token], fail: Callable[[str, _Token], ParseError]) -> None:
    n = len(node.inputs)
    if n == 0:
        if len(tokens) != 1:
            raise fail(f"a constant node has rows of one value, found {len(tokens)} fields", tokens[-1])
        plane, value = "", tokens[0]
    else:
        if len(tokens) != 2:
            raise fail(f"expected '<{n} input values> <output value>', found {len(tokens)} fields", tokens[0])
        plane, value = tokens[0].text, tokens[1]
        if len(plane) != n:
            raise fail(f"cube '{_clip(plane)}' has {len(plane)} values for {n} inputs", tokens[0])
        for i, char in enumerate(plane):
            if char not in "01-":
                raise fail(f"cube value '{char}' is not 0, 1 or -", _Token(plane, tokens[0].line, tokens[0].col + i))
    if value.text not in ("0", "1"):
        raise fail(f"output value '{_clip(value.text)}' is not 0 or 1", value)
    phase = int(value.text)
    if node.phase is None:
        node.phase = phase
    elif node.phase != phase:
        raise fail(
            f"cover of '{node.output.text}' mixes on-set (1) and off-set (0) rows; BLIF allows one kind per node",
            value,
        )
    node.cubes.append(plane)


def _trivial_kind(cover: Cover, n: int) -> Kind | None:
    """CONST0/CONST1/BUF/NOT when a cover over ``n <= 1`` inputs is one of those, else ``None``."""
    if n > 1:
        return None
    table = tuple(cover.evaluate([bit] if n else []) for bit in ((0, 1) if n else (0,)))
    return {
        (0,): Kind.CONST0,
        (1,): Kind.CONST1,
        (0, 0): Kind.CONST0,
        (1, 1): Kind.CONST1,
        (0, 1): Kind.BUF,
        (1, 0): Kind.NOT,
    }[table]


def cover_gate(cover: Cover, inputs: Sequence[int], output: int, loc: SourceLoc | None) -> Gate:
    """The gate for a node with ``cover``: a constant, BUF or NOT when the cover is that trivially."""
    kind = _trivial_kind(cover, len(inputs))
    if kind is None:
        return Gate(Kind.SOP, tuple(inputs), output, cover, loc)
    if kind in (Kind.CONST0, Kind.CONST1):
        return Gate(kind, (), output, None, loc)
    return Gate(kind, tuple(inputs), output, None, loc)


class _Flattener:
    """Instantiates models into one flat list of gates over integer nets."""

    def __init__(self, models: list[_Model], path: str):
        self.models = {m.name.text: m for m in models}
        self.path = path
        self.gates: list[Gate] = []
        self.names: dict[int, str] = {}
        self.driver_line: dict[int, int] = {}
        self.first_use: dict[int, _Token] = {}
        self.undefined: set[int] = set()  # nets named UNDEFINED, in any model
        self.count = 0
        self.covers: dict[Cover, Cover] = {}  # one object per distinct cover: a million gates share a few

    def fail(self, message: str, token: _Token) -> ParseError:
        return ParseError(message, self.path, token.line, token.col)

    def new_net(self, name: str) -> int:
        net = self.count
        self.count += 1
        self.names[net] = name
        return net

    def drive(self, net: int, token: _Token) -> None:
        if net in self.driver_line:
            first = self.driver_line[net]
            where = "an input" if first == 0 else f"line {first}"
            raise self.fail(f"net '{self.names[net]}' is driven twice (first by {where})", token)
        self.driver_line[net] = token.line

    def instantiate(self, model: _Model, scope: dict[str, int], prefix: str, stack: tuple[str, ...]) -> None:
        def net(token: _Token) -> int:
            if token.text not in scope:
                scope[token.text] = self.new_net(prefix + token.text)
                self.first_use[scope[token.text]] = token
                if token.text == UNDEFINED:
                    self.undefined.add(scope[token.text])
            return scope[token.text]

        loc = self.path
        if len(self.gates) > MAX_GATES:
            raise self.fail(f"flattening gives more than {MAX_GATES} gates", model.name)
        for node in model.nodes:
            ins = [net(t) for t in node.inputs]
            out = net(node.output)
            self.drive(out, node.output)
            cover = Cover(tuple(node.cubes), 1 if node.phase is None else node.phase)
            cover = self.covers.setdefault(cover, cover)
            self.gates.append(cover_gate(cover, ins, out, SourceLoc(loc, node.output.line, node.output.col)))
        for source, target in model.buffers:
            src, dst = net(source), net(target)
            self.drive(dst, target)
            self.gates.append(Gate(Kind.BUF, (src,), dst, None, SourceLoc(loc, target.line, target.col)))
        for index, inst in enumerate(model.instances):
            self.expand(inst, net, f"{prefix}{inst.model.text}#{index}/", stack)

    def cell(self, inst: _Instance, net: Callable[[_Token], int]) -> None:
        """One Yosys internal gate cell: every port must be connected."""
        ports, cover = YOSYS_CELLS[inst.model.text]
        bound: dict[str, _Token] = {}
        for formal, actual in inst.conns:
            if formal.text not in (*ports, "Y") or formal.text in bound:
                raise self.fail(f"cell {inst.model.text} has no (other) port '{_clip(formal.text)}'", formal)
            bound[formal.text] = actual
        missing = [p for p in (*ports, "Y") if p not in bound]
        if missing:
            raise self.fail(f"cell {inst.model.text}: port {', '.join(missing)} is not connected", inst.model)
        out = net(bound["Y"])
        self.drive(out, bound["Y"])
        ins = [net(bound[p]) for p in ports]
        self.gates.append(cover_gate(cover, ins, out, SourceLoc(self.path, inst.model.line, inst.model.col)))

    def expand(self, inst: _Instance, net: Callable[[_Token], int], prefix: str, stack: tuple[str, ...]) -> None:
        name = inst.model.text
        sub = self.models.get(name)
        if sub is None and name in YOSYS_CELLS:
            self.cell(inst, net)
            return
        if sub is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise self.fail(
                f"unknown model '{_clip(name)}' (models in this file: {_clip(known)}); define it with .model",
                inst.model,
            )
        if sub.blackbox:
            raise self.fail(f"model '{name}' is a .blackbox: its function is unknown", inst.model)
        if name in stack:
            raise self.fail(f"model '{name}' instantiates itself (through {' -> '.join(stack)})", inst.model)
        ins = {t.text for t in sub.inputs}
        outs = {t.text for t in sub.outputs}
        bound: dict[str, _Token] = {}
        for formal, actual in inst.conns:
            if formal.text not in ins and formal.text not in outs:
                raise self.fail(f"model '{name}' has no port '{_clip(formal.text)}'", formal)
            if formal.text in bound:
                raise self.fail(f"port '{formal.text}' is connected twice", formal)
            bound[formal.text] = actual
        scope: dict[str, int] = {}
        for port in sub.inputs:
            if port.text not in bound:
                raise self.fail(f"input '{port.text}' of model '{name}' is not connected", inst.model)
            scope[port.text] = net(bound[port.text])
        for port in sub.outputs:
            if port.text in bound and port.text not in scope:
                scope[port.text] = net(bound[port.text])  # driven by the sub-model's own nodes
        self.instantiate(sub, scope, prefix, (*stack, name))


def read_blif(text: str, path: str = "<input>", *, operands: tuple[str, str] | None = None) -> Netlist:
    """Parse BLIF ``text`` into a :class:`Netlist`; errors are :class:`ParseError` at ``path:line:col``.

    Input bits such as ``A[0]`` are grouped into buses and the two operands picked by the port
    conventions of :func:`~approxlut.circuits.ports.order_operands` (or ``operands``); the outputs must
    form one bus.
    """
    collecting = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the cycle collector would rescan them again and again
    try:
        return _read_blif(text, path, operands)
    finally:
        if collecting:
            gc.enable()


def _read_blif(text: str, path: str, operands: tuple[str, str] | None) -> Netlist:
    nodes = sum(text.count(word) for word in (".names", ".subckt", ".gate"))  # an upper bound, counted at once
    if nodes > MAX_GATES:
        raise ParseError(f"{nodes} nodes: BLIF input is limited to {MAX_GATES} gates", path)
    models = _parse_models(text, path)
    top = models[0]
    where = top.name
    if top.blackbox:
        raise ParseError(f"the top model '{top.name.text}' is a .blackbox", path, where.line, where.col)
    flat = _Flattener(models, path)
    if not top.inputs:
        raise ParseError(f"model '{top.name.text}' has no .inputs", path, where.line, where.col)
    if not top.outputs:
        raise ParseError(f"model '{top.name.text}' has no .outputs", path, where.line, where.col)
    tokens = {}
    for token in top.inputs:
        if token.text in tokens:
            raise ParseError(f"input '{token.text}' is declared twice", path, token.line, token.col)
        tokens[token.text] = token
    in_buses = _buses(top.inputs, "inputs", path, group=group_inputs)
    first = top.inputs[0]
    a, b = order_operands(list(in_buses), operands, path=path, line=first.line, col=first.col)
    extra = [bus for bus in in_buses if bus not in (a, b)]
    if extra:
        token = tokens[in_buses[extra[0]][0]]
        raise ParseError(
            f"inputs {', '.join(extra)} are neither operand ({a}, {b}); a multiplier has two input buses",
            path,
            token.line,
            token.col,
        )
    scope: dict[str, int] = {}
    inputs: dict[str, list[int]] = {}
    for bus in (a, b):
        inputs[bus] = []
        for bit in in_buses[bus]:
            net = scope[bit] = flat.new_net(bit)
            flat.driver_line[net] = 0
            inputs[bus].append(net)
    out_buses = _buses(top.outputs, "outputs", path)
    if len(out_buses) != 1:
        token = top.outputs[0]
        raise ParseError(
            f"outputs form {len(out_buses)} buses ({', '.join(out_buses)}); a multiplier has one output bus",
            path,
            token.line,
            token.col,
        )
    flat.instantiate(top, scope, "", (top.name.text,))
    ((out_name, out_bits),) = out_buses.items()
    out_tokens = {t.text: t for t in top.outputs}
    for bit in out_bits:
        if bit not in scope:
            token = out_tokens[bit]
            raise ParseError(f"output '{bit}' is never driven", path, token.line, token.col)
    constants: list[Gate] = []
    for net, token in flat.first_use.items():
        if net in flat.driver_line:
            continue
        if token.text not in IMPLICIT_CONSTANTS and net not in flat.undefined:
            raise ParseError(f"net '{_clip(token.text)}' is used but never driven", path, token.line, token.col)
        kind = Kind.CONST1 if IMPLICIT_CONSTANTS.get(token.text) else Kind.CONST0  # (UNDEFINED: refused below if used)
        constants.append(Gate(kind, (), net, None, SourceLoc(path, token.line, token.col)))
    netlist = Netlist(
        name=top.name.text,
        inputs=inputs,
        outputs=[scope[bit] for bit in out_bits],
        gates=constants + flat.gates,
        num_nets=flat.count,
        output_name=out_name,
        net_names=flat.names,
    )
    netlist = _ordered(netlist, path)
    if flat.undefined:
        _refuse_undefined(netlist, flat.undefined, {scope[bit]: out_tokens[bit] for bit in out_bits}, path)
    return netlist


def _refuse_undefined(netlist: Netlist, undefined: set[int], out_tokens: dict[int, _Token], path: str) -> None:
    """Raise :class:`UndefinedValueError` for the first output bit (LSB first) that depends on an ``undefined``
    net, located at the gate that reads it."""
    drivers = {gate.output: gate for gate in netlist.gates}
    seen: set[int] = set()
    for out in netlist.outputs:
        where: _Token | SourceLoc | None = out_tokens[out] if out in undefined else None
        found = where is not None
        stack = [out]
        while stack and not found:
            gate = drivers.get(stack.pop())
            if gate is None or gate.output in seen:
                continue
            seen.add(gate.output)
            if any(net in undefined for net in gate.inputs):
                found, where = True, gate.loc
            stack.extend(gate.inputs)
        if found:
            raise UndefinedValueError(
                f"output {netlist.net_name(out)} depends on {UNDEFINED}, an undefined value (x, or a net nothing "
                "drives); lutgen needs every output bit defined",
                path,
                where.line if where else None,
                where.col if where else None,
            )


def _buses(
    tokens: list[_Token], what: str, path: str, *, group: Callable[[list[str]], dict[str, list[str]]] = group_bits
) -> dict[str, list[str]]:
    try:
        return group([t.text for t in tokens])
    except ValueError as exc:
        raise ParseError(f"{what}: {exc}", path, tokens[0].line, tokens[0].col) from None


def _ordered(netlist: Netlist, path: str) -> Netlist:
    """Keep the file's gate order when it is topological, else sort; loops become located errors."""
    seen = {net for nets in netlist.inputs.values() for net in nets}
    for gate in netlist.gates:
        if any(net not in seen for net in gate.inputs):
            loop = find_loop(netlist.gates)
            if loop:
                driver = next(g for g in netlist.gates if g.output == loop[0])
                names = " -> ".join(netlist.net_name(n) for n in loop)
                where = (driver.loc.line, driver.loc.col) if driver.loc else (None, None)
                raise ParseError(f"combinational loop through {_clip(names, 200)}", path, *where)
            netlist.gates = topo_order(netlist)
            break
        seen.add(gate.output)
    try:
        netlist.validate()
    except NetlistError as exc:
        raise ParseError(str(exc), path) from None
    return netlist


# ------------------------------------------------------------------------------------------------ writer

#: XOR/XNOR gates wider than this are written as a chain of two-input nodes (minterm covers double per input).
MAX_PARITY_COVER = 6


def _rows(gate: Gate) -> tuple[list[str], int]:
    """(cubes, phase) of the cover that writes ``gate``."""
    n = len(gate.inputs)
    kind = gate.kind
    if kind is Kind.SOP:
        assert gate.cover is not None
        if gate.cover.phase == 0 and not gate.cover.cubes:
            return ["-" * n], 1  # an empty off-set: constant 1
        return list(gate.cover.cubes), gate.cover.phase
    if kind in (Kind.CONST0, Kind.CONST1):
        return ([""] if kind is Kind.CONST1 else []), 1
    if kind in (Kind.BUF, Kind.NOT):
        return ["1" if kind is Kind.BUF else "0"], 1
    if kind in (Kind.AND, Kind.NAND):
        return ["1" * n], 1 if kind is Kind.AND else 0
    if kind in (Kind.OR, Kind.NOR):
        return ["-" * i + "1" + "-" * (n - i - 1) for i in range(n)], 1 if kind is Kind.OR else 0
    if kind in (Kind.XOR, Kind.XNOR):
        parity = 1 if kind is Kind.XOR else 0
        cubes = [format(m, f"0{n}b") for m in range(1 << n)]
        return [c for c in cubes if c.count("1") % 2 == parity], 1
    if kind is Kind.MUX:
        return ["01-", "1-1"], 1
    raise AssertionError(f"unhandled kind {kind}")


class _Namer:
    """Unique, BLIF-safe names for the nets of one netlist."""

    def __init__(self, netlist: Netlist, reserved: set[str]):
        self.netlist = netlist
        self.used = set(reserved)
        self.names: dict[int, str] = {}

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def __call__(self, net: int) -> str:
        if net not in self.names:
            base = self.netlist.net_names.get(net, "")
            self.names[net] = self.fresh(base if _SAFE_NAME.match(base) else f"n{net}")
        return self.names[net]


def write_blif(netlist: Netlist, *, model: str | None = None) -> str:
    """BLIF text of ``netlist``: ports ``<bus>[i]``, one ``.names`` node per gate (every kind as a cover).

    :func:`read_blif` reads it back into the same function; netlists read from BLIF come back with
    identical :meth:`~approxlut.circuits.netlist.Netlist.canonical_text`.
    """
    for bus in (*netlist.inputs, netlist.output_name):
        if not _SAFE_NAME.match(bus) or "[" in bus:
            raise InputError(f"{netlist.name}: bus name '{bus}' cannot be written to BLIF")
    if netlist.output_name in netlist.inputs:
        raise InputError(f"{netlist.name}: output bus '{netlist.output_name}' has the name of an input bus")
    in_names = {net: f"{bus}[{i}]" for bus, nets in netlist.inputs.items() for i, net in enumerate(nets)}
    out_names = [f"{netlist.output_name}[{i}]" for i in range(len(netlist.outputs))]
    namer = _Namer(netlist, {*in_names.values(), *out_names, UNDEFINED})  # (a net so named would read as undefined)
    namer.names.update(in_names)
    driven = {g.output for g in netlist.gates}
    buffered: list[tuple[int, str]] = []
    for net, name in zip(netlist.outputs, out_names, strict=True):
        if net in driven and net not in namer.names and netlist.outputs.count(net) == 1:
            namer.names[net] = name
        else:
            buffered.append((net, name))
    title = re.sub(r"[\s#=\\]", "_", model or netlist.name) or "top"
    lines = [
        "# written by lutgen",
        f".model {title}",
        ".inputs " + " ".join(in_names[net] for nets in netlist.inputs.values() for net in nets),
        ".outputs " + " ".join(out_names),
    ]

    def node(ins: Sequence[str], out: str, cubes: list[str], phase: int) -> None:
        lines.append(" ".join([".names", *ins, out]))
        lines.extend(f"{cube} {phase}" if cube else str(phase) for cube in cubes)

    for gate in netlist.gates:
        ins = [namer(net) for net in gate.inputs]
        out = namer(gate.output)
        if gate.kind in (Kind.XOR, Kind.XNOR) and len(ins) > MAX_PARITY_COVER:
            acc = ins[0]
            for name in ins[1:-1]:
                step = namer.fresh(f"{out}_x")
                node([acc, name], step, ["01", "10"], 1)
                acc = step
            node([acc, ins[-1]], out, ["01", "10"] if gate.kind is Kind.XOR else ["00", "11"], 1)
            continue
        cubes, phase = _rows(gate)
        node(ins, out, cubes, phase)
    for net, name in buffered:
        node([namer(net)], name, ["1"], 1)
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
