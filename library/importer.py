"""Import netlist files and folders (a whole EvoApproxLib checkout) into the catalogue.

The work is split in three so that characterising circuits can run anywhere (in-process or as
parallel tasks) while only the driver writes the catalogue:

1. :func:`plan_import` walks the paths: netlist files by suffix (C models, READMEs, figures and other
   files are not looked at), EvoApproxLib's adders skipped, each plain file grouped with its
   ``<name>_pdk45`` twin beside it (also when only one of the two was named), and the ``meta.json``
   of a release read where there is one.
2. :func:`characterise` is a pure function of one such group: it reads the files, simulates them
   exhaustively into a table (or, above :data:`~approxlut.lutgen.simulate.MAX_LUT_BITS` input bits,
   streams or samples the metrics and hashes the function), checks that a twin gives the same table
   (or refuses, naming both files), measures the metrics under the convention of the source
   library, and takes the published figures, costs, licence and citation from the header (else
   from ``meta.json``, else costs estimated by lutgen's cell model).
3. :func:`import_paths` drives: files whose exact bytes were imported before are skipped without
   parsing (re-importing is a cheap no-op; a file whose entry's table is missing or damaged is
   imported again, which repairs it), the others are characterised as tasks of a
   :mod:`~approxlut.tasks` engine (in-process, or on Ray with ``workers``/``address``), and the
   driver alone catalogues each result, in the order planned, one transaction per circuit. A
   circuit is identified by its table: a new name for a table already catalogued becomes an entry
   sharing that blob (an alias, listed by :attr:`~.catalogue.Entry.aliases`); a twin or another
   file of the same release and name becomes an alternative source of the entry.

LUT files (DATE'25 text, TFApprox binary, lutgen ``.npz``, recognised by their content; folders are
walked for ``.txt`` ones, and ``.npz`` ones found there are reported as skipped) are imported as
tables: no netlist, so no gate count and no cost estimate. Names that a file states (a ``.npz``'s, a
``meta.json``'s) must be valid entry names; names taken from file names are made valid.

File names give the release (``v2022_``, or a parent folder ``v2022``), widths and signedness
(``mul8s_``, ``mul8x4u_``, ``mul12u_``); a Verilog module whose operand ports are declared ``signed`` is signed
where its name does not say; ``--signed``/``--unsigned`` apply to the files that do not say (a folder mixes
both kinds).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..circuits.cells import PROFILES, AmbiguousCellError
from ..circuits.io import MAX_NETLIST_BYTES, NETLIST_SUFFIXES
from ..circuits.names import name_hint, name_problem, safe_name, said_signedness
from ..errors import ConfigError, InputError, LibraryError, LibraryUsageError, LutgenError
from ..fileio import read_bytes
from ..lutgen.formats import MAX_NPZ_BYTES, sniff_lut_format
from ..lutgen.metrics import DEFAULT_MRE_CONVENTION, LIBRARY_MRE_CONVENTIONS
from ..tasks import Engine, check_engine_options, open_engine
from .catalogue import GRADIENT_MAX_BITS, HALF_WINDOW, Cost, Entry, Library
from .evoapprox import (
    META_FILE,
    Header,
    MetaRecord,
    meta_cost,
    meta_files_above,
    not_a_multiplier,
    parse_header,
    read_meta,
)

if TYPE_CHECKING:
    from ..circuits.netlist import Netlist
    from ..lutgen.lut import Lut
    from ..lutgen.metrics import Metrics

#: File suffixes taken when walking folders (what ``read_netlist`` understands).
#: Also taken when walking folders: text files that turn out to be DATE'25 LUTs (by content).
TEXT_LUT_SUFFIX = ".txt"
#: Why a ``.npz`` found in a folder is skipped (a folder may hold ``lutgen sim``'s outputs beside their netlists).
FOLDER_TABLE_SKIPPED = "a lutgen .npz table: folders are walked for netlists and DATE'25 text LUTs; name the file"
#: Input pairs hashed to identify a circuit too wide for a table.
FINGERPRINT_SAMPLES = 1 << 16
FINGERPRINT_SEED = 20240917
#: Fewest circuits to characterise for which ``workers``/``address`` start Ray: below it the import runs
#: in-process: Ray's start-up (about 3 s here) costs more than it saves on fewer (README: figures).
RAY_MIN_CIRCUITS = 200
#: Characterisations in flight per worker on Ray (results come back in plan order; a bounded window
#: keeps the object store small while no worker waits).
WINDOW_PER_WORKER = 4

_RELEASE = re.compile(r"^(?P<release>v\d+(?:\.\d+)*)_(?P<rest>.+)$")
_PDK45 = "_pdk45"
#: Import status of each :meth:`Library.store` outcome (``present``: nothing new, e.g. another import added it).
_STATUS = {"added": "added", "merged": "merged", "repaired": "repaired", "present": "unchanged"}


@dataclass(frozen=True)
class NameInfo:
    """What a file name says: release, circuit name, pdk45 twin, widths and signedness when encoded."""

    release: str
    name: str
    pdk45: bool
    bits: tuple[int, int] | None
    signed: bool | None


@dataclass(frozen=True)
class CircuitFiles:
    """The files of one circuit: a netlist, its ``_pdk45`` twin when there is one, and its ``meta.json`` record."""

    primary: Path
    twin: Path | None = None
    meta: MetaRecord | None = None
    root: Path | None = None  # the folder imported (a named file's own folder): release folders count from it down

    @property
    def paths(self) -> tuple[Path, ...]:
        """The netlist files, primary first."""
        return (self.primary,) if self.twin is None else (self.primary, self.twin)


@dataclass
class ImportPlan:
    """What :func:`plan_import` found: groups to characterise, files skipped and why, and warnings."""

    circuits: list[CircuitFiles] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Characterised:
    """Everything the catalogue needs about one circuit (the result of :func:`characterise`)."""

    files: CircuitFiles
    digests: tuple[str, ...]  # SHA-256 of each file of ``files.paths``
    name: str
    release: str
    signed: bool
    bits: tuple[int, int]
    lut: Lut | None  # with gradient tables; ``None`` above the table limit
    function_hash: str
    metrics: Metrics
    gates: int | None
    cost: Cost | None
    published: dict[str, str]
    origin: str
    family: str | None
    licence: str | None
    citation: str | None
    #: Parameters recorded with the entry (a LUT file's ``format``).
    params: dict[str, Any] = field(default_factory=dict)
    #: How the cells were resolved, per file (reports only).
    notes: tuple[str, ...] = ()
    #: What the user must know (an option the file overrode), shown as the import's warnings.
    warnings: tuple[str, ...] = ()
    #: The netlist declares its operand ports ``signed`` (Verilog).
    ports_signed: bool = False


@dataclass
class ImportSummary:
    """Outcome of one import: new entries (new circuits, or aliases of known tables), twins, skips, failures."""

    added: list[Entry] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    merged: list[tuple[Path, Entry]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Added entries whose table the catalogue already had (the same circuit under another name).
    aliases: list[Entry] = field(default_factory=list)
    #: Entries whose missing or damaged table file was rewritten.
    repaired: list[Entry] = field(default_factory=list)
    #: Where the characterisations ran (:attr:`approxlut.tasks.Engine.description`).
    engine: str = "in-process"
    #: Phase -> wall time in seconds (``plan``, ``ray_start`` where Ray was started, ``import``).
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON-able lists (keys as in :mod:`approxlut.schema`)."""
        return {
            "added": [e.full_name for e in self.added],
            "new_circuits": len(self.added) - len(self.aliases),
            "added_aliases": [{"entry": e.full_name, "aliases": list(e.aliases)} for e in self.aliases],
            "unchanged": [shown(p) for p in self.unchanged],
            "merged": [{"file": shown(p), "entry": e.full_name} for p, e in self.merged],
            "repaired": [e.full_name for e in self.repaired],
            "skipped": [{"file": shown(p), "reason": why} for p, why in self.skipped],
            "failed": [{"file": shown(p), "error": msg} for p, msg in self.failed],
            "warnings": list(self.warnings),
            "engine": self.engine,
            "timings_s": {phase: round(seconds, 3) for phase, seconds in self.timings.items()},
        }


