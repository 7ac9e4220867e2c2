"""Import netlist files and folders into the catalogue.

Each file is read with :func:`approxlut.circuits.io.read_netlist`, simulated exhaustively into a
table (or, above :data:`~approxlut.lutgen.simulate.MAX_LUT_BITS` input bits, measured by streaming or
Monte-Carlo simulation) and catalogued in one transaction. A file whose exact bytes were imported
before is skipped without parsing, so re-importing a folder is a cheap no-op.

EvoApproxLib files are recognised by their header comment: the published figures
(``// MAE% = 0.0018 %``, ``// PDK45_PWR = 0.422 mW``, ...) are kept beside the measured ones, the
power/area/delay are stored as ``published``, and the licence and the article to cite are recorded.
File names give the release (``v2022_``), widths and signedness (``mul8s_``, ``mul8x4u_``, ``mul12u_``);
``<name>_pdk45.v`` twins (the same circuit mapped to 45 nm cells) become an alternative source of the
entry with the same release, name and LUT hash rather than a second entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..circuits.io import FORMATS, MAX_NETLIST_BYTES
from ..circuits.names import name_hint
from ..errors import ConfigError, LibraryError, LibraryUsageError, LutgenError
from ..fileio import read_bytes
from ..lutgen.formats import MAX_NPZ_BYTES, sniff_lut_format
from .catalogue import Cost, Entry, Library

if TYPE_CHECKING:
    from ..circuits.netlist import Netlist

#: File suffixes taken when walking folders (what ``read_netlist`` understands).
NETLIST_SUFFIXES = tuple(suffix for suffixes in FORMATS.values() for suffix in suffixes)
#: Also taken when walking folders: text files that turn out to be DATE'25 LUTs (by content).
TEXT_LUT_SUFFIX = ".txt"
#: Input pairs hashed to identify a circuit too wide for a table.
FINGERPRINT_SAMPLES = 1 << 16
FINGERPRINT_SEED = 20240917

_HEADER_VALUE = re.compile(r"^\s*//\s*(?P<key>[A-Z0-9_]+%?)\s*=\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_CITE = re.compile(r"please cite the following article\(s\):\s*(?P<cite>.+?)\s*$", re.IGNORECASE)
_LICENCE = re.compile(r"distributed under (?:the )?(?P<licence>[\w .-]+?) licen[cs]e", re.IGNORECASE)
_RELEASE = re.compile(r"^(?P<release>v\d+(?:\.\d+)*)_(?P<rest>.+)$")
_PDK45 = "_pdk45"
#: Import status for each :meth:`Library.store` outcome (``present``: another import added it meanwhile).
_STATUS = {"added": "added", "merged": "merged", "repaired": "repaired", "present": "unchanged"}


@dataclass(frozen=True)
class Header:
    """What an EvoApproxLib header comment says (empty for other files)."""

    published: dict[str, str]
    licence: str | None
    citation: str | None

    @property
    def is_evoapprox(self) -> bool:
        """Whether the header carried published figures."""
        return bool(self.published)

    def cost(self) -> Cost | None:
        """Published 45 nm power/area/delay, when all three are present."""
        try:
            return Cost(
                float(self.published["PDK45_PWR"]),
                float(self.published["PDK45_AREA"]),
                float(self.published["PDK45_DELAY"]),
                power_source="published",
            )
        except KeyError:
            return None


@dataclass(frozen=True)
class NameInfo:
    """What a file name says: release, circuit name, pdk45 twin, widths and signedness when encoded."""

    release: str
    name: str
    pdk45: bool
    bits: tuple[int, int] | None
    signed: bool | None


@dataclass
class ImportSummary:
    """Outcome of one import: new entries, files already known, twins merged, damaged tables rewritten, failures."""

    added: list[Entry] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    merged: list[tuple[Path, Entry]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    repaired: list[Entry] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-able counts and names."""
        return {
            "added": [e.full_name for e in self.added],
            "unchanged": [str(p) for p in self.unchanged],
            "merged": [{"file": str(p), "entry": e.full_name} for p, e in self.merged],
            "failed": [{"file": str(p), "error": msg} for p, msg in self.failed],
            "repaired": [e.full_name for e in self.repaired],
        }


