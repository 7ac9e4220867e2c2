"""The one netlist IR: a flat, topologically ordered list of gates over integer net ids.

Every reader returns a :class:`Netlist`; the simulator, metrics, synthesis and the writers take one.
Nets are integers ``0..num_nets-1``. Input buses are named (operand ``a`` first, operand ``b``
second, LSB first); the output bus is one list of nets, LSB first. A net may carry a name (for
writers and error messages) and gates may carry the source location they came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..errors import NetlistError

if TYPE_CHECKING:
    import networkx as nx


class Kind(str, Enum):
    """The closed set of gate kinds. Arity rules live in :data:`ARITY`."""

    CONST0 = "CONST0"
    CONST1 = "CONST1"
    BUF = "BUF"
    NOT = "NOT"
    AND = "AND"
    OR = "OR"
    XOR = "XOR"
    NAND = "NAND"
    NOR = "NOR"
    XNOR = "XNOR"
    MUX = "MUX"  # inputs (sel, d0, d1): sel ? d1 : d0
    SOP = "SOP"  # general node: a sum-of-products cover over its inputs


#: (minimum, maximum) number of inputs per kind; ``None`` means unbounded.
ARITY: dict[Kind, tuple[int, int | None]] = {
    Kind.CONST0: (0, 0),
    Kind.CONST1: (0, 0),
    Kind.BUF: (1, 1),
    Kind.NOT: (1, 1),
    Kind.AND: (2, None),
    Kind.OR: (2, None),
    Kind.XOR: (2, None),
    Kind.NAND: (2, None),
    Kind.NOR: (2, None),
    Kind.XNOR: (2, None),
    Kind.MUX: (3, 3),
    Kind.SOP: (0, None),
}


#: Most gates a netlist read from a file may have: about a gigabyte of memory and half a minute to read and
#: simulate here (a 400,000-gate BLIF netlist: 0.83 GB, 7-16 s). The largest multipliers people publish are far
#: below (a 128x128 array multiplier has about 100,000 gates).
MAX_GATES = 400_000


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """Where a gate came from in its source file (1-based line and column)."""

    path: str
    line: int
    col: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" + (f":{self.col}" if self.col is not None else "")


@dataclass(frozen=True)
class CellUse:
    """Library cells a netlist instantiated without defining them, and whose definitions were used.

    ``profile`` is the cell profile (:data:`~approxlut.circuits.cells.PROFILES`), ``None`` for the
    built-in cells that every profile defines alike; ``reason`` says why those definitions (an
    option, the file header, a twin file); ``cells`` holds ``(name, note)`` per cell used.
    """

    profile: str | None
    reason: str
    cells: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        """One line: the definitions used and why, e.g. ``evoapprox8b cells (the file header says ...): ...``."""
        used = ", ".join(f"{name} ({note})" if note else name for name, note in self.cells)
        return f"{self.profile or 'built-in'} cells ({self.reason}): {used}"

    def as_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"profile": self.profile, "reason": self.reason, "used": dict(self.cells)}


@dataclass(frozen=True, slots=True)
class Cover:
    """A BLIF-style single-output cover.

    ``cubes`` are strings over ``'0'``, ``'1'``, ``'-'`` (one character per gate input).
    ``phase`` is 1 for an on-set cover (output is 1 where any cube matches) and 0 for an off-set
    cover (output is 0 where any cube matches). A cover with no cubes is the constant ``1 - phase``.
    """

    cubes: tuple[str, ...]
    phase: int = 1

    def evaluate(self, bits: Sequence[int]) -> int:
        """Evaluate the cover on one input assignment (the slow reference)."""
        hit = any(all(c == "-" or int(c) == b for c, b in zip(cube, bits, strict=True)) for cube in self.cubes)
        return self.phase if hit else 1 - self.phase


@dataclass(frozen=True, slots=True)
class Gate:
    """One gate: ``output = kind(inputs)``; ``cover`` is set for :attr:`Kind.SOP` only."""

    kind: Kind
    inputs: tuple[int, ...]
    output: int
    cover: Cover | None = None
    loc: SourceLoc | None = None


@dataclass
class Netlist:
    """A combinational circuit with named input buses and one output bus.

    Build one with :class:`NetlistBuilder`; call :meth:`validate` after any change.
    """

    name: str
    inputs: dict[str, list[int]]
    outputs: list[int]
    gates: list[Gate]
    num_nets: int
    output_name: str = "O"
    net_names: dict[int, str] = field(default_factory=dict)
    #: Library cells the source instantiated (Verilog), and whose definitions those were.
    cell_use: CellUse | None = None
    #: Whether the source declares every operand port ``signed`` (Verilog): it says it multiplies signed numbers.
    signed_ports: bool = False

    @property
    def operand_names(self) -> tuple[str, ...]:
        """Input bus names in operand order (``a`` first, ``b`` second)."""
        return tuple(self.inputs)

    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the input buses in operand order."""
        return tuple(len(bus) for bus in self.inputs.values())

    def net_name(self, net: int) -> str:
        """A printable name for ``net`` (its source name, else ``n<id>``)."""
        return self.net_names.get(net, f"n{net}")

    def gate_count(self, *, logic_only: bool = True) -> int:
        """Number of gates; with ``logic_only`` buffers and constants are not counted."""
        if not logic_only:
            return len(self.gates)
        return sum(1 for g in self.gates if g.kind not in (Kind.BUF, Kind.CONST0, Kind.CONST1))

    def validate(self) -> None:
        """Check the structure; raise :class:`NetlistError` naming the offending nets.

        Finds unknown net ids, wrong arities and cover widths (width mismatches), nets driven twice
        (or driving an input), nets used but never driven, combinational loops, and gates out of
        topological order.
        """
        driver: dict[int, Gate | None] = {}
        for bus, nets in self.inputs.items():
            if not nets:
                raise NetlistError(f"{self.name}: input bus '{bus}' has no bits")
            for net in nets:
                self._check_id(net, f"input bus '{bus}'")
                if net in driver:
                    raise NetlistError(f"{self.name}: net {self.net_name(net)} is used by two input bits")
                driver[net] = None
        for gate in self.gates:
            where = f" ({gate.loc})" if gate.loc else ""
            lo, hi = ARITY[gate.kind]
            n = len(gate.inputs)
            if n < lo or (hi is not None and n > hi):
                raise NetlistError(
                    f"{self.name}: {gate.kind.value} gate driving {self.net_name(gate.output)} has {n} inputs{where}"
                )
            if gate.kind is Kind.SOP:
                if gate.cover is None:
                    raise NetlistError(f"{self.name}: SOP node {self.net_name(gate.output)} has no cover{where}")
                for cube in gate.cover.cubes:
                    if len(cube) != n or set(cube) - set("01-"):
                        raise NetlistError(
                            f"{self.name}: cover of {self.net_name(gate.output)} has cube '{cube}' for {n} "
                            f"inputs{where}"
                        )
            elif gate.cover is not None:
                raise NetlistError(f"{self.name}: {gate.kind.value} gate has a cover{where}")
            for net in (*gate.inputs, gate.output):
                self._check_id(net, f"gate{where}")
            if gate.output in driver:
                prev = driver[gate.output]
                first = (
                    "an input" if prev is None else f"a {prev.kind.value} gate" + (f" ({prev.loc})" if prev.loc else "")
                )
                raise NetlistError(
                    f"{self.name}: net {self.net_name(gate.output)} is driven twice: by {first} and by a "
                    f"{gate.kind.value} gate{where}"
                )
            driver[gate.output] = gate
        for gate in self.gates:
            for net in gate.inputs:
                if net not in driver:
                    where = f" ({gate.loc})" if gate.loc else ""
                    raise NetlistError(f"{self.name}: net {self.net_name(net)} is used but never driven{where}")
        for net in self.outputs:
            self._check_id(net, "output bus")
            if net not in driver:
                raise NetlistError(f"{self.name}: output net {self.net_name(net)} is never driven")
        if not self.outputs:
            raise NetlistError(f"{self.name}: the output bus has no bits")
        seen = {net for nets in self.inputs.values() for net in nets}
        for gate in self.gates:
            if any(net not in seen for net in gate.inputs):
                # Either a loop or merely an unsorted list: tell them apart.
                loop = find_loop(self.gates)
                if loop:
                    names = " -> ".join(self.net_name(n) for n in loop)
                    raise NetlistError(f"{self.name}: combinational loop through {names}")
                raise NetlistError(f"{self.name}: gates are not in topological order (call toposorted())")
            seen.add(gate.output)

    def _check_id(self, net: int, what: str) -> None:
        if not 0 <= net < self.num_nets:
            raise NetlistError(f"{self.name}: {what} refers to unknown net id {net}")

    def toposorted(self) -> Netlist:
        """A copy with gates in topological order; raises :class:`NetlistError` on a loop."""
        return _replace_gates(self, topo_order(self))

    def to_networkx(self) -> nx.DiGraph:
        """A directed graph: nodes are nets (attribute ``name``, ``kind``), edges run input -> output."""
        import networkx as nx

        graph = nx.DiGraph()
        for bus, nets in self.inputs.items():
            for i, net in enumerate(nets):
                graph.add_node(net, name=self.net_name(net), kind=f"input:{bus}[{i}]")
        for gate in self.gates:
            graph.add_node(gate.output, name=self.net_name(gate.output), kind=gate.kind.value)
            for net in gate.inputs:
                graph.add_edge(net, gate.output)
        return graph

    def canonical_text(self) -> str:
        """A stable text form: nets renumbered in order of definition, names dropped.

        Two netlists with the same structure (same gates over the same operands in the same order)
        have the same canonical text whatever their net names or ids.
        """
        ids: dict[int, int] = {}
        lines = [f"netlist widths={','.join(map(str, self.widths))}"]
        for bus, nets in self.inputs.items():
            for net in nets:
                ids[net] = len(ids)
            lines.append(f"input {bus} " + " ".join(str(ids[n]) for n in nets))
        for gate in self.gates:
            ids[gate.output] = len(ids)
            args = " ".join(str(ids[n]) for n in gate.inputs)
            cover = ""
            if gate.cover is not None:
                cover = f" [{gate.cover.phase}:{'|'.join(gate.cover.cubes)}]"
            lines.append(f"{ids[gate.output]} = {gate.kind.value}({args}){cover}")
        lines.append("output " + " ".join(str(ids[n]) for n in self.outputs))
        return "\n".join(lines) + "\n"

    def structure_hash(self) -> str:
        """SHA-256 of :meth:`canonical_text` (structure, not function: LUTs have their own hash)."""
        return hashlib.sha256(self.canonical_text().encode()).hexdigest()