def parse_name(path: Path, root: Path | None = None) -> NameInfo:
    """Release, name, twin flag, widths and signedness from a file name such as ``v2022_mul8x4u_1K7_pdk45.v``.

    Without a release in the name, the nearest folder named like one (``v1.0/``) gives it, from ``root`` down
    (the folder imported: folders above it say nothing, so ``/home/u/v3/work`` gives no release). The name is
    made a valid entry name (:func:`~approxlut.circuits.names.safe_name`: ``my mult.v`` gives ``my_mult``).
    """
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
            if root is not None and not parent.is_relative_to(root):
                break
            if re.fullmatch(r"v\d+(?:\.\d+)*", parent.name):
                release = parent.name
                break
    hint = name_hint(stem)
    if hint is None:
        return NameInfo(release, safe_name(stem), pdk45, None, None)
    return NameInfo(release, safe_name(stem), pdk45, hint.bits, hint.signed)


@dataclass(frozen=True)
class Walked:
    """What one walk of the import paths found (each folder read once)."""

    #: Files to import: given files as they are, and the folders' netlists and DATE'25 text LUTs; plain
    #: files come before their ``_pdk45`` twins so the twin merges into the plain file's entry.
    files: list[Path]
    #: lutgen ``.npz`` files in the folders: not imported by a walk (name them), so reported as skipped.
    tables: list[Path]
    #: The ``meta.json`` files in the folders (resolved).
    metas: list[Path]
    #: Each file's import root: the folder given that holds it, or a given file's own folder.
    roots: dict[Path, Path] = field(default_factory=dict)
    #: The folders walked.
    folders: set[Path] = field(default_factory=set)