def parse_header(text: str) -> Header:
    """Published figures, licence and citation from the comment block before the first ``module``."""
    published: dict[str, str] = {}
    licence = citation = None
    for line in text.splitlines():
        if line.lstrip().startswith("module "):
            break
        match = _HEADER_VALUE.match(line)
        if match:
            published[match.group("key")] = match.group("value")
            continue
        cite = _CITE.search(line)
        if cite:
            citation = cite.group("cite")
        lic = _LICENCE.search(line)
        if lic:
            licence = lic.group("licence").strip()
    return Header(published, licence, citation)


def parse_name(path: Path) -> NameInfo:
    """Release, name, twin flag, widths and signedness from a file name such as ``v2022_mul8x4u_1K7_pdk45.v``."""
    stem = path.stem
    pdk45 = stem.lower().endswith(_PDK45)
    if pdk45:
        stem = stem[: -len(_PDK45)]
    release = ""
    match = _RELEASE.match(stem)
    if match:
        release, stem = match.group("release"), match.group("rest")
    else:
        for parent in path.parents:
            if re.fullmatch(r"v\d+(?:\.\d+)*", parent.name):
                release = parent.name
                break
    hint = name_hint(stem)
    if hint is None:
        return NameInfo(release, stem, pdk45, None, None)
    return NameInfo(release, stem, pdk45, hint.bits, hint.signed)


def netlist_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files to import: given files as they are, folders walked recursively for netlists and DATE'25 text LUTs.

    Plain files come before their ``_pdk45`` twins so the twin merges into the plain file's entry.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and _walked(p)]
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    unique = sorted(set(found), key=lambda p: (p.stem.lower().endswith(_PDK45), str(p)))
    return unique


