"""LUT files: lutgen's ``.npz``, TFApprox binary truth tables, and the DATE'25 ``a b value`` text LUTs.

- ``.npz``: arrays ``forward`` (int32), optional ``grad_a``/``grad_b`` (float32) and ``meta`` (a JSON
  string with ``bits_a, bits_b, signed, name, hash`` and the LUT's own metadata). Writes are atomic;
  loads check shapes, dtypes and hashes so a damaged file is reported, never half-read.
- TFApprox: 65536 little-endian uint16, row-major, index ``a*256+b``, unsigned 8x8 only.
- DATE'25 text: ``*_lutfp.txt`` (``INFO:`` header, ``LUT for approximate multiplier:``, rows ``a b value``)
  and ``*_lutfp+bp_avg_<w>_<w>.txt`` (the same plus two gradient sections, values ``round(16*g)``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..circuits.io import NETLIST_SUFFIXES
from ..circuits.names import safe_name
from ..errors import InputError, ParseError
from ..fileio import atomic_write, parse_json, read_bytes
from .lut import Lut
from .npzfile import ZIP_ERRORS, NpzArchive

#: Version of the ``.npz`` layout written by :func:`save_npz`.
NPZ_VERSION = 1

#: Largest operand width accepted from a file (a 16x16 table would hold 2^32 entries).
MAX_BITS = 14
#: Largest table accepted from a file, in input bits (``bits_a + bits_b``): 2^24 entries, 64 MiB as int32.
MAX_TABLE_BITS = 24
#: Largest ``.npz`` LUT file read: a 12x12 table with both gradient tables, stored flat, and its metadata.
MAX_NPZ_BYTES = 3 * 4 * (1 << MAX_TABLE_BITS) + (16 << 20)
#: Largest metadata string in a LUT file.
MAX_META_BYTES = 4 << 20
#: Largest DATE'25 text LUT read: 16 MiB (a 10x10 table, or 9x9 with gradients; the flow's files are 8x8,
#: about 0.8 MB per section). Rows are parsed one Python object each, about 150 bytes per row.
MAX_TEXT_BYTES = 16 << 20

TFAPPROX_BITS = 8
TFAPPROX_BYTES = (1 << (2 * TFAPPROX_BITS)) * 2

#: Gradients in the DATE'25 text files are stored as ``round(16*g)``.
LUTFP_GRAD_SCALE = 16
LUTFP_FORWARD = "LUT for approximate multiplier:"
LUTFP_GRAD_A = "LUT for the gradient of the approximate multiplier w.r.t. the first operand:"
LUTFP_GRAD_B = "LUT for the gradient of the approximate multiplier w.r.t. the second operand:"
_LUTFP_SECTIONS = {LUTFP_FORWARD: "forward", LUTFP_GRAD_A: "grad_a", LUTFP_GRAD_B: "grad_b"}
_LUTFP_NAME = re.compile(r"^(?P<name>.+?)_lutfp(?:\+bp_\w+?)?\.txt$")
_HALF_WINDOW = re.compile(r"^INFO: half window = ([0-9]+)$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_INT32_MIN, _INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
_MAX_DIGITS = 20  # (values are int32; int() refuses more than 4300 digits with a ValueError of its own)


#: The LUT file formats, by the names ``--format`` takes.
LUT_FORMATS = ("npz", "tfapprox", "lutfp")
_ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = b"\xef\xbb\xbf"  # (editors on Windows start text files with it)
_SNIFF_BYTES = 4096


def sniff_lut_format(path: str | os.PathLike[str]) -> str | None:
    """The LUT format of a file judged by its content (not its name): ``npz``, ``lutfp``, ``tfapprox`` or ``None``.

    A zip archive holding ``meta.npy`` is a lutgen ``.npz``; ASCII text whose first line starts with
    ``INFO:`` or is the DATE'25 forward-section title is a DATE'25 text LUT; exactly 131072 bytes that are
    not text (neither ASCII nor UTF-8) form a TFApprox table, unless the file's extension is a netlist's
    (``.v``, ``.blif``, ...): a netlist is never taken for a table by its size. Anything else (a netlist,
    say) gives ``None``; unreadable files too.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a named pipe would block, a device never end
            return None
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return None
    size = info.st_size
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                return "npz" if "meta.npy" in archive.namelist() else None
        except ZIP_ERRORS:
            return None
    first = next((line.strip() for line in head.removeprefix(_UTF8_BOM).splitlines() if line.strip()), b"")
    if first.startswith(b"INFO:") or first == LUTFP_FORWARD.encode():
        return "lutfp"
    netlist = Path(path).suffix.lower() in NETLIST_SUFFIXES  # (a table only by a signature, never by its size)
    if size == TFAPPROX_BYTES and not netlist and not _looks_like_text(head):
        return "tfapprox"
    return None


