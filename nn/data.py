"""Datasets read from local files, never downloaded, shaped for a model's input.

* ``digits`` (default, offline): the real 8x8 handwritten digits shipped with scikit-learn (1797
  images), split into train/test with a fixed seed (stratified, 20 % test).
* ``cifar10``: the python pickle batches (``data_batch_1..5``, ``test_batch``) from ``--data DIR``
  (``DIR`` or ``DIR/cifar-10-batches-py``), unpickled with a loader that only admits numpy arrays.
* ``mnist`` / ``fashion-mnist``: the four IDX files (optionally ``.gz``) from ``DIR`` (also
  ``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``, ``DIR/mnist``, ``DIR/fashion-mnist``).

:func:`load_dataset` returns images in [0, 1] as ``[N, C, H, W]``; :meth:`Dataset.prepare` adapts
them to a model: channels (replicate grey, or average RGB), side length (bilinear), normalisation
with the training split's per-channel statistics, and the layout (image, row sequence, flat).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError

DATASETS = ("digits", "cifar10", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """Raw images in [0, 1] (float32 ``[N, C, H, W]``) and int64 labels, split into train and test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    fingerprint: str

    def prepare(self, *, input_kind: str = "image", channels: int, size: int) -> Prepared:
        """Adapt to a model taking ``input_kind`` inputs with ``channels`` x ``size`` x ``size`` images."""
        train = _adapt_images(self.x_train, channels, size)
        test = _adapt_images(self.x_test, channels, size)
        if input_kind == "flat":
            return Prepared(self, input_kind, train.flatten(1), self.y_train, test.flatten(1), self.y_test)
        mean = train.mean(dim=(0, 2, 3), keepdim=True)
        std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        train, test = (train - mean) / std, (test - mean) / std
        if input_kind == "sequence":
            rows = (train, test)
            train, test = (r.permute(0, 2, 1, 3).reshape(r.shape[0], size, channels * size) for r in rows)
        elif input_kind != "image":
            raise ConfigError(f"unknown model input kind '{input_kind}' (image, sequence or flat)")
        return Prepared(self, input_kind, train.contiguous(), self.y_train, test.contiguous(), self.y_test)


@dataclass(frozen=True)
class Prepared:
    """A dataset shaped for one model: ``x_*`` are model inputs, ``y_*`` labels."""

    source: Dataset
    input_kind: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def key(self) -> str:
        """Identity of the data the model sees (source content + adaptation), for caches."""
        shape = "x".join(str(s) for s in self.x_train.shape[1:])
        return f"{self.source.name}-{self.source.fingerprint[:16]}-{self.input_kind}-{shape}"


