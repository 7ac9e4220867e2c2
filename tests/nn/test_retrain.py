"""Retraining: gradient-LUT backward through a layer, STE, loss goes down, checkpoint/resume, half windows, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from approxlut.cli import main
from approxlut.errors import ConfigError, InputError, LibraryUsageError
from approxlut.library import Library
from approxlut.lutgen.formats import save_npz
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import ApproxConv2d, ApproxLinear, LayerConfig, approximate, calibrate
from approxlut.nn.data import load_dataset
from approxlut.nn.guard import MAX_BACKOFFS, DivergenceGuard
from approxlut.nn.halfwindow import (
    HalfWindowChoice,
    cached_choice,
    choose_half_windows,
    distinct_windows,
    search_half_window,
    store_choice,
)
from approxlut.nn.reproducible import state_sha256
from approxlut.nn.retrain import RetrainConfig, retrain, run_warnings
from approxlut.nn.train import TrainConfig, train_model
from approxlut.schema import json_schema


def exact_table(bits: int, signed: bool) -> np.ndarray:
    return np.multiply.outer(code_values(bits, signed), code_values(bits, signed)).astype(np.int64)


def noisy_lut(bits: int, signed: bool, seed: int = 0, spread: int = 9) -> Lut:
    rng = np.random.default_rng(seed)
    forward = exact_table(bits, signed) + rng.integers(-spread, spread + 1, size=(1 << bits, 1 << bits))
    return Lut(forward=forward.astype(np.int32), bits_a=bits, bits_b=bits, signed=signed, name=f"noisy{bits}")


def truncated_lut(bits: int, drop: int) -> Lut:
    """An unsigned multiplier that drops the ``drop`` low product bits (large, biased error)."""
    forward = exact_table(bits, False) & ~((1 << drop) - 1)
    return Lut(forward=forward.astype(np.int32), bits_a=bits, bits_b=bits, signed=False, name=f"trunc{bits}_{drop}")


# ----------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("half_window", [1, 3])
def test_difference_backward_through_linear_equals_per_element_reference(half_window: int) -> None:
    torch.manual_seed(0)
    lut = noisy_lut(4, True, seed=1).with_gradients(half_window)
    layer = ApproxLinear(5, 3, config=LayerConfig(lut, grad="difference"))
    x = torch.randn(4, 5) * 1.5
    calibrate(layer, [x * 0.7])  # a narrower range, so that some inputs fall outside the clamp range
    x.requires_grad_(True)
    upstream = torch.randn(4, 3)
    (layer(x) * upstream).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None

    qa, sa, _ = layer.quantize_input(x.detach())
    qb, sb, _ = layer.quantize_weight()
    q_raw = x.detach() / sa
    inside = (q_raw >= -8) & (q_raw <= 7)
    ga_table, gb_table = torch.from_numpy(lut.grad_a).double(), torch.from_numpy(lut.grad_b).double()
    ref_x = torch.zeros(4, 5, dtype=torch.float64)
    ref_w = torch.zeros(3, 5, dtype=torch.float64)
    for m in range(4):
        for k in range(5):
            for n in range(3):
                ca, cb = int(qa[m, k]) & 15, int(qb[n, k]) & 15
                out_grad = float(upstream[m, n]) * float(sa) * float(sb[n])
                if inside[m, k]:
                    ref_x[m, k] += out_grad * float(ga_table[ca, cb]) / float(sa)
                ref_w[n, k] += out_grad * float(gb_table[ca, cb]) / float(sb[n])
    assert bool((~inside).any()) and bool(inside.any())
    torch.testing.assert_close(x.grad.double(), ref_x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.weight.grad.double(), ref_w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("signed", [True, False])
def test_ste_gradients_equal_exact_product_gradients(signed: bool) -> None:
    torch.manual_seed(1)
    lut = noisy_lut(6, signed, seed=2, spread=40)
    conv = nn.Conv2d(3, 4, 3, padding=1, groups=1)
    x = torch.randn(2, 3, 6, 6)
    approx = ApproxConv2d.from_float(conv, LayerConfig(lut, grad="ste"))
    exact = ApproxConv2d.from_float(
        nn.Conv2d(3, 4, 3, padding=1), LayerConfig("exact", bits=6, scheme="symmetric" if signed else "affine")
    )
    exact.weight = nn.Parameter(conv.weight.detach().clone())
    exact.bias = nn.Parameter(conv.bias.detach().clone())
    calibrate(approx, [x])
    calibrate(exact, [x])
    upstream = torch.randn(2, 4, 6, 6)
    grads = []
    for layer in (approx, exact):
        xi = x.clone().requires_grad_(True)
        (layer(xi) * upstream).sum().backward()
        grads.append((xi.grad, layer.weight.grad))
    assert not torch.equal(approx(x), exact(x))  # the forward pass does differ
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------- retraining


@pytest.fixture(scope="module")
def digits():
    flat = load_dataset().prepare(input_kind="flat", channels=1, size=8)
    return replace(flat, x_train=flat.x_train[:256], y_train=flat.y_train[:256])


@pytest.fixture(scope="module")
def float_mlp(digits) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    train_model(model, digits, TrainConfig(epochs=6, batch_size=32, lr=0.1), verbose=False)
    return model


def train_loss(model: nn.Module, data) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(data.x_train), data.y_train))


def test_short_retraining_lowers_the_loss(float_mlp, digits) -> None:
    lut = truncated_lut(6, 5)
    before = approximate(float_mlp, LayerConfig(lut), calibration_data=[digits.x_train[:64]])
    result = retrain(float_mlp, digits, lut, grad="difference", epochs=3, lr=0.02, batch_size=32, verbose=False)
    assert train_loss(result.model, digits) < 0.95 * train_loss(before, digits)
    assert len(result.epochs) == 3 and result.half_windows == {lut.name: 8}
    assert result.accuracies[0] == result.before_accuracy
    assert all(e.seconds > 0 and e.samples_per_s > 0 for e in result.epochs)
    for p_float, p_new in zip(float_mlp.parameters(), result.model.parameters(), strict=True):
        assert p_float is not p_new  # the input model is left alone


@pytest.mark.parametrize(
    ("lr", "protocol", "events"),
    [(0.02, "lutgen", 0), (1.0, "lutgen", 1), (None, "date25", 0)],
    ids=["lutgen", "lutgen-after-a-back-off", "date25-running-ranges"],
)
def test_resume_gives_the_uninterrupted_result(
    float_mlp, digits, resume_after_first_epoch, tmp_path: Path, lr: float | None, protocol: str, events: int
) -> None:
    lut = noisy_lut(5, False, seed=3, spread=30)
    options = {"grad": "difference", "half_window": 2, "epochs": 3, "lr": lr, "batch_size": 32, "seed": 7}
    options["protocol"] = protocol
    whole = retrain(float_mlp, digits, lut, out=tmp_path / "whole.pt", verbose=False, **options)
    assert len(whole.guard_events) == events  # lr 1 blows up in the first epoch: the guard's state is resumed too

    resumed = resume_after_first_epoch(float_mlp, digits, lut, tmp_path / "part.pt", **options)
    assert resumed.resumed_at == 1
    whole_state, resumed_state = whole.model.state_dict(), resumed.model.state_dict()
    assert whole_state.keys() == resumed_state.keys()
    for key, value in whole_state.items():
        assert torch.equal(value, resumed_state[key]), key
    assert [e.test_accuracy for e in whole.epochs] == [e.test_accuracy for e in resumed.epochs]
    assert [e.train_loss for e in whole.epochs] == [e.train_loss for e in resumed.epochs]
    assert whole.before_accuracy == resumed.before_accuracy
    assert resumed.guard_events == whole.guard_events
    done = retrain(float_mlp, digits, lut, out=tmp_path / "part.pt", resume=True, verbose=False, **options)
    assert done.resumed_at == 3 and done.after_accuracy == whole.after_accuracy


def test_two_runs_with_the_same_seed_give_identical_numbers(float_mlp, digits) -> None:
    lut = noisy_lut(5, False, seed=3, spread=30)
    config = RetrainConfig(half_window=2, epochs=2, batch_size=32, seed=3, threads=1)
    threads = torch.get_num_threads()
    first, second = (retrain(float_mlp, digits, lut, config=config, verbose=False) for _ in range(2))
    assert torch.get_num_threads() == threads and first.threads == 1  # the run's count, then restored

    def numbers(result) -> list[tuple[float, float, float]]:
        return [(e.train_loss, e.train_accuracy, e.test_accuracy) for e in result.epochs]

    assert first.before_accuracy == second.before_accuracy and numbers(first) == numbers(second)
    assert state_sha256(first.model.state_dict()) == state_sha256(second.model.state_dict())


# ------------------------------------------------------------------------------- divergence guard


def test_the_guard_catches_a_forced_divergence(float_mlp, digits, capsys) -> None:
    lut = noisy_lut(5, False, seed=3, spread=30)
    options = {"half_window": 2, "epochs": 3, "lr": 10.0, "batch_size": 32, "seed": 7}
    unguarded = retrain(float_mlp, digits, lut, config=RetrainConfig(guard=False, **options), verbose=False)
    assert unguarded.after_accuracy <= 15 and not unguarded.guard_events
    assert any("chance level" in w for w in unguarded.warnings)  # never at chance without a warning
    capsys.readouterr()
    guarded = retrain(float_mlp, digits, lut, config=RetrainConfig(**options), verbose=False)
    first = guarded.guard_events[0]
    assert (first.epoch, first.step) == (1, 2) and "first step" in first.reason and first.loss > 10
    assert "restored the weights of the start" in first.action and "warm-up" in first.action
    assert guarded.after_accuracy > 60 and not any("chance level" in w for w in guarded.warnings)
    assert any("divergence guard caught" in w for w in guarded.warnings)
    report = guarded.to_dict()
    assert report["guard_events"][0]["step"] == 2 and report["warnings"] == list(guarded.warnings)
    assert report["guard_events"][0]["step_loss"] == first.loss and report["guard_events"][0]["grad_norm"] > 0
    jsonschema.validate(report["guard_events"], json_schema("retrain")["properties"]["guard_events"])
    err = capsys.readouterr().err
    assert "divergence guard: epoch 1, step 2: loss" in err and "warning: the divergence guard" in err


def test_the_guard_gives_up_and_says_so(float_mlp, digits) -> None:
    lut = noisy_lut(5, False, seed=3, spread=30)
    config = RetrainConfig(half_window=2, epochs=2, lr=1000.0, batch_size=32, seed=7)
    result = retrain(float_mlp, digits, lut, config=config, verbose=False)
    assert len(result.guard_events) == MAX_BACKOFFS + 1 and result.guard_events[-1].action.startswith("gave up")
    scales = [e.action.split("learning rate x")[1].split()[0] for e in result.guard_events[:MAX_BACKOFFS]]
    assert scales == ["1", "0.1", "0.01"]  # a warm-up first, then a tenth of the rate per back-off
    assert any("it gave up" in w for w in result.warnings)
    with pytest.raises(ConfigError, match="training diverged"):
        retrain(float_mlp, digits, lut, config=replace(config, lr=1e30, guard=False), verbose=False)


def test_run_warnings() -> None:
    assert run_warnings((), 97.0, 10, retrained=True) == []
    (chance,) = run_warnings((), 14.9, 10, retrained=True)
    assert "chance level (10.00 % for 10 classes)" in chance
    assert run_warnings((), 14.9, 10, retrained=False) == []  # no epoch ran: nothing failed


def test_bad_checkpoints_give_one_line_errors(float_mlp, digits, tmp_path: Path) -> None:
    lut = noisy_lut(5, False, seed=4)
    options = {"epochs": 1, "lr": 0.02, "batch_size": 64}
    good = tmp_path / "good.pt"
    retrain(float_mlp, digits, lut, out=good, verbose=False, **options)
    blob = torch.load(good, weights_only=True)

    def expect(path: Path, fragment: str, **changes) -> None:
        with pytest.raises(InputError) as info:
            retrain(float_mlp, digits, lut, out=path, resume=True, verbose=False, **{**options, **changes})
        message = str(info.value)
        assert fragment in message and "\n" not in message, message

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    expect(truncated, "not a readable checkpoint")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    expect(garbage, "not a readable checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": float_mlp.state_dict()}, foreign)
    expect(foreign, "not a lutgen retraining checkpoint")
    lacking = tmp_path / "lacking.pt"
    torch.save({k: v for k, v in blob.items() if k != "trainer"}, lacking)
    expect(lacking, "lacks trainer")
    other_model = tmp_path / "other_model.pt"
    wider = nn.Sequential(nn.Linear(64, 30), nn.ReLU(), nn.Linear(30, 10))
    torch.save({**blob, "model": wider.state_dict()}, other_model)
    expect(other_model, "does not match the model")
    renamed = tmp_path / "renamed.pt"
    torch.save({**blob, "model": {f"x.{k}": v for k, v in blob["model"].items()}}, renamed)
    expect(renamed, "does not match the model")
    expect(good, "lr=0.02", lr=0.05)
    expect(tmp_path / "absent.pt", "does not exist")


# ------------------------------------------------------------------------------------ half windows


def test_distinct_windows_drop_duplicate_tables() -> None:
    lut = noisy_lut(4, False, seed=5)
    # 16 codes: a window of 7 or more leaves no interior, so 8, 16, 32, 64 all give the border slopes only
    assert distinct_windows(lut) == [1, 2, 4, 8]
    assert len(distinct_windows(noisy_lut(8, False, seed=5, spread=3))) == 7


def test_search_keeps_the_lowest_loss() -> None:
    lut = noisy_lut(8, True, seed=6)
    tried: list[int] = []

    def trial(w: int) -> float:
        tried.append(w)
        return {1: 2.0, 2: 1.5, 4: 0.9, 8: 1.1, 16: math.nan, 32: 0.95, 64: 3.0}[w]

    choice = search_half_window(lut, trial)
    assert tried == [1, 2, 4, 8, 16, 32, 64] and choice.half_window == 4 and choice.lut_hash == lut.hash


def test_auto_half_window_search_on_a_toy_model_is_cached(float_mlp, digits, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LUTGEN_LIBRARY", str(tmp_path / "lib"))
    Library.open(tmp_path / "lib").close()  # a library named by $LUTGEN_LIBRARY must exist
    lut = truncated_lut(6, 4)
    first = choose_half_windows(float_mlp, digits, lut, candidates=(1, 2, 4), steps=4, verbose=False)
    choice = first[lut.hash]
    assert not choice.cached and set(choice.losses) == {1, 2, 4}
    assert len(set(choice.losses.values())) > 1  # the gradient tables do change the run
    assert choice.half_window == min(choice.losses, key=lambda w: choice.losses[w])
    stored = cached_choice(lut)
    assert stored is not None and stored.cached and stored.half_window == choice.half_window
    assert stored.losses == choice.losses and not (tmp_path / "lib" / "half_windows.json").exists()
    second = choose_half_windows(float_mlp, digits, lut, candidates=(1, 2, 4), steps=4, verbose=False)
    assert second[lut.hash].cached and second[lut.hash].half_window == choice.half_window
    result = retrain(float_mlp, digits, lut, half_window="auto", epochs=1, batch_size=64, verbose=False)
    assert result.half_windows == {lut.name: choice.half_window}


def test_choices_are_stored_per_table_in_the_catalogue(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    a, b = noisy_lut(4, False, seed=1), noisy_lut(4, False, seed=2)
    with pytest.raises(LibraryUsageError, match="no library at"):
        cached_choice(a, library=library)  # a named library must exist: a mistyped one is not created
    Library.open(library).close()
    assert cached_choice(a, library=library) is None
    store_choice(HalfWindowChoice(a.hash, "a", 4, {1: 2.5, 4: 0.5}), library=library)
    store_choice(HalfWindowChoice(b.hash, "b", 2, {2: 1.0}), library=library)
    store_choice(HalfWindowChoice(a.hash, "a", 1, {1: 0.25}), library=library)  # a new search replaces the old
    assert cached_choice(a, library=library) == HalfWindowChoice(a.hash, "a", 1, {1: 0.25}, cached=True)
    assert cached_choice(b, library=library) == HalfWindowChoice(b.hash, "b", 2, {2: 1.0}, cached=True)
    Library.open(tmp_path / "other").close()
    assert cached_choice(a, library=tmp_path / "other") is None


def test_a_legacy_half_windows_json_is_imported_once_and_left_alone(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    a, b, c = (noisy_lut(4, True, seed=s) for s in (3, 4, 5))
    legacy = library / "half_windows.json"
    text = json.dumps(
        {
            a.hash: {"name": "a", "half_window": 8, "losses": {"4": 1.5, "8": 1.25}},
            b.hash: {"name": "b", "half_window": "wide"},  # damaged: searched again
            c.hash: [1, 2],
        }
    )
    legacy.write_text(text)
    Library.open(library).close()  # the index is created (migration 3 imports the JSON)
    assert cached_choice(a, library=library) == HalfWindowChoice(a.hash, "a", 8, {4: 1.5, 8: 1.25}, cached=True)
    assert cached_choice(b, library=library) is None and cached_choice(c, library=library) is None
    assert legacy.read_text() == text
    legacy.write_text(json.dumps({c.hash: {"name": "c", "half_window": 2}}))  # later edits are not re-imported
    assert cached_choice(c, library=library) is None


# -------------------------------------------------------------------------------------------- CLI


def _tiny_model(path: Path) -> None:
    """A user model file (``path/to/file.py:build``) for the digits: a two-layer MLP over the flattened 8x8 image."""
    path.write_text(
        "from torch import nn\n\n"
        "def build(num_classes=10):\n"
        "    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, num_classes))\n\n"
        "build.input_kind = 'flat'\nbuild.channels = 1\nbuild.size = 8\n"
    )


def test_cli_retrain_json_and_bad_resume(tmp_path: Path, monkeypatch, json_output) -> None:
    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _tiny_model(tmp_path / "tiny_mlp.py")
    lut_path = tmp_path / "mult.npz"
    save_npz(noisy_lut(6, False, seed=8), lut_path)
    checkpoint = tmp_path / "ck.pt"
    args = [
        "retrain",
        "--model",
        f"{tmp_path / 'tiny_mlp.py'}:build",
        "--assign",
        str(lut_path),
        "--epochs",
        "1",
        "--out",
        str(checkpoint),
    ]
    result = CliRunner().invoke(main, [*args, "--json", "--grad", "ste"])
    assert result.exit_code == 0, result.output
    report = json_output(result.stdout, "retrain")
    assert report["grad"] == "ste" and len(report["epochs"]) == 1 and report["device"] == "cpu"
    assert list(report["half_windows"].values()) == [None]  # STE needs no gradient tables
    assert 0 <= report["before_accuracy_pct"] <= 100 and report["float_accuracy_pct"] > 50
    table = CliRunner().invoke(main, [*args, "--resume", "--grad", "ste"])
    assert table.exit_code == 0, table.output
    assert "before" in table.stdout and "samples/s" in table.stdout
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    bad = CliRunner().invoke(main, [*args, "--resume", "--grad", "ste"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error:") and bad.stderr.count("\n") == 1
    auto = CliRunner().invoke(main, [*args, "--assign", "auto"])
    assert auto.exit_code == 2 and "fixed assignment" in auto.stderr
    paper = CliRunner().invoke(main, [*args[:-2], "--protocol", "date25", "--threads", "1", "--no-guard", "--json"])
    assert paper.exit_code == 0, paper.output
    report = json_output(paper.stdout, "retrain")
    assert report["protocol"] == "date25" and report["threads"] == 1 and report["guard_events"] == []
    assert len(report["weights_sha256"]) == 64 and isinstance(report["warnings"], list)
    shown = CliRunner().invoke(main, [*args[:-2], "--protocol", "date25", "--threads", "1", "--no-guard", "--resume"])
    assert "protocol date25 ran only the convolutions" in shown.stdout
    # the line to reuse the weights evaluates what the protocol ran: its non-convolution layers exact, by name
    assert f"--assign default={lut_path},0=exact,2=exact" in " ".join(shown.stdout.split())


def test_guard_diagnosis() -> None:
    model = nn.Linear(2, 2)
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), warmup_steps=4)
    assert guard.diagnose(0.5, 0.01) is None  # the first finite step sets the references
    for norm in (0.1, 0.2, 0.15):
        assert guard.diagnose(0.4, norm) is None
        guard.healthy(norm)
    assert guard.diagnose(1.9, 1.6) is None  # 160 x the first norm, but 10 x the typical one: a hard batch
    assert "loss 2.1 > 2 x the first step's 0.5 + 1" in (guard.diagnose(2.1, 0.1) or "")
    assert "gradient norm 16 > 100 x the typical 0.15" in (guard.diagnose(0.3, 16.0) or "")
    assert "non-finite loss" in (guard.diagnose(math.nan, 0.1) or "")
    assert "non-finite gradient norm" in (guard.diagnose(0.3, math.inf) or "")
    assert guard.lr_factor(7) == 1.0
    guard.back_off(1, 5, "test", 9.0, 1.0)
    assert [guard.lr_factor(s) for s in (5, 6, 8, 9)] == [0.25, 0.5, 1.0, 1.0]  # a linear warm-up over 4 steps
    assert guard.clip_norm == pytest.approx(0.15)


def test_retrained_weights_are_kept_and_evaluate_reuses_them(tmp_path: Path, monkeypatch) -> None:
    from approxlut.nn.train import load_weights

    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _tiny_model(tmp_path / "tiny_reuse.py")
    lut_path = tmp_path / "mult.npz"
    save_npz(noisy_lut(6, False, seed=8), lut_path)
    model_ref = f"{tmp_path / 'tiny_reuse.py'}:build"  # a file, never an importable module name
    args = ["--model", model_ref, "--assign", str(lut_path)]
    trained = CliRunner().invoke(main, ["retrain", *args, "--epochs", "1", "--grad", "ste", "--json"])
    assert trained.exit_code == 0, trained.output
    checkpoint = Path(json.loads(trained.stdout)["checkpoint"])  # kept without --out, in the cache
    assert checkpoint.is_file() and checkpoint.parent == tmp_path / "cache" / "retrain"
    shown = CliRunner().invoke(main, ["retrain", *args, "--epochs", "1", "--grad", "ste", "--resume"])
    assert f"retrained weights: {checkpoint}" in shown.stdout  # --resume finds the default checkpoint again
    assert f"lutgen evaluate --model {model_ref} --weights {checkpoint}" in shown.stdout

    evaluated = CliRunner().invoke(main, ["evaluate", *args, "--weights", str(checkpoint), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    notes = " ".join(json.loads(evaluated.stdout)["notes"])
    assert "weights retrained through approximate multipliers" in notes and "bias correction off" in notes
    stored = torch.load(checkpoint, weights_only=True)["model"]
    from tiny_reuse import build  # type: ignore[import-not-found]

    model = build()
    meta = load_weights(model, checkpoint)
    assert meta["retrained"]["epoch"] == 1
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[key])  # the float weights are the retrained ones, bit for bit

    other = tmp_path / "other.pt"
    blob = torch.load(checkpoint, weights_only=True)
    blob["model"]["0.extra_thing"] = torch.zeros(1)
    torch.save(blob, other)
    refused = CliRunner().invoke(main, ["evaluate", *args, "--weights", str(other)])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "retraining checkpoint does not match the model (unexpected 0.extra_thing)" in refused.stderr

    paper = CliRunner().invoke(main, ["retrain", *args, "--epochs", "1", "--protocol", "date25", "--json"])
    assert paper.exit_code == 0, paper.output
    ranged = Path(json.loads(paper.stdout)["checkpoint"])
    assert any(k.endswith("running_min") for k in torch.load(ranged, weights_only=True)["model"])
    reused = CliRunner().invoke(main, ["evaluate", *args, "--weights", str(ranged), "--json"])
    assert reused.exit_code == 0, reused.output  # running activation ranges are quantiser buffers, left out


def test_a_recurrent_checkpoint_loads_into_a_fresh_model() -> None:
    """A recurrent layer's weight quantisers (``quant.ih_l0``) are derived from its weights like a conv's
    ``weight_quant``: a checkpoint of a calibrated LSTM loads into a fresh one (--resume refused it before)."""
    from approxlut.nn.retrain import _load_model_state

    torch.manual_seed(0)
    float_model = nn.Sequential(nn.LSTM(4, 8, batch_first=True))
    trained = approximate(float_model, "exact8s", calibration_data=[torch.randn(3, 5, 4)])
    trained(torch.randn(3, 5, 4))  # (a forward pass quantises the weights: the quantisers' buffers fill)
    fresh = approximate(float_model, "exact8s")
    assert trained.state_dict()["0.quant.ih_l0.scale"].shape != fresh.state_dict()["0.quant.ih_l0.scale"].shape
    _load_model_state(Path("ck.pt"), fresh, trained.state_dict())
    assert torch.equal(fresh[0].weight_hh_l0, trained[0].weight_hh_l0)
    broken = {k: (v[:1] if k.endswith("weight_hh_l0") else v) for k, v in trained.state_dict().items()}
    with pytest.raises(InputError, match=r"shape of 0\.weight_hh_l0"):
        _load_model_state(Path("ck.pt"), fresh, broken)


def test_running_ranges_keep_a_recurrent_layer_differentiable() -> None:
    """date25's running ranges move a quantiser's scale at each step of a recurrent layer; an earlier step's
    backward pass needs the scale it used (the scale was updated in place: a traceback from loss.backward())."""
    from approxlut.nn.quant import track_running_ranges

    torch.manual_seed(0)
    model = approximate(
        nn.Sequential(nn.LSTM(4, 8, batch_first=True)), "exact8s", calibration_data=[torch.randn(3, 5, 4)]
    )
    track_running_ranges(model, 0.1).train()
    out, _ = model(torch.randn(3, 5, 4))
    out.sum().backward()
    assert model[0].weight_hh_l0.grad is not None and torch.isfinite(model[0].weight_hh_l0.grad).all()


def test_resume_refuses_weights_whose_content_changed(tmp_path: Path, monkeypatch) -> None:
    """The checkpoint knew the weights by their path only: the same path with other weights resumed, and the
    report put the new float accuracy beside the old run's epochs."""
    from approxlut.nn.retrain import RetrainOptions, run_retrain

    monkeypatch.setenv("LUTGEN_CACHE", str(tmp_path / "cache"))
    _tiny_model(tmp_path / "tiny.py")
    lut_path = tmp_path / "mult.npz"
    save_npz(noisy_lut(6, False, seed=8), lut_path)
    from approxlut.nn.zoo import build_model

    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(build_model(f"{tmp_path / 'tiny.py'}:build").state_dict(), weights)
    options = RetrainOptions(
        model=f"{tmp_path / 'tiny.py'}:build",
        assign=str(lut_path),
        weights=weights,
        epochs=1,
        grad="ste",
        out=tmp_path / "ck.pt",
        threads=1,
    )
    run_retrain(options, verbose=False)
    torch.manual_seed(1)
    torch.save(build_model(f"{tmp_path / 'tiny.py'}:build").state_dict(), weights)  # (the same path, other weights)
    with pytest.raises(InputError, match="checkpoint was written for weights_sha256="):
        run_retrain(replace(options, resume=True), verbose=False)