def walk_paths(paths: Iterable[str | Path]) -> Walked:
    """Walk the folders of ``paths`` recursively, once (symbolic links to folders are not followed), and take
    the given files; :class:`ConfigError` for a path that does not exist."""
    roots: dict[Path, Path] = {}
    tables: set[Path] = set()
    metas: set[Path] = set()
    folders: set[Path] = set()
    seen: set[tuple[int, int]] = set()  # (device, inode) of each file taken: one file under two spellings is one

    def take(found: Path, root: Path) -> None:
        status = found.stat()
        if (status.st_dev, status.st_ino) not in seen:
            seen.add((status.st_dev, status.st_ino))
            roots[found] = root

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for folder, _, names in os.walk(path):
                folders.add(Path(folder))
                for found in (Path(folder, name) for name in names):
                    if not found.is_file():
                        continue
                    if found.name == META_FILE:
                        metas.add(found.resolve())
                    if _walked(found):
                        take(found, path)
                    elif found.suffix.lower() == ".npz":
                        tables.add(found)
        elif path.is_file():
            take(path, path.parent)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    ordered = sorted(roots, key=lambda p: (p.stem.lower().endswith(_PDK45), str(p)))
    return Walked(ordered, sorted(tables), sorted(metas), roots, folders)


def _walked(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in NETLIST_SUFFIXES or (suffix == TEXT_LUT_SUFFIX and sniff_lut_format(path) == "lutfp")


def plan_import(paths: Sequence[str | Path]) -> ImportPlan:
    """Group the netlist files under ``paths`` into circuits (plain file + twin) and skip the rest.

    A ``<name>_pdk45`` file is grouped with ``<name>`` of the same suffix in the same folder, also
    when only one of them was named; ``meta.json`` files of the tree (or of its ancestors) give each
    file's circuit name and published figures.
    """
    plan = ImportPlan()
    walked = walk_paths(paths)
    files = walked.files
    named = set(files)
    plan.skipped += [(p, FOLDER_TABLE_SKIPPED) for p in walked.tables if p not in named]
    meta: dict[Path, MetaRecord] = {}
    for found in sorted({*walked.metas, *meta_files_above(Path(p) for p in paths)}):
        try:
            meta.update(read_meta(found))
        except LutgenError as error:
            plan.warnings.append(f"{error} (ignored)")
    groups: dict[tuple[Path, str, str], list[Path]] = {}  # (by resolved folder: a twin named by another spelling)
    for path in files:
        record = _listed(meta, path)
        why = not_a_multiplier(record.name if record is not None else parse_name(path).name)
        if why is not None:
            plan.skipped.append((path, why))
            continue
        stem = path.stem[: -len(_PDK45)] if path.stem.lower().endswith(_PDK45) else path.stem
        key = (path.parent.resolve(), stem.lower(), path.suffix.lower())  # (any case, as walked)
        groups.setdefault(key, []).append(path)
    listed: dict[Path, dict[str, Path]] = {folder: {} for folder in walked.folders}  # (their netlists: walked)
    for path in files:
        if path.parent in walked.folders:
            listed[path.parent].setdefault(path.name.lower(), path)
    for (_, stem, suffix), members in groups.items():
        folder = members[0].parent
        plain = [p for p in members if not p.stem.lower().endswith(_PDK45)]
        twins = [p for p in members if p.stem.lower().endswith(_PDK45)]
        if not plain:
            plain = _sibling(listed, folder, f"{stem}{suffix}")
        if twins and not plain:
            plain, twins = twins[:1], []
        if not twins:
            twins = _sibling(listed, folder, f"{stem}{_PDK45}{suffix}")
        primary = plain[0]
        twin = twins[0] if twins and twins[0] != primary else None
        record = _listed(meta, primary) or (_listed(meta, twin) if twin is not None else None)
        plan.circuits.append(CircuitFiles(primary, twin, record, walked.roots.get(primary, primary.parent)))
    return plan


def _sibling(listed: dict[Path, dict[str, Path]], folder: Path, name: str) -> list[Path]:
    """The file ``name`` (in lower case) of ``folder``, in any case (``[]`` if none), from ``listed`` (lower-case
    name -> path; the first by name where several differ in case alone): a folder not walked (that of a file
    given by name) is listed once into it."""
    if folder not in listed:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            names = []
        listed[folder] = {}
        for found in names:
            listed[folder].setdefault(found.lower(), folder / found)
    path = listed[folder].get(name)
    return [path] if path is not None and path.is_file() else []


def _listed(meta: dict[Path, MetaRecord], path: Path) -> MetaRecord | None:
    """``path``'s record in the ``meta.json`` files read (by resolved path; none read: nothing to resolve)."""
    return meta.get(path.resolve()) if meta else None


def characterise(files: CircuitFiles, *, signed: bool | None = None) -> Characterised:
    """Read, simulate and measure one circuit; a pure function of its files (no catalogue access).

    ``signed`` is for a file that does not say, by its name (``mul8s_``) or its Verilog ports (declared
    ``signed``); a file that says wins (with a note where ``signed`` disagrees); unsigned when neither says. Raises a
    :class:`~approxlut.errors.LutgenError` for a file that cannot be read, and an
    :class:`~approxlut.errors.InputError` naming both files when the twin's table differs.
    """
    from ..circuits.io import read_netlist
    from ..lutgen.simulate import MAX_LUT_BITS, simulate_lut, simulate_metrics

    primary = files.primary
    for path in files.paths:
        _check_recordable(path)
    data = _read(primary)
    info = parse_name(primary, files.root)
    lut_format = sniff_lut_format(primary)
    if lut_format is not None:
        return _characterise_table(files, lut_format, data, info, signed=signed)
    if primary.suffix.lower() not in NETLIST_SUFFIXES:
        raise ConfigError(
            f"{primary}: neither a netlist ({', '.join(NETLIST_SUFFIXES)}) nor a LUT file "
            "(DATE'25 text, TFApprox binary, lutgen .npz)"
        )
    info, name = _naming(files, info)
    header = parse_header(data.decode("utf-8", errors="replace")) if primary.suffix.lower() in (".v", ".sv") else None
    netlist = read_netlist(primary)
    if len(netlist.widths) != 2:
        raise ConfigError(f"{primary}: a multiplier needs two input buses, found {len(netlist.widths)}")
    said = said_signedness(info.signed, netlist.signed_ports)
    is_signed = said[0] if said is not None else bool(signed)  # (the file first, by name or ports: see the module)
    bits_a, bits_b = netlist.widths
    if info.bits is not None and info.bits != (bits_a, bits_b):
        raise ConfigError(
            f"{primary}: the name says {info.bits[0]}x{info.bits[1]} but the netlist has {bits_a}x{bits_b} operands"
        )
    library = header.library if header is not None else None
    convention = LIBRARY_MRE_CONVENTIONS.get(library or "", DEFAULT_MRE_CONVENTION)
    notes = [f"{primary.name}: {netlist.cell_use.describe()}"] if netlist.cell_use is not None else []
    warnings = []
    if info.signed is False and netlist.signed_ports:
        warnings.append(f"{primary}: read as unsigned, as its name says, though its operand ports are declared signed")
    if signed is not None and said is not None and signed != said[0]:
        warnings.append(
            _kind_kept(primary, "its name says" if said[1] == "name" else "its ports are declared", said[0])
        )
    lut: Lut | None = None
    if bits_a + bits_b <= MAX_LUT_BITS:
        lut = simulate_lut(netlist, signed=is_signed, name=name)
        function_hash = lut.hash
        metrics = lut.metrics(mre_convention=convention)
    else:
        function_hash = function_fingerprint(netlist, signed=is_signed)
        metrics = simulate_metrics(netlist, signed=is_signed, mre_convention=convention)
    digests = [hashlib.sha256(data).hexdigest()]
    if files.twin is not None:
        twin_data = _read(files.twin)
        digests.append(hashlib.sha256(twin_data).hexdigest())
        notes += _check_twin(files.twin, primary, lut, function_hash, is_signed)
    published, cost_source = _published(header, files.meta)
    origin = _origin(library, info.release, listed=files.meta is not None)
    return Characterised(
        files=files,
        digests=tuple(digests),
        name=name,
        release=info.release,
        signed=is_signed,
        bits=(bits_a, bits_b),
        lut=_with_gradients(lut) if lut is not None else None,
        function_hash=function_hash,
        metrics=metrics,
        gates=netlist.gate_count(),
        cost=cost_source or estimated_cost(netlist),
        published=published,
        origin=origin,
        family=None if origin == "import" else "evoapprox",
        licence=(header.licence if header is not None else None) or (files.meta.licence if files.meta else None),
        citation=(header.citation if header is not None else None) or (files.meta.citation if files.meta else None),
        notes=tuple(notes),
        warnings=tuple(warnings),
        ports_signed=netlist.signed_ports,
    )


def _naming(files: CircuitFiles, info: NameInfo | None = None) -> tuple[NameInfo, str]:
    """A netlist circuit's name information (``info``: its primary file's :func:`parse_name`) and entry name: its
    release's ``meta.json`` names it, else its file name; widths and signedness are what the ``meta.json`` name
    says (``mul8s_1KVA`` for a file ``circuit_a.v``) where it says them."""
    info = info or parse_name(files.primary, files.root)
    if files.meta is None:
        return info, info.name
    name = _stated_name(files.meta.name, files.primary, "its release's meta.json")
    hint = name_hint(name)
    return (info if hint is None else replace(info, bits=hint.bits, signed=hint.signed)), name


def _kept_before(path: Path, before: Entry, *, ports: bool) -> str:
    """The warning for a file catalogued before (as ``before``) as the other kind than ``--signed``/``--unsigned``
    asks now, and whose name does not say its kind (``ports``: its operand ports are declared signed): what would
    catalogue it as asked."""
    kind, asked = ("signed", "unsigned") if before.signed else ("unsigned", "signed")
    if before.signed and ports:
        bits = f"{before.bits_a}" if before.bits_a == before.bits_b else f"{before.bits_a}x{before.bits_b}"
        return (
            f"{path}: imported before as signed ({before.full_name}), as its operand ports are declared signed, so "
            "kept as it is: --signed/--unsigned is for files that do not say, also after `lutgen library remove "
            f"{before.full_name}`; to catalogue it as unsigned, import it under a name that says so, e.g. "
            f"mul{bits}u_{path.name}"
        )
    return (
        f"{path}: imported before as {kind} ({before.full_name}), so kept as it is; to read it as {asked}, "
        f"`lutgen library remove {before.full_name}`, then import it again with --{asked}"
    )


def _ports_signed(path: Path) -> bool:
    """Whether ``path`` is Verilog whose operand ports are declared ``signed`` (False when it cannot be read)."""
    from ..circuits.io import format_for, read_netlist

    try:
        return format_for(path, None) == "verilog" and read_netlist(path).signed_ports
    except LutgenError:
        return False


def _kind_kept(path: Path, who: str, signed: bool) -> str:
    """The warning for a file read as it says, not as ``--signed``/``--unsigned`` asked."""
    kind = "signed" if signed else "unsigned"
    return f"{path}: read as {kind}, as {who} (--signed/--unsigned is for files that do not say)"


def _characterise_table(
    files: CircuitFiles, lut_format: str, data: bytes, info: NameInfo, *, signed: bool | None
) -> Characterised:
    """A LUT file as a circuit: its table and metrics (no netlist: no gate count, no cost estimate)."""
    from ..lutgen.formats import read_lut_file

    path = files.primary
    lut = read_lut_file(path, lut_format)
    kind = "signed" if lut.signed else "unsigned"
    overridden = signed is not None and signed != lut.signed
    warnings = [_kind_kept(path, f"its {lut_format} table says", lut.signed)] if overridden else []
    if info.bits is not None and (info.bits != (lut.bits_a, lut.bits_b) or info.signed != lut.signed):
        said = f"{info.bits[0]}x{info.bits[1]} {'signed' if info.signed else 'unsigned'}"
        raise ConfigError(f"{path}: the name says {said} but the table is {lut.bits_a}x{lut.bits_b} {kind}")
    return Characterised(
        files=files,
        digests=(hashlib.sha256(data).hexdigest(),),
        name=_stated_name(lut.name, path, f"the {lut_format} file").removeprefix(
            f"{info.release}_" if info.release else ""
        ),
        release=info.release,
        signed=lut.signed,
        bits=(lut.bits_a, lut.bits_b),
        lut=_with_gradients(lut),
        function_hash=lut.hash,
        metrics=lut.metrics(),
        gates=None,
        cost=None,
        published={},
        origin="import",
        family=None,
        licence=None,
        citation=None,
        params={"format": lut_format},
        warnings=tuple(warnings),
    )


def _check_recordable(path: Path) -> None:
    """Refuse a file whose path the catalogue cannot record as text (bytes that are not UTF-8)."""
    try:
        str(path.resolve()).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{shown(path)}: the path is not valid UTF-8, and the library records where each circuit came from; "
            "rename the file (or its folder)"
        ) from None