def _replace_gates(netlist: Netlist, gates: list[Gate]) -> Netlist:
    return Netlist(
        name=netlist.name,
        inputs={k: list(v) for k, v in netlist.inputs.items()},
        outputs=list(netlist.outputs),
        gates=gates,
        num_nets=netlist.num_nets,
        output_name=netlist.output_name,
        net_names=dict(netlist.net_names),
    )


def topo_order(netlist: Netlist) -> list[Gate]:
    """Gates of ``netlist`` in topological order (Kahn's algorithm, stable for sorted input)."""
    producer = {g.output: i for i, g in enumerate(netlist.gates)}
    pending = [0] * len(netlist.gates)
    users: dict[int, list[int]] = {}
    for i, gate in enumerate(netlist.gates):
        for net in set(gate.inputs):
            if net in producer:
                pending[i] += 1
                users.setdefault(producer[net], []).append(i)
    ready = [i for i, count in enumerate(pending) if count == 0]
    ready.reverse()
    order: list[Gate] = []
    while ready:
        i = ready.pop()
        order.append(netlist.gates[i])
        for user in reversed(users.get(i, [])):
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    if len(order) != len(netlist.gates):
        loop = find_loop(netlist.gates)
        names = " -> ".join(netlist.net_name(n) for n in loop)
        raise NetlistError(f"{netlist.name}: combinational loop through {names}")
    return order