def read_lut_file(path: str | os.PathLike[str], fmt: str | None = None) -> Lut:
    """Read a LUT file in ``fmt`` (default: :func:`sniff_lut_format`); :class:`ParseError` when it is none."""
    kind = fmt or sniff_lut_format(path)
    if kind == "npz":
        return load_npz(path)
    if kind == "lutfp":
        return read_lutfp(path)
    if kind == "tfapprox":
        return read_tfapprox(path)
    if kind is None:
        raise ParseError("not a LUT file (lutgen .npz, DATE'25 text or TFApprox binary)", str(path))
    raise InputError(f"unknown LUT format '{kind}' (choose from {', '.join(LUT_FORMATS)})")


def _looks_like_text(data: bytes) -> bool:
    """Whether ``data`` (the start of a file, maybe cut inside a character) reads as ASCII or UTF-8 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":  # not just a character cut at the end of the sample
            return False
        text = data[: error.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\r\n\f\ufeff" for char in text)


# ----------------------------------------------------------------------------------------------- npz


def npz_meta(lut: Lut) -> dict[str, Any]:
    """The ``meta`` object of ``lut``'s ``.npz`` file: layout version, widths, signedness, name, hashes, metadata."""
    return {
        "version": NPZ_VERSION,
        "bits_a": lut.bits_a,
        "bits_b": lut.bits_b,
        "signed": lut.signed,
        "name": lut.name,
        "hash": lut.hash,
        "grad_hash": _grad_hash(lut.grad_a, lut.grad_b),
        "meta": lut.meta,
    }


