"""Float training cache: miss then hit, weights_only loading, corrupt or mismatched weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from approxlut.errors import LutgenError
from approxlut.nn.data import load_dataset
from approxlut.nn.reproducible import state_sha256
from approxlut.nn.train import TrainConfig, cache_path, load_weights, save_weights, train_model, trained_weights
from approxlut.nn.zoo import build_model, model_spec


@pytest.fixture
def digits_rows():
    rows = load_dataset().prepare(input_kind="sequence", channels=1, size=8)
    return replace(rows, x_train=rows.x_train[:512], y_train=rows.y_train[:512])


def test_training_cache_miss_then_hit(tmp_path: Path, monkeypatch, digits_rows) -> None:
    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path))
    spec = model_spec("lstm")
    kwargs = {"num_classes": 10, "in_channels": 1, "input_size": 8, "hidden_size": 32}
    config = TrainConfig(epochs=4, lr=1e-2, optimizer="adam", weight_decay=0.0)
    first_model = build_model("lstm", **kwargs)
    first = trained_weights(spec, first_model, kwargs, digits_rows, config, verbose=False)
    assert not first.cached and first.path.parent == tmp_path / "models" and first.path.is_file()
    assert first.test_metric > 50  # four epochs on the digits rows already learn something
    second_model = build_model("lstm", **kwargs)
    second = trained_weights(spec, second_model, kwargs, digits_rows, config, verbose=False)
    assert second.cached and second.path == first.path and second.test_metric == first.test_metric
    for key, value in first_model.state_dict().items():
        assert torch.equal(value, second_model.state_dict()[key])
    other = cache_path("lstm", kwargs, digits_rows, TrainConfig(epochs=4, lr=1e-2, optimizer="adam"))
    assert other != first.path


def test_weights_only_loading_refuses_pickled_objects(tmp_path: Path) -> None:
    model = build_model("lenet5")
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": model.state_dict(), "meta": {"x": Path("y")}}, path)
    with pytest.raises(LutgenError, match="not a readable torch weights file"):
        load_weights(model, path)


def test_round_trip_and_bare_state_dict(tmp_path: Path) -> None:
    model = build_model("lenet5")
    save_weights(model, tmp_path / "w.pt", {"note": "x"})
    clone = build_model("lenet5")
    assert load_weights(clone, tmp_path / "w.pt") == {"note": "x"}
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert load_weights(clone, tmp_path / "bare.pt") == {}
    assert all(torch.equal(v, clone.state_dict()[k]) for k, v in model.state_dict().items())


def test_corrupt_and_mismatched_weights(tmp_path: Path) -> None:
    model = build_model("lenet5")
    (tmp_path / "junk.pt").write_bytes(b"not a zip at all")
    with pytest.raises(LutgenError, match=r"junk.pt: not a readable torch weights file.*delete"):
        load_weights(model, tmp_path / "junk.pt", cached=True)
    torch.save(build_model("lenet5", num_classes=3).state_dict(), tmp_path / "three.pt")
    with pytest.raises(LutgenError, match=r"do not match the model \(shape of classifier.5.weight is \(3, 84\)"):
        load_weights(model, tmp_path / "three.pt")
    torch.save(build_model("resnet20", width=0.25).state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(LutgenError, match=r"missing classifier.1.bias.*; unexpected bn1.bias"):
        load_weights(model, tmp_path / "resnet.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(LutgenError, match="state dict of named tensors"):
        load_weights(model, tmp_path / "list.pt")
    with pytest.raises(LutgenError, match="not found"):
        load_weights(model, tmp_path / "absent.pt")


def test_float_model_loads_given_weights_and_refuses_other_tasks(tmp_path: Path) -> None:
    from approxlut.errors import ConfigError
    from approxlut.nn.train import float_model

    with pytest.raises(ConfigError, match="needs a classification model; model 'vae' is a reconstruction model"):
        float_model("vae", dataset="digits", data_dir=None, weights=None, seed=0)
    source = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    path = tmp_path / "lenet.pt"
    save_weights(source, path, {"note": "test"})
    loaded = float_model("lenet5", dataset="digits", data_dir=None, weights=path, seed=0)
    assert loaded.trained is None and loaded.weights == path.resolve()
    assert loaded.data.name == "digits"
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_float_training_is_deterministic_at_its_fixed_thread_count(digits_rows) -> None:
    config = TrainConfig(epochs=1, lr=1e-2, optimizer="adam", weight_decay=0.0, threads=1)
    threads = torch.get_num_threads()
    hashes = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_model("lstm", num_classes=10, in_channels=1, input_size=8, hidden_size=16)
        train_model(model, digits_rows, config, verbose=False)
        hashes.append(state_sha256(model.state_dict()))
    assert hashes[0] == hashes[1] and torch.get_num_threads() == threads
    state = model.state_dict()
    nudged = {k: v.clone() for k, v in state.items()}
    first = next(iter(nudged))
    nudged[first].view(-1)[0] += 1e-3
    assert state_sha256(nudged) != hashes[1] and state_sha256(dict(reversed(state.items()))) == hashes[1]