def _walked(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in NETLIST_SUFFIXES or (suffix == TEXT_LUT_SUFFIX and sniff_lut_format(path) == "lutfp")


def estimated_cost(netlist: Netlist) -> Cost | None:
    """Power/area/delay from :func:`approxlut.synth.power.estimate_cost` (None where it cannot estimate)."""
    from ..synth.power import estimate_cost

    try:
        cost = estimate_cost(netlist)
    except LutgenError:
        return None
    return Cost(cost.power_mw, cost.area_um2, cost.delay_ns, power_source="estimated")


def function_fingerprint(netlist: Netlist, *, signed: bool) -> str:
    """A content hash for circuits too wide for a table: outputs on a fixed pseudo-random input sample."""
    from ..lutgen.simulate import CompiledNetlist, decode_outputs, packed_inputs

    bits_a, bits_b = netlist.widths
    rng = np.random.default_rng(FINGERPRINT_SEED)
    a_codes = rng.integers(0, 1 << bits_a, FINGERPRINT_SAMPLES, dtype=np.int64)
    b_codes = rng.integers(0, 1 << bits_b, FINGERPRINT_SAMPLES, dtype=np.int64)
    compiled = CompiledNetlist.compile(netlist)
    values = compiled.run(packed_inputs(a_codes, b_codes, bits_a, bits_b))
    outputs = decode_outputs([values[net] for net in netlist.outputs], signed)
    h = hashlib.sha256(f"sample:{bits_a}x{bits_b}:{'s' if signed else 'u'}:{FINGERPRINT_SEED}:".encode())
    h.update(outputs.astype("<i8").tobytes())
    return h.hexdigest()


def import_file(lib: Library, path: Path, *, signed: bool | None = None) -> tuple[str, Entry]:
    """Import one file: returns ``("added" | "unchanged" | "merged" | "repaired", entry)``; one transaction.

    ``signed`` overrides what the file name says (unsigned when neither says). A file imported before
    is skipped unless its entry's table is missing or damaged, which re-importing it repairs.
    """
    from ..circuits.io import read_netlist
    from ..lutgen.simulate import MAX_LUT_BITS, simulate_lut, simulate_metrics

    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    known = lib.find_source(digest)
    if known is not None and lib.intact(known):
        return "unchanged", known
    info = parse_name(path)
    lut_format = sniff_lut_format(path)
    if lut_format is not None:
        return _import_table(lib, path, lut_format, digest, info, signed=signed)
    if path.suffix.lower() not in NETLIST_SUFFIXES:
        raise ConfigError(
            f"{path}: neither a netlist ({', '.join(NETLIST_SUFFIXES)}) nor a LUT file "
            "(DATE'25 text, TFApprox binary, lutgen .npz)"
        )
    header = parse_header(data.decode("utf-8", errors="replace")) if path.suffix.lower() in (".v", ".sv") else None
    netlist = read_netlist(path)
    if len(netlist.widths) != 2:
        raise ConfigError(f"{path}: a multiplier needs two input buses, found {len(netlist.widths)}")
    is_signed = signed if signed is not None else bool(info.signed)
    bits_a, bits_b = netlist.widths
    if info.bits is not None and info.bits != (bits_a, bits_b):
        raise ConfigError(
            f"{path}: the name says {info.bits[0]}x{info.bits[1]} but the netlist has {bits_a}x{bits_b} operands"
        )
    is_evo = header is not None and header.is_evoapprox
    cost = header.cost() if header is not None and is_evo else None
    if cost is None:
        cost = estimated_cost(netlist)
    common = {
        "name": info.name,
        "release": info.release,
        "source": str(path.resolve()),
        "source_sha256": digest,
        "origin": f"evoapprox {info.release}".strip() if is_evo else "import",
        "licence": header.licence if header is not None else None,
        "citation": header.citation if header is not None else None,
        "family": "evoapprox" if is_evo else None,
        "cost": cost,
        "published": header.published if header is not None else None,
        "gates": netlist.gate_count(),
    }
    if bits_a + bits_b <= MAX_LUT_BITS:
        lut = simulate_lut(netlist, signed=is_signed, name=info.name)
        stored = lib.store(lut, netlist, **common)  # type: ignore[arg-type]
        return _STATUS[stored.status], stored.entry
    fingerprint = function_fingerprint(netlist, signed=is_signed)
    existing = lib.same_circuit(name=info.name, release=info.release, lut_hash=fingerprint)
    if existing is not None:
        return "merged", lib.add_source(existing, str(path.resolve()), digest)
    metrics = simulate_metrics(netlist, signed=is_signed)
    stored = lib.store_untabulated(
        bits=(bits_a, bits_b),
        signed=is_signed,
        function_hash=fingerprint,
        metrics=metrics,
        **common,  # type: ignore[arg-type]
    )
    return _STATUS[stored.status], stored.entry


def _import_table(
    lib: Library, path: Path, lut_format: str, digest: str, info: NameInfo, *, signed: bool | None
) -> tuple[str, Entry]:
    """Import a LUT file (no netlist: no gate count and no cost estimate; the library computes its gradients)."""
    from ..lutgen.formats import read_lut_file

    lut = read_lut_file(path, lut_format)
    kind = "signed" if lut.signed else "unsigned"
    if signed is not None and signed != lut.signed:
        raise ConfigError(f"{path}: this {lut_format} file holds an {kind} table; leave out --signed/--unsigned")
    if info.bits is not None and (info.bits != (lut.bits_a, lut.bits_b) or info.signed != lut.signed):
        said = f"{info.bits[0]}x{info.bits[1]} {'signed' if info.signed else 'unsigned'}"
        raise ConfigError(f"{path}: the name says {said} but the table is {lut.bits_a}x{lut.bits_b} {kind}")
    stored = lib.store(
        lut,
        name=lut.name,
        release=info.release,
        source=str(path.resolve()),
        source_sha256=digest,
        origin="import",
        params={"format": lut_format},
    )
    return _STATUS[stored.status], stored.entry


def import_paths(
    lib: Library,
    paths: Sequence[str | Path],
    *,
    signed: bool | None = None,
    progress: bool = False,
    on_file: Callable[[Path, str], None] | None = None,
) -> ImportSummary:
    """Import files and folders, one transaction per file; failures are collected, not raised.

    An interruption (Ctrl-C, a crash) keeps every file committed before it. ``progress`` shows a
    rich progress bar; ``on_file(path, status)`` is called after each file.
    """
    files = netlist_files(paths)
    summary = ImportSummary()

    def one(path: Path) -> None:
        try:
            status, entry = import_file(lib, path, signed=signed)
        except LibraryError as error:
            if isinstance(error, LibraryUsageError):
                raise
            raise LibraryError(f"{path}: {error}") from None  # the library, not the file: stop here
        except LutgenError as error:
            summary.failed.append((path, str(error)))
            status = "failed"
        else:
            if status == "added":
                summary.added.append(entry)
            elif status == "merged":
                summary.merged.append((path, entry))
            elif status == "repaired":
                summary.repaired.append(entry)
            else:
                summary.unchanged.append(path)
        if on_file is not None:
            on_file(path, status)

    if not progress:
        for path in files:
            one(path)
        return summary
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("", total=len(files))
        for path in files:
            bar.update(task, description=path.name)
            one(path)
            bar.advance(task)
    return summary


def _read(path: Path) -> bytes:
    return read_bytes(path, limit=max(MAX_NETLIST_BYTES, MAX_NPZ_BYTES), what="netlist or LUT file")
