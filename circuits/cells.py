"""Standard cells the Verilog reader knows without a definition in the file.

A :class:`Cell` has single-bit input and output pins and a tiny body of IR gates over the pin names
(and internal names). The built-in table covers the OSU FreePDK45 (``gscl45nm``) cells that
EvoApproxLib's ``_pdk45`` netlists instantiate (``HAX1``/``FAX1`` with ``YS``/``YC`` outputs,
``AND2X1``, ``INVX1``, ...), also under EvoApproxLib's ``PDKGEN`` prefix. Users extend a
:class:`CellLibrary` with :meth:`CellLibrary.register`, with Verilog module text
(:meth:`CellLibrary.add_verilog`) or with a JSON file (:meth:`CellLibrary.load_json`)::

    {"cells": [
      {"name": "MAJ3", "inputs": ["A", "B", "C"], "outputs": {"Y": "(A & B) | (B & C) | (A & C)"}},
      {"verilog": "module NAND4X1(input A, B, C, D, output Y); assign Y = ~(A & B & C & D); endmodule"}
    ]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ParseError
from ..fileio import read_json
from .netlist import ARITY, Kind

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class CellGate:
    """One gate of a cell body: ``output = kind(inputs)`` over pin and internal names."""

    kind: Kind
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class Cell:
    """A combinational standard cell: ordered pins (positional connection order) and a gate body."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gates: tuple[CellGate, ...]
    ports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.ports:
            object.__setattr__(self, "ports", self.inputs + self.outputs)
        pins = self.inputs + self.outputs
        if len(set(pins)) != len(pins) or sorted(self.ports) != sorted(pins):
            raise ConfigError(f"cell {self.name}: pins must be distinct and listed once in the port order")
        if not self.outputs:
            raise ConfigError(f"cell {self.name}: no output pin")
        known = set(self.inputs)
        for gate in self.gates:
            lo, hi = ARITY[gate.kind]
            if gate.kind is Kind.SOP or len(gate.inputs) < lo or (hi is not None and len(gate.inputs) > hi):
                raise ConfigError(f"cell {self.name}: {gate.kind.value} gate with {len(gate.inputs)} inputs")
            missing = [n for n in gate.inputs if n not in known]
            if missing:
                raise ConfigError(f"cell {self.name}: gate input {missing[0]} is not a pin or an earlier gate output")
            if gate.output in known:
                raise ConfigError(f"cell {self.name}: {gate.output} is driven twice")
            known.add(gate.output)
        undriven = [pin for pin in self.outputs if pin not in known]
        if undriven:
            raise ConfigError(f"cell {self.name}: output pin {undriven[0]} is never driven")

    @classmethod
    def from_spec(cls, name: str, pins: str, body: str) -> Cell:
        """A cell from a compact spec.

        Example:
            >>> Cell.from_spec("AOI21X1", "A B C -> Y", "t=AND(A,B) Y=NOR(t,C)").outputs
            ('Y',)
        """
        ins, _, outs = pins.partition("->")
        gates = []
        for term in body.split():
            match = re.fullmatch(r"(\w+)=(\w+)\(([\w,]*)\)", term)
            if match is None:
                raise ConfigError(f"cell {name}: cannot read gate '{term}' (want OUT=KIND(IN,IN))")
            out, kind, args = match.groups()
            try:
                gate_kind = Kind(kind.upper())
            except ValueError:
                raise ConfigError(f"cell {name}: unknown gate kind {kind}") from None
            gates.append(CellGate(gate_kind, tuple(a for a in args.split(",") if a), out))
        return cls(name, tuple(ins.split()), tuple(outs.split()), tuple(gates))