def find_loop(gates: Iterable[Gate]) -> list[int]:
    """Nets of one combinational cycle (first net repeated at the end), or ``[]`` when acyclic."""
    fanin = {g.output: g.inputs for g in gates}
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done
    for root in fanin:
        if state.get(root):
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        path: list[int] = [root]
        state[root] = 1
        while stack:
            net, i = stack[-1]
            ins = fanin.get(net, ())
            if i < len(ins):
                stack[-1] = (net, i + 1)
                nxt = ins[i]
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    cycle.reverse()
                    return cycle
                if not state.get(nxt) and nxt in fanin:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[net] = 2
                stack.pop()
                path.pop()
    return []


class NetlistBuilder:
    """Incremental construction of a :class:`Netlist` by net name.

    Example:
        >>> b = NetlistBuilder("and2")
        >>> a, x = b.input_bus("a", 1), b.input_bus("b", 1)
        >>> y = b.gate(Kind.AND, [a[0], x[0]])
        >>> nl = b.build([y])
    """

    def __init__(self, name: str):
        self.name = name
        self._inputs: dict[str, list[int]] = {}
        self._gates: list[Gate] = []
        self._names: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._count = 0
        self._const: dict[int, int] = {}

    def new_net(self, name: str | None = None) -> int:
        """A fresh net id, optionally named (names must be unique)."""
        net = self._count
        self._count += 1
        if name is not None:
            self._names[net] = name
            self._by_name[name] = net
        return net

    def net(self, name: str) -> int:
        """The net called ``name``, created on first use."""
        if name not in self._by_name:
            return self.new_net(name)
        return self._by_name[name]

    def has_net(self, name: str) -> bool:
        """Whether a net called ``name`` exists."""
        return name in self._by_name

    def input_bus(self, name: str, width: int, bit_names: Sequence[str] | None = None) -> list[int]:
        """Declare an input bus (in operand order) and return its nets, LSB first."""
        names = bit_names or [f"{name}[{i}]" for i in range(width)]
        nets = [self.net(n) for n in names]
        self._inputs[name] = nets
        return nets

    def gate(
        self,
        kind: Kind,
        inputs: Sequence[int],
        output: int | None = None,
        *,
        cover: Cover | None = None,
        loc: SourceLoc | None = None,
    ) -> int:
        """Append a gate and return its output net (a fresh one unless ``output`` is given)."""
        out = self.new_net() if output is None else output
        self._gates.append(Gate(kind, tuple(inputs), out, cover, loc))
        return out

    def const(self, value: int) -> int:
        """A shared net holding the constant ``value`` (0 or 1)."""
        if value not in self._const:
            self._const[value] = self.gate(Kind.CONST1 if value else Kind.CONST0, [])
        return self._const[value]

    def build(self, outputs: Sequence[int], *, output_name: str = "O", sort: bool = True) -> Netlist:
        """Finish: topologically sort (unless ``sort`` is false) and validate."""
        netlist = Netlist(
            name=self.name,
            inputs=dict(self._inputs),
            outputs=list(outputs),
            gates=list(self._gates),
            num_nets=self._count,
            output_name=output_name,
            net_names=dict(self._names),
        )
        if sort:
            netlist = netlist.toposorted()
        netlist.validate()
        return netlist
