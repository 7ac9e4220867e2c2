"""The catalogue: the one class that owns all SQL (an SQLite index beside a folder of LUT blobs).

Layout of a library folder::

    catalogue.sqlite   index (WAL mode, so readers never block on a writer)
    blobs/<hash>.npz   one table per distinct LUT (forward + gradients), see :mod:`.blobs`

An entry is one circuit: ``(release, name, hash)`` is unique, so the same function published twice
under different names (or by different releases) gives two entries sharing one blob, while one
name reused for a different circuit by a later release stays apart. Each write is one transaction
that takes the write lock first and writes the blob inside it, so a crash leaves at most an
unreferenced blob. Nothing is deleted on the index's word except by ``lutgen library remove`` and
``lutgen library check --repair`` (:mod:`.check`), which checks the index first; an index that is
empty, unreadable or foreign is an error naming the file, never a new library.
Schema changes are numbered migrations (SQL scripts, or Python steps for data) recorded in the
``migrations`` table. The ``half_windows`` table keeps, per table content hash, the half window that
``--half-window auto`` chose (:mod:`approxlut.nn.halfwindow`).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..circuits.names import name_problem
from ..errors import (
    ConfigError,
    DamagedIndexError,
    LibraryError,
    LibraryUsageError,
    NameTakenError,
    NotInLibraryError,
)
from ..fileio import fsync_dir, new_file_mode
from ..lutgen.metrics import METRIC_KEYS, Metrics, matches_published
from .blobs import BlobStore
from .config import FROM_DEFAULT, library_location

if TYPE_CHECKING:
    from ..circuits.netlist import Netlist
    from ..lutgen.lut import Lut
    from ..synth.power import HardwareCost

DB_NAME = "catalogue.sqlite"
#: How long a writer waits for another writer (an import in another process) before giving up.
BUSY_TIMEOUT_S = 60.0
BLOB_DIR = "blobs"
#: Half window of the gradient tables stored with every LUT (DESIGN.md, DATE'25 default).
HALF_WINDOW = 8
#: Widest table (``bits_a + bits_b``) whose gradient tables are stored; wider ones get them on load.
GRADIENT_MAX_BITS = 16

#: Where earlier versions kept the half-window choices (imported once by migration 3, never modified).
LEGACY_HALF_WINDOWS = "half_windows.json"


#: The ``settings`` key recording when the whole built-in set was first installed.
BUILTIN_INSTALLED = "builtin_installed"


def _import_legacy_half_windows(db: sqlite3.Connection, root: Path) -> None:
    """Copy the choices of a ``half_windows.json`` beside the index (``{hash: choice}``) into ``half_windows``.

    The file is left in place. An unreadable or damaged file imports nothing: the choices are a cache,
    searched again when missing. Choices already in the table win.
    """
    try:
        data = json.loads((root / LEGACY_HALF_WINDOWS).read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    for lut_hash, choice in data.items():
        if isinstance(choice, dict):
            db.execute(
                "INSERT OR IGNORE INTO half_windows (lut_hash, choice, updated) VALUES (?, ?, ?)",
                (lut_hash, json.dumps(choice, sort_keys=True), _now()),
            )


def _record_builtin_installs(db: sqlite3.Connection, root: Path) -> None:
    """The ``settings`` table (one value per key), with ``builtin_installed`` where the library holds built-in
    entries already (installed before the setting existed)."""
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    if db.execute("SELECT 1 FROM entries WHERE origin = 'builtin' LIMIT 1").fetchone() is not None:
        db.execute("INSERT INTO settings VALUES (?, ?)", (BUILTIN_INSTALLED, _now()))


Migration = tuple[int, str | Callable[[sqlite3.Connection, Path], None]]

#: Numbered schema migrations (SQL, or a Python step given the connection and the library folder);
#: append, never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        """
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            release TEXT NOT NULL DEFAULT '',
            bits_a INTEGER NOT NULL,
            bits_b INTEGER NOT NULL,
            signed INTEGER NOT NULL,
            hash TEXT NOT NULL,
            has_lut INTEGER NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            origin TEXT NOT NULL,
            licence TEXT,
            citation TEXT,
            family TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            gates INTEGER,
            mae_pct REAL, wce_pct REAL, mre_pct REAL, wcre_pct REAL, ep_pct REAL,
            mse REAL, med REAL, wce REAL, bias REAL,
            metrics_method TEXT,
            power_mw REAL, area_um2 REAL, delay_ns REAL,
            power_source TEXT CHECK (power_source IN ('published', 'estimated')),
            published TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            UNIQUE (release, name, hash)
        );
        CREATE INDEX entries_hash ON entries (hash);
        CREATE INDEX entries_name ON entries (name);
        CREATE TABLE sources (
            file_sha256 TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('primary', 'alternative'))
        );
        CREATE INDEX sources_entry ON sources (entry_id);
        """,
    ),
    (
        2,
        """
        CREATE TABLE half_windows (
            lut_hash TEXT PRIMARY KEY,
            choice TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        """,
    ),
    (3, _import_legacy_half_windows),
    # the relative-error convention of an entry's MRE/WCRE (measured and published alike)
    (4, "ALTER TABLE entries ADD COLUMN mre_convention TEXT NOT NULL DEFAULT 'nonzero'"),
    # when the built-in set was installed: a library whose user removed it does not get it back unasked
    (5, _record_builtin_installs),
)

#: Error-metric columns, in display order.
METRIC_COLUMNS = METRIC_KEYS
#: Metrics that are maxima over the inputs: from a sample, lower bounds.
WORST_CASE_COLUMNS = ("wce_pct", "wcre_pct", "wce")
#: Hardware-cost columns.
COST_COLUMNS = ("power_mw", "area_um2", "delay_ns")
#: Decimals the cost columns are shown with (as EvoApproxLib prints them).
COST_DECIMALS = {"power_mw": 3, "area_um2": 1, "delay_ns": 2}
#: Short names accepted wherever a column is named (``--sort power``, ``pareto --x power --y mae``), as the
#: filter's bounds name them (``max_wce``): an error metric without a unit is its percent column, the one
#: the tables show (``wce`` is WCE %, as ``mae`` is MAE %); the absolute worst case, whose column and JSON
#: key are ``wce``, is ``wce_abs`` (as the absolute mean error is ``med``).
COLUMN_ALIASES = {
    "power": "power_mw",
    "area": "area_um2",
    "delay": "delay_ns",
    "mae": "mae_pct",
    "wce": "wce_pct",
    "wce%": "wce_pct",
    "wce_abs": "wce",
    "mre": "mre_pct",
    "wcre": "wcre_pct",
    "ep": "ep_pct",
    "bits": "bits_a",
}
NUMERIC_COLUMNS = ("bits_a", "bits_b", "gates", *METRIC_COLUMNS, *COST_COLUMNS)
SORTABLE_COLUMNS = ("name", "release", "origin", "family", "created", *NUMERIC_COLUMNS)
#: EvoApproxLib header keys and the columns they publish.
PUBLISHED_KEYS = {
    "MAE%": "mae_pct",
    "MAE": "med",
    "WCE%": "wce_pct",
    "WCE": "wce",
    "WCRE%": "wcre_pct",
    "EP%": "ep_pct",
    "MRE%": "mre_pct",
    "MSE": "mse",
    "PDK45_PWR": "power_mw",
    "PDK45_AREA": "area_um2",
    "PDK45_DELAY": "delay_ns",
}


def column(name: str) -> str:
    """The column a user-facing name refers to (``power`` -> ``power_mw``, ``wce`` -> ``wce_pct``: see
    :data:`COLUMN_ALIASES`); raises ConfigError if unknown."""
    key = COLUMN_ALIASES.get(name.lower(), name.lower())
    if key not in SORTABLE_COLUMNS:
        known = ", ".join(sorted({*COLUMN_ALIASES, *SORTABLE_COLUMNS}))
        raise ConfigError(f"unknown column '{name}' (known: {known})")
    return key


def column_key(name: str) -> str:
    """``name`` itself where it is a column's key (``wce``: the absolute WCE, as in the JSON), else the column the
    user-facing name refers to (:func:`column`): for code that passes keys :func:`column` has resolved already
    (resolving ``wce`` again would give ``wce_pct``)."""
    return name if name in SORTABLE_COLUMNS else column(name)


def numeric_names() -> list[str]:
    """The names of the numeric columns, short forms included (``power``, ``mae_pct``), sorted."""
    return sorted({*(alias for alias, col in COLUMN_ALIASES.items() if col in NUMERIC_COLUMNS), *NUMERIC_COLUMNS})


def numeric_column(name: str) -> str:
    """The numeric column ``name`` refers to (as :func:`column`); raises ConfigError for others (``name``)."""
    key = COLUMN_ALIASES.get(name.lower(), name.lower())
    if key not in NUMERIC_COLUMNS:
        what = "a text column, not a numeric one" if key in SORTABLE_COLUMNS else "an unknown column"
        raise ConfigError(f"'{name}' is {what} (numeric columns: {', '.join(numeric_names())})")
    return key


@dataclass(frozen=True)
class Cost:
    """Power (mW), area (µm²) and delay (ns) of a circuit, and whether they were published or estimated."""

    power_mw: float | None
    area_um2: float | None
    delay_ns: float | None
    power_source: str = "estimated"


@dataclass(frozen=True)
class Entry:
    """One catalogued multiplier (a row of the index). ``full_name`` is ``<release>_<name>`` when released."""

    id: int
    name: str
    release: str
    bits_a: int
    bits_b: int
    signed: bool
    hash: str
    has_lut: bool
    source: str
    origin: str
    licence: str | None
    citation: str | None
    family: str | None
    params: dict[str, Any]
    gates: int | None
    mae_pct: float | None
    wce_pct: float | None
    mre_pct: float | None
    wcre_pct: float | None
    ep_pct: float | None
    mse: float | None
    med: float | None
    wce: float | None
    bias: float | None
    metrics_method: str | None
    power_mw: float | None
    area_um2: float | None
    delay_ns: float | None
    power_source: str | None
    published: dict[str, str]
    created: str
    #: How ``mre_pct``/``wcre_pct`` and the published MRE/WCRE treat zero products (``nonzero``, ``max1``).
    mre_convention: str = "nonzero"
    alt_sources: tuple[str, ...] = field(default=())
    #: Full names of the other entries with the same table (the same circuit published under another name).
    aliases: tuple[str, ...] = field(default=())

    @property
    def full_name(self) -> str:
        """``<release>_<name>`` (``v2022_mul8s_1KV8``), or the name when the entry has no release."""
        return f"{self.release}_{self.name}" if self.release else self.name

    @property
    def kind(self) -> str:
        """``8x8s``-style width and signedness."""
        return f"{self.bits_a}x{self.bits_b}{'s' if self.signed else 'u'}"

    @property
    def sampled(self) -> bool:
        """Whether the metrics come from a random sample of input pairs (circuits too wide to enumerate)."""
        return self.metrics_method is not None and self.metrics_method != "exhaustive"

    def published_differences(self) -> dict[str, tuple[str, float | None]]:
        """Published figures that the measured ones do not reproduce: ``{column: (published, measured)}``.

        Empty when the metrics were sampled (Monte-Carlo figures cannot reproduce exhaustive ones digit for
        digit; see :meth:`sampled_differences`).
        """
        return {} if self.sampled else self._differences()

    def sampled_differences(self) -> dict[str, tuple[str, float | None]]:
        """For sampled metrics, the published figures the sample does not reproduce.

        The worst cases (:data:`WORST_CASE_COLUMNS`) of a sample are lower bounds of the circuit's; the
        means are estimates. Empty for exhaustive metrics.
        """
        return self._differences() if self.sampled else {}

    def _differences(self) -> dict[str, tuple[str, float | None]]:
        diffs: dict[str, tuple[str, float | None]] = {}
        for key, text in self.published.items():
            col = PUBLISHED_KEYS.get(key)
            if col is None or col in COST_COLUMNS:
                continue
            measured = getattr(self, col)
            if measured is None or not matches_published(float(measured), text):
                diffs[col] = (text, measured)
        return diffs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (with ``full_name`` and ``kind``; keys as in :mod:`approxlut.schema`)."""
        data = asdict(self)
        data["alt_sources"] = list(self.alt_sources)
        data["aliases"] = list(self.aliases)
        data["full_name"] = self.full_name
        data["kind"] = self.kind
        if self.wce is not None and float(self.wce).is_integer():  # (an integer, as `sim --json` gives it)
            data["wce"] = int(self.wce)
        return data


_ENTRY_FIELDS = [f for f in Entry.__dataclass_fields__ if f not in ("alt_sources", "aliases")]


def _location(path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """:func:`library_location`, refused (exit 2) where it names something that is not a folder."""
    root, named_by = library_location(path)
    if root.exists() and not root.is_dir():
        raise LibraryUsageError(f"{root} (named by {named_by}) is a file, not a library folder")
    return root, named_by


class Library:
    """A multiplier catalogue in one folder. Open with :meth:`open`; use as a context manager to close.

    Example:
        >>> with Library.open("/tmp/lib") as lib:  # doctest: +SKIP
        ...     lut = lib.load_lut("exact8s")
    """

    def __init__(
        self, root: Path, connection: sqlite3.Connection, *, readonly: bool = False, created: bool = False
    ) -> None:
        self.root = root
        self.blobs = BlobStore(root / BLOB_DIR)
        self.readonly = readonly
        #: this opening created the index (of two processes opening a new library at once, only one did)
        self.created = created
        self._db = connection

    @property
    def index_path(self) -> Path:
        """The SQLite index of this library."""
        return self.root / DB_NAME

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, create: bool = True, readonly: bool = False
    ) -> Library:
        """Open the library at ``path`` / ``$LUTGEN_LIBRARY`` / the data dir.

        The one opening policy: the index is never guessed at (an empty, unreadable or foreign
        ``catalogue.sqlite`` raises :class:`LibraryError` naming the file, see :func:`inspect_index`); a
        missing one beside tables (``blobs/``) it would fail to account for is a :class:`LibraryError`
        too; otherwise a missing one is created with ``create`` (and not ``readonly``), else it is the
        user's mistake (:class:`LibraryUsageError`, exit code 2). ``readonly`` never writes.

        Raises:
            LibraryUsageError: there is no library there and ``create=False`` or ``readonly`` (the message
                names the path and who named it), or, not ``readonly``, lutgen cannot write the one there.
        """
        root, named_by = _location(path)
        db_path = root / DB_NAME
        if inspect_index(db_path) == "absent":
            orphans = BlobStore(root / BLOB_DIR).hashes()
            if orphans:
                raise LibraryError(
                    f"{db_path} is missing but {root / BLOB_DIR} holds {len(orphans)} tables: restore the index "
                    "from a backup, or move the library folder away to start a new one"
                )
            if readonly or not create:
                raise LibraryUsageError(missing_library(root, named_by))
            created = create_index(root)
        else:
            created = False
            if not readonly and not _writable(root):
                raise read_only_error(root)
        try:
            connection = _connect(db_path, readonly=readonly)
        except sqlite3.DatabaseError as error:
            raise LibraryError(f"cannot open the library index {db_path}: {error}") from None
        lib = cls(root, connection, readonly=readonly, created=created)
        try:
            if not readonly:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            lib._check_schema()
            if not readonly:
                lib._migrate()
        except sqlite3.DatabaseError as error:
            connection.close()
            raise _unreadable(db_path, error) from None
        except LibraryError:
            connection.close()
            raise
        return lib

    @classmethod
    def open_default(cls, path: str | os.PathLike[str] | None = None) -> Library:
        """The library that reading commands use, with the built-in set installed the first time (and completed
        where that install was interrupted; built-ins a user removed afterwards stay removed).

        Only the default location is created when absent; a library named by ``path`` or
        ``$LUTGEN_LIBRARY`` must exist (:class:`LibraryUsageError` otherwise, naming the path). A library
        on read-only storage (or without write permission) opens read-only, as it is.
        """
        from .builtin import install_builtin

        root, named_by = _location(path)
        if inspect_index(root / DB_NAME) != "absent" and not _writable(root):
            return cls.open(path, readonly=True)
        lib = cls.open(path, create=named_by == FROM_DEFAULT)
        if not lib.builtin_installed():
            install_builtin(lib)
        return lib

    def close(self) -> None:
        """Close the index."""
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        """Refuse a database that is not a lutgen catalogue, or one newer than this lutgen."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "migrations" not in tables:
            found = ", ".join(sorted(tables)[:5]) or "none"
            raise LibraryError(
                f"{self.index_path} is an SQLite database but not a lutgen library index (tables: {found}); "
                "use another --library"
            )
        done = {row[0] for row in self._db.execute("SELECT version FROM migrations")}
        newest = MIGRATIONS[-1][0]
        if done and max(done) > newest:
            raise LibraryError(
                f"the library at {self.root} has schema version {max(done)}, newer than this lutgen's ({newest}): "
                "upgrade lutgen or use another --library"
            )
        if self.readonly and done != {version for version, _ in MIGRATIONS}:
            raise SchemaUpgradeNeeded(
                f"the library at {self.root} needs a schema upgrade but is read-only: open it once where it is writable"
            )

    def _migrate(self) -> None:
        done = {row[0] for row in self._db.execute("SELECT version FROM migrations")}
        for version, script in MIGRATIONS:
            if version in done:
                continue
            with self._write():
                # re-check under the write lock: another process may have migrated meanwhile
                if self._db.execute("SELECT 1 FROM migrations WHERE version = ?", (version,)).fetchone():
                    continue
                if callable(script):
                    script(self._db, self.root)
                else:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                self._db.execute("INSERT INTO migrations VALUES (?, ?)", (version, _now()))

    def schema_version(self) -> int:
        """The highest migration applied."""
        row = self._one("SELECT MAX(version) FROM migrations")
        return int(row[0] or 0) if row is not None else 0

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction holding the database write lock (BEGIN IMMEDIATE)."""
        if self.readonly:
            raise read_only_error(self.root)
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as error:
            raise _write_error(self.root, error) from None
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            self._db.execute("ROLLBACK")
            raise _write_error(self.root, error) from None

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """All rows of a query; a damaged or foreign index raises :class:`LibraryError` naming the file."""
        try:
            return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as error:
            raise _unreadable(self.index_path, error) from None

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _run(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Execute a write statement (inside :meth:`_write`)."""
        try:
            return self._db.execute(sql, tuple(args))
        except sqlite3.DatabaseError as error:
            raise _unreadable(self.index_path, error) from None

    # ----------------------------------------------------------------- reading
    def _entries(self, where: str = "", args: Sequence[Any] = (), order: str = "") -> list[Entry]:
        sql = "SELECT * FROM entries" + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else "")
        rows = self._rows(sql, args)
        if not rows:
            return []
        ids = sorted({row["id"] for row in rows})
        hashes = sorted({row["hash"] for row in rows})
        few = len(rows) <= 500  # look up only these rows' sources and aliases, else scan once
        alts: dict[int, list[str]] = {}
        sql = "SELECT entry_id, path FROM sources WHERE role = 'alternative'"
        sql += f" AND entry_id IN ({','.join('?' * len(ids))})" if few else ""
        for row in self._rows(sql + " ORDER BY path", ids if few else ()):
            alts.setdefault(row["entry_id"], []).append(row["path"])
        named: dict[str, list[tuple[int, str]]] = {}
        sql = "SELECT id, release, name, hash FROM entries"
        sql += f" WHERE hash IN ({','.join('?' * len(hashes))})" if few else ""
        for row in self._rows(sql + " ORDER BY release, name", hashes if few else ()):
            full = f"{row['release']}_{row['name']}" if row["release"] else row["name"]
            named.setdefault(row["hash"], []).append((row["id"], full))
        entries = []
        for row in rows:
            aliases = [full for i, full in named.get(row["hash"], []) if i != row["id"]]
            try:
                entries.append(_row_to_entry(row, alts.get(row["id"], []), aliases))
            except DamagedRow as damage:
                raise DamagedIndexError(
                    f"{self.index_path}: entry {row['id']} is damaged ({damage}): run `lutgen library check --repair`"
                ) from None
        return entries

    def __len__(self) -> int:
        row = self._one("SELECT COUNT(*) FROM entries")
        return int(row[0]) if row is not None else 0

    def query(
        self,
        *,
        bits: int | tuple[int, int] | None = None,
        signed: bool | None = None,
        max_mae: float | None = None,
        sort: str | None = None,
        origin: str | None = None,
        family: str | None = None,
        with_lut: bool | None = None,
    ) -> list[Entry]:
        """Entries matching all given filters, sorted by ``sort`` (a column or alias; ``-`` prefix: descending).

        ``bits=8`` means 8x8, ``bits=(8, 4)`` means 8x4. Entries lacking the sort value come last.
        """
        clauses: list[str] = []
        args: list[Any] = []
        if bits is not None:
            bits_a, bits_b = (bits, bits) if isinstance(bits, int) else bits
            if not all(isinstance(b, int) and 1 <= b <= 64 for b in (bits_a, bits_b)):
                raise ConfigError(f"widths {bits!r}: expected 1..64 bits")
            clauses.append("bits_a = ? AND bits_b = ?")
            args += [bits_a, bits_b]
        if signed is not None:
            clauses.append("signed = ?")
            args.append(int(signed))
        if max_mae is not None:
            if not math.isfinite(max_mae):
                raise ConfigError(f"max_mae {max_mae!r}: expected a finite number")
            clauses.append("mae_pct IS NOT NULL AND mae_pct <= ?")
            args.append(float(max_mae))
        if origin is not None:
            clauses.append("origin = ?")
            args.append(origin)
        if family is not None:
            clauses.append("family = ?")
            args.append(family)
        if with_lut is not None:
            clauses.append("has_lut = ?")
            args.append(int(with_lut))
        order = "bits_a, bits_b, signed, release, name, id"
        if sort:
            descending = sort.startswith("-")
            col = column(sort.removeprefix("-"))
            order = f"{col} IS NULL, {col} {'DESC' if descending else 'ASC'}, {order}"
        return self._entries(" AND ".join(clauses), args, order)

    def _candidates(self, identifier: str) -> list[Entry]:
        ident = identifier.strip()
        if not ident:
            return []
        exact = self._entries("release || '_' || name = ? AND release != ''", [ident])
        if exact:
            return exact
        by_name = self._entries("name = ?", [ident], "release, id")
        unreleased = [e for e in by_name if not e.release]  # (its full name is the name: no other can claim it)
        if len(unreleased) == 1:
            return unreleased
        if by_name:
            return by_name
        if len(ident) >= 4 and all(c in "0123456789abcdef" for c in ident.lower()):
            return self._entries("hash LIKE ?", [ident.lower() + "%"], "release, name, id")
        return []

    def entry(self, name_or_hash: str) -> Entry:
        """The entry called ``name_or_hash``: a name, ``<release>_<name>`` or a hash prefix (>= 4 hex digits).

        Raises :class:`LibraryError` when nothing or several entries match (listing the candidates).
        """
        found = self._candidates(name_or_hash)
        if len(found) == 1:
            return found[0]
        if not found:
            raise NotInLibraryError(self._not_found(name_or_hash))
        listing = ", ".join(f"{e.full_name} ({e.hash[:10]})" for e in found)
        if len({e.hash for e in found}) == 1:  # (one table under several names: no hash prefix tells them apart)
            raise NotInLibraryError(f"'{name_or_hash}' is ambiguous: {listing} hold one table; name one of them")
        if len({e.full_name for e in found}) < len(found):  # (a library from before names were kept unique)
            raise NotInLibraryError(f"'{name_or_hash}' is ambiguous: {listing}; use a hash prefix")
        raise NotInLibraryError(f"'{name_or_hash}' is ambiguous: {listing}; use the release prefix or a hash prefix")

    def _not_found(self, identifier: str) -> str:
        import difflib

        names = [str(row[0]) for row in self._rows("SELECT DISTINCT name FROM entries")]
        close = difflib.get_close_matches(identifier, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `lutgen library list`)"
        return f"no multiplier '{identifier}' in the library at {self.root}{hint}"

    def load_lut(self, name_or_hash: str | Entry, *, half_window: int = HALF_WINDOW, gradients: bool = True) -> Lut:
        """The table of an entry (or of a name / hash prefix), with gradient tables unless ``gradients=False``.

        Gradients are recomputed when ``half_window`` differs from the stored one (and for tables
        wider than 8x8, which are stored without). Names shared by several entries with the same
        table are not ambiguous here.
        """
        if isinstance(name_or_hash, Entry):
            chosen = name_or_hash
        else:
            found = self._candidates(name_or_hash)
            if len({e.hash for e in found}) != 1:
                self.entry(name_or_hash)  # raises the not-found / ambiguity error
            chosen = found[0]
        if not chosen.has_lut:
            raise LibraryUsageError(
                f"{chosen.full_name} is {chosen.kind}: too wide for a table, the library keeps its metrics only"
            )
        lut = self.blobs.load(chosen.hash, name=chosen.full_name)
        if not gradients:
            return _without_gradients(lut)
        if lut.grad_a is None or lut.meta.get("half_window") != half_window:
            lut = lut.with_gradients(half_window)
        return lut

    def half_window_choice(self, lut_hash: str) -> dict[str, Any] | None:
        """The half-window choice stored for a table's content hash (``None``: none, or unreadable)."""
        row = self._one("SELECT choice FROM half_windows WHERE lut_hash = ?", (lut_hash,))
        if row is None:
            return None
        try:
            choice = json.loads(row[0])
        except (ValueError, TypeError, RecursionError):
            return None
        return choice if isinstance(choice, dict) else None

    def store_half_window_choice(self, lut_hash: str, choice: Mapping[str, Any]) -> None:
        """Remember a table's half-window choice (one transaction; an older choice is replaced)."""
        with self._write():
            self._run(
                "INSERT INTO half_windows (lut_hash, choice, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (lut_hash) DO UPDATE SET choice = excluded.choice, updated = excluded.updated",
                (lut_hash, json.dumps(dict(choice), sort_keys=True), _now()),
            )

    def find_source(self, file_sha256: str) -> Entry | None:
        """The entry a file with this content was imported into, if any."""
        row = self._one("SELECT entry_id FROM sources WHERE file_sha256 = ?", (file_sha256,))
        if row is None:
            return None
        found = self._entries("id = ?", [row[0]])
        return found[0] if found else None

    def same_circuit(self, *, name: str, release: str, lut_hash: str) -> Entry | None:
        """The entry with exactly this release, name and hash, if present."""
        found = self._entries("release = ? AND name = ? AND hash = ?", [release, name, lut_hash])
        return found[0] if found else None

    def named(self, name: str, release: str = "") -> Entry | None:
        """The entry with exactly this release and name (one at most: a name holds one table), if present."""
        found = self._entries("release = ? AND name = ?", [release, name], "id")
        return found[0] if found else None

    def holding(self, lut_hash: str) -> list[Entry]:
        """The entries whose table has this hash (one circuit under its names), by release and name."""
        return self._entries("hash = ?", [lut_hash], "release, name, id")

    def builtin_installed(self) -> bool:
        """Whether the whole built-in set was installed once (:meth:`mark_builtin_installed`)."""
        return self._one("SELECT 1 FROM settings WHERE key = ?", (BUILTIN_INSTALLED,)) is not None

    def mark_builtin_installed(self) -> None:
        """Record that the whole built-in set was installed (the first time only)."""
        with self._write():
            self._run("INSERT OR IGNORE INTO settings VALUES (?, ?)", (BUILTIN_INSTALLED, _now()))

    # ----------------------------------------------------------------- writing
    def add(self, lut: Lut, netlist: Netlist | None = None, **details: Any) -> Entry:
        """Catalogue a table (see :meth:`store`) and return its entry, new or existing."""
        return self.store(lut, netlist, **details).entry

    def store(
        self,
        lut: Lut,
        netlist: Netlist | None = None,
        *,
        name: str | None = None,
        release: str = "",
        source: str = "",
        source_sha256: str | None = None,
        origin: str = "user",
        licence: str | None = None,
        citation: str | None = None,
        family: str | None = None,
        params: Mapping[str, Any] | None = None,
        cost: Cost | HardwareCost | None = None,
        published: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        gates: int | None = None,
        alternatives: Sequence[tuple[str, str]] = (),
    ) -> Stored:
        """Catalogue a table (and its blob with gradient tables) in one transaction, saying what changed.

        Metrics are computed from ``lut`` unless given; the gate count comes from ``netlist`` (or
        ``gates``); ``cost`` is stored as given (see :func:`estimated_cost` for circuits without
        published figures; any object with ``power_mw``, ``area_um2`` and ``delay_ns``, such as
        :class:`approxlut.synth.power.HardwareCost`, counts as estimated). ``alternatives`` are
        ``(path, sha256)`` of other files holding the same circuit (a ``_pdk45`` twin), recorded in
        the same transaction. When the entry exists (this process or another added it), its blob is
        verified and rewritten if damaged.
        """
        name = name or lut.name
        lut = _blob_form(lut)
        existing = self.same_circuit(name=name, release=release, lut_hash=lut.hash)
        if existing is not None:
            return self._revisit(existing, lut, source, source_sha256, alternatives)
        record = self._record(
            name=name,
            release=release,
            bits=(lut.bits_a, lut.bits_b),
            signed=lut.signed,
            lut_hash=lut.hash,
            has_lut=True,
            source=source,
            origin=origin,
            licence=licence,
            citation=citation,
            family=family,
            params=params,
            gates=gates if gates is not None else (netlist.gate_count() if netlist is not None else None),
            metrics=metrics or lut.metrics(),
            cost=cost,
            published=published,
        )
        with self._write():
            entry_id, inserted = self._insert(record)
            repaired = self.blobs.ensure(lut)
            new_source = self._insert_sources(entry_id, source, source_sha256, alternatives)
        entry = self._entries("id = ?", [entry_id])[0]
        return Stored(entry, "added" if inserted else _revisit_status(repaired, new_source))

    def _revisit(
        self,
        entry: Entry,
        lut: Lut | None,
        source: str,
        source_sha256: str | None,
        alternatives: Sequence[tuple[str, str]] = (),
    ) -> Stored:
        """An entry met again: verify (and mend) its blob, record the new source files; one transaction."""
        with self._write():
            repaired = lut is not None and self.blobs.ensure(lut)
            new_source = self._insert_sources(entry.id, source, source_sha256, alternatives)
        return Stored(self._entries("id = ?", [entry.id])[0], _revisit_status(repaired, new_source))

    def add_untabulated(self, **details: Any) -> Entry:
        """Catalogue a circuit too wide for a table (see :meth:`store_untabulated`); returns its entry."""
        return self.store_untabulated(**details).entry

    def store_untabulated(
        self,
        *,
        name: str,
        bits: tuple[int, int],
        signed: bool,
        function_hash: str,
        metrics: Metrics,
        release: str = "",
        source: str = "",
        source_sha256: str | None = None,
        origin: str = "user",
        licence: str | None = None,
        citation: str | None = None,
        family: str | None = None,
        params: Mapping[str, Any] | None = None,
        cost: Cost | None = None,
        published: Mapping[str, str] | None = None,
        gates: int | None = None,
        alternatives: Sequence[tuple[str, str]] = (),
    ) -> Stored:
        """Catalogue a circuit too wide for a table: metrics (streamed or Monte-Carlo) only, no blob.

        ``function_hash`` identifies the function (the importer hashes outputs on a fixed input sample).
        """
        existing = self.same_circuit(name=name, release=release, lut_hash=function_hash)
        if existing is not None:
            return self._revisit(existing, None, source, source_sha256, alternatives)
        record = self._record(
            name=name,
            release=release,
            bits=bits,
            signed=signed,
            lut_hash=function_hash,
            has_lut=False,
            source=source,
            origin=origin,
            licence=licence,
            citation=citation,
            family=family,
            params=params,
            gates=gates,
            metrics=metrics,
            cost=cost,
            published=published,
        )
        with self._write():
            entry_id, inserted = self._insert(record)
            new_source = self._insert_sources(entry_id, source, source_sha256, alternatives)
        entry = self._entries("id = ?", [entry_id])[0]
        return Stored(entry, "added" if inserted else _revisit_status(False, new_source))

    def add_source(self, entry: Entry, path: str, file_sha256: str) -> Entry:
        """Record another file holding the same circuit (e.g. the ``_pdk45.v`` twin); no-op if known."""
        return self._revisit(entry, None, path, file_sha256).entry

    def intact(self, entry: Entry) -> bool:
        """Whether an entry's table blob is present and verifies (always true for entries without a table)."""
        return not entry.has_lut or self.blobs.intact(entry.hash)

    def _insert_sources(
        self, entry_id: int, path: str, file_sha256: str | None, alternatives: Sequence[tuple[str, str]]
    ) -> bool:
        """Record the entry's source file and other files holding it (inside :meth:`_write`); whether any was new."""
        new = file_sha256 is not None and self._insert_source(file_sha256, path, entry_id)
        for alt_path, alt_sha256 in alternatives:
            new = self._insert_source(alt_sha256, alt_path, entry_id) or new
        return new

    def remove(self, name_or_hash: str | Entry) -> Entry:
        """Delete one entry (and its blob when no other entry shares it; a damaged row's hash names none)."""
        entry = name_or_hash if isinstance(name_or_hash, Entry) else self.entry(name_or_hash)
        with self._write():
            self._run("DELETE FROM entries WHERE id = ?", (entry.id,))
            shared = self._one("SELECT 1 FROM entries WHERE hash = ? AND has_lut = 1", (entry.hash,))
            if entry.has_lut and shared is None and self.blobs.names_a_blob(entry.hash):
                self.blobs.remove(entry.hash)
        return entry

    def clean(self) -> int:
        """Delete blobs no entry refers to and leftovers of interrupted writes; returns how many files went.

        Only ``lutgen library check --repair`` calls this, after checking the index (a damaged index
        cannot account for the blobs, so nothing may be deleted on its word).
        """
        with self._write():
            used = {row[0] for row in self._rows("SELECT DISTINCT hash FROM entries WHERE has_lut = 1")}
            count = self.blobs.remove_temporaries()
            for orphan in self.blobs.hashes() - used:
                self.blobs.remove(orphan)
                count += 1
            return count

    # ----------------------------------------------------------------- integrity (lutgen library check)
    def integrity_errors(self) -> list[str]:
        """SQLite's ``integrity_check`` findings (empty when the index is sound)."""
        messages = [str(row[0]) for row in self._rows("PRAGMA integrity_check(20)")]
        return [] if messages == ["ok"] else messages

    def reindex(self) -> None:
        """Rebuild every index of the database (mends damage confined to indexes)."""
        with self._write():
            self._run("REINDEX")

    def _garbled_rows(self, table: str, rowid: int | None = None) -> dict[int, str]:
        """``{rowid: column}`` of the rows of ``table`` (or of row ``rowid``) holding text that is not UTF-8 (which
        no query reading that column can return), with the first such column."""
        columns = [str(info[1]) for info in self._rows(f"PRAGMA table_info({table})")]
        raw = ", ".join(f"CAST({column} AS BLOB)" for column in columns)
        where = "" if rowid is None else f" WHERE rowid = {int(rowid)}"
        found = {}
        for row in self._rows(f"SELECT rowid, {raw} FROM {table}{where}"):
            for column, value in zip(columns, tuple(row)[1:], strict=True):
                if isinstance(value, bytes) and _utf8(value) is None:
                    found[int(row[0])] = column
                    break
        return found

    def damaged_rows(self) -> list[tuple[int, str, str, str]]:
        """``(id, name, origin, reason)`` of every entry row that does not decode into an :class:`Entry` (name and
        origin as far as they are text)."""
        garbled = self._garbled_rows("entries")
        found = []
        for entry_id, column in garbled.items():
            row = self._one("SELECT CAST(name AS BLOB), CAST(origin AS BLOB) FROM entries WHERE id = ?", (entry_id,))
            name, origin = (bytes(v or b"").decode("utf-8", "replace") for v in (row or (b"?", b"")))
            found.append((entry_id, name, origin, f"column {column!r} holds text that is not UTF-8"))
        readable = self._rows(
            "SELECT * FROM entries WHERE id NOT IN (SELECT value FROM json_each(?))", [json.dumps(sorted(garbled))]
        )
        for row in readable:
            try:
                _row_to_entry(row, [], [])
            except DamagedRow as damage:
                found.append((int(row["id"]), str(row["name"]), str(row["origin"]), str(damage)))
        return sorted(found)

    def mend_row(self, entry_id: int) -> bool:
        """Reset unreadable ``params``/``published`` of a row to ``{}``; delete the row when that is not enough.

        Returns whether the row was kept.
        """
        with self._write():
            for col in ("params", "published"):
                row = self._one(f"SELECT CAST({col} AS BLOB) FROM entries WHERE id = ?", (entry_id,))
                try:
                    _json_object(_utf8(row[0]) if row is not None else None, col)
                except (DamagedRow, TypeError):
                    self._run(f"UPDATE entries SET {col} = '{{}}' WHERE id = ?", (entry_id,))
            if self._garbled_rows("entries", entry_id):
                self._run("DELETE FROM entries WHERE id = ?", (entry_id,))
                return False
            rows = self._rows("SELECT * FROM entries WHERE id = ?", (entry_id,))
            try:
                for row in rows:
                    _row_to_entry(row, [], [])
            except DamagedRow:
                self._run("DELETE FROM entries WHERE id = ?", (entry_id,))
                return False
        return True

    def _dangling(self) -> dict[str, list[int]]:
        """The rowids :meth:`dangling_rows` counts, by table."""
        sources = set(self._garbled_rows("sources"))
        orphans = self._rows("SELECT rowid FROM sources WHERE entry_id NOT IN (SELECT id FROM entries)")
        sources |= {int(row[0]) for row in orphans}
        windows = set(self._garbled_rows("half_windows"))
        for rowid, lut_hash in self._rows("SELECT rowid, CAST(lut_hash AS BLOB) FROM half_windows"):
            text = _utf8(lut_hash) if isinstance(lut_hash, bytes) else None
            if text is None or self.half_window_choice(text) is None:
                windows.add(int(rowid))
        return {"sources": sorted(sources), "half_windows": sorted(windows)}

    def dangling_rows(self) -> dict[str, int]:
        """Rows that refer to nothing or hold unreadable data: ``sources`` without their entry, ``half_windows``
        whose choice is not a JSON object, and rows of either holding text that is not UTF-8."""
        return {table: len(rowids) for table, rowids in self._dangling().items()}

    def drop_dangling_rows(self) -> int:
        """Delete the rows :meth:`dangling_rows` counts (half-window choices are a cache, searched again)."""
        dangling = self._dangling()
        with self._write():
            return sum(
                self._run(f"DELETE FROM {table} WHERE rowid = ?", (rowid,)).rowcount
                for table, rowids in dangling.items()
                for rowid in rowids
            )

    def _copy_row(self, table: str, row: sqlite3.Row) -> None:
        """Insert a row read from another index (inside :meth:`_write`; salvage only)."""
        known = {info[1] for info in self._rows(f"PRAGMA table_info({table})")}
        names: list[str] = row.keys()
        cols = [key for key in names if key in known]
        marks = ", ".join("?" for _ in cols)
        self._run(f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({marks})", [row[c] for c in cols])

    def backup(self, target: Path) -> None:
        """Copy the index, as SQLite reads it now, to ``target`` (a consistent snapshot)."""
        try:
            copy = sqlite3.connect(target)
            try:
                self._db.backup(copy)
            finally:
                copy.close()
        except sqlite3.DatabaseError as error:
            raise _unreadable(self.index_path, error) from None

    def _record(
        self,
        *,
        name: str,
        release: str,
        bits: tuple[int, int],
        signed: bool,
        lut_hash: str,
        has_lut: bool,
        source: str,
        origin: str,
        licence: str | None,
        citation: str | None,
        family: str | None,
        params: Mapping[str, Any] | None,
        gates: int | None,
        metrics: Metrics,
        cost: Cost | HardwareCost | None,
        published: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        for part, what in ((name, "name"), (release, "release")):
            problem = name_problem(part) if part or what == "name" else None
            if problem is not None:
                raise ConfigError(f"cannot catalogue the {what} {part!r}: {problem}")
        values = metrics.as_dict()
        record: dict[str, Any] = {
            "name": name,
            "release": release,
            "bits_a": bits[0],
            "bits_b": bits[1],
            "signed": int(signed),
            "hash": lut_hash,
            "has_lut": int(has_lut),
            "source": source,
            "origin": origin,
            "licence": licence,
            "citation": citation,
            "family": family,
            "params": json.dumps(dict(params or {}), sort_keys=True, default=str),
            "gates": gates,
            "metrics_method": values.get("method"),
            "mre_convention": values.get("mre_convention", "nonzero"),
            "published": json.dumps(dict(published or {}), sort_keys=True),
            "created": _now(),
        }
        for col in METRIC_COLUMNS:
            record[col] = float(values[col])
        record["power_mw"] = float(cost.power_mw) if cost and cost.power_mw is not None else None
        record["area_um2"] = float(cost.area_um2) if cost and cost.area_um2 is not None else None
        record["delay_ns"] = float(cost.delay_ns) if cost and cost.delay_ns is not None else None
        record["power_source"] = getattr(cost, "power_source", "estimated") if cost else None
        return record

    def _insert(self, record: dict[str, Any]) -> tuple[int, bool]:
        """Insert an entry row (inside :meth:`_write`): ``(id, True)``, or ``(id, False)`` for a row another
        process added meanwhile."""
        key = (record["release"], record["name"], record["hash"])
        row = self._one("SELECT id FROM entries WHERE release = ? AND name = ? AND hash = ?", key)
        if row is not None:
            return int(row[0]), False
        taken = self._entries("release = ? AND name = ? AND hash != ?", key)
        if taken:
            held = taken[0]
            source = f", from {held.source}" if held.source else ""
            raise NameTakenError(
                f"{held.full_name} already names another circuit ({held.kind}, table {held.hash[:10]}{source}) and a "
                f"name holds one table: `lutgen library remove {held.full_name}` first to replace it, or catalogue "
                "this one under another name (for an import, rename the file)"
            )
        cols = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        cursor = self._run(f"INSERT INTO entries ({cols}) VALUES ({marks})", tuple(record.values()))
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid), True

    def _insert_source(self, file_sha256: str, path: str, entry_id: int) -> bool:
        """Record a file as the entry's primary source (its ``source`` column) or as an alternative.

        Returns whether the file was new to the library.
        """
        row = self._one("SELECT source FROM entries WHERE id = ?", (entry_id,))
        role = "primary" if row is not None and row[0] == path else "alternative"
        cursor = self._run(
            "INSERT OR IGNORE INTO sources (file_sha256, path, entry_id, role) VALUES (?, ?, ?, ?)",
            (file_sha256, path, entry_id, role),
        )
        return cursor.rowcount > 0


def missing_library(root: Path, named_by: str) -> str:
    """The one-line message for a library that must exist but does not (``named_by``: who named ``root``)."""
    return (
        f"no library at {root} (named by {named_by}); check the path, or create one there with "
        f"`lutgen library init --library {root}`"
    )


def _without_gradients(lut: Lut) -> Lut:
    meta = {k: v for k, v in lut.meta.items() if k not in ("grad_method", "half_window", "grad_compat")}
    return replace(lut, grad_a=None, grad_b=None, meta=meta)


def _blob_form(lut: Lut) -> Lut:
    """The LUT as stored: gradients (half window :data:`HALF_WINDOW`) for tables up to 8x8, none above."""
    if lut.bits_a + lut.bits_b > GRADIENT_MAX_BITS:
        return _without_gradients(lut)
    if lut.grad_a is None or lut.meta.get("half_window") != HALF_WINDOW or lut.meta.get("grad_method") != "difference":
        return lut.with_gradients(HALF_WINDOW)
    return lut


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SchemaUpgradeNeeded(LibraryUsageError):
    """A library written by an older lutgen, opened read-only: a writable open upgrades it (transactionally)."""


def _utf8(raw: bytes | None) -> str | None:
    """``raw`` as UTF-8 text; ``None`` where it is ``None`` or not UTF-8."""
    try:
        return None if raw is None else bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


class DamagedRow(ValueError):
    """A catalogue row whose values do not have the types the schema promises (says which column)."""


#: Column types of an entry row as :func:`_row_to_entry` accepts them (``None`` allowed where nullable).
_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "name": (str,),
    "release": (str,),
    "bits_a": (int,),
    "bits_b": (int,),
    "signed": (int,),
    "hash": (str,),
    "has_lut": (int,),
    "source": (str,),
    "origin": (str,),
    "licence": (str, type(None)),
    "citation": (str, type(None)),
    "family": (str, type(None)),
    "params": (str, type(None)),
    "gates": (int, type(None)),
    "metrics_method": (str, type(None)),
    "power_source": (str, type(None)),
    "published": (str, type(None)),
    "created": (str,),
    "mre_convention": (str,),
    **{col: (int, float, type(None)) for col in (*METRIC_COLUMNS, *COST_COLUMNS)},
}


def _json_object(text: str | None, column: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        raise DamagedRow(f"{column} is not JSON") from None
    if not isinstance(value, dict):
        raise DamagedRow(f"{column} is not a JSON object")
    return value


def _row_to_entry(row: sqlite3.Row, alt_sources: list[str], aliases: list[str]) -> Entry:
    """An :class:`Entry` from a row; :class:`DamagedRow` names the first column with a wrong value."""
    data = {key: row[key] for key in _ENTRY_FIELDS}
    for key, types in _ROW_TYPES.items():
        if not isinstance(data[key], types):
            raise DamagedRow(f"{key} holds {type(data[key]).__name__}")
    if data["bits_a"] < 1 or data["bits_b"] < 1 or len(data["hash"]) < 4:
        raise DamagedRow("widths or hash out of range")
    data["signed"] = bool(data["signed"])
    data["has_lut"] = bool(data["has_lut"])
    data["params"] = _json_object(data["params"], "params")
    data["published"] = _json_object(data["published"], "published")
    return Entry(**data, alt_sources=tuple(str(path) for path in alt_sources), aliases=tuple(aliases))


class Stored(NamedTuple):
    """What :meth:`Library.store` did: the entry, and ``added``, ``merged`` (a new source file for an
    existing entry), ``repaired`` (its damaged blob was rewritten) or ``present`` (nothing new)."""

    entry: Entry
    status: str


def _revisit_status(repaired: bool, new_source: bool) -> str:
    return "repaired" if repaired else "merged" if new_source else "present"


#: The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def inspect_index(db_path: Path) -> str:
    """``"absent"`` or ``"sqlite"``; anything else at ``db_path`` raises :class:`LibraryError` naming it.

    An empty (0-byte) file, a file that is not SQLite, and a folder or special file are all errors:
    lutgen creates its index whole (:func:`create_index`), so none of them is a new library.
    """
    try:
        info = db_path.stat()
    except FileNotFoundError:
        return "absent"
    except OSError as error:
        raise LibraryError(f"cannot read the library index {db_path}: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise LibraryError(f"the library index {db_path} is not a regular file")
    if info.st_size == 0:
        raise LibraryError(
            f"the library index {db_path} is empty (0 bytes): restore it from a backup, or run "
            "`lutgen library check --repair` to set it aside and start an empty index (tables are kept)"
        )
    try:
        with open(db_path, "rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise LibraryError(f"cannot read the library index {db_path}: {error.strerror or error}") from None
    if magic != SQLITE_MAGIC:
        raise LibraryError(
            f"the library index {db_path} is not an SQLite database (damaged or foreign): restore it from a "
            "backup, or run `lutgen library check --repair` to set it aside and start an empty index"
        )
    return "sqlite"


#: Names of the index tables :func:`salvage_index` copies, in dependency order.
SALVAGED_TABLES = ("entries", "sources", "half_windows")
#: Most row ids probed one by one when a table cannot be read in one scan.
SALVAGE_MAX_PROBES = 1_000_000


def set_aside(root: Path) -> Path:
    """Rename a damaged index (with its write-ahead log) to ``catalogue.sqlite.damaged-<UTC time>``; returns it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = root / f"{DB_NAME}.damaged-{stamp}"
    serial = 1
    while target.exists():
        serial += 1
        target = root / f"{DB_NAME}.damaged-{stamp}-{serial}"
    try:
        for suffix in ("-wal", "-shm", ""):
            source = root / (DB_NAME + suffix)
            if source.exists():
                os.replace(source, Path(str(target) + suffix))
    except OSError as error:
        raise LibraryError(f"cannot set the damaged index {root / DB_NAME} aside: {error.strerror or error}") from None
    fsync_dir(root)
    return target


def damaged_copies(root: Path) -> list[Path]:
    """Indexes set aside by :func:`set_aside` (their entries may still refer to blobs)."""
    return sorted(p for p in root.glob(f"{DB_NAME}.damaged-*") if not p.name.endswith(("-wal", "-shm")))


def salvage_index(root: Path, damaged: Path) -> tuple[int, int]:
    """Create a new index at ``root`` holding every row that can still be read from ``damaged``.

    Rows are read in one scan per table where that works, else one row id at a time, skipping the
    unreadable ones; entry rows that do not decode are left out. Returns ``(entries kept, rows lost)``
    where lost counts the rows SQLite could not read or that did not decode (an estimate when the
    table's size itself is unreadable).
    """
    create_index(root)
    rows: dict[str, list[sqlite3.Row]] = {}
    lost = 0
    try:
        source = sqlite3.connect(f"{damaged.resolve().as_uri()}?mode=ro", uri=True)
        source.row_factory = sqlite3.Row
    except sqlite3.DatabaseError:
        return 0, 0
    try:
        for table in SALVAGED_TABLES:
            rows[table], missed = _readable_rows(source, table)
            lost += missed
    finally:
        source.close()
    with Library.open(root) as lib, lib._write():
        kept_ids: set[int] = set()
        for row in rows["entries"]:
            try:
                _row_to_entry(row, [], [])
            except (DamagedRow, IndexError, KeyError):
                lost += 1
                continue
            lib._copy_row("entries", row)
            kept_ids.add(int(row["id"]))
        for row in rows["sources"]:
            if row["entry_id"] in kept_ids:
                lib._copy_row("sources", row)
        for row in rows["half_windows"]:
            lib._copy_row("half_windows", row)
    return len(kept_ids), lost


def _readable_rows(source: sqlite3.Connection, table: str) -> tuple[list[sqlite3.Row], int]:
    """The rows of ``table`` that can be read, and how many could not."""
    try:
        return source.execute(f"SELECT * FROM {table}").fetchall(), 0
    except sqlite3.DatabaseError:
        pass
    try:
        top = source.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        top = SALVAGE_MAX_PROBES
    found, missed = [], 0
    for rowid in range(1, min(int(top), SALVAGE_MAX_PROBES) + 1):
        try:
            row = source.execute(f"SELECT * FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            missed += 1
            continue
        if row is not None:
            found.append(row)
    return found, missed


def create_index(root: Path) -> bool:
    """Create an index with the full schema in a temporary file, then link it into place (never clobbers).

    Returns whether this call's index is the one in place (``False``: another process linked its own first).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{DB_NAME}.", suffix=".new", dir=root)
        os.fchmod(fd, new_file_mode())  # (mkstemp makes it 0600; the index is a file like the tables)
        os.close(fd)
    except OSError as error:
        raise LibraryError(f"cannot create a library at {root}: {error.strerror or error}") from None
    try:
        connection = sqlite3.connect(tmp, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
            Library(root, connection)._migrate()
        finally:
            connection.close()
        try:
            os.link(tmp, root / DB_NAME)
            linked = True
        except FileExistsError:  # another process created it first: use theirs
            linked = False
        fsync_dir(root)
    except (OSError, sqlite3.Error) as error:
        raise LibraryError(f"cannot create a library at {root}: {error}") from None
    finally:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            with suppress(FileNotFoundError):
                os.unlink(leftover)
    return linked


def _connect(db_path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to the index; read-only ones fall back to SQLite's ``immutable`` mode where the
    folder cannot take the write-ahead log's shared-memory file (read-only storage)."""
    if not readonly:
        connection = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    else:
        uri = db_path.resolve().as_uri()
        connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            connection.close()
            connection = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def _refused_write(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite refused to write because the index or its folder is read-only (SQLITE_READONLY...)."""
    return str(getattr(error, "sqlite_errorname", "")).startswith("SQLITE_READONLY")


def _write_error(root: Path, error: sqlite3.DatabaseError) -> LibraryError:
    """The one-line error for a write transaction SQLite could not begin or commit."""
    return (
        read_only_error(root)
        if _refused_write(error)
        else LibraryError(f"cannot write to the library at {root}: {error}")
    )


def read_only_error(root: Path) -> LibraryUsageError:
    """The one-line error for a write to a library lutgen cannot write (exit code 2)."""
    return LibraryUsageError(
        f"the library at {root} is read-only (lutgen cannot write its folder or its index): make it writable, or "
        "name another library with --library"
    )


def _writable(root: Path) -> bool:
    """Whether lutgen can write the library at ``root`` (its folder and its index)."""
    db_path = root / DB_NAME
    if not os.access(root, os.W_OK | os.X_OK) or (db_path.exists() and not os.access(db_path, os.W_OK)):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=root)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _unreadable(db_path: Path, error: sqlite3.DatabaseError) -> LibraryError:
    """The one-line error for a damaged index (a busy one says so instead, and one SQLite will not write is
    read-only)."""
    if _refused_write(error):
        return read_only_error(db_path.parent)
    text = str(error)
    if "locked" in text or "busy" in text:
        return LibraryError(f"the library index {db_path} is busy ({text}): another lutgen is writing; try again")
    return DamagedIndexError(f"the library index {db_path} is damaged ({text}): run `lutgen library check --repair`")