def shown(path: Path) -> str:
    """``path`` as text that can be printed: bytes that are not UTF-8 as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _stated_name(name: str, path: Path, where: str) -> str:
    """A circuit name that a file states (not its file name): refused unless it is a valid entry name."""
    problem = name_problem(name)
    if problem is not None:
        raise InputError(f"{path}: {where} names the circuit {name!r}: {problem}")
    return name


def _with_gradients(lut: Lut) -> Lut:
    """The table as the catalogue stores it: gradient tables up to :data:`GRADIENT_MAX_BITS` input bits."""
    return lut.with_gradients(HALF_WINDOW) if lut.bits_a + lut.bits_b <= GRADIENT_MAX_BITS else lut


def _published(header: Header | None, meta: MetaRecord | None) -> tuple[dict[str, str], Cost | None]:
    """The header's figures when it has any, else the ``meta.json`` ones; and the published cost."""
    if header is not None and header.published:
        return dict(header.published), header.cost()
    if meta is not None:
        return dict(meta.published), meta_cost(meta)
    return {}, None


def _origin(library: str | None, release: str, *, listed: bool) -> str:
    """``evoapprox8b``; ``evoapprox <release>`` for EvoApproxLib's files (the header says so, or a release's
    ``meta.json`` lists the file: ``listed``); else ``import``."""
    if library == "evoapprox8b":
        return "evoapprox8b"
    if library is not None or listed:
        return f"evoapprox {release}".strip()
    return "import"


