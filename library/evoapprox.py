"""What EvoApproxLib's files say about themselves: header comments and a release's ``meta.json``.

Three header forms exist, all kept as published figures under one set of keys (those of
:data:`~.catalogue.PUBLISHED_KEYS`, plus ``HD`` where given):

- EvoApproxLib 2019+: ``// MAE% = 0.24 %``, ``// PDK45_PWR = 0.161 mW``, ... after a banner naming the
  licence and the article to cite.
- EvoApprox8b (DATE 2017): ``// Library = EvoApprox8b``, ``// MAE = 109.33392`` (absolute), ``// MRE = 2.81 %``,
  ``// Power  (45) = 261.20`` (µW, stored in mW), ``// Area   (45) = 472``; no licence or citation
  (the library is MIT-licensed and asks for its DATE 2017 article, :data:`EVOAPPROX8B_CITATION`).
- EvoApprox8b as re-published in EvoApproxLib's ``legacy_evoapprox8b`` folders: the same figures
  printed with six decimals (``// MRE = 2.510000 %``, power in mW) under a 2019+ banner; the padding
  zeros are dropped so that the published rounding is what gets compared.

The source library also decides how MRE/WCRE are defined (:data:`~approxlut.lutgen.metrics.LIBRARY_MRE_CONVENTIONS`).
``meta.json`` (at the root of an EvoApproxLib checkout) lists every circuit with its folder, files,
figures and references; it fills in what a file's header does not say.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..circuits.cells import profile_from_header
from ..errors import InputError
from ..fileio import read_json
from .catalogue import Cost

EVOAPPROX8B_CITATION = (
    'V. Mrazek, R. Hrbacek, Z. Vasicek and L. Sekanina, "EvoApprox8b: Library of approximate adders and '
    'multipliers for circuit design and benchmarking of approximation methods". Design, Automation & Test in '
    "Europe Conference & Exhibition (DATE), 2017, Lausanne, 2017, pp. 258-261. doi: 10.23919/DATE.2017.7926993"
)
EVOAPPROX8B_LICENCE = "MIT"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(
    rf"^\s*//\s*(?P<key>[A-Za-z0-9_]+%?(?:\s*\(\s*\d+\s*\))?)\s*=\s*(?P<value>{_NUMBER})\s*(?P<unit>%)?"
)
_LIBRARY = re.compile(r"^\s*//\s*Library\s*=\s*(?P<name>\S+)", re.IGNORECASE)
_CITE = re.compile(r"please cite the following article\(s\):\s*(?P<cite>.+?)\s*$", re.IGNORECASE)
_LICENCE = re.compile(r"distributed under (?:the )?(?P<licence>[\w .-]+?) licen[cs]e", re.IGNORECASE)
_BANNER = re.compile(r"part of EvoApproxLib library", re.IGNORECASE)
#: EvoApprox8b's names for its 45 nm figures.
_PDK45 = {"AREA(45)": "PDK45_AREA", "DELAY(45)": "PDK45_DELAY", "POWER(45)": "PDK45_PWR"}
#: ``meta.json`` parameter names -> header keys.
_META_KEYS = {
    "mae%": "MAE%",
    "wce%": "WCE%",
    "mre%": "MRE%",
    "wcre%": "WCRE%",
    "ep%": "EP%",
    "mse": "MSE",
    "pwr": "PDK45_PWR",
    "area": "PDK45_AREA",
    "delay": "PDK45_DELAY",
}
#: The file of an EvoApproxLib checkout (at its root) that lists every circuit: :func:`read_meta`.
META_FILE = "meta.json"
#: EvoApproxLib names its other circuits by function; these are not multipliers.
_NOT_MULTIPLIER = re.compile(r"^(?:add|sub)\d", re.IGNORECASE)


@dataclass(frozen=True)
class Header:
    """What a netlist's header comment says (empty for files that are not EvoApproxLib's)."""

    published: dict[str, str]
    licence: str | None
    citation: str | None
    #: The source library: ``evoapprox8b``, ``evoapproxlib`` (2019+), or ``None``.
    library: str | None = None

    @property
    def is_evoapprox(self) -> bool:
        """Whether the file comes from EvoApproxLib or EvoApprox8b."""
        return self.library is not None

    def cost(self) -> Cost | None:
        """Published 45 nm power/area/delay, when all three are present."""
        return _cost(self.published)


@dataclass(frozen=True)
class MetaRecord:
    """One circuit as a release's ``meta.json`` lists it."""

    name: str
    published: dict[str, str] = field(default_factory=dict)
    licence: str | None = None
    citation: str | None = None


