"""Reading ``.npz`` archives without trusting them: every size is checked from the headers first.

``np.load`` allocates whatever shape an ``.npy`` header claims and inflates whatever a zip member
holds, so a 1 MB file can demand gigabytes. :class:`NpzArchive` reads the zip directory and each
member's ``.npy`` header, and refuses before any allocation: members that are not ``.npy``, object
dtypes (pickles), a claimed size beyond deflate's largest possible ratio, a header whose shape and
dtype disagree with the member's size, and arrays other than the shape and dtype the caller expects.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import IO

import numpy as np

from ..errors import ParseError

#: Deflate cannot expand data by more than about 1032:1; a member claiming more is forged.
MAX_DEFLATE_RATIO = 1032
#: Most members an archive may have (lutgen writes at most four).
MAX_MEMBERS = 16
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_HEADER_BYTES = 10_000
#: What zipfile, zlib and numpy's header parser raise on damaged input (zipfile alone raises seven kinds).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    ValueError,
    EOFError,
    zlib.error,
    struct.error,
    NotImplementedError,
    IndexError,
    KeyError,
    TypeError,
)


class NpzArchive:
    """An ``.npz`` held in memory, read member by member with the checks above.

    Example:
        >>> archive = NpzArchive(data, "table.npz")  # doctest: +SKIP
        >>> forward = archive.array("forward", dtypes=("<i4",), shape=(256, 256))  # doctest: +SKIP
    """

    def __init__(self, data: bytes, where: str):
        self.where = where
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except ZIP_ERRORS as exc:
            raise self._error(f"not an .npz archive ({_short(exc)})") from None
        if len(infos) > MAX_MEMBERS:
            raise self._error(f"{len(infos)} members; a LUT file has at most {MAX_MEMBERS}")
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                raise self._error(f"member '{_clip(info.filename)}' is not an .npy array")
            key = info.filename[: -len(".npy")]
            if key in self._members:
                raise self._error(f"member '{_clip(info.filename)}' appears twice")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._error(f"member '{key}' uses an unsupported compression")
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.file_size != info.compress_size) or (
                info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024
            ):
                raise self._error(
                    f"member '{key}' claims {info.file_size} bytes from {info.compress_size} "
                    "(more than compression can give: a forged or damaged archive)"
                )
            self._members[key] = info

    @property
    def files(self) -> list[str]:
        """Array names (without ``.npy``)."""
        return list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def _error(self, message: str) -> ParseError:
        return ParseError(message, self.where)

    def array(
        self, key: str, *, dtypes: Sequence[str], shape: tuple[int, ...] | None = None, max_bytes: int | None = None
    ) -> np.ndarray:
        """Member ``key`` as an array whose dtype is one of ``dtypes`` and whose shape is ``shape``.

        With ``shape=None`` any shape is accepted up to ``max_bytes`` bytes. Nothing larger than the
        checked size is ever allocated or inflated.
        """
        allowed = [np.dtype(d) for d in dtypes]

        def check(dtype: np.dtype, got: tuple[int, ...]) -> str | None:
            if dtype in allowed and (shape is None or got == shape):
                return None
            want = " or ".join(str(d) for d in allowed) + ("" if shape is None else f" {shape}")
            return f"is {dtype} {got}, expected {want}"

        return self._load(key, check, max_bytes)

    def text(self, key: str, *, max_bytes: int = 1 << 20) -> str:
        """A 0-d unicode member (lutgen's JSON metadata) as a string of at most ``max_bytes`` bytes."""

        def check(dtype: np.dtype, got: tuple[int, ...]) -> str | None:
            return None if dtype.kind == "U" and got == () else "is not a JSON string"

        return str(self._load(key, check, max_bytes))

    def _load(
        self, key: str, check: Callable[[np.dtype, tuple[int, ...]], str | None], max_bytes: int | None
    ) -> np.ndarray:
        info = self._members.get(key)
        if info is None:
            raise self._error(f"array '{key}' is missing")
        try:
            with self._zip.open(info) as member:
                got_shape, fortran, dtype = _read_header(member)
                header_bytes = member.tell()
                problem = "is an object array (pickled data)" if dtype.hasobject else check(dtype, got_shape)
                if problem is not None:
                    raise self._error(f"array '{key}' {problem}")
                nbytes = math.prod(got_shape) * dtype.itemsize
                if max_bytes is not None and nbytes > max_bytes:
                    raise self._error(f"array '{key}' claims {nbytes} bytes; at most {max_bytes} are accepted")
                if header_bytes + nbytes != info.file_size:
                    raise self._error(
                        f"array '{key}': its header says {nbytes} bytes of data, the member holds "
                        f"{info.file_size - header_bytes}"
                    )
                raw = member.read(nbytes)
        except ParseError:
            raise
        except ZIP_ERRORS as exc:
            raise self._error(f"array '{key}' is damaged ({_short(exc)})") from None
        if len(raw) != nbytes:
            raise self._error(f"array '{key}' is truncated")
        array = np.frombuffer(raw, dtype=dtype)
        return array.reshape(got_shape, order="F" if fortran else "C").copy()


def _read_header(member: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=MAX_HEADER_BYTES)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=MAX_HEADER_BYTES)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"bad shape {shape}")
    return tuple(shape), bool(fortran), np.dtype(dtype)


def _short(exc: BaseException) -> str:
    return _clip(str(exc) or type(exc).__name__)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
