"""The multiplier catalogue: an SQLite index plus content-addressed LUT blobs (no torch here)."""

from .catalogue import Cost, Entry, Library

__all__ = ["Cost", "Entry", "Library"]