def parse_header(text: str) -> Header:
    """Published figures, licence, citation and source library from the comment before the first ``module``.

    Example:
        >>> parse_header("// Library = EvoApprox8b\\n// MRE = 2.81 %\\n// Power  (45) = 261.20\\n").published
        {'MRE%': '2.81', 'PDK45_PWR': '0.26120'}
    """
    published: dict[str, str] = {}
    licence = citation = named = None
    banner = False
    for line in text.splitlines():
        if line.lstrip().startswith("module "):
            break
        banner = banner or bool(_BANNER.search(line))
        said = _LIBRARY.match(line)
        if said:
            named = said.group("name").lower()
            continue
        match = _VALUE.match(line)
        if match:
            key = re.sub(r"\s+", "", match.group("key"))
            if match.group("unit") and not key.endswith("%"):
                key += "%"  # EvoApprox8b writes `MRE = 2.81 %`
            key = _PDK45.get(key.upper(), key)
            if key.isupper() or key in _PDK45.values():
                published[key] = match.group("value")
            continue
        cite = _CITE.search(line)
        if cite:
            citation = cite.group("cite")
        lic = _LICENCE.search(line)
        if lic:
            licence = lic.group("licence").strip()
    library = _library(text, named, banner, published)
    if named == "evoapprox8b" and "PDK45_PWR" in published:  # µW in the original release
        published["PDK45_PWR"] = str(Decimal(published["PDK45_PWR"]).scaleb(-3))
    if named == "cgp-evoapproxlib":  # EvoApprox8b's figures re-printed with six decimals
        published = {key: _unpadded(value) for key, value in published.items()}
    if library == "evoapprox8b":
        licence = licence or EVOAPPROX8B_LICENCE
        citation = citation or EVOAPPROX8B_CITATION
    return Header(published, licence, citation, library)


def _library(text: str, named: str | None, banner: bool, published: dict[str, str]) -> str | None:
    found = profile_from_header(text)
    if found is not None:
        return found[0]
    if banner or named is not None or any(key.startswith("PDK45_") for key in published):
        return "evoapproxlib"
    return None


def _unpadded(value: str) -> str:
    if "." not in value or "e" in value.lower():
        return value
    return value.rstrip("0").rstrip(".") or "0"


_COST_KEYS = ("PDK45_PWR", "PDK45_AREA", "PDK45_DELAY")


def _cost(published: dict[str, str]) -> Cost | None:
    """The published cost when all three figures are given; InputError for one that is no cost (-5 mW, 1e400)."""
    try:
        power, area, delay = (float(published[key]) for key in _COST_KEYS)
    except (KeyError, ValueError):
        return None
    for key, value in zip(_COST_KEYS, (power, area, delay), strict=True):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"published {key} = {published[key]}: a cost is a finite number, 0 or more")
    return Cost(power, area, delay, power_source="published")


def not_a_multiplier(name: str) -> str | None:
    """Why a circuit named ``name`` is skipped (EvoApproxLib's adders), or ``None``."""
    if _NOT_MULTIPLIER.match(name):
        return "an adder, not a multiplier (EvoApproxLib names its adders add*)"
    return None


def meta_files_above(paths: Iterable[Path]) -> list[Path]:
    """The ``meta.json`` files beside ``paths`` and their ancestors (resolved): those that describe them from
    above. The ones inside given folders are for the walk of those folders to find (``name == META_FILE``)."""
    found: set[Path] = set()
    for path in paths:
        start = path.resolve()
        for parent in (start, *start.parents):
            candidate = parent / META_FILE
            if candidate.is_file():
                found.add(candidate.resolve())
    return sorted(found)


def read_meta(path: Path) -> dict[Path, MetaRecord]:
    """The circuits a ``meta.json`` lists, by the resolved path of each of their files.

    Parts that do not have the expected shape are passed over; an unreadable or malformed file is a
    one-line :class:`~approxlut.errors.ParseError`.
    """
    records: dict[Path, MetaRecord] = {}
    for dataset in _datasets(read_json(path, what="meta.json")):
        folder = path.parent / str(dataset.get("folder", ""))
        refs = [str(r) for r in _list(dataset.get("references")) if isinstance(r, str)]
        licence = dataset.get("license")
        for instance in dataset["instances"]:
            if not isinstance(instance, dict) or not isinstance(instance.get("name"), str):
                continue
            params = instance.get("params")
            params = params if isinstance(params, dict) else {}
            published = {
                _META_KEYS[key]: str(value) for key, value in params.items() if key in _META_KEYS and _is_number(value)
            }
            cites = [refs[i] for i in _list(instance.get("references")) if isinstance(i, int) and 0 <= i < len(refs)]
            record = MetaRecord(
                instance["name"],
                published,
                _licence_name(licence),
                "; ".join(cites) or None,
            )
            for entry in _list(instance.get("files")):
                if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                    records[(folder / entry["file"]).resolve()] = record
    return records


def _datasets(data: Any) -> list[dict[str, Any]]:
    """Every object of the (nested) ``meta.json`` that lists circuit instances."""
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            if isinstance(item.get("instances"), list):
                found.append(item)
            stack.extend(value for value in item.values() if isinstance(value, (list, dict)))
    return found


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, str)) and re.fullmatch(_NUMBER, str(value).strip()) is not None


def _licence_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(?:the\s+)?(.+?)\s+licen[cs]e", value.strip(), re.IGNORECASE)
    return match.group(1) if match else value.strip() or None


def meta_cost(record: MetaRecord) -> Cost | None:
    """The 45 nm power/area/delay a ``meta.json`` record publishes, when all three are there."""
    return _cost(record.published)