def _builtin() -> list[Cell]:
    specs = [
        ("AND2X1", "A B -> Y", "Y=AND(A,B)"),
        ("AND2X2", "A B -> Y", "Y=AND(A,B)"),
        ("OR2X1", "A B -> Y", "Y=OR(A,B)"),
        ("OR2X2", "A B -> Y", "Y=OR(A,B)"),
        ("NAND2X1", "A B -> Y", "Y=NAND(A,B)"),
        ("NAND3X1", "A B C -> Y", "Y=NAND(A,B,C)"),
        ("NOR2X1", "A B -> Y", "Y=NOR(A,B)"),
        ("NOR3X1", "A B C -> Y", "Y=NOR(A,B,C)"),
        ("XOR2X1", "A B -> Y", "Y=XOR(A,B)"),
        ("XNOR2X1", "A B -> Y", "Y=XNOR(A,B)"),
        ("INVX1", "A -> Y", "Y=NOT(A)"),
        ("INVX2", "A -> Y", "Y=NOT(A)"),
        ("INVX4", "A -> Y", "Y=NOT(A)"),
        ("INVX8", "A -> Y", "Y=NOT(A)"),
        ("BUFX2", "A -> Y", "Y=BUF(A)"),
        ("BUFX4", "A -> Y", "Y=BUF(A)"),
        ("CLKBUF1", "A -> Y", "Y=BUF(A)"),
        ("CLKBUF2", "A -> Y", "Y=BUF(A)"),
        ("CLKBUF3", "A -> Y", "Y=BUF(A)"),
        ("AOI21X1", "A B C -> Y", "t=AND(A,B) Y=NOR(t,C)"),
        ("AOI22X1", "A B C D -> Y", "t=AND(A,B) u=AND(C,D) Y=NOR(t,u)"),
        ("OAI21X1", "A B C -> Y", "t=OR(A,B) Y=NAND(t,C)"),
        ("OAI22X1", "A B C D -> Y", "t=OR(A,B) u=OR(C,D) Y=NAND(t,u)"),
        # The OSU MUX2X1 is inverting: Y = !(S ? B : A).
        ("MUX2X1", "A B S -> Y", "t=MUX(S,A,B) Y=NOT(t)"),
        ("HAX1", "A B -> YC YS", "YC=AND(A,B) YS=XOR(A,B)"),
        ("FAX1", "A B C -> YC YS", "p=AND(A,B) q=AND(B,C) r=AND(A,C) YC=OR(p,q,r) YS=XOR(A,B,C)"),
    ]
    cells = [Cell.from_spec(name, pins, body) for name, pins, body in specs]
    # EvoApproxLib's plain netlists name the same cells with a PDKGEN prefix.
    return cells + [Cell("PDKGEN" + c.name, c.inputs, c.outputs, c.gates, c.ports) for c in cells]


_BUILTIN = _builtin()


class CellLibrary:
    """A name -> :class:`Cell` table; :meth:`builtin` gives a fresh copy of the shipped cells."""

    def __init__(self, cells: Iterable[Cell] = ()):
        self._cells: dict[str, Cell] = {}
        for cell in cells:
            self.register(cell, replace=True)

    @classmethod
    def builtin(cls) -> CellLibrary:
        """The built-in OSU FreePDK45 cells (a new library object each call, safe to extend)."""
        return cls(_BUILTIN)

    def register(self, cell: Cell, *, replace: bool = False) -> None:
        """Add ``cell``; an existing name is an error unless ``replace``."""
        if cell.name in self._cells and not replace:
            raise ConfigError(f"cell {cell.name} is already defined (pass replace=True to redefine it)")
        self._cells[cell.name] = cell

    def get(self, name: str) -> Cell | None:
        """The cell called ``name``, or ``None``."""
        return self._cells.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._cells

    def __iter__(self) -> Iterator[Cell]:
        return iter(self._cells.values())

    def __len__(self) -> int:
        return len(self._cells)

    def add_verilog(self, text: str, path: str = "<cells>", *, replace: bool = False) -> list[str]:
        """Register every module of ``text`` as a cell (single-bit pins); returns their names."""
        from .verilog import cells_from_verilog

        cells = cells_from_verilog(text, path, cells=self)
        for cell in cells:
            self.register(cell, replace=replace)
        return [cell.name for cell in cells]

    def add_expressions(
        self, name: str, inputs: Iterable[str], outputs: dict[str, str], *, replace: bool = False
    ) -> None:
        """Register a cell whose outputs are Verilog boolean expressions over its input pins."""
        ins = list(inputs)
        for pin in [name, *ins, *outputs]:
            if not _IDENT.match(pin):
                raise ConfigError(f"cell {name}: '{pin}' is not a plain identifier")
        lines = [f"module {name}({', '.join(ins + list(outputs))});"]
        lines += [f"  input {pin};" for pin in ins] + [f"  output {pin};" for pin in outputs]
        lines += [f"  assign {pin} = {expr};" for pin, expr in outputs.items()]
        lines.append("endmodule")
        self.add_verilog("\n".join(lines) + "\n", f"<cell {name}>", replace=replace)

    def load_json(self, path: str | Path, *, replace: bool = False) -> list[str]:
        """Register the cells of a JSON file (format in the module docstring); returns their names."""
        where = str(path)
        data = read_json(path, what="cell file")
        entries = data.get("cells") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ParseError('expected an object {"cells": [...]}', where)
        names: list[str] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get("verilog"), str):
                names += self.add_verilog(entry["verilog"], f"{where}#cells[{i}]", replace=replace)
                continue
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("name"), str)
                and isinstance(entry.get("inputs"), list)
                and all(isinstance(p, str) for p in entry["inputs"])
                and isinstance(entry.get("outputs"), dict)
                and all(isinstance(v, str) for v in entry["outputs"].values())
            )
            if not ok:
                raise ParseError(
                    f'cells[{i}]: want {{"name", "inputs": [...], "outputs": {{pin: expression}}}} or {{"verilog"}}',
                    where,
                )
            try:
                self.add_expressions(entry["name"], entry["inputs"], entry["outputs"], replace=replace)
            except ParseError as exc:
                raise ParseError(f"cells[{i}] ({entry['name']}): {exc.message}", where) from None
            except ConfigError as exc:
                raise ParseError(f"cells[{i}]: {exc}", where) from None
            names.append(entry["name"])
        return names