def save_npz(lut: Lut, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write ``lut`` (forward, gradients, metadata) to ``path`` atomically; ``compress``: zip-deflated arrays.

    :func:`load_npz` reads both forms.
    """
    try:
        meta_json = json.dumps(npz_meta(lut), default=_json_default, sort_keys=True)
    except TypeError as exc:
        raise InputError(f"LUT '{lut.name}': metadata cannot be stored as JSON ({exc})") from None
    arrays: dict[str, np.ndarray] = {"forward": lut.forward.astype(np.int32), "meta": np.array(meta_json)}
    if lut.grad_a is not None:
        arrays["grad_a"] = lut.grad_a.astype(np.float32)
    if lut.grad_b is not None:
        arrays["grad_b"] = lut.grad_b.astype(np.float32)
    savez = np.savez_compressed if compress else np.savez
    atomic_write(path, lambda f: savez(f, allow_pickle=False, **arrays))


def load_npz(path: str | os.PathLike[str]) -> Lut:
    """Read a LUT written by :func:`save_npz`; any damage raises :class:`ParseError` naming the file.

    Sizes are checked from the archive's headers before anything is allocated (:mod:`.npzfile`).
    """
    where = str(path)
    archive = NpzArchive(_read_bytes(path, limit=MAX_NPZ_BYTES), where)
    keys = set(archive.files)
    for required in ("forward", "meta"):
        if required not in keys:
            raise ParseError(f"not a lutgen LUT file: array '{required}' is missing", where)
    unknown = keys - {"forward", "grad_a", "grad_b", "meta"}
    if unknown:
        raise ParseError(f"not a lutgen LUT file: unexpected arrays {', '.join(sorted(unknown))}", where)
    meta = _decode_meta(archive.text("meta", max_bytes=MAX_META_BYTES), where)
    bits_a, bits_b = meta["bits_a"], meta["bits_b"]
    shape = (1 << bits_a, 1 << bits_b)
    forward = archive.array("forward", dtypes=("<i4",), shape=shape)
    grads: dict[str, np.ndarray | None] = {"grad_a": None, "grad_b": None}
    for key in grads:
        if key in keys:
            grads[key] = archive.array(key, dtypes=("<f4",), shape=shape)
    lut = Lut(
        forward=forward,
        bits_a=bits_a,
        bits_b=bits_b,
        signed=meta["signed"],
        name=meta["name"],
        grad_a=grads["grad_a"],
        grad_b=grads["grad_b"],
        meta=meta["meta"],
    )
    if lut.hash != meta["hash"]:
        raise ParseError("forward table does not match its recorded hash (the file is corrupted)", where)
    if _grad_hash(lut.grad_a, lut.grad_b) != meta["grad_hash"]:
        raise ParseError("gradient tables do not match their recorded hash (the file is corrupted)", where)
    return lut


def _decode_meta(text: str, where: str) -> dict[str, Any]:
    try:
        meta = parse_json(text, where)
    except ParseError as exc:
        raise ParseError(f"array 'meta' is not valid JSON ({_short(exc)})", where) from None
    if not isinstance(meta, dict):
        raise ParseError("array 'meta' is not a JSON object", where)
    types: dict[str, type | tuple[type, ...]] = {
        "version": int,
        "bits_a": int,
        "bits_b": int,
        "signed": bool,
        "name": str,
        "hash": str,
        "grad_hash": (str, type(None)),
        "meta": dict,
    }
    for key, kind in types.items():
        if key not in meta:
            raise ParseError(f"metadata lacks '{key}'", where)
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParseError(f"metadata '{key}' has the wrong type ({type(value).__name__})", where)
    if meta["version"] > NPZ_VERSION:
        raise ParseError(f"LUT file version {meta['version']} is newer than this lutgen ({NPZ_VERSION})", where)
    for key in ("bits_a", "bits_b"):
        if not 1 <= meta[key] <= MAX_BITS:
            raise ParseError(f"metadata '{key}' = {meta[key]} is outside 1..{MAX_BITS}", where)
    if meta["bits_a"] + meta["bits_b"] > MAX_TABLE_BITS:
        raise ParseError(
            f"a {meta['bits_a']}x{meta['bits_b']} table is too large (at most {MAX_TABLE_BITS} input bits)", where
        )
    return meta


def _grad_hash(grad_a: np.ndarray | None, grad_b: np.ndarray | None) -> str | None:
    if grad_a is None and grad_b is None:
        return None
    h = hashlib.sha256()
    for grad in (grad_a, grad_b):
        h.update(b"-" if grad is None else b"+" + np.ascontiguousarray(grad, dtype="<f4").tobytes())
    return h.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ------------------------------------------------------------------------------------------ TFApprox


def read_tfapprox(path: str | os.PathLike[str], *, name: str | None = None) -> Lut:
    """Read a TFApprox binary truth table (unsigned 8x8, 65536 little-endian uint16, index ``a*256+b``)."""
    where = str(path)
    data = _read_bytes(path, limit=TFAPPROX_BYTES)
    if len(data) != TFAPPROX_BYTES:
        raise ParseError(
            f"a TFApprox table has {TFAPPROX_BYTES} bytes (65536 x uint16), this file has {len(data)}", where
        )
    side = 1 << TFAPPROX_BITS
    forward = np.frombuffer(data, dtype="<u2").reshape(side, side).astype(np.int32)
    return Lut(
        forward=forward,
        bits_a=TFAPPROX_BITS,
        bits_b=TFAPPROX_BITS,
        signed=False,
        name=name or safe_name(Path(where).stem),
        meta={"source": where, "format": "tfapprox"},
    )


def write_tfapprox(lut: Lut, path: str | os.PathLike[str]) -> None:
    """Write ``lut`` as a TFApprox binary table; refuses LUTs that format cannot hold."""
    if (lut.bits_a, lut.bits_b) != (TFAPPROX_BITS, TFAPPROX_BITS) or lut.signed:
        kind = "signed" if lut.signed else "unsigned"
        raise InputError(
            f"LUT '{lut.name}' is {kind} {lut.bits_a}x{lut.bits_b}; TFApprox tables hold unsigned 8x8 multipliers only"
        )
    lo, hi = int(lut.forward.min()), int(lut.forward.max())
    if lo < 0 or hi > 0xFFFF:
        raise InputError(f"LUT '{lut.name}' has values {lo}..{hi}; TFApprox tables hold 0..65535 (uint16)")
    data = lut.forward.astype("<u2").tobytes()
    atomic_write(path, lambda f: f.write(data))


# ----------------------------------------------------------------------------------- DATE'25 text


def read_lutfp(path: str | os.PathLike[str]) -> Lut:
    """Read a DATE'25 ``*_lutfp.txt`` or ``*_lutfp+bp_avg_<w>_<w>.txt`` file (unsigned).

    Gradient sections, when present, are divided by 16 (they were stored as ``round(16*g)``, so they are
    quantised to 1/16); ``meta['grad_quantised']`` records that. Any line endings and a UTF-8 byte order
    mark are read as the flow writes the file; fields are plain decimal integers, products never negative.
    """
    where = str(path)
    text = _read_text(path)
    header: list[str] = []
    sections: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped in _LUTFP_SECTIONS:
            key = _LUTFP_SECTIONS[stripped]
            if key in sections:
                raise ParseError(f"second '{stripped}' section", where, number, 1)
            if key != "forward" and "forward" not in sections:
                raise ParseError(f"'{stripped}' before '{LUTFP_FORWARD}'", where, number, 1)
            current = sections[key] = []
        elif current is not None:
            if stripped:
                current.append((number, line))
        elif stripped.startswith("INFO:"):
            window = _HALF_WINDOW.match(stripped)
            if window and len(window.group(1)) > 9:  # (int() refuses 4300 digits with a ValueError of its own)
                raise ParseError(f"half window {_clip(window.group(1))} has more than 9 digits", where, number, 1)
            header.append(stripped)
        elif stripped:
            raise ParseError(f"unexpected line before '{LUTFP_FORWARD}': {_clip(stripped)}", where, number, 1)
    if "forward" not in sections:
        raise ParseError(f"no '{LUTFP_FORWARD}' line: not a DATE'25 LUT file", where, 1, 1)
    if ("grad_a" in sections) != ("grad_b" in sections):
        missing = "second" if "grad_a" in sections else "first"
        raise ParseError(f"the gradient section for the {missing} operand is missing", where)
    forward_rows = sections["forward"]
    bits_a, bits_b = _lutfp_shape(forward_rows, where)
    tables = {key: _lutfp_table(rows, bits_a, bits_b, where, key) for key, rows in sections.items()}
    name_match = _LUTFP_NAME.match(Path(where).name)
    meta: dict[str, Any] = {"source": where, "format": "lutfp", "lutfp_info": header}
    grad_a = grad_b = None
    if "grad_a" in tables:
        grad_a = (tables["grad_a"] / LUTFP_GRAD_SCALE).astype(np.float32)
        grad_b = (tables["grad_b"] / LUTFP_GRAD_SCALE).astype(np.float32)
        meta["grad_quantised"] = f"round({LUTFP_GRAD_SCALE}*g)"
        for line in header:
            window = _HALF_WINDOW.match(line)
            if window:
                meta["half_window"] = int(window.group(1))
    return Lut(
        forward=tables["forward"],
        bits_a=bits_a,
        bits_b=bits_b,
        signed=False,
        name=safe_name(name_match.group("name") if name_match else Path(where).stem),
        grad_a=grad_a,
        grad_b=grad_b,
        meta=meta,
    )


def _lutfp_shape(rows: list[tuple[int, str]], where: str) -> tuple[int, int]:
    """Operand widths from the forward section: columns = rows whose ``a`` is 0 (row-major order)."""
    if not rows:
        raise ParseError(f"the '{LUTFP_FORWARD}' section has no rows", where)
    cols = 0
    for number, line in rows:
        a = _lutfp_fields(line, where, number)[0]
        if a != 0:
            break
        cols += 1
    if cols == 0:
        raise ParseError(f"the first row must be '0 0 ...', found {_clip(rows[0][1].strip())}", where, rows[0][0], 1)
    total = len(rows)
    if total % cols:
        raise ParseError(f"{total} rows do not form a table with {cols} columns", where, rows[-1][0], 1)
    rows_a = total // cols
    for count, what in ((rows_a, "rows"), (cols, "columns")):
        if count < 2 or count & (count - 1) or count.bit_length() - 1 > MAX_BITS:
            raise ParseError(
                f"the table has {count} {what}; a multiplier LUT has a power of two, at least 2 (a 1-bit operand) "
                f"and at most 2^{MAX_BITS}",
                where,
                rows[-1][0],
                1,
            )
    bits_a, bits_b = rows_a.bit_length() - 1, cols.bit_length() - 1
    if bits_a + bits_b > MAX_TABLE_BITS:
        raise ParseError(f"a {bits_a}x{bits_b} table is too large (at most {MAX_TABLE_BITS} input bits)", where)
    return bits_a, bits_b


def _lutfp_table(rows: list[tuple[int, str]], bits_a: int, bits_b: int, where: str, key: str) -> np.ndarray:
    size_a, size_b = 1 << bits_a, 1 << bits_b
    if len(rows) != size_a * size_b:
        last = rows[-1][0] if rows else None
        raise ParseError(f"{key} section has {len(rows)} rows, expected {size_a * size_b}", where, last)
    values = np.empty(size_a * size_b, dtype=np.int64)
    for i, (number, line) in enumerate(rows):
        a, b, value = _lutfp_fields(line, where, number)
        if a != i // size_b or b != i % size_b:
            raise ParseError(f"expected row '{i // size_b} {i % size_b} ...', found '{a} {b}'", where, number, 1)
        col = len(line.rstrip()) - len(line.split()[-1]) + 1
        if value < 0 and key == "forward":
            raise ParseError(
                f"product {value} is negative: the DATE'25 LUTs hold unsigned multipliers", where, number, col
            )
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise ParseError(f"{key} value {value} is outside int32", where, number, col)
        values[i] = value
    return values.reshape(size_a, size_b)


def _lutfp_fields(line: str, where: str, number: int) -> tuple[int, int, int]:
    fields = line.split()
    if len(fields) != 3:
        raise ParseError(f"expected 'a b value', found {_clip(line.strip())}", where, number, 1)
    out = []
    for field in fields:
        col = line.index(field) + 1
        if not _INTEGER.match(field):  # (int() would also take '1_000')
            raise ParseError(f"'{_clip(field)}' is not an integer", where, number, col)
        if len(field) > _MAX_DIGITS:
            raise ParseError(f"'{_clip(field)}' has more than {_MAX_DIGITS} digits", where, number, col)
        out.append(int(field))
    if out[0] < 0 or out[1] < 0:
        raise ParseError("operand codes must be non-negative", where, number, 1)
    return out[0], out[1], out[2]


def lutfp_text(lut: Lut, *, gradients: bool) -> str:
    """The DATE'25 text form of ``lut`` (see :func:`write_lutfp`)."""
    if lut.signed:
        raise InputError(f"LUT '{lut.name}' is signed; the DATE'25 text LUTs hold unsigned multipliers only")
    lo, hi = int(lut.forward.min()), int(lut.forward.max())
    if lo < 0 or hi > 0xFFFF:
        raise InputError(f"LUT '{lut.name}' has values {lo}..{hi}; the DATE'25 flow reads them as uint16")
    out = io.StringIO()
    if gradients:
        if lut.grad_a is None or lut.grad_b is None:
            raise InputError(f"LUT '{lut.name}' has no gradient tables; compute them first (with_gradients)")
        out.write(f"INFO: file = {lut.name}_lutfp.txt\n")
        if "half_window" in lut.meta:
            out.write(f"INFO: half window = {lut.meta['half_window']}\n")
    else:
        error = lut.error()
        total = error.size
        med = float(np.abs(error).sum()) / total
        out.write(f"INFO: Error rate: {np.count_nonzero(error) / total:g}\n")
        out.write(f"INFO: Mean error distance: {med:g}\n")
        out.write(f"INFO: Normalized mean error distance: {med / total:g}\n")
        out.write(f"INFO: Mean square error: {float(np.square(error, dtype=np.float64).sum()) / total:g}\n")
    out.write(LUTFP_FORWARD + "\n")
    _lutfp_rows(out, lut.forward)
    if gradients:
        assert lut.grad_a is not None and lut.grad_b is not None
        for title, grad in ((LUTFP_GRAD_A, lut.grad_a), (LUTFP_GRAD_B, lut.grad_b)):
            # np.rint rounds half to even, as the published script's np.round does.
            scaled = np.rint(grad.astype(np.float64) * LUTFP_GRAD_SCALE)
            if not np.isfinite(scaled).all() or scaled.min() < -(1 << 15) or scaled.max() >= 1 << 15:
                raise InputError(f"LUT '{lut.name}': 16*gradient leaves int16, which the DATE'25 flow reads")
            out.write(title + "\n")
            _lutfp_rows(out, scaled.astype(np.int64))
    return out.getvalue()


def write_lutfp(lut: Lut, path: str | os.PathLike[str], *, gradients: bool) -> None:
    """Write ``lut`` as a DATE'25 text LUT (atomically).

    Without ``gradients``: the ``*_lutfp.txt`` form, whose ``INFO:`` header carries error rate, mean
    error distance, its normalised form and the mean square error (C++ ``cout`` formatting, as the
    flow's generator). With ``gradients``: the ``*_lutfp+bp_avg_<w>_<w>.txt`` form, header naming the
    forward file and ``meta['half_window']``, then the forward and ``round(16*g)`` gradient sections.
    """
    data = lutfp_text(lut, gradients=gradients).encode()
    atomic_write(path, lambda f: f.write(data))


def _lutfp_rows(out: io.StringIO, table: np.ndarray) -> None:
    size_b = table.shape[1]
    for a, row in enumerate(table.tolist()):
        out.write("".join(f"{a} {b} {v}\n" for b, v in zip(range(size_b), row, strict=True)))


# ------------------------------------------------------------------------------------------ helpers


def _read_bytes(path: str | os.PathLike[str], *, limit: int) -> bytes:
    return read_bytes(path, limit=limit, what="LUT file")


def _read_text(path: str | os.PathLike[str]) -> str:
    data = _read_bytes(path, limit=MAX_TEXT_BYTES).removeprefix(_UTF8_BOM)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError("not a text LUT file (non-ASCII bytes)", str(path), line) from None


def _short(exc: BaseException) -> str:
    return _clip(str(exc) or type(exc).__name__)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
