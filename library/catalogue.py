"""The catalogue: the one class that owns all SQL (an SQLite index beside a folder of LUT blobs).

Layout of a library folder::

    catalogue.sqlite   index (WAL mode, so readers never block on a writer)
    blobs/<hash>.npz   one table per distinct LUT (forward + gradients), see :mod:`.blobs`

An entry is one circuit: ``(release, name, hash)`` is unique, so the same function published twice
under different names (or by different releases) gives two entries sharing one blob, while one
name reused for a different circuit by a later release stays apart. Each write is one transaction
that takes the write lock first and writes the blob inside it, so a crash leaves at most an
unreferenced blob, which :meth:`Library.clean` (run before every import) removes.
Schema changes are numbered migrations (SQL scripts, or Python steps for data) recorded in the
``migrations`` table. The ``half_windows`` table keeps, per table content hash, the half window that
``--half-window auto`` chose (:mod:`approxlut.nn.halfwindow`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, LibraryError, NotInLibraryError
from ..lutgen.metrics import METRIC_KEYS, Metrics, matches_published
from .blobs import BlobStore
from .config import FROM_DEFAULT, library_dir, library_location

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
)

#: Error-metric columns, in display order.
METRIC_COLUMNS = METRIC_KEYS
#: Metrics that are maxima over the inputs: from a sample, lower bounds.
WORST_CASE_COLUMNS = ("wce_pct", "wcre_pct", "wce")
#: Hardware-cost columns.
COST_COLUMNS = ("power_mw", "area_um2", "delay_ns")
#: Decimals the cost columns are shown with (as EvoApproxLib prints them).
COST_DECIMALS = {"power_mw": 3, "area_um2": 1, "delay_ns": 2}
#: Short names accepted wherever a column is named (``--sort power``, ``pareto --x power --y mae``).
COLUMN_ALIASES = {
    "power": "power_mw",
    "area": "area_um2",
    "delay": "delay_ns",
    "mae": "mae_pct",
    "wce%": "wce_pct",
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
    """The column a user-facing name refers to (``power`` -> ``power_mw``); raises ConfigError if unknown."""
    key = COLUMN_ALIASES.get(name.lower(), name.lower())
    if key not in SORTABLE_COLUMNS:
        known = ", ".join(sorted({*COLUMN_ALIASES, *SORTABLE_COLUMNS}))
        raise ConfigError(f"unknown column '{name}' (known: {known})")
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
    alt_sources: tuple[str, ...] = field(default=())

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
        data["full_name"] = self.full_name
        data["kind"] = self.kind
        return data


_ENTRY_FIELDS = [f for f in Entry.__dataclass_fields__ if f != "alt_sources"]


class Library:
    """A multiplier catalogue in one folder. Open with :meth:`open`; use as a context manager to close.

    Example:
        >>> with Library.open("/tmp/lib") as lib:  # doctest: +SKIP
        ...     lut = lib.load_lut("exact8s")
    """

    def __init__(self, root: Path, connection: sqlite3.Connection):
        self.root = root
        self.blobs = BlobStore(root / BLOB_DIR)
        self._db = connection

    # ----------------------------------------------------------------- opening
    @classmethod
    def exists(cls, path: str | os.PathLike[str] | None = None) -> bool:
        """Whether a library (its index file) is at ``path`` / ``$LUTGEN_LIBRARY`` / the data dir."""
        return (library_dir(path) / DB_NAME).is_file()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Library:
        """Open the library at ``path`` / ``$LUTGEN_LIBRARY`` / the data dir, creating it unless ``create=False``.

        Raises:
            ConfigError: ``create=False`` and there is no library there (the message names the path and
                who named it).
        """
        root, named_by = library_location(path)
        if not create and not (root / DB_NAME).is_file():
            raise ConfigError(_missing(root, named_by))
        try:
            root.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(root / DB_NAME, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise LibraryError(f"cannot open library at {root}: {error}") from None
        connection.row_factory = sqlite3.Row
        lib = cls(root, connection)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            lib._migrate()
        except sqlite3.DatabaseError as error:
            connection.close()
            raise LibraryError(f"library index {root / DB_NAME} is unreadable: {error}") from None
        except LibraryError:
            connection.close()
            raise
        return lib

    @classmethod
    def open_default(cls, path: str | os.PathLike[str] | None = None) -> Library:
        """The library that reading commands use, with the built-in set installed when it holds none of it.

        Only the default location is created when absent; a library named by ``path`` or
        ``$LUTGEN_LIBRARY`` must exist (:class:`ConfigError` otherwise, naming the path).
        """
        from .builtin import install_builtin

        lib = cls.open(path, create=library_location(path)[1] == FROM_DEFAULT)
        if not lib.has_builtin():
            install_builtin(lib)
        return lib

    def close(self) -> None:
        """Close the index."""
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        done = {row[0] for row in self._db.execute("SELECT version FROM migrations")}
        newest = MIGRATIONS[-1][0]
        if done and max(done) > newest:
            raise LibraryError(
                f"the library at {self.root} has schema version {max(done)}, newer than this lutgen's ({newest}): "
                "upgrade lutgen or use another --library"
            )
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
        row = self._db.execute("SELECT MAX(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction holding the database write lock (BEGIN IMMEDIATE)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise LibraryError(f"cannot write to the library at {self.root}: {error}") from None
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            self._db.execute("ROLLBACK")
            raise LibraryError(f"cannot write to the library at {self.root}: {error}") from None

    # ----------------------------------------------------------------- reading
    def _entries(self, where: str = "", args: Sequence[Any] = (), order: str = "") -> list[Entry]:
        sql = "SELECT * FROM entries" + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else "")
        rows = self._db.execute(sql, tuple(args)).fetchall()
        if not rows:
            return []
        alts: dict[int, list[str]] = {}
        for row in self._db.execute("SELECT entry_id, path FROM sources WHERE role = 'alternative' ORDER BY path"):
            alts.setdefault(row["entry_id"], []).append(row["path"])
        return [_row_to_entry(row, alts.get(row["id"], [])) for row in rows]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

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
            clauses.append("bits_a = ? AND bits_b = ?")
            args += [bits_a, bits_b]
        if signed is not None:
            clauses.append("signed = ?")
            args.append(int(signed))
        if max_mae is not None:
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
            col = column(sort.lstrip("-"))
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
        raise NotInLibraryError(f"'{name_or_hash}' is ambiguous: {listing}; use the release prefix or a hash prefix")

    def _not_found(self, identifier: str) -> str:
        import difflib

        names = [row[0] for row in self._db.execute("SELECT DISTINCT name FROM entries")]
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
            raise LibraryError(
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
        row = self._db.execute("SELECT choice FROM half_windows WHERE lut_hash = ?", (lut_hash,)).fetchone()
        if row is None:
            return None
        try:
            choice = json.loads(row[0])
        except ValueError:
            return None
        return choice if isinstance(choice, dict) else None

    def store_half_window_choice(self, lut_hash: str, choice: Mapping[str, Any]) -> None:
        """Remember a table's half-window choice (one transaction; an older choice is replaced)."""
        with self._write():
            self._db.execute(
                "INSERT INTO half_windows (lut_hash, choice, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (lut_hash) DO UPDATE SET choice = excluded.choice, updated = excluded.updated",
                (lut_hash, json.dumps(dict(choice), sort_keys=True), _now()),
            )

    def find_source(self, file_sha256: str) -> Entry | None:
        """The entry a file with this content was imported into, if any."""
        row = self._db.execute("SELECT entry_id FROM sources WHERE file_sha256 = ?", (file_sha256,)).fetchone()
        if row is None:
            return None
        found = self._entries("id = ?", [row[0]])
        return found[0] if found else None

    def same_circuit(self, *, name: str, release: str, lut_hash: str) -> Entry | None:
        """The entry with exactly this release, name and hash, if present."""
        found = self._entries("release = ? AND name = ? AND hash = ?", [release, name, lut_hash])
        return found[0] if found else None

    def has_builtin(self) -> bool:
        """Whether any built-in entry is present."""
        return self._db.execute("SELECT 1 FROM entries WHERE origin = 'builtin' LIMIT 1").fetchone() is not None

    # ----------------------------------------------------------------- writing
    def add(
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
    ) -> Entry:
        """Catalogue a table (and its blob with gradient tables) in one transaction; no-op if already present.

        Metrics are computed from ``lut`` unless given; the gate count comes from ``netlist`` (or
        ``gates``); ``cost`` is stored as given (see :func:`estimated_cost` for circuits without
        published figures; any object with ``power_mw``, ``area_um2`` and ``delay_ns``, such as
        :class:`approxlut.synth.power.HardwareCost`, counts as estimated). Returns the new or the
        existing entry.
        """
        name = name or lut.name
        existing = self.same_circuit(name=name, release=release, lut_hash=lut.hash)
        if existing is not None:
            if source_sha256 is not None:
                self.add_source(existing, source, source_sha256)
            return existing
        metrics = metrics or lut.metrics()
        lut = _blob_form(lut)
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
            metrics=metrics,
            cost=cost,
            published=published,
        )
        with self._write():
            self.blobs.write(lut)
            entry_id = self._insert(record)
            if source_sha256 is not None:
                self._insert_source(source_sha256, source, entry_id)
        return self._entries("id = ?", [entry_id])[0]

    def add_untabulated(
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
    ) -> Entry:
        """Catalogue a circuit too wide for a table: metrics (streamed or Monte-Carlo) only, no blob.

        ``function_hash`` identifies the function (the importer hashes outputs on a fixed input sample).
        """
        existing = self.same_circuit(name=name, release=release, lut_hash=function_hash)
        if existing is not None:
            if source_sha256 is not None:
                self.add_source(existing, source, source_sha256)
            return existing
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
            entry_id = self._insert(record)
            if source_sha256 is not None:
                self._insert_source(source_sha256, source, entry_id)
        return self._entries("id = ?", [entry_id])[0]

    def add_source(self, entry: Entry, path: str, file_sha256: str) -> Entry:
        """Record another file holding the same circuit (e.g. the ``_pdk45.v`` twin); no-op if known."""
        with self._write():
            self._insert_source(file_sha256, path, entry.id)
        return self._entries("id = ?", [entry.id])[0]

    def remove(self, name_or_hash: str) -> Entry:
        """Delete one entry (and its blob when no other entry shares it)."""
        entry = self.entry(name_or_hash)
        with self._write():
            self._db.execute("DELETE FROM entries WHERE id = ?", (entry.id,))
            self._remove_orphans()
        return entry

    def clean(self) -> int:
        """Delete blobs no entry refers to and leftovers of interrupted writes; returns how many files went."""
        with self._write():
            return self._remove_orphans()

    def _remove_orphans(self) -> int:
        """Must run inside :meth:`_write`: no other writer can be between blob write and commit."""
        used = {row[0] for row in self._db.execute("SELECT DISTINCT hash FROM entries WHERE has_lut = 1")}
        count = self.blobs.remove_temporaries()
        for orphan in self.blobs.hashes() - used:
            self.blobs.remove(orphan)
            count += 1
        return count

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
        if not name:
            raise ConfigError("a library entry needs a name")
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

    def _insert(self, record: dict[str, Any]) -> int:
        """Insert an entry row (inside :meth:`_write`); a row another process added meanwhile is reused."""
        key = (record["release"], record["name"], record["hash"])
        row = self._db.execute("SELECT id FROM entries WHERE release = ? AND name = ? AND hash = ?", key).fetchone()
        if row is not None:
            return int(row[0])
        cols = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        cursor = self._db.execute(f"INSERT INTO entries ({cols}) VALUES ({marks})", tuple(record.values()))
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def _insert_source(self, file_sha256: str, path: str, entry_id: int) -> None:
        """Record a file as the entry's primary source (its ``source`` column) or as an alternative."""
        row = self._db.execute("SELECT source FROM entries WHERE id = ?", (entry_id,)).fetchone()
        role = "primary" if row is not None and row[0] == path else "alternative"
        self._db.execute(
            "INSERT OR IGNORE INTO sources (file_sha256, path, entry_id, role) VALUES (?, ?, ?, ?)",
            (file_sha256, path, entry_id, role),
        )


def _missing(root: Path, named_by: str) -> str:
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


def _row_to_entry(row: sqlite3.Row, alt_sources: list[str]) -> Entry:
    data = {key: row[key] for key in _ENTRY_FIELDS}
    data["signed"] = bool(data["signed"])
    data["has_lut"] = bool(data["has_lut"])
    data["params"] = json.loads(data["params"] or "{}")
    data["published"] = json.loads(data["published"] or "{}")
    return Entry(**data, alt_sources=tuple(alt_sources))