def load_dataset(name: str | None = None, data_dir: str | Path | None = None, *, seed: int = 0) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`); with only ``data_dir``, detect CIFAR-10 or MNIST there."""
    if name is None:
        name = "digits" if data_dir is None else _detect(Path(data_dir))
    key = name.lower().replace("_", "-")
    if key == "digits":
        if data_dir is not None:  # (it ships with scikit-learn: a folder given with it would be ignored)
            raise ConfigError(f"dataset 'digits' ships with lutgen; --data {data_dir} applies to cifar10 and mnist")
        return _digits(seed)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if data_dir is None:
        raise ConfigError(f"dataset '{key}' is read from a local directory: pass --data DIR (lutgen never downloads)")
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"data directory not found: {root}")
    if key == "cifar10":
        return _cifar10(root)
    return _mnist_like(root, key)


# --------------------------------------------------------------------------------------------- digits


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=seed)
    return _dataset("digits", x_tr, y_tr, x_te, y_te, 10, extra=f"seed={seed}")


# ------------------------------------------------------------------------------------------- CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a CIFAR batch never needs anything else."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar10(root: Path) -> Dataset:
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    parts = []
    for names in ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]):
        xs, ys = [], []
        for file in names:
            x, y = _cifar_batch(base / file)
            xs.append(x)
            ys.append(y)
        parts.append((np.concatenate(xs), np.concatenate(ys)))
    (x_tr, y_tr), (x_te, y_te) = parts
    return _dataset("cifar10", x_tr, y_tr, x_te, y_te, 10)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise InputError(
            f"CIFAR-10 file not found: {path} (expected the python version, cifar-10-batches-py/ with "
            "data_batch_1..5 and test_batch)"
        )
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # any unpickling failure means a damaged or foreign file
        raise InputError(f"{path}: not a CIFAR-10 python batch ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict):
        raise InputError(f"{path}: not a CIFAR-10 python batch (top level is {type(batch).__name__}, not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise InputError(f"{path}: not a CIFAR-10 python batch (needs 'data' uint8 [N, 3072] and 'labels')")
    y = _cifar_labels(labels)
    if y is None or y.shape != (data.shape[0],) or y.min(initial=0) < 0 or y.max(initial=0) > 9:
        raise InputError(f"{path}: CIFAR-10 labels must be N integers in 0..9")
    x = data.astype(np.float32).reshape(-1, 3, 32, 32) / 255.0
    return x, y


def _cifar_labels(labels: object) -> np.ndarray | None:
    """A batch's labels as int64, or ``None`` where they are not a list or array of integers (not floats, text,
    or integers beyond int64)."""
    if isinstance(labels, np.ndarray):
        return labels.astype(np.int64) if labels.dtype.kind in "iu" and labels.ndim == 1 else None
    integers = (int, np.integer)
    if not isinstance(labels, list) or not all(
        isinstance(v, integers) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in labels
    ):
        return None
    return np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- MNIST

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _mnist_like(root: Path, key: str) -> Dataset:
    folder = "FashionMNIST" if key == "fashion-mnist" else "MNIST"
    candidates = [root, root / folder / "raw", root / key, root / key.replace("-", "_"), root / folder]
    base = next((d for d in candidates if _find_idx(d, _IDX_FILES["train"][0]) is not None), None)
    if base is None:
        raise InputError(
            f"{key}: IDX file '{_IDX_FILES['train'][0]}[.gz]' not found in {root} (also looked in "
            f"{folder}/raw, {key}/); lutgen never downloads"
        )
    arrays = {}
    for split, (images_name, labels_name) in _IDX_FILES.items():
        images = _read_idx(_require_idx(base, images_name), ndim=3)
        labels = _read_idx(_require_idx(base, labels_name), ndim=1)
        if labels.shape[0] != images.shape[0]:
            raise InputError(f"{key}: {split} has {images.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and labels.max() > 9:
            raise InputError(f"{key}: {split} labels must be in 0..9")
        arrays[split] = (images.astype(np.float32)[:, None] / 255.0, labels.astype(np.int64))
    return _dataset(key, *arrays["train"], *arrays["test"], 10)


def _find_idx(base: Path, name: str) -> Path | None:
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (base / candidate).is_file():
            return base / candidate
    return None


def _require_idx(base: Path, name: str) -> Path:
    path = _find_idx(base, name)
    if path is None:
        raise InputError(f"IDX file '{name}[.gz]' not found in {base}")
    return path


def _read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (magic ``0 0 0x08 ndim``, big-endian dims, then the data)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"{path}: cannot read ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08 or raw[3] != ndim:
        raise InputError(f"{path}: expected unsigned-byte IDX with {ndim} dimensions, got type 0x{raw[2]:02x}/{raw[3]}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)  # (Python ints: a forged header cannot overflow)
    if len(raw) - header != size:
        raise InputError(f"{path}: IDX data has {len(raw) - header} bytes, header {dims} needs {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# ---------------------------------------------------------------------------------------------- common


def _detect(root: Path) -> str:
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise InputError(f"{root}: {what} (--data names a dataset folder)")
    if (root / "cifar-10-batches-py").is_dir() or (root / "data_batch_1").is_file():
        return "cifar10"
    if "fashion" in str(root).lower() or (root / "FashionMNIST").is_dir():
        return "fashion-mnist"
    if _find_idx(root, _IDX_FILES["train"][0]) or (root / "MNIST").is_dir():
        return "mnist"
    raise InputError(f"cannot tell which dataset is in {root}: pass --dataset cifar10|mnist|fashion-mnist")


def _dataset(
    name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, classes: int, extra: str = ""
) -> Dataset:
    for split, images in (("training", x_tr), ("test", x_te)):
        if images.shape[0] == 0:
            raise InputError(f"{name}: the {split} set has no images")
    digest = hashlib.sha256(extra.encode())
    for array in (x_tr, y_tr, x_te, y_te):
        digest.update(np.ascontiguousarray(array).data)
    xt, yt, xe, ye = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x_tr, y_tr, x_te, y_te))
    return Dataset(name, xt, yt, xe, ye, num_classes=classes, fingerprint=digest.hexdigest())


def _adapt_images(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    have = x.shape[1]
    if have != channels:
        if have == 1:
            x = x.expand(-1, channels, -1, -1)
        elif have == 3 and channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ConfigError(f"cannot adapt {have}-channel images to a model with {channels} input channels")
    if x.shape[-1] != size or x.shape[-2] != size:
        shrink = size < x.shape[-1]
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return x.contiguous()
