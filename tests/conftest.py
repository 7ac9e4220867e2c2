"""Shared fixtures: the third-party corpus lives beside the checkout in ../shared/corpus."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from approxlut.environ import environ_scope

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Path of ../shared/corpus; tests that need it are skipped where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


#: Line endings a netlist may come with (and a byte order mark); readers must not care.
LINE_ENDINGS: dict[str, Callable[[str], str]] = {
    "lf": lambda t: t,
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "cr+bom": lambda t: "\ufeff" + t.replace("\n", "\r"),
    "mixed": lambda t: "".join(line + ("\r\n", "\n", "\r")[i % 3] for i, line in enumerate(t.split("\n"))),
}


@pytest.fixture(params=list(LINE_ENDINGS))
def line_ending(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Rewrites LF text with each of :data:`LINE_ENDINGS` in turn."""
    return LINE_ENDINGS[request.param]


@pytest.fixture(scope="session", autouse=True)
def _default_kernel_costs() -> Iterator[None]:
    """Plan choices as on the machine the defaults were measured on, whatever machine runs the tests (the
    measurement itself is tested in tests/native/test_costs.py)."""
    with environ_scope(LUTGEN_KERNEL_COSTS="default"):
        yield


@pytest.fixture(scope="session", autouse=True)
def _native_isa_latched() -> None:
    """Use oneDNN once before any test runs. It reads its ISA cap ($ONEDNN_MAX_CPU_ISA) at its first use in a
    process, and ``lutgen bench --isa`` sets that cap in-process: a test running that command first would cap
    the rest of the session, where the int8 GEMM then turns inexact and every int8 exact-product path goes
    untested (the engines fall back to float32 slices)."""
    import torch

    with contextlib.suppress(RuntimeError):  # (no int8 GEMM on this build: nothing to latch)
        torch._int_mm(torch.ones((16, 64), dtype=torch.int8), torch.ones((64, 64), dtype=torch.int8))


@pytest.fixture(scope="session", autouse=True)
def _private_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep tests out of the user's library: the default library is a session temp folder, created empty here.

    A library named by ``$LUTGEN_LIBRARY`` must exist before reading commands use it; the built-in set
    is then installed on first use.
    """
    from approxlut.library import Library

    root = tmp_path_factory.mktemp("library")
    Library.open(root).close()
    with environ_scope(LUTGEN_LIBRARY=str(root)):
        yield


#: What the engines, the library and native PyTorch read from the environment. A test changes them through
#: ``monkeypatch`` only: left behind (e.g. set in-process by a command run through CliRunner), they would change
#: the path every later test takes, and a test would pass or fail by the order the suite runs in.
WATCHED_ENV = (
    "LUTGEN_CACHE",
    "LUTGEN_CPU_ISA",
    "LUTGEN_ENGINE",
    "LUTGEN_KERNEL_COSTS",
    "LUTGEN_LIBRARY",
    "LUTGEN_PANEL_BYTES",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
)


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """Fails a test that leaves any of :data:`WATCHED_ENV` changed (checked after its monkeypatch is undone), and
    puts them back, so that the tests after it run as they would have."""
    before = {name: os.environ.get(name) for name in WATCHED_ENV}
    yield
    changed = {name: os.environ.get(name) for name in WATCHED_ENV if os.environ.get(name) != before[name]}
    for name in changed:
        if before[name] is None:
            del os.environ[name]
        else:
            os.environ[name] = before[name]
    assert not changed, f"the test left environment variables changed: {changed}"


def quantised_setup(model: Any, data: Any, *, calibration: int = 128, evaluated: int | None = None) -> Any:
    """``model`` (float, trained) and its quantised-exact twin (8-bit symmetric, calibrated on the first
    ``calibration`` training inputs) with the search's data: 128 calibration inputs and the first ``evaluated`` test
    samples (all: ``None``) with the twin's accuracy on them."""
    import torch

    from approxlut.nn import LayerConfig, approximate, layer_macs

    qmodel = approximate(model, LayerConfig("exact", bits=8, scheme="symmetric"), [data.x_train[:calibration]])
    x_eval, y_eval = data.x_test[:evaluated], data.y_test[:evaluated]
    with torch.no_grad():
        baseline = 100.0 * int((qmodel(x_eval).argmax(1) == y_eval).sum()) / x_eval.shape[0]  # as the search counts
    return SimpleNamespace(
        model=model,
        qmodel=qmodel,
        x_calib=data.x_train[:128],
        x_eval=x_eval,
        y_eval=y_eval,
        baseline=baseline,
        macs=layer_macs(model, x_eval[:1]),
    )