def _check_twin(twin: Path, primary: Path, lut: Lut | None, function_hash: str, signed: bool) -> list[str]:
    """Refuse a twin whose function differs; where its cells are ambiguous, take the library that agrees."""
    from ..circuits.io import read_netlist

    try:
        netlist = read_netlist(twin)
    except AmbiguousCellError as error:
        agreeing = []
        for profile in PROFILES:
            candidate = read_netlist(twin, cells=profile)
            if _function(candidate, signed, lut)[0] == function_hash:
                agreeing.append((profile, candidate))
        if not agreeing:
            raise InputError(
                f"{twin}: {error.message}, and with no cell library does its table equal that of its twin "
                f"{primary}; neither file was imported"
            ) from None
        chosen = ", ".join(p for p, _ in agreeing)
        return [f"{twin.name}: {chosen} cells, the only ones that give the table of its twin {primary.name}"]
    got_hash, table = _function(netlist, signed, lut)
    if got_hash != function_hash:
        raise InputError(f"{twin}: {_difference(table, lut)} its twin {primary}; neither file was imported")
    return [f"{twin.name}: {netlist.cell_use.describe()}"] if netlist.cell_use is not None else []


def _function(netlist: Netlist, signed: bool, reference: Lut | None) -> tuple[str, Lut | None]:
    """The function hash of ``netlist`` (its table's hash, or the sampled fingerprint when ``reference`` is None)."""
    from ..lutgen.simulate import simulate_lut

    if reference is None:
        return function_fingerprint(netlist, signed=signed), None
    if netlist.widths != (reference.bits_a, reference.bits_b):
        return f"widths {netlist.widths}", None
    lut = simulate_lut(netlist, signed=signed)
    return lut.hash, lut


