"""LUT blobs: one ``.npz`` per table (forward + gradients), named by the table's content hash.

Blobs are written atomically (:func:`approxlut.fileio.atomic_write`) and verified whenever they are
loaded, and before an existing file is trusted by :meth:`BlobStore.write`: the forward table against
the file name (its hash), the gradient tables against the hash recorded beside them. Arrays ``forward``,
``grad_a``, ``grad_b`` and ``meta`` (JSON), deflated; gradients are left out of tables wider than 8x8 to
keep the store small (:meth:`~approxlut.library.catalogue.Library.load_lut` recomputes them).

Tables wider than 8x8 are stored as ``forward_delta`` (each row's differences along operand b, int32
modulo 2^32), which deflates 64 MiB 12x12 multiplier tables to a few hundred KiB; a table whose blob
that does not at least halve is stored flat instead, and so are blobs written before (both load).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import ConfigError, LibraryError, LibraryUsageError, ParseError, WriteError
from ..fileio import atomic_write, denied, parse_json, read_bytes
from ..lutgen.formats import MAX_NPZ_BYTES, MAX_TABLE_BITS
from ..lutgen.lut import Lut
from ..lutgen.npzfile import NpzArchive

SUFFIX = ".npz"
_HASH = re.compile(r"[0-9a-f]{64}")
TMP_SUFFIX = ".tmp"
COMPRESS_LEVEL = 6
COMPRESS_MAX_ENTRIES = 1 << 16
"""Tables up to this many entries (8x8) are deflated as they are; larger ones as row differences."""
WIDE_MAX_RATIO = 0.5
"""A wide table stays deflated only when that at most halves its size; else it is stored flat (faster load)."""
DAMAGED_DIR = "damaged"
"""Folder beside ``blobs/`` where things found under a blob's name that are not files lutgen wrote go."""
MAX_BLOB_BYTES = MAX_NPZ_BYTES
"""Largest blob read (a 12x12 table stored flat with gradients would be about this size)."""