@pytest.fixture(scope="session")
def quantised() -> Callable[..., Any]:
    """:func:`quantised_setup`, for tests that search their own models."""
    return quantised_setup


@pytest.fixture(scope="session")
def lenet_digits() -> Any:
    """LeNet-5 trained briefly on the built-in digits, its quantised-exact twin and evaluation data (seconds)."""
    from dataclasses import replace

    import torch

    from approxlut.nn.data import load_dataset
    from approxlut.nn.train import TrainConfig, train_model
    from approxlut.nn.zoo import build_model

    torch.manual_seed(0)
    digits = load_dataset().prepare(channels=1, size=28)
    data = replace(digits, x_train=digits.x_train[:1024], y_train=digits.y_train[:1024])
    model = build_model("lenet5")
    train_model(model, data, TrainConfig(epochs=8, lr=0.05), verbose=False)
    return quantised_setup(model, data, calibration=64)


@pytest.fixture(scope="session")
def auto_search(lenet_digits: Any) -> Callable[..., Any]:
    """Runs :func:`approxlut.nn.assign.auto_assign` on :func:`lenet_digits` over library multipliers by name."""
    from approxlut.library import Library
    from approxlut.library.basis import relative_power
    from approxlut.nn.assign import Candidate, auto_assign
    from approxlut.nn.multipliers import load_multiplier

    def run(
        names: list[str],
        *,
        budget: float = 1.0,
        engine: Any = None,
        setup: Any = None,
        qmodel: Any = None,
        more: tuple[Any, ...] = (),
        **options: Any,
    ) -> Any:
        """``setup``: another namespace like :func:`lenet_digits`'s; ``qmodel``: another quantised model of it;
        ``more``: candidates to add after the named ones."""
        library = Library.open_default()
        candidates = []
        for name in names:
            entry = library.entry(name)
            relative, basis = relative_power(library, entry, signed=True)  # (the models' symmetric baseline)
            candidates.append(Candidate(name, load_multiplier(name), relative, float(entry.mae_pct), basis.label))
        candidates += more
        s = setup or lenet_digits
        return auto_assign(
            s.model,
            qmodel or s.qmodel,
            candidates,
            macs=s.macs,
            x_calib=s.x_calib,
            x_eval=s.x_eval,
            y_eval=s.y_eval,
            baseline_accuracy=s.baseline,
            budget=budget,
            engine=engine,
            sensitivity_samples=64,
            characterise_samples=32,
            **options,
        )

    return run


@pytest.fixture(scope="session")
def json_output() -> Callable[[str, str], dict[str, Any]]:
    """``json_output(stdout, command)``: the command's ``--json`` object, validated against its schema."""
    import jsonschema

    from approxlut.schema import json_schema

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output (JSON has no NaN or Infinity)")

    def parse(text: str, command: str) -> dict[str, Any]:
        data = json.loads(text, parse_constant=refuse)
        jsonschema.validate(data, json_schema(command))
        return data

    return parse


@pytest.fixture(scope="module")
def native() -> object:
    """The compiled CPU extension (built once per session), or a clean skip where it cannot be built."""
    from approxlut.errors import NativeUnavailableError
    from approxlut.native import build

    try:
        return build.load()
    except NativeUnavailableError as error:
        pytest.skip(f"native CPU kernels unavailable: {error}")


def _isa_paths() -> list[Any]:
    from approxlut.native import cpu_features

    return cpu_features.detect().paths() or [pytest.param("none", marks=pytest.mark.skip(reason="not an x86-64 CPU"))]


@pytest.fixture(params=_isa_paths())
def isa(request: pytest.FixtureRequest, native: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each ISA path of this CPU in turn ($LUTGEN_CPU_ISA), with the native kernels built."""
    from approxlut.native import cpu_features

    monkeypatch.setenv(cpu_features.ISA_ENV, request.param)
    return str(request.param)


@pytest.fixture(scope="session")
def resume_after_first_epoch() -> Callable[..., Any]:
    """``run(model, data, lut, path, **options)``: a retraining run interrupted after its first epoch (its
    checkpoint at ``path`` then holds epoch 1), resumed from that checkpoint; returns the resumed result."""
    from approxlut.nn.retrain import read_checkpoint, retrain

    class Interrupted(Exception):
        pass

    def stop_after_first(record: Any) -> None:
        if record.epoch == 1:
            raise Interrupted

    def run(model: Any, data: Any, lut: Any, path: Path, **options: Any) -> Any:
        with pytest.raises(Interrupted):
            retrain(model, data, lut, out=path, on_epoch=stop_after_first, verbose=False, **options)
        assert read_checkpoint(path)["epoch"] == 1
        return retrain(model, data, lut, out=path, resume=True, verbose=False, **options)

    return run
