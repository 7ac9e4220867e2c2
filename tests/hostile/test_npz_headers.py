"""LUT files and library tables with lying headers: every size is checked before anything is allocated, so
a small file can never demand gigabytes (zip bombs, huge shapes), and pickles are never loaded."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import ParseError
from approxlut.library import Library
from approxlut.lutgen.formats import load_npz, npz_meta
from approxlut.lutgen.lut import Lut

from .conftest import assert_clean, run

#: Most memory a refused file may make lutgen allocate (a 4x4 LUT file is a few KiB).
PEAK_BYTES = 32 << 20


def _npy(array: np.ndarray | None = None, *, header: dict | None = None, data: bytes = b"", version: int = 1) -> bytes:
    """An .npy member: a real array, or a hand-written header followed by ``data``."""
    out = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(out, array, allow_pickle=True)
        return out.getvalue()
    text = repr(header).encode("latin1")
    magic = b"\x93NUMPY" + bytes([version, 0])
    pad = 64 - (len(magic) + (2 if version == 1 else 4) + len(text) + 1) % 64
    body = text + b" " * pad + b"\n"
    size = len(body).to_bytes(2 if version == 1 else 4, "little")
    return magic + size + body + data


def _zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _lut(bits: int = 4) -> Lut:
    codes = np.arange(1 << bits)
    return Lut(np.outer(codes, codes).astype(np.int32), bits, bits, False, name="m")


def _meta(lut: Lut, **changes: object) -> str:
    return json.dumps({**npz_meta(lut), **changes})


def _members(lut: Lut, **meta_changes: object) -> dict[str, bytes]:
    return {"forward.npy": _npy(lut.forward), "meta.npy": _npy(np.array(_meta(lut, **meta_changes)))}


def _raw_bomb_zip(lut: Lut, raw_bytes: int) -> bytes:
    """A zip whose forward member inflates to ``raw_bytes`` zero bytes (about a thousandth of that on disk).

    Written by hand (``zipfile.writestr`` would need the inflated data in memory).
    """
    header = _npy(header={"descr": "<i4", "fortran_order": False, "shape": (raw_bytes // 4,)})
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [stream.compress(header)] + [stream.compress(chunk) for _ in range(raw_bytes // len(chunk))]
    compressed = b"".join([*parts, stream.flush()])
    out = io.BytesIO()
    archive = zipfile.ZipFile(out, "w")
    archive.writestr("meta.npy", _npy(np.array(_meta(lut))), compress_type=zipfile.ZIP_DEFLATED)
    info = zipfile.ZipInfo("forward.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = len(header) + raw_bytes
    info.compress_size = len(compressed)
    info.CRC = 0  # never checked: the member is refused before it is read to the end
    info.header_offset = out.tell()
    out.write(info.FileHeader())
    out.write(compressed)
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive.start_dir = out.tell()
    archive.close()
    return out.getvalue()


CASES: dict[str, Callable[[Lut], bytes]] = {
    "huge shape header": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (1 << 20, 1 << 20)}),
            "meta.npy": _npy(np.array(_meta(lut))),
        }
    ),
    "huge shape matching huge metadata": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (1 << 14, 1 << 14)}),
            "meta.npy": _npy(np.array(_meta(lut, bits_a=14, bits_b=14))),
        }
    ),
    "shape beyond 64 bits": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (1 << 70,)}),
            "meta.npy": _npy(np.array(_meta(lut))),
        }
    ),
    "negative shape": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (-1, 16)}),
            "meta.npy": _npy(np.array(_meta(lut))),
        }
    ),
    "object array (pickle)": lambda lut: _zip(
        {"forward.npy": _npy(np.array([print], dtype=object)), "meta.npy": _npy(np.array(_meta(lut)))}
    ),
    "pickled metadata": lambda lut: _zip(
        {"forward.npy": _npy(lut.forward), "meta.npy": _npy(np.array([{"a": 1}], dtype=object))}
    ),
    "giant metadata string": lambda lut: _zip(
        {
            "forward.npy": _npy(lut.forward),
            "meta.npy": _npy(header={"descr": "<U999999999", "fortran_order": False, "shape": ()}),
        }
    ),
    "deeply nested metadata": lambda lut: _zip(
        {"forward.npy": _npy(lut.forward), "meta.npy": _npy(np.array("[" * 200_000 + "]" * 200_000))}
    ),
    "metadata widths of 30 bits": lambda lut: _zip(_members(lut, bits_a=30, bits_b=30)),
    "metadata widths 0": lambda lut: _zip(_members(lut, bits_a=0)),
    "metadata widths as text": lambda lut: _zip(_members(lut, bits_a="4")),
    "header data longer than the member": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (16, 16)}, data=b"\0" * 8),
            "meta.npy": _npy(np.array(_meta(lut))),
        }
    ),
    "member with trailing data": lambda lut: _zip(
        {"forward.npy": _npy(lut.forward) + b"\0" * 4096, "meta.npy": _npy(np.array(_meta(lut)))}
    ),
    "wrong dtype": lambda lut: _zip(
        {"forward.npy": _npy(lut.forward.astype(np.float64)), "meta.npy": _npy(np.array(_meta(lut)))}
    ),
    "big-endian table": lambda lut: _zip(
        {"forward.npy": _npy(lut.forward.astype(">i4")), "meta.npy": _npy(np.array(_meta(lut)))}
    ),
    "npy version 9": lambda lut: _zip(
        {
            "forward.npy": _npy(header={"descr": "<i4", "fortran_order": False, "shape": (16, 16)}, version=9),
            "meta.npy": _npy(np.array(_meta(lut))),
        }
    ),
    "not an npy member": lambda lut: _zip({**_members(lut), "evil.py": b"import os"}),
    "many members": lambda lut: _zip({**_members(lut), **{f"x{i}.npy": _npy(np.zeros(1)) for i in range(40)}}),
    "stored member claiming more": lambda lut: _lying_sizes(_zip(_members(lut), method=zipfile.ZIP_STORED)),
    "zip bomb, 256 MiB": lambda lut: _raw_bomb_zip(lut, 256 << 20),
    "truncated archive": lambda lut: _zip(_members(lut))[:300],
    "empty file": lambda lut: b"",
    "not a zip": lambda lut: b"PK\x03\x04" + b"\xff" * 500,
    "flipped bytes": lambda lut: bytes(b ^ (0x55 if i % 50 == 7 else 0) for i, b in enumerate(_zip(_members(lut)))),
}


def _lying_sizes(data: bytes) -> bytes:
    """Patch the central directory to claim 2 GiB for every member."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at != -1:
        out[at + 24 : at + 28] = (2**31).to_bytes(4, "little")
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


