"""Hostile inputs to the network commands: assignment files that say less than they seem to, module types that
would import code, weights that are pickles, forged or empty datasets, user models that do not fit their data,
out-of-range options (one line, the documented exit code, never a wrong answer with exit 0)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.nn.config import AssignmentMapping, LayerConfig
from approxlut.nn.evaluate import parse_assignment
from approxlut.nn.retrain import parse_half_window

from .conftest import assert_clean, run, run_process

EXACT = LayerConfig("exact", bits=8, scheme="symmetric")


def test_an_assignment_file_without_a_default_leaves_the_other_layers_exact(tmp_path: Path) -> None:
    """As the ``layer=NAME`` form does: a file naming one layer does not turn the others float (which would
    count their multipliers as free); a file that says ``"default": "float"`` gets float."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"layers": {"features.0": "trunc8s_k6"}}))
    assert parse_assignment(str(path), EXACT).default == EXACT
    assert parse_assignment("features.0=trunc8s_k6", EXACT).default == EXACT
    path.write_text(json.dumps({"default": "float", "layers": {"features.0": "trunc8s_k6"}}))
    assert parse_assignment(str(path), EXACT).default == LayerConfig("float")


def test_a_front_point_without_its_assignment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "saved.json"
    path.write_text(json.dumps({"default": "exact", "front": [{"relative_energy": 0.5}]}))
    with pytest.raises(ConfigError, match="front point #0 has no assignment"):
        AssignmentMapping.parse(f"{path}#0")


@pytest.mark.parametrize("section", ["types", "regex", "layers"])
def test_assignment_sections_must_be_objects(tmp_path: Path, section: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({section: []}))
    with pytest.raises(ConfigError, match=f"'{section}' must be an object"):
        AssignmentMapping.parse(str(path))


@pytest.mark.parametrize("text", ["type:this.X=exact", '{"types": {"this.X": "exact"}}'])
def test_an_assignment_never_imports_the_modules_it_names(tmp_path: Path, text: str) -> None:
    """``this`` prints the Zen of Python when imported: a module type may only come from a module already loaded
    (torch's, the model file's)."""
    assert "this" not in sys.modules
    if text.startswith("{"):
        (tmp_path / "a.json").write_text(text)
        text = str(tmp_path / "a.json")
    with pytest.raises(ConfigError, match=r"unknown module type 'this\.X'"):
        AssignmentMapping.parse(text)
    assert "this" not in sys.modules
    loaded = AssignmentMapping.parse("type:torch.nn.modules.conv.Conv2d=exact")
    assert loaded.types[0][0].__name__ == "Conv2d"


def test_an_engine_that_does_not_apply_is_a_usage_error() -> None:
    """``decomp`` asked for a table it cannot split is the user's choice (exit 2), not a machine fault."""
    result = run(["bench", "--quick", "--engine", "decomp", "--lut", "mitchell8s", "--no-networks"])
    assert_clean(result, 2)
    assert "engine 'decomp' does not apply" in result.stderr


@pytest.mark.parametrize("text", ["129", "99999999999999999999", "-1", "eight"])
def test_the_retrain_half_window_has_the_range_of_the_other_commands(text: str) -> None:
    with pytest.raises(ConfigError, match=r"expected an int in 0\.\.128 or 'auto'"):
        parse_half_window(text)
    assert parse_half_window("128") == 128 and parse_half_window("auto") == "auto"


def test_a_pickle_given_as_weights_is_one_line_without_torch_advice(tmp_path: Path) -> None:
    """torch warns about the protocol and suggests loading the file unsafely; neither reaches the user."""
    path = tmp_path / "weights.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    result = run(["evaluate", "--model", "lenet5", "--weights", str(path), "--limit", "8"])
    assert_clean(result, 2)
    assert "holds Python objects" in result.stderr and "weights_only` set to `False" not in result.stderr


def _idx(path: Path, dims: tuple[int, ...], data: bytes = b"") -> None:
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(header + data)


