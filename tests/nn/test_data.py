"""Datasets: synthetic CIFAR pickles and IDX files in temporary directories, the digits default, errors."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from approxlut.errors import ConfigError, InputError
from approxlut.nn.data import load_dataset


def _write_cifar(root: Path, per_batch: int = 4) -> np.ndarray:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with (base / name).open("wb") as handle:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data}, handle, protocol=2)
        first = data if first is None else first
    assert first is not None
    return first


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(root: Path, *, gz: bool, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            blob = _idx(array)
            name = f"{prefix}-{kind}"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (root / name).write_bytes(blob)
    return images


def test_cifar10_batches_load(tmp_path: Path) -> None:
    first = _write_cifar(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    expected = first[0].reshape(3, 32, 32).astype(np.float32) / 255
    assert torch.equal(ds.x_train[0], torch.from_numpy(expected))
    assert load_dataset(None, tmp_path).name == "cifar10"  # detected


def test_cifar10_missing_and_corrupt_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    (base / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(InputError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_dataset("cifar10", tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(InputError, match=r"CIFAR-10 file not found: .*data_batch_3"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_loader_refuses_arbitrary_objects(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as handle:
        pickle.dump({b"data": Path("x")}, handle)
    with pytest.raises(InputError, match="refusing to load"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load(tmp_path: Path, gz: bool) -> None:
    images = _write_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.y_test.dtype == torch.int64
    assert torch.equal(ds.x_test[2, 0], torch.from_numpy(images[2].astype(np.float32) / 255))


def test_fashion_mnist_uses_the_same_format(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "fashion-mnist", gz=True)
    assert load_dataset("fashion-mnist", tmp_path).x_train.shape == (5, 1, 28, 28)


def test_idx_errors(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte: IDX data has 4 bytes, header"):
        load_dataset("mnist", tmp_path)
    path.write_bytes(b"\x12\x34\x08\x01")
    with pytest.raises(InputError, match="bad magic"):
        load_dataset("mnist", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_dataset("mnist", tmp_path / "empty_does_not_exist")


def test_dataset_option_errors() -> None:
    with pytest.raises(ConfigError, match="--data DIR"):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("imagenet", ".")


def test_digits_default_split_and_adaptation() -> None:
    ds = load_dataset()
    assert ds.name == "digits" and ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert float(ds.x_train.max()) == 1.0 and float(ds.x_train.min()) == 0.0
    assert load_dataset(seed=0).fingerprint == ds.fingerprint != load_dataset(seed=1).fingerprint
    image = ds.prepare(channels=3, size=32)
    assert image.x_train.shape == (1437, 3, 32, 32) and image.x_test.shape == (360, 3, 32, 32)
    assert abs(float(image.x_train.mean())) < 1e-4 and abs(float(image.x_train.std()) - 1) < 1e-3
    assert torch.equal(image.x_train[:, 0], image.x_train[:, 2])  # grey replicated
    rows = ds.prepare(input_kind="sequence", channels=1, size=28)
    grid = ds.prepare(channels=1, size=28)
    assert rows.x_train.shape == (1437, 28, 28) and torch.equal(rows.x_train, grid.x_train[:, 0])
    flat = ds.prepare(input_kind="flat", channels=1, size=28)
    assert flat.x_train.shape == (1437, 784) and float(flat.x_train.min()) >= 0 and float(flat.x_train.max()) <= 1
    assert image.key != grid.key


def test_rgb_to_grey_and_downscaling(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    grey = load_dataset("cifar10", tmp_path).prepare(channels=1, size=28)
    assert grey.x_train.shape == (20, 1, 28, 28)