def _difference(table: Lut | None, reference: Lut | None) -> str:
    if table is None or reference is None:
        return "its function (sampled outputs or operand widths) differs from that of"
    wrong = np.argwhere(table.forward != reference.forward)
    a, b = (int(v) for v in wrong[0])
    return (
        f"its table differs from that of ({len(wrong)} of {table.forward.size} products, e.g. code a={a}, b={b}: "
        f"{int(table.forward[a, b])} vs {int(reference.forward[a, b])})"
    )


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
    from ..lutgen.simulate import CompiledNetlist, decode_outputs, packed_inputs, random_codes

    bits_a, bits_b = netlist.widths
    rng = np.random.default_rng(FINGERPRINT_SEED)
    a_codes = random_codes(rng, bits_a, FINGERPRINT_SAMPLES)
    b_codes = random_codes(rng, bits_b, FINGERPRINT_SAMPLES)
    compiled = CompiledNetlist.compile(netlist)
    values = compiled.run(packed_inputs(a_codes, b_codes, bits_a, bits_b))
    outputs = decode_outputs([values[net] for net in netlist.outputs], signed)
    if outputs.dtype == object:  # a bus wider than int64: its low 64 bits, which fingerprints have always hashed
        outputs = (outputs & ((1 << 64) - 1)).astype(np.uint64).view(np.int64)
    h = hashlib.sha256(f"sample:{bits_a}x{bits_b}:{'s' if signed else 'u'}:{FINGERPRINT_SEED}:".encode())
    h.update(outputs.astype("<i8").tobytes())
    return h.hexdigest()