@pytest.mark.parametrize("case", ["forged", "empty"])
def test_forged_or_empty_mnist_files(tmp_path: Path, case: str) -> None:
    """A header whose dimensions multiply past int64 with no data, or a set of no images: one line each."""
    count = 0 if case == "empty" else 1
    for prefix in ("train", "t10k"):
        if case == "forged":
            _idx(tmp_path / f"{prefix}-images-idx3-ubyte", (2**31, 2**31, 4))
        else:
            _idx(tmp_path / f"{prefix}-images-idx3-ubyte", (count, 28, 28))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte", (count,), bytes(count))
    result = run(["evaluate", "--model", "lenet5", "--data", str(tmp_path), "--dataset", "mnist", "--limit", "4"])
    assert_clean(result, 2)
    assert ("needs" in result.stderr) if case == "forged" else ("training set has no images" in result.stderr)


USER_MODELS = """
import torch

def wrong_size(num_classes=10, in_channels=3, input_size=32):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, num_classes))

def no_parameters(**kwargs):
    return torch.nn.Flatten()

def exits(**kwargs):
    raise SystemExit(0)
"""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wrong_size", "does not run on inputs of shape [N, 3x32x32] (RuntimeError: mat1 and mat2"),
        ("no_parameters", "has no trainable parameters"),
        ("exits", "failed to build (SystemExit: 0)"),
    ],
)
def test_a_user_model_that_cannot_run_is_one_line(tmp_path: Path, name: str, message: str) -> None:
    """Before any training: a model that does not fit its data, has nothing to train, or exits (exit 0 with no
    output before)."""
    (tmp_path / "models.py").write_text(USER_MODELS)
    result = run(["evaluate", "--model", f"{tmp_path / 'models.py'}:{name}", "--assign", "exact8s", "--limit", "8"])
    assert_clean(result, 2)
    assert message in result.stderr
    if name == "wrong_size":  # (and says how a model tells what it takes)
        assert "attributes on the callable say what it takes: .channels and .size" in result.stderr


@pytest.mark.parametrize(
    ("assign", "plot", "message"),
    [("auto", "front.xyz", "cannot write a plot as .xyz"), ("exact8s", "front.png", "--plot needs --assign auto")],
)
def test_a_plot_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, assign: str, plot: str, message: str
) -> None:
    """Before: the whole search ran and wrote --save, then the plot failed."""
    saved = tmp_path / "saved.json"
    args = ["evaluate", "--model", "lenet5", "--limit", "8", "--assign", assign, "--candidates", "trunc8s_k6"]
    result = run([*args, "--save", str(saved), "--plot", str(tmp_path / plot)])
    assert_clean(result, 2)
    assert message in result.stderr and not saved.exists() and "accuracy" not in result.stdout


@pytest.mark.parametrize(("key", "value"), [("per_channel", "no"), ("per_channel", 1), ("engine", 5), ("engine", "")])
def test_layer_config_fields_are_typed(tmp_path: Path, key: str, value: object) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"default": {"multiplier": "exact", key: value}}))
    with pytest.raises(ConfigError, match=f"{key}="):
        AssignmentMapping.parse(str(path))


def test_a_folder_given_as_weights_says_so(tmp_path: Path) -> None:
    result = run(["evaluate", "--model", "lenet5", "--weights", str(tmp_path), "--limit", "8"])
    assert_clean(result, 2)
    assert "is a folder, not a weights file" in result.stderr


@pytest.mark.parametrize(
    ("labels", "data"),
    [
        (["a"] * 4, None),
        ([3.7] * 4, None),  # (was truncated to 3, exit 0)
        (b"\x01" * 4, None),
        ({1: 2}, None),
        ([2**70] * 4, None),
        (None, np.full((4, 3072), -5, dtype=np.int64)),  # (was used as pixel values, exit 0)
        (None, np.full((4, 3072), 1e30)),
        (None, np.array([["x"] * 3072] * 4, dtype=object)),
    ],
)
def test_a_damaged_cifar_batch_is_one_line(tmp_path: Path, labels: object, data: object) -> None:
    from approxlut.errors import InputError
    from approxlut.nn.data import load_dataset

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4]}
        if name == "test_batch":
            batch = {b"data": batch[b"data"] if data is None else data, b"labels": labels or [1, 2, 3, 4]}
        (base / name).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(InputError, match=r"test_batch: .*CIFAR-10"):
        load_dataset("cifar10", tmp_path)