@pytest.mark.parametrize("case", list(CASES))
def test_lut_files_with_lying_headers_are_refused_cheaply(tmp_path: Path, case: str) -> None:
    path = tmp_path / "hostile.npz"
    path.write_bytes(CASES[case](_lut()))
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as refused:
            load_npz(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(str(path)) and "\n" not in str(refused.value)
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MiB allocated for a {path.stat().st_size}-byte file"


@pytest.mark.parametrize("case", list(CASES))
def test_library_tables_with_lying_headers_are_corruption_not_tracebacks(
    tmp_path: Path, library: Path, case: str
) -> None:
    with Library.open(library, readonly=True) as lib:
        entry = lib.entry("exact8s")
        blob = lib.blobs.path(entry.hash)
    blob.write_bytes(CASES[case](_lut(8)))
    tracemalloc.start()
    try:
        result = run(["library", "export", "exact8s", "--out", tmp_path / "x.npz", "--library", library])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_clean(result, 1)
    assert "is corrupted" in result.stderr
    assert peak < 4 * PEAK_BYTES


def test_a_fortran_ordered_table_still_loads(tmp_path: Path) -> None:
    lut = _lut()
    path = tmp_path / "f.npz"
    path.write_bytes(
        _zip({"forward.npy": _npy(np.asfortranarray(lut.forward)), "meta.npy": _npy(np.array(_meta(lut)))})
    )
    assert np.array_equal(load_npz(path).forward, lut.forward)
