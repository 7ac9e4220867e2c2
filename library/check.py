"""``lutgen library check [--repair]``: find what is wrong with a library, mend what can be mended, say the rest.

In the spirit of ``git fsck``: the index file itself (present, SQLite, lutgen's schema), SQLite's
``integrity_check``, every entry row (types, JSON columns), rows that refer to nothing, every table
blob against its hash, and files in ``blobs/`` that no entry accounts for. Repairs, in that order:

- an index that is empty or not SQLite is set aside as ``catalogue.sqlite.damaged-<time>`` and an
  empty one started; an index with damaged pages is rebuilt (``REINDEX``), and when that is not
  enough, set aside and salvaged row by row into a new one;
- entry rows whose JSON columns are unreadable get ``{}`` there; rows that still do not decode are
  removed (after a copy of the index is set aside);
- missing or corrupted blobs are rebuilt from the built-in generators or by simulating the entry's
  source file again when that file still has the recorded content;
- unreferenced blobs and leftovers of interrupted writes are deleted, but only while no damaged
  index is set aside (its entries may still refer to them) — nothing is deleted on the word of an
  index that cannot account for the files.

A foreign database (SQLite without lutgen's schema) is never touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DamagedIndexError, LibraryError, LibraryUsageError, LutgenError
from .blobs import SUFFIX, TMP_SUFFIX
from .catalogue import (
    BLOB_DIR,
    DB_NAME,
    Entry,
    Library,
    SchemaUpgradeNeeded,
    create_index,
    damaged_copies,
    inspect_index,
    missing_library,
    salvage_index,
    set_aside,
)
from .config import library_location


@dataclass(frozen=True)
class Finding:
    """One problem: what it is, whether it was repaired, and what to do when it was not."""

    problem: str
    repaired: bool = False
    advice: str | None = None


@dataclass
class CheckReport:
    """Everything ``library check`` found in one library."""

    library: Path
    repair: bool
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    tables: int = 0
    #: whether the index could be read (``entries`` counts its rows only then)
    indexed: bool = False

    @property
    def healthy(self) -> bool:
        """No problem left (none found, or all repaired)."""
        return all(f.repaired for f in self.findings)

    def add(self, problem: str, *, repaired: bool = False, advice: str | None = None) -> None:
        self.findings.append(Finding(problem, repaired, None if repaired else advice))

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` object (keys as in :mod:`approxlut.schema`)."""
        return {
            "library": str(self.library),
            "healthy": self.healthy,
            "repair": self.repair,
            "index_entries": self.entries,
            "table_files": self.tables,
            "findings": [{"problem": f.problem, "fixed": f.repaired, "advice": f.advice} for f in self.findings],
        }


def check_library(path: str | Path | None = None, *, repair: bool = False) -> CheckReport:
    """Check (and with ``repair``, mend) the library at ``path`` / ``$LUTGEN_LIBRARY`` / the data dir."""
    root, named_by = library_location(path)
    report = CheckReport(root, repair)
    if not root.is_dir():
        raise LibraryUsageError(missing_library(root, named_by))
    if not _check_index_file(root, report):
        return report
    try:
        lib = _open(root, repair=repair)
    except DamagedIndexError as error:
        if not repair:
            report.add(str(error), advice="run `lutgen library check --repair`")
            return report
        report.add(str(error), repaired=True)
        lib = _salvage(root, report)
    except LibraryError as error:
        report.add(str(error), advice="restore the index from a backup or use another --library")
        return report
    try:
        if not _check_pages(lib, report):
            lib.close()
            if not repair:
                return report
            lib = _salvage(root, report)
        _check_rows(lib, report)
        _check_blobs(lib, report)
        _check_blob_folder(lib, report)
        report.entries = len(lib)
        report.indexed = True
        report.tables = len(lib.blobs.hashes())
    finally:
        lib.close()
    return report


def _open(root: Path, *, repair: bool) -> Library:
    """The library, read-only unless repairing; an older schema is upgraded first, as any writing command does."""
    try:
        return Library.open(root, readonly=not repair)
    except SchemaUpgradeNeeded:
        Library.open(root).close()  # migrations only; raises where the folder is not writable
        return Library.open(root, readonly=True)


def _check_index_file(root: Path, report: CheckReport) -> bool:
    """Whether there is an SQLite index to open (after setting an unreadable one aside, with ``repair``)."""
    db_path = root / DB_NAME
    report.tables = len(_blob_files(root))  # (counted again from the index where it opens)
    try:
        state = inspect_index(db_path)
    except LibraryError as error:
        if not db_path.is_file():
            report.add(str(error), advice=f"move {db_path} out of the way")
            return False
        if not report.repair:  # (the message says what --repair does)
            report.add(str(error))
            return False
        aside = set_aside(root)
        create_index(root)
        report.add(f"{error}; set aside as {aside.name}, started an empty index", repaired=True)
        return True
    if state == "absent":
        tables = len(_blob_files(root))
        if tables:
            report.add(
                f"{db_path} is missing but {root / BLOB_DIR} holds {tables} tables",
                advice="restore the index from a backup, or move the library folder away to start a new one",
            )
        else:
            report.add(f"no index at {db_path}: not a library", advice="create one with `lutgen library init`")
        return False
    return True


def _check_pages(lib: Library, report: CheckReport) -> bool:
    """SQLite's integrity check, with ``REINDEX`` as the first repair; whether the pages are sound now."""
    try:
        errors = lib.integrity_errors()
    except LibraryError as error:
        errors = [str(error)]
    if not errors:
        return True
    problem = f"the index {lib.index_path} has damaged pages: {'; '.join(errors[:3])}"
    if not report.repair:
        report.add(problem, advice="run `lutgen library check --repair`")
        return False
    try:
        lib.reindex()
        mended = not lib.integrity_errors()
    except LibraryError:
        mended = False
    if mended:
        report.add(f"{problem}; rebuilt its indexes", repaired=True)
        return True
    report.add(problem, repaired=True)
    return False