def _checkpoint(path: Path, identity: object, epochs: list[dict[str, object]]) -> None:
    import torch

    from approxlut.nn.retrain import CHECKPOINT_FORMAT, CHECKPOINT_KIND, save_checkpoint

    history = {"epochs": epochs, "before_accuracy": 50.0}
    save_checkpoint(
        path,
        {
            "kind": CHECKPOINT_KIND,
            "format": CHECKPOINT_FORMAT,
            "identity": json.dumps(identity),
            "epoch": len(epochs),
            "model": {"w": torch.zeros(1)},
            "trainer": {},
            "history": json.dumps(history),
        },
    )


EPOCH = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 80.0, "test_accuracy": 79.0, "seconds": 1.0}


@pytest.mark.parametrize(
    ("identity", "epochs", "problem"),
    [
        ({"half_windows": {}}, [], "no run options"),
        ([1, 2], [], "no run options"),
        ({"run": [], "half_windows": {}}, [], "no run options"),
        ({"run": {}}, [], "half windows"),
        ({"run": {}, "half_windows": {"ab": "8"}}, [], "half windows"),
        ({"run": {}, "half_windows": {"ab": 100000}}, [], "half windows"),
        ({"run": {}, "half_windows": {}}, [{**EPOCH, "samples_per_s": "fast"}], "epoch 1"),
        ({"run": {}, "half_windows": {}}, [{**EPOCH, "epoch": 3, "samples_per_s": 9.0}], "epoch 1"),
    ],
)
def test_a_forged_checkpoint_record_is_refused(tmp_path: Path, identity: object, epochs: list, problem: str) -> None:
    """Its identity and history were trusted in shape: tracebacks, or a half window of 100000 used (exit 0)."""
    from approxlut.errors import InputError
    from approxlut.nn.retrain import read_checkpoint

    path = tmp_path / "ck.pt"
    _checkpoint(path, identity, epochs)
    with pytest.raises(InputError, match=f"identity/history is damaged \\({problem}"):
        read_checkpoint(path)
    _checkpoint(path, {"run": {}, "half_windows": {"ab": 8}}, [{**EPOCH, "samples_per_s": 9.0}])
    assert read_checkpoint(path)["identity"]["half_windows"] == {"ab": 8}


def test_an_error_after_progress_bars_is_the_only_output_on_stderr() -> None:
    """Off a terminal the bars draw nothing, and used to leave one blank line each before the error."""
    # (an assignment naming no layer of the model is found once the model is quantised, after the float pass)
    result = run(["evaluate", "--model", "lenet5", "--limit", "16", "--assign", "features.99=exact8s"])
    assert_clean(result, 2)
    assert result.stderr.startswith("error: assignment names unknown layers 'features.99'"), repr(result.stderr[:80])


@pytest.mark.parametrize("kind", ["file", "dangling link"])
def test_a_cache_that_is_not_a_folder_is_one_line(tmp_path: Path, kind: str) -> None:
    """The native build folder under LUTGEN_CACHE could not be made: a traceback of 40 lines (exit 1)."""
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("x")
    else:
        cache.symlink_to(tmp_path / "nowhere")
    done = run_process(["native", "build"], env={"LUTGEN_CACHE": str(cache)})
    assert done.returncode == 2 and "cannot create the native build folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_data_folder_given_with_the_built_in_digits_is_refused(tmp_path: Path) -> None:
    """It was ignored: the run used the built-in set while the user believed it read their folder."""
    result = run(["evaluate", "--model", "lenet5", "--dataset", "digits", "--data", str(tmp_path), "--limit", "8"])
    assert_clean(result, 2)
    assert "--data" in result.stderr and "applies to cifar10 and mnist" in result.stderr


def test_a_model_cache_that_cannot_keep_the_weights_is_found_before_training(tmp_path: Path) -> None:
    """The float model trained in full, then the weights could not be cached."""
    (tmp_path / "models").write_text("a file where the models folder goes")
    result = run(
        ["evaluate", "--model", "lenet5", "--limit", "8", "--assign", "exact8s"], env={"LUTGEN_CACHE": str(tmp_path)}
    )
    assert_clean(result, 2)
    assert "cannot write" in result.stderr and "training" not in result.stdout + result.stderr
