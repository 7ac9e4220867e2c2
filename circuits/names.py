"""What a circuit's file name says: EvoApproxLib's ``mul<A>[x<B>]<s|u>_<id>`` names give widths and signedness.

One rule for every command that reads a netlist (``sim``, ``library import``, ``evaluate --assign FILE``):
``v2022_mul8s_1KV8.v`` is an 8x8 signed multiplier, ``mul8x4u_1K7_pdk45.v`` an 8x4 unsigned one.
Library entry names, which become file names, follow one rule too (:func:`name_problem`); names taken
from file names are made to follow it (:func:`safe_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

_MUL_NAME = re.compile(r"(?:^|_)mul(?P<a>\d+)(?:x(?P<b>\d+))?(?P<sign>[su])(?:_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class NameHint:
    """Operand widths and signedness encoded in a file name, and the part that said so (``mul8s``)."""

    bits: tuple[int, int]
    signed: bool
    token: str


def name_hint(name: str | PurePath) -> NameHint | None:
    """The widths and signedness a file name or stem encodes, or ``None`` when it follows no known scheme.

    Example:
        >>> name_hint("v2022_mul8s_1KV8.v")
        NameHint(bits=(8, 8), signed=True, token='mul8s')
    """
    stem = PurePath(name).name
    match = _MUL_NAME.search(stem)
    if match is None:
        return None
    bits_a = int(match.group("a"))
    bits_b = int(match.group("b") or bits_a)
    token = match.group(0).strip("_")
    return NameHint((bits_a, bits_b), match.group("sign").lower() == "s", token)


def said_signedness(named: bool | None, ports: bool) -> tuple[bool, str] | None:
    """What a netlist file says of its operands: ``(signed, "name")`` where its name says (``named``: what it says,
    :func:`name_hint`), else ``(True, "ports")`` where a Verilog module declares its operand ports ``signed``
    (``ports``); ``None`` where it says nothing. Every command that reads a netlist settles signedness so; only
    what an option, or nothing said, then gives differs (``sim``: the option wins; ``library import``: the file).

    Example:
        >>> said_signedness(False, True), said_signedness(None, True), said_signedness(None, False)
        ((False, 'name'), (True, 'ports'), None)
    """
    if named is not None:
        return named, "name"
    return (True, "ports") if ports else None


#: Longest library entry name (with a release prefix and an export suffix it stays a valid file name).
MAX_NAME_CHARS = 128
#: The characters of an entry name: EvoApproxLib's ``mul8s_1L2J``, lutgen's ``trunc8s_k6``, ``mult.v2``.
NAME_CHARS = "letters A-Z a-z, digits, '_', '.', '+' and '-'"
_ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_OTHER_CHARS = re.compile(r"[^A-Za-z0-9_.+-]+")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a library entry, or ``None`` when it can.

    Entry names become file names (``library export``, ``library report``), so they hold
    :data:`NAME_CHARS` only, start with a letter, digit or ``_`` (never ``.`` or ``-``: no ``..``, no
    hidden file, no option) and have at most :data:`MAX_NAME_CHARS` characters: never a folder.

    Example:
        >>> name_problem("mul8s_1L2J") is None, name_problem("../x") is not None
        (True, True)
    """
    if not name:
        return "an entry name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"an entry name has at most {MAX_NAME_CHARS} characters (this one has {len(name)})"
    if _ENTRY_NAME.fullmatch(name) is None:
        return f"an entry name holds {NAME_CHARS} only, and does not start with '.', '+' or '-'"
    return None


def safe_name(text: str) -> str:
    """``text`` (a file name's stem) made a valid entry name: each run of other characters becomes ``_``.

    Valid names come back unchanged; ``my mult`` becomes ``my_mult``, ``../x`` becomes ``_x``.

    Example:
        >>> safe_name("Jürgen's mult")
        'J_rgen_s_mult'
    """
    name = _OTHER_CHARS.sub("_", text).lstrip(".+-")[:MAX_NAME_CHARS]
    return name or "circuit"