def _salvage(root: Path, report: CheckReport) -> Library:
    aside = set_aside(root)
    kept, lost = salvage_index(root, aside)
    message = f"set the damaged index aside as {aside.name} and salvaged {kept} entries into a new one"
    if lost:
        report.add(
            f"{message}; {lost} rows could not be read",
            advice="re-import the sources of the lost entries (`lutgen library import ...`)",
        )
    else:
        report.add(message, repaired=True)
    return Library.open(root)


def _check_rows(lib: Library, report: CheckReport) -> None:
    from .builtin import install_builtin

    try:
        damaged = lib.damaged_rows()
        dangling = lib.dangling_rows()
    except LibraryError as error:
        report.add(str(error), advice="run `lutgen library check --repair`")
        return
    if damaged and report.repair:
        lib.backup(_backup_name(lib.root))
    for entry_id, name, origin, reason in damaged:
        problem = f"entry {entry_id} ({name}) is damaged: {reason}"
        if not report.repair:
            report.add(problem, advice="run `lutgen library check --repair`")
        elif lib.mend_row(entry_id):
            report.add(f"{problem}; reset its unreadable columns to {{}}", repaired=True)
        elif origin == "builtin" and install_builtin(lib, only={name}):
            report.add(f"{problem}; removed it and added the built-in circuit again", repaired=True)
        else:
            report.add(
                f"{problem}; removed it (a copy of the index was set aside)",
                advice=f"re-import the source of {name} (`lutgen library import ...`)",
            )
    if any(dangling.values()) and report.repair:
        lib.drop_dangling_rows()
    for what, count in dangling.items():
        if count:
            report.add(
                f"{count} {what} rows refer to nothing or are unreadable",
                repaired=report.repair,
                advice="run `lutgen library check --repair`",
            )


def _check_blobs(lib: Library, report: CheckReport) -> None:
    damaged = [entry for entry in lib.query(with_lut=True) if not lib.intact(entry)]
    builtin = {entry.name for entry in damaged if entry.origin == "builtin"}
    if builtin and report.repair:
        from .builtin import install_builtin

        install_builtin(lib, repair=True, only=builtin)  # (not those a user removed)
    for entry in damaged:
        state = "corrupted" if _blob_present(lib, entry) else "missing"
        problem = f"the table of {entry.full_name} ({entry.hash[:12]}) is {state}"
        now = lib.named(entry.name, entry.release) or entry  # (a built-in's damaged row is replaced, not mended)
        if report.repair and (lib.intact(now) or _rebuild_from_source(lib, entry)):
            report.add(f"{problem}; rebuilt it", repaired=True)
        else:
            advice = "run `lutgen library check --repair`" if not report.repair else None
            report.add(problem, advice=advice or f"re-import the source of {entry.full_name}")


def _blob_present(lib: Library, entry: Entry) -> bool:
    """Whether a file is where the entry's table should be (none where its hash is not one: a damaged row)."""
    try:
        return lib.blobs.path(entry.hash).is_file()
    except LibraryError:
        return False


def _rebuild_from_source(lib: Library, entry: Entry) -> bool:
    """Simulate the entry's source file again when it still has the content that was imported."""
    from ..circuits.io import read_netlist
    from ..lutgen.simulate import simulate_lut

    source = Path(entry.source)
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if lib.find_source(digest) is None:
            return False
        lut = simulate_lut(read_netlist(source), signed=entry.signed, name=entry.name)
    except (OSError, LutgenError):
        return False
    if lut.hash != entry.hash:
        return False
    lib.store(lut, name=entry.name, release=entry.release)
    return lib.intact(entry)


def _check_blob_folder(lib: Library, report: CheckReport) -> None:
    used = {entry.hash for entry in lib.query(with_lut=True)}
    orphans = lib.blobs.hashes() - used
    temporaries = list(lib.blobs.root.glob(f".*{TMP_SUFFIX}")) if lib.blobs.root.is_dir() else []
    strangers = [
        p.name
        for p in (lib.blobs.root.iterdir() if lib.blobs.root.is_dir() else [])
        if not p.name.startswith(".") and not (p.suffix == SUFFIX and p.is_file())
    ]
    if strangers:
        report.add(
            f"{len(strangers)} files in {lib.blobs.root} are not lutgen tables (e.g. {strangers[0]}); left alone",
            advice="move them out of the library",
        )
    if not orphans and not temporaries:
        return
    problem = f"{len(orphans)} tables no entry refers to and {len(temporaries)} leftovers of interrupted writes"
    kept_for = damaged_copies(lib.root)
    if kept_for:
        report.add(
            f"{problem}: kept, because a damaged index set aside ({kept_for[-1].name}) may refer to them",
            advice="re-import their sources, then remove the damaged copies and run --repair again",
        )
    elif not report.repair:
        report.add(problem, advice="run `lutgen library check --repair`")
    else:
        removed = lib.clean()
        report.add(f"{problem}; removed {removed} files", repaired=True)


def _backup_name(root: Path) -> Path:
    """Where a copy of a sound index goes before rows are removed (:func:`damaged_copies` finds it)."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return root / f"{DB_NAME}.damaged-{stamp}"


def _blob_files(root: Path) -> list[Path]:
    folder = root / BLOB_DIR
    return list(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