def import_paths(
    lib: Library,
    paths: Sequence[str | Path],
    *,
    signed: bool | None = None,
    progress: bool = False,
    on_file: Callable[[Path, str], None] | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> ImportSummary:
    """Import files and folders, one transaction per circuit; failures are collected, not raised.

    Circuits are characterised in-process, or as Ray tasks when ``workers`` (a local Ray instance) or
    ``address`` (a cluster) is given and at least :data:`RAY_MIN_CIRCUITS` need it; either way this
    process alone writes the catalogue, each result in plan order, so the outcome is the same. An
    interruption (Ctrl-C, a crash) keeps every circuit committed before it. ``progress`` shows a rich
    progress bar; ``on_file(path, status)`` is called for each file after its circuit.
    """
    check_engine_options(workers=workers, address=address)
    start = time.perf_counter()
    plan = plan_import(paths)
    summary = ImportSummary(skipped=list(plan.skipped), warnings=list(plan.warnings))

    def report(statuses: list[tuple[Path, str]]) -> None:
        if on_file is not None:
            for path, status in statuses:
                on_file(path, status)

    todo: list[tuple[CircuitFiles, list[Entry | None]]] = []
    kept: dict[Path, Entry] = {}  # (files catalogued before as the other kind than asked, whose name does not say)
    for files in plan.circuits:
        try:
            known = _known(lib, files)
        except LibraryError as error:
            raise _stop(files, error) from None
        except LutgenError as error:
            summary.failed.append((files.primary, str(error)))
            report([(path, "failed") for path in files.paths])
            continue
        before = known[0]
        if before is not None and signed is not None and before.signed != signed and _naming(files)[0].signed is None:
            kept[files.primary] = before
        if all(entry is not None and lib.intact(entry) for entry in known):
            summary.unchanged += files.paths
            report([(path, "unchanged") for path in files.paths])
            if files.primary in kept:  # (the one reading of the file: nothing characterises it)
                summary.warnings.append(
                    _kept_before(files.primary, kept[files.primary], ports=_ports_signed(files.primary))
                )
        else:
            todo.append((files, known))
    summary.timings["plan"] = time.perf_counter() - start
    remote = (workers is not None or address is not None) and len(todo) >= RAY_MIN_CIRCUITS
    with open_engine(workers=workers if remote else None, address=address if remote else None) as engine:
        summary.engine = engine.description
        if (workers is not None or address is not None) and not remote:
            summary.engine += f" ({len(todo)} circuits to characterise: Ray starts for {RAY_MIN_CIRCUITS} or more)"
        if engine.start_seconds:
            summary.timings["ray_start"] = engine.start_seconds
        began = time.perf_counter()
        with _progress_bar(progress, len(todo)) as step:
            for (files, known), outcome in zip(todo, _characterised(engine, [f for f, _ in todo], signed), strict=True):
                step(shown(Path(files.primary.name)))
                if isinstance(outcome, str):
                    summary.failed.append((files.primary, outcome))
                    report([(path, "failed") for path in files.paths])
                    continue
                summary.warnings += outcome.warnings
                if files.primary in kept and not outcome.ports_signed:  # (where the ports say, characterise warned)
                    summary.warnings.append(_kept_before(files.primary, kept[files.primary], ports=False))
                try:
                    statuses = _catalogue(lib, outcome, known, summary)
                except LibraryError as error:
                    raise _stop(files, error) from None
                except LutgenError as error:
                    summary.failed.append((files.primary, str(error)))
                    statuses = [(path, "failed") for path in files.paths]
                report(statuses)
        summary.timings["import"] = time.perf_counter() - began
    return summary


def characterise_task(files: CircuitFiles, signed: bool | None) -> Characterised | str:
    """:func:`characterise` as an engine task: the result, or the one-line error that refused the circuit."""
    try:
        return characterise(files, signed=signed)
    except LutgenError as error:
        return str(error)


def _characterised(engine: Engine, todo: Sequence[CircuitFiles], signed: bool | None) -> Iterator[Characterised | str]:
    """:func:`characterise_task` of each group, in order, with a bounded number in flight on the engine."""
    window: deque[Any] = deque()
    upcoming = iter(todo)
    limit = engine.workers * WINDOW_PER_WORKER
    while True:
        while len(window) < limit:
            files = next(upcoming, None)
            if files is None:
                break
            window.append(engine.submit(characterise_task, files, signed))
        if not window:
            return
        yield engine.gather([window.popleft()])[0]


def _stop(files: CircuitFiles, error: LibraryError) -> LibraryError:
    """The error that stops the import when the library, not a file, failed (naming the file it was at)."""
    return error if isinstance(error, LibraryUsageError) else LibraryError(f"{files.primary}: {error}")


def _known(lib: Library, files: CircuitFiles) -> list[Entry | None]:
    """The entry each file of the group was imported into before (by the SHA-256 of its bytes), else None; a
    netlist copied under another name is not known under that name (it is characterised and recorded as a new
    name for the table)."""
    known = [lib.find_source(hashlib.sha256(_read(path)).hexdigest()) for path in files.paths]
    primary = known[0]
    if primary is not None and files.primary.suffix.lower() in NETLIST_SUFFIXES:
        info, name = _naming(files)
        full = f"{info.release}_{name}" if info.release else name
        if full != primary.full_name and full not in primary.aliases:
            known[0] = None
    return known


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over ``total`` circuits on stderr (nothing when disabled or when stderr is not a
    terminal, where rich would leave a blank line); yields ``step(description)``."""
    if not enabled:
        yield lambda description: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("", total=total)
        yield lambda description: bar.update(task, advance=1, description=description)


def _catalogue(
    lib: Library, result: Characterised, known: list[Entry | None], summary: ImportSummary
) -> list[tuple[Path, str]]:
    """Write one characterised circuit unless its primary file is catalogued and intact; returns each file's status."""
    files = result.files
    twin = files.twin
    primary = known[0]
    if primary is None or not lib.intact(primary):
        entry, status = record(lib, result)
        if status == "added":
            summary.added.append(entry)
            if entry.aliases:
                summary.aliases.append(entry)
        elif status == "merged":
            summary.merged.append((files.primary, entry))
        elif status == "repaired":
            summary.repaired.append(entry)
        else:
            summary.unchanged.append(files.primary)
        statuses = [(files.primary, status)]
    else:
        summary.unchanged.append(files.primary)
        statuses = [(files.primary, "unchanged")]
        assert twin is not None  # not every file was known
        entry = lib.add_source(primary, str(twin.resolve()), result.digests[1])
    if twin is not None:
        if known[1] is None:
            summary.merged.append((twin, entry))
            statuses.append((twin, "merged"))
        else:
            summary.unchanged.append(twin)
            statuses.append((twin, "unchanged"))
    return statuses


def record(lib: Library, result: Characterised) -> tuple[Entry, str]:
    """Write one characterised circuit (its twin as an alternative source) in one transaction.

    Returns the entry and ``added``, ``merged`` (the catalogue had this release, name and table: the
    file is recorded as another source), ``repaired`` (its table file was missing or damaged and was
    rewritten) or ``unchanged``.
    """
    twins = [(str(result.files.twin.resolve()), result.digests[1])] if result.files.twin is not None else []
    common = {
        "name": result.name,
        "release": result.release,
        "source": str(result.files.primary.resolve()),
        "source_sha256": result.digests[0],
        "origin": result.origin,
        "licence": result.licence,
        "citation": result.citation,
        "family": result.family,
        "params": result.params,
        "cost": result.cost,
        "published": result.published,
        "gates": result.gates,
        "alternatives": twins,
    }
    if result.lut is not None:
        stored = lib.store(result.lut, metrics=result.metrics, **common)  # type: ignore[arg-type]
    else:
        stored = lib.store_untabulated(
            bits=result.bits,
            signed=result.signed,
            function_hash=result.function_hash,
            metrics=result.metrics,
            **common,  # type: ignore[arg-type]
        )
    return stored.entry, _STATUS[stored.status]


def _read(path: Path) -> bytes:
    return read_bytes(path, limit=max(MAX_NETLIST_BYTES, MAX_NPZ_BYTES), what="netlist or LUT file")
