"""Blob encodings: deflated 8x8, row deltas above, flat when deltas do not pay off, and old flat blobs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from approxlut.circuits.io import read_netlist
from approxlut.errors import LibraryError
from approxlut.library.blobs import BlobStore, from_row_deltas, grad_hash, row_deltas
from approxlut.lutgen.lut import Lut
from approxlut.lutgen.simulate import simulate_lut

I32 = np.iinfo(np.int32)


def reference_row_deltas(table: np.ndarray) -> np.ndarray:
    """Row deltas computed in Python integers and wrapped to int32 by hand."""
    out = np.empty(table.shape, dtype=np.int32)
    for r, row in enumerate(table.tolist()):
        previous = 0
        for c, value in enumerate(row):
            delta = (value - previous) % (1 << 32)
            out[r, c] = delta - (1 << 32) if delta > I32.max else delta
            previous = value
    return out


def members(path: Path) -> dict[str, int]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: info.compress_type for info in archive.infolist()}


def test_row_deltas_match_the_reference_and_round_trip_at_the_int32_edges() -> None:
    rng = np.random.default_rng(5)
    table = rng.integers(I32.min, I32.max, size=(9, 17), dtype=np.int64, endpoint=True).astype(np.int32)
    table[0, :4] = [I32.max, I32.min, I32.max, 0]  # differences that overflow int32 both ways
    table[1, :3] = [I32.min, I32.max, -1]
    table[2, 0] = I32.min
    deltas = row_deltas(table)
    assert deltas.dtype == np.int32 and np.array_equal(deltas, reference_row_deltas(table))
    assert np.array_equal(from_row_deltas(deltas), table)


def test_tables_above_the_threshold_are_row_deltas_and_load_back(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("approxlut.library.blobs.COMPRESS_MAX_ENTRIES", 16)
    values = np.arange(-32, 32)
    forward = np.multiply.outer(values, values) + (np.add.outer(values, values) & 3)
    forward[0, 0] = I32.min  # an edge code
    lut = Lut(forward, 6, 6, True, name="wide")
    store = BlobStore(tmp_path)
    path = store.write(lut)
    assert members(path) == {"forward_delta.npy": zipfile.ZIP_DEFLATED, "meta.npy": zipfile.ZIP_DEFLATED}
    assert path.stat().st_size < lut.forward.nbytes / 4
    assert np.array_equal(store.load(lut.hash, name="wide").forward, lut.forward)


def test_a_table_that_does_not_compress_is_stored_flat(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("approxlut.library.blobs.COMPRESS_MAX_ENTRIES", 16)
    rng = np.random.default_rng(7)
    lut = Lut(rng.integers(I32.min, I32.max, size=(64, 64), dtype=np.int64).astype(np.int32), 6, 6, False)
    store = BlobStore(tmp_path)
    path = store.write(lut)
    assert members(path) == {"forward.npy": zipfile.ZIP_STORED, "meta.npy": zipfile.ZIP_STORED}
    assert np.array_equal(store.load(lut.hash, name="noise").forward, lut.forward)


def test_small_tables_keep_the_deflated_flat_format(tmp_path: Path) -> None:
    values = np.arange(16)
    lut = Lut(np.multiply.outer(values, values), 4, 4, False).with_gradients(2)
    store = BlobStore(tmp_path)
    path = store.write(lut)
    assert set(members(path)) == {"forward.npy", "grad_a.npy", "grad_b.npy", "meta.npy"}
    assert set(members(path).values()) == {zipfile.ZIP_DEFLATED}
    loaded = store.load(lut.hash, name="small")
    assert np.array_equal(loaded.forward, lut.forward) and np.array_equal(loaded.grad_b, lut.grad_b)


def test_blobs_written_flat_before_compression_still_load(tmp_path: Path) -> None:
    """The earlier writer stored tables above 8x8 as an uncompressed ``forward`` member."""
    values = np.arange(-512, 512)
    lut = Lut(np.multiply.outer(values, values), 10, 10, True, meta={"source": "old"})
    header = {"bits_a": 10, "bits_b": 10, "signed": True, "grad_hash": grad_hash(lut)}
    store = BlobStore(tmp_path)
    meta = np.array(json.dumps({"blob": header, "meta": lut.meta}, sort_keys=True))
    np.savez(store.path(lut.hash), forward=lut.forward, meta=meta)
    assert set(members(store.path(lut.hash)).values()) == {zipfile.ZIP_STORED}
    loaded = store.load(lut.hash, name="old")
    assert np.array_equal(loaded.forward, lut.forward) and loaded.meta == {"source": "old"}


def test_a_tampered_row_delta_blob_is_reported_corrupted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("approxlut.library.blobs.COMPRESS_MAX_ENTRIES", 16)
    values = np.arange(64)
    lut = Lut(np.multiply.outer(values, values), 6, 6, False)
    store = BlobStore(tmp_path)
    path = store.write(lut)
    with np.load(path) as data:
        deltas, meta = data["forward_delta"].copy(), data["meta"]
    deltas[5, 9] += 1
    np.savez_compressed(path, forward_delta=deltas, meta=meta)
    with pytest.raises(
        LibraryError, match=r"^blob [0-9a-f]{12} is corrupted: re-import victim \(or run `lutgen library check"
    ):
        store.load(lut.hash, name="victim")
    np.savez_compressed(path, forward_delta=deltas[0], meta=meta)  # wrong shape
    with pytest.raises(LibraryError, match="is corrupted: re-import victim"):
        store.load(lut.hash, name="victim")


@pytest.mark.slow
def test_a_12x12_evoapprox_table_shrinks_to_under_a_mebibyte(tmp_path: Path, corpus: Path) -> None:
    lut = simulate_lut(read_netlist(corpus / "evoapprox" / "wide" / "v2022_mul12s_2R5.v"), signed=True)
    store = BlobStore(tmp_path)
    path = store.write(lut)
    assert lut.forward.nbytes == 64 << 20 and path.stat().st_size < 1 << 20
    assert "forward_delta.npy" in members(path)
    assert np.array_equal(store.load(lut.hash, name="2R5").forward, lut.forward)