class BlobStore:
    """A folder of content-addressed LUT files."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def names_a_blob(lut_hash: str) -> bool:
        """Whether ``lut_hash`` is a hash a blob can have (64 hex digits), not a damaged index's value."""
        return _HASH.fullmatch(lut_hash) is not None

    def path(self, lut_hash: str) -> Path:
        """Where the blob of ``lut_hash`` lives; a hash that is not 64 hex digits (a damaged or hostile index's)
        is a :class:`LibraryError`, never a path elsewhere."""
        if not self.names_a_blob(lut_hash):
            raise LibraryError(f"the library index names a table by {lut_hash[:80]!r}, not a SHA-256 hash")
        return self.root / f"{lut_hash}{SUFFIX}"

    def write(self, lut: Lut) -> Path:
        """Store ``lut`` under its hash (see :meth:`ensure`); returns the blob's path."""
        self.ensure(lut)
        return self.path(lut.hash)

    def ensure(self, lut: Lut) -> bool:
        """Store ``lut`` under its hash; a file already there is kept only when it verifies, else rewritten.

        Returns whether a file was written (``False``: an intact blob was already there).
        """
        lut_hash = lut.hash
        target = self.path(lut_hash)
        if target.is_file() and not target.is_symlink() and self.intact(lut_hash):
            return False
        if target.is_symlink() or (target.exists() and not target.is_file()):
            self.set_aside(target)
        arrays: dict[str, np.ndarray] = {"forward": lut.forward}
        if lut.grad_a is not None and lut.grad_b is not None:
            arrays["grad_a"] = lut.grad_a
            arrays["grad_b"] = lut.grad_b
        header = {"bits_a": lut.bits_a, "bits_b": lut.bits_b, "signed": lut.signed, "grad_hash": grad_hash(lut)}
        arrays["meta"] = np.array(json.dumps({"blob": header, "meta": lut.meta}, sort_keys=True, default=str))
        try:
            atomic_write(target, lambda handle: _write_npz(handle, arrays), make_parents=True)
        except WriteError as error:
            message = f"cannot write blob {lut_hash[:12]} into {self.root}: {error.reason}"
            raise (LibraryUsageError if error.denied else LibraryError)(message) from None
        return True

    def intact(self, lut_hash: str) -> bool:
        """Whether the blob of ``lut_hash`` is present and verifies (its tables match the hashes)."""
        try:
            self.load(lut_hash, name=lut_hash[:12])
        except LibraryError:
            return False
        return True

    def load(self, lut_hash: str, *, name: str) -> Lut:
        """Read and verify the blob of ``lut_hash``; ``name`` is the entry named in error messages.

        Sizes are checked from the headers before anything is allocated (:mod:`approxlut.lutgen.npzfile`).
        """
        path = self.path(lut_hash)
        if not path.is_file():
            raise LibraryError(f"blob {lut_hash[:12]} is missing: re-import {name}")
        corrupted = f"blob {lut_hash[:12]} is corrupted: re-import {name} (or run `lutgen library check --repair`)"
        try:
            archive = NpzArchive(read_bytes(path, limit=MAX_BLOB_BYTES, what="LUT blob"), str(path))
            stored = parse_json(archive.text("meta"), str(path))
            header = stored["blob"]
            bits_a, bits_b = int(header["bits_a"]), int(header["bits_b"])
            if not (bits_a >= 1 and bits_b >= 1 and bits_a + bits_b <= MAX_TABLE_BITS):
                raise LibraryError(corrupted)
            shape = (1 << bits_a, 1 << bits_b)
            if "forward" in archive:
                forward = archive.array("forward", dtypes=("<i4",), shape=shape)
            else:
                forward = from_row_deltas(archive.array("forward_delta", dtypes=("<i4",), shape=shape))
            grads = [
                archive.array(key, dtypes=("<f4",), shape=shape) if key in archive else None
                for key in ("grad_a", "grad_b")
            ]
            lut = Lut(
                forward,
                bits_a,
                bits_b,
                bool(header["signed"]),
                name=name,
                grad_a=grads[0],
                grad_b=grads[1],
                meta=dict(stored["meta"]),
            )
        except (ParseError, ValueError, KeyError, TypeError, ConfigError):
            raise LibraryError(corrupted) from None
        if lut.hash != lut_hash or grad_hash(lut) != header["grad_hash"]:
            raise LibraryError(corrupted)
        return lut

    def hashes(self) -> set[str]:
        """Hashes of all blobs present."""
        if not self.root.is_dir():
            return set()
        return {p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}") if not p.name.startswith(".")}

    def remove(self, lut_hash: str) -> None:
        """Delete a blob (missing is fine); something else found under its name is set aside, not deleted."""
        path = self.path(lut_hash)
        if path.is_symlink() or not path.exists() or path.is_file():
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                message = f"cannot delete blob {lut_hash[:12]} from {self.root}: {error.strerror or error}"
                raise (LibraryUsageError if denied(error) else LibraryError)(message) from None
        else:
            self.set_aside(path)

    def set_aside(self, path: Path) -> Path:
        """Move something that is not a lutgen table out of the way, into the library's ``damaged/`` folder."""
        folder = self.root.parent / DAMAGED_DIR
        target = folder / path.name
        serial = 1
        while target.exists() or target.is_symlink():
            serial += 1
            target = folder / f"{path.name}.{serial}"
        try:
            folder.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError as error:
            raise LibraryError(f"cannot move {path} out of the way: {error.strerror or error}") from None
        return target

    def remove_temporaries(self) -> int:
        """Delete leftovers of interrupted writes; call only while holding the library's write lock."""
        if not self.root.is_dir():
            return 0
        count = 0
        for tmp in self.root.glob(f".*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            count += 1
        return count


def _write_npz(handle: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz``: deflated up to 8x8; above, row differences deflated when that pays off, else flat."""
    forward = arrays["forward"]
    if forward.size <= COMPRESS_MAX_ENTRIES:
        _write_zip(handle, arrays, zipfile.ZIP_DEFLATED)
        return
    packed = io.BytesIO()
    deltas = {("forward_delta" if key == "forward" else key): array for key, array in arrays.items()}
    deltas["forward_delta"] = row_deltas(forward)
    _write_zip(packed, deltas, zipfile.ZIP_DEFLATED)
    if packed.tell() <= WIDE_MAX_RATIO * forward.nbytes:
        handle.write(packed.getbuffer())
    else:
        _write_zip(handle, arrays, zipfile.ZIP_STORED)


def _write_zip(handle: BinaryIO, arrays: dict[str, np.ndarray], method: int) -> None:
    level = COMPRESS_LEVEL if method == zipfile.ZIP_DEFLATED else None
    with zipfile.ZipFile(handle, "w", compression=method, compresslevel=level) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def row_deltas(forward: np.ndarray) -> np.ndarray:
    """Each row's first value, then its differences along the columns (int32, wrapping modulo 2^32)."""
    table = np.ascontiguousarray(forward, dtype=np.int32)
    deltas = table.copy()
    np.subtract(table[:, 1:], table[:, :-1], out=deltas[:, 1:])
    return deltas


def from_row_deltas(deltas: np.ndarray) -> np.ndarray:
    """The table :func:`row_deltas` encoded (running sums along the rows, modulo 2^32)."""
    return np.cumsum(deltas, axis=1, dtype=np.int32)


def grad_hash(lut: Lut) -> str | None:
    """SHA-256 over the gradient tables (``None`` when the LUT has none)."""
    if lut.grad_a is None or lut.grad_b is None:
        return None
    h = hashlib.sha256()
    for grad in (lut.grad_a, lut.grad_b):
        h.update(np.ascontiguousarray(grad, dtype="<f4").tobytes())
    return h.hexdigest()
