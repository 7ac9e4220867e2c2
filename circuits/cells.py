"""Standard cells the Verilog reader knows without a definition in the file, per source library.

A :class:`Cell` has single-bit input and output pins and a tiny body of IR gates over the pin names
(and internal names). A cell name means what the library the netlist comes from means by it, so the
definitions come in named profiles (:data:`PROFILES`):

- ``osu``: the OSU FreePDK45 (``gscl45nm``) cells that EvoApproxLib's ``_pdk45`` netlists
  instantiate (``HAX1``/``FAX1`` with ``YS``/``YC`` outputs, ``AND2X1``, ``INVX1``, ...), also under
  EvoApproxLib's ``PDKGEN`` prefix; its ``MUX2X1`` is inverting.
- ``evoapprox8b``: the same cells as EvoApprox8b (DATE 2017) uses them: a non-inverting ``MUX2X1``,
  and the misspelled 2-input gate names its generator left (``NPDKGEPDKGENNAND2X1`` is a NAND2,
  :func:`generator_names`).

Without a profile (:meth:`CellLibrary.builtin`) only the cells both profiles define alike are known;
a netlist that instantiates ``MUX2X1`` without defining it is refused until it names its library
(``--cells osu``), unless its header comment shows where it comes from (:func:`profile_from_header`).
Users extend a :class:`CellLibrary` with :meth:`CellLibrary.register`, with Verilog module text
(:meth:`CellLibrary.add_verilog`) or with a JSON file (:meth:`CellLibrary.load_json`), which may
also name a profile::

    {"profile": "osu", "cells": [
      {"name": "MAJ3", "inputs": ["A", "B", "C"], "outputs": {"Y": "(A & B) | (B & C) | (A & C)"}},
      {"verilog": "module NAND4X1(input A, B, C, D, output Y); assign Y = ~(A & B & C & D); endmodule"}
    ]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ParseError
from ..fileio import read_json
from .netlist import ARITY, Kind
from .text import normalise

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class AmbiguousCellError(ParseError):
    """A netlist instantiates a cell whose function depends on its library, and nothing says which."""


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


_COMMON = [
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
    ("HAX1", "A B -> YC YS", "YC=AND(A,B) YS=XOR(A,B)"),
    ("FAX1", "A B C -> YC YS", "p=AND(A,B) q=AND(B,C) r=AND(A,C) YC=OR(p,q,r) YS=XOR(A,B,C)"),
]
#: The 2-input gates whose names EvoApprox8b's generator garbled (see :func:`generator_names`).
_GARBLED = ("AND2X1", "NAND2X1", "OR2X1", "NOR2X1", "XOR2X1", "XNOR2X1")
#: EvoApproxLib's plain netlists name the same cells with this prefix.
PREFIX = "PDKGEN"


def _with_prefix(cells: Iterable[Cell]) -> list[Cell]:
    cells = list(cells)
    return cells + [Cell(PREFIX + c.name, c.inputs, c.outputs, c.gates, c.ports) for c in cells]


def _renamed(cell: Cell, name: str) -> Cell:
    return Cell(name, cell.inputs, cell.outputs, cell.gates, cell.ports)


def generator_names() -> dict[str, str]:
    """EvoApprox8b's misspelled cell names, each mapped to the 2-input gate it stands for.

    The library's generator added the ``PDKGEN`` prefix by plain text substitution, one cell name
    after another, so a name containing another was substituted twice: ``NAND2X1`` became
    ``NPDKGENAND2X1`` (by the ``AND2X1`` rule), then ``NPDKGEPDKGENNAND2X1`` (by the ``NAND2X1``
    rule, which now matched ``...GE`` + ``NAND2X1``). This enumerates every order and subset of the six
    substitutions; no garbled name is reached from two different gates, so each one names its gate
    unambiguously. The EvoApprox8b files define some of these names themselves (and their
    definitions agree with this table) and leave others undefined; the corpus tests check the
    undefined ones bit-exactly against the library's C models.

    Example:
        >>> generator_names()["XPDKGENOR2X1"]
        'XOR2X1'
    """
    names: dict[str, str] = {}
    for size in range(1, len(_GARBLED) + 1):
        for order in permutations(_GARBLED, size):
            for gate in _GARBLED:
                name = gate
                for rule in order:
                    name = name.replace(rule, PREFIX + rule)
                if names.setdefault(name, gate) != gate:
                    raise AssertionError(f"{name} is reached from {names[name]} and {gate}")
    return {name: gate for name, gate in names.items() if name not in (gate, PREFIX + gate)}


@dataclass(frozen=True)
class CellProfile:
    """What one source library means by its cell names."""

    name: str
    title: str
    cells: tuple[Cell, ...]
    #: What a cell of this profile is, for reports (only where the name alone does not say it).
    notes: tuple[tuple[str, str], ...] = ()


def _profiles() -> dict[str, CellProfile]:
    common = [Cell.from_spec(name, pins, body) for name, pins, body in _COMMON]
    by_name = {cell.name: cell for cell in common}
    # The OSU MUX2X1 is inverting: Y = !(S ? B : A); EvoApprox8b's is not: Y = S ? B : A.
    osu_mux = Cell.from_spec("MUX2X1", "A B S -> Y", "t=MUX(S,A,B) Y=NOT(t)")
    evo_mux = Cell.from_spec("MUX2X1", "A B S -> Y", "Y=MUX(S,A,B)")
    garbled = generator_names()
    osu = CellProfile(
        "osu",
        "OSU FreePDK45 (gscl45nm)",
        tuple(_with_prefix([*common, osu_mux])),
        (("MUX2X1", "inverting 2:1 mux, Y = !(S ? B : A)"), (PREFIX + "MUX2X1", "inverting 2:1 mux")),
    )
    evo = CellProfile(
        "evoapprox8b",
        "EvoApprox8b (DATE 2017)",
        tuple(_with_prefix([*common, evo_mux]) + [_renamed(by_name[gate], name) for name, gate in garbled.items()]),
        (
            ("MUX2X1", "non-inverting 2:1 mux, Y = S ? B : A"),
            (PREFIX + "MUX2X1", "non-inverting 2:1 mux"),
            *((name, f"= {gate}") for name, gate in sorted(garbled.items())),
        ),
    )
    return {osu.name: osu, evo.name: evo}


#: The cell profiles by name.
PROFILES = _profiles()
_COMMON_CELLS = tuple(_with_prefix(Cell.from_spec(name, pins, body) for name, pins, body in _COMMON))
#: Cell names whose function differs between profiles: refused when no profile is chosen.
AMBIGUOUS = {"MUX2X1": "inverting in OSU FreePDK45, non-inverting in EvoApprox8b"}
AMBIGUOUS[PREFIX + "MUX2X1"] = AMBIGUOUS["MUX2X1"]

_HEADER_MARKS = (
    (re.compile(r"^\s*//\s*Library\s*=\s*EvoApprox8b\s*$", re.IGNORECASE | re.MULTILINE), "evoapprox8b"),
    (re.compile(r"circuit from (?:the )?evoapprox8b dataset", re.IGNORECASE), "evoapprox8b"),
)


def check_cell_source(text: str) -> str:
    """``text`` when it names a profile (:data:`PROFILES`) or an existing file, else a one-line ConfigError."""
    if text in PROFILES or Path(text).is_file():
        return text
    raise ConfigError(f"{text!r} is neither a cell profile ({', '.join(PROFILES)}) nor an existing JSON cell file")


def profile_from_header(text: str) -> tuple[str, str] | None:
    """``(profile, evidence)`` when the comment before the first ``module`` says where a netlist comes from.

    EvoApprox8b files say ``// Library = EvoApprox8b`` (or, as re-published in EvoApproxLib's
    ``legacy_evoapprox8b`` folders, "a circuit from evoapprox8b dataset").

    Example:
        >>> profile_from_header("// Library = EvoApprox8b\nmodule m(); endmodule")
        ('evoapprox8b', "the file header says 'Library = EvoApprox8b'")
    """
    text = normalise(text)
    found = re.search(r"^\s*module\b", text, re.MULTILINE)
    header = text[: found.start()] if found else text
    for pattern, profile in _HEADER_MARKS:
        match = pattern.search(header)
        if match:
            quoted = " ".join(match.group().strip().lstrip("/").split())
            return profile, f"the file header says '{quoted}'"
    return None


class CellLibrary:
    """A name -> :class:`Cell` table, with the profile it was built from (``None``: common cells only)."""

    def __init__(
        self,
        cells: Iterable[Cell] = (),
        *,
        profile: str | None = None,
        reason: str = "",
        notes: Iterable[tuple[str, str]] = (),
    ):
        self._cells: dict[str, Cell] = {}
        self.profile = profile
        #: Why this profile was chosen (shown with the cells a netlist used).
        self.reason = reason
        self.notes = dict(notes)
        for cell in cells:
            self.register(cell, replace=True)

    @classmethod
    def builtin(cls) -> CellLibrary:
        """The cells every profile defines alike (a new library object each call, safe to extend)."""
        return cls(_COMMON_CELLS, reason="lutgen's built-in cells")

    @classmethod
    def for_profile(cls, name: str, *, reason: str = "") -> CellLibrary:
        """The cells of profile ``name`` (see :data:`PROFILES`); raises ConfigError for an unknown name."""
        profile = PROFILES.get(name)
        if profile is None:
            raise ConfigError(f"unknown cell profile '{name}'; choose one of {', '.join(PROFILES)}")
        return cls(profile.cells, profile=name, reason=reason or f"profile {name}", notes=profile.notes)

    def ambiguity(self, name: str) -> str | None:
        """Why ``name`` cannot be used without a profile (``None`` when it is not ambiguous here)."""
        if self.profile is not None or name in self._cells or name not in AMBIGUOUS:
            return None
        choices = " or ".join(f"--cells {p}" for p in PROFILES)
        return f"cell {name} is {AMBIGUOUS[name]}; say which library the netlist comes from ({choices})"

    def hint(self, name: str) -> str:
        """What to do about a cell name this library does not know."""
        owners = [p.name for p in PROFILES.values() if any(c.name == name for c in p.cells)]
        if owners and self.profile not in owners:
            return f"it is a cell of the {PROFILES[owners[0]].title} library: pass --cells {owners[0]}"
        return "define it in the file or add it to the cell library (--cells FILE.json)"

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
        data = _read_cell_file(path)
        entries = data["cells"]
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
        for name in names:
            self.notes[name] = f"from {Path(path).name}"
        return names


def _read_cell_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    where = str(path)
    data = read_json(path, what="cell file")
    if not isinstance(data, dict) or not isinstance(data.get("cells", []), list):
        raise ParseError('expected an object {"profile": NAME, "cells": [...]} (both optional)', where)
    profile = data.get("profile")
    if profile is not None and profile not in PROFILES:
        raise ParseError(f"unknown cell profile {profile!r}; choose one of {', '.join(PROFILES)}", where)
    return {"profile": profile, "cells": data.get("cells", [])}


def cell_library(option: str | os.PathLike[str] | None, text: str) -> CellLibrary:
    """The cells to read Verilog ``text`` with.

    ``option`` is a profile name (``osu``, ``evoapprox8b``) or a JSON cell file; a file's cells extend
    the profile it names, else the one the netlist's header shows (:func:`profile_from_header`), else
    the built-in cells. Without ``option`` the header decides, else the built-in cells apply.

    Example:
        >>> cell_library("osu", "").get("MUX2X1").gates[-1].kind.value
        'NOT'
    """
    if option is not None and str(option) in PROFILES:
        return CellLibrary.for_profile(str(option), reason=f"--cells {option}")
    named = _read_cell_file(option)["profile"] if option is not None else None
    found = profile_from_header(text)
    if named is not None:
        library = CellLibrary.for_profile(named, reason=f"{Path(option or '').name} names profile {named}")
    elif found is not None:
        library = CellLibrary.for_profile(found[0], reason=found[1])
    else:
        library = CellLibrary.builtin()
    if option is not None:
        library.load_json(Path(option))
    return library
