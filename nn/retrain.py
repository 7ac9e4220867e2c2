"""Approximation-aware retraining: fine-tune a model through its approximate multipliers.

:func:`retrain` swaps the layers of a trained float model for approximate ones (:func:`approximate`),
calibrates the activation ranges on a few training batches, measures the test accuracy, and then trains
with SGD (Nesterov momentum, cosine schedule per step). The forward pass runs the multiplier's table;
the backward pass goes through each multiplier's gradient LUTs (``grad="difference"``, DESIGN.md) or
exact products (``grad="ste"``), with straight-through quantiser gradients (zero outside the clamp range).

After every epoch a checkpoint is written atomically (temporary file + ``os.replace``): model state,
optimiser and schedule state, the epoch, the random generator states, the configuration and the history.
``resume=True`` continues from it and ends with the same weights, bit for bit, as an uninterrupted run
with the same seed (on the same machine and thread count). Checkpoints are read with
``torch.load(..., weights_only=True)``.

Example:
    >>> result = retrain(model, data, "drum8u_k4", grad="difference", epochs=3)  # doctest: +SKIP
    >>> result.before_accuracy, result.after_accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from ..fileio import atomic_write, check_writable
from ..lutgen.lut import Lut
from .config import GRADS, AssignmentMapping, LayerConfig, Spec
from .data import Prepared
from .devices import check_device, default_device
from .multipliers import load_multiplier
from .progress import add_task, make_progress
from .swap import approximate
from .train import RETRAIN_KIND

CHECKPOINT_KIND = RETRAIN_KIND
CHECKPOINT_FORMAT = 1
DEFAULT_HALF_WINDOW = 8
HalfWindow = int | str | None


@dataclass(frozen=True)
class RetrainConfig:
    """Retraining hyperparameters.

    Attributes:
        grad: ``"difference"`` (gradient LUTs) or ``"ste"`` (exact-product gradients).
        half_window: the gradient LUTs' half window for every multiplier (an int), ``"auto"`` (the
            per-multiplier search of :mod:`approxlut.nn.halfwindow`, cached in the library), or
            ``None`` (the tables the ``Lut`` already carries; library LUTs carry half window 8).
        epochs: training epochs.
        lr: peak learning rate (cosine decay to 0 over all steps).
        batch_size: samples per step.
        momentum: SGD (Nesterov) momentum.
        weight_decay: L2 penalty.
        seed: seeds the shuffling and torch's global generator.
        calibration_batches: training batches (in file order) used to calibrate activation ranges.
    """

    grad: str = "difference"
    half_window: HalfWindow = DEFAULT_HALF_WINDOW
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    calibration_batches: int = 4

    def __post_init__(self) -> None:
        if self.grad not in GRADS:
            raise ConfigError(f"grad={self.grad!r}: expected one of {', '.join(GRADS)}")
        hw = self.half_window
        if not (hw is None or hw == "auto" or (isinstance(hw, int) and not isinstance(hw, bool) and hw >= 0)):
            raise ConfigError(f"half window {hw!r}: expected a non-negative int or 'auto'")
        for name in ("epochs", "batch_size", "calibration_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "epochs" else 1):
                kind = "non-negative" if name == "epochs" else "positive"
                raise ConfigError(f"{name}={value!r} must be a {kind} int")
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value!r} must be a non-negative number")


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did: mean training loss and accuracy, test accuracy after it, time and throughput."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    samples_per_s: float


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of :func:`retrain`.

    Attributes:
        before_accuracy: test accuracy (%) of the approximate model before retraining.
        epochs: one record per epoch (including epochs done before a resume).
        half_windows: multiplier name -> half window of its gradient LUTs (``None``: the tables the
            ``Lut`` carries, or unused because ``grad="ste"``).
        grad: the gradient mode.
        checkpoint: where the last checkpoint was written (``None`` without ``out``).
        resumed_at: epochs already done when the run resumed (0 for a fresh run).
        model: the retrained approximate model.
    """

    before_accuracy: float
    epochs: tuple[EpochRecord, ...]
    half_windows: dict[str, int | None]
    grad: str
    checkpoint: Path | None
    resumed_at: int
    model: nn.Module = field(repr=False, compare=False)

    @property
    def after_accuracy(self) -> float:
        """Test accuracy after the last epoch (the before figure when no epoch ran)."""
        return self.epochs[-1].test_accuracy if self.epochs else self.before_accuracy

    @property
    def accuracies(self) -> list[float]:
        """Test accuracy before retraining and after each epoch."""
        return [self.before_accuracy, *(e.test_accuracy for e in self.epochs)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the model; keys as in :mod:`approxlut.schema`)."""
        return {
            "before_accuracy_pct": self.before_accuracy,
            "after_accuracy_pct": self.after_accuracy,
            "grad": self.grad,
            "half_windows": self.half_windows,
            "epochs": [
                {
                    "epoch": e.epoch,
                    "train_loss": e.train_loss,
                    "train_accuracy_pct": e.train_accuracy,
                    "test_accuracy_pct": e.test_accuracy,
                    "elapsed_s": e.seconds,
                    "samples_per_s": e.samples_per_s,
                }
                for e in self.epochs
            ],
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "resumed_at": self.resumed_at,
        }


# ------------------------------------------------------------------------------------- assignment


def _map_configs(mapping: AssignmentMapping, change: Callable[[LayerConfig], LayerConfig]) -> AssignmentMapping:
    """A copy of ``mapping`` with ``change`` applied to every config in it."""
    return replace(
        mapping,
        default=change(mapping.default),
        types=tuple((t, change(c)) for t, c in mapping.types),
        patterns=tuple((p, change(c)) for p, c in mapping.patterns),
        names=tuple((n, change(c)) for n, c in mapping.names),
    )


def _configs(mapping: AssignmentMapping) -> Iterator[LayerConfig]:
    yield mapping.default
    for group in (mapping.types, mapping.patterns, mapping.names):
        for _, config in group:
            yield config


def assignment_luts(mapping: AssignmentMapping) -> dict[str, Lut]:
    """The distinct multiplier tables an assignment names, by content hash (``"float"``/``"exact"`` left out)."""
    found: dict[str, Lut] = {}
    for config in _configs(mapping):
        if not config.is_float and config.multiplier != "exact":
            lut = load_multiplier(config.multiplier)
            found.setdefault(lut.hash, lut)
    return found


def with_gradients(mapping: AssignmentMapping, grad: str, windows: Mapping[str, int | None]) -> AssignmentMapping:
    """``mapping`` with ``grad`` everywhere and each table carrying gradient LUTs of its half window.

    ``windows`` maps a table's hash to its half window (``None``: keep the table's own gradients).
    """
    prepared: dict[str, Lut] = {}

    def change(config: LayerConfig) -> LayerConfig:
        if config.is_float:
            return config
        if config.multiplier == "exact":
            return replace(config, grad=grad)
        lut = load_multiplier(config.multiplier)
        if lut.hash not in prepared:
            window = windows.get(lut.hash)
            if window is None and lut.grad_a is None:
                window = DEFAULT_HALF_WINDOW
            prepared[lut.hash] = lut if window is None else lut.with_gradients(window)
        return replace(config, multiplier=prepared[lut.hash], grad=grad)

    return _map_configs(mapping, change)


def describe_assignment(mapping: AssignmentMapping) -> dict[str, Any]:
    """A JSON-able description of ``mapping`` (``Lut`` objects by name and hash), for checkpoints."""

    def plain(config: LayerConfig) -> LayerConfig:
        if isinstance(config.multiplier, Lut):
            return replace(config, multiplier=f"{config.multiplier.name}@{config.multiplier.hash[:16]}")
        return config

    return _map_configs(mapping, plain).to_dict()


# ---------------------------------------------------------------------------------------- training


def _device_of(model: nn.Module) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def calibration_batches(data: Prepared, config: RetrainConfig) -> list[torch.Tensor]:
    """The first ``calibration_batches`` training batches in file order (deterministic)."""
    x = data.x_train
    return [x[i : i + config.batch_size] for i in range(0, x.shape[0], config.batch_size)][: config.calibration_batches]


@torch.no_grad()
def test_accuracy(model: nn.Module, data: Prepared, *, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) on the test split; the model's training flags are restored."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    device = _device_of(model)
    correct = 0
    try:
        for start in range(0, data.x_test.shape[0], batch_size):
            xb = data.x_test[start : start + batch_size].to(device)
            yb = data.y_test[start : start + batch_size].to(device)
            correct += int((model(xb).argmax(1) == yb).sum())
    finally:
        for module, mode in modes.items():
            module.training = mode
    return 100.0 * correct / max(1, data.x_test.shape[0])


@dataclass
class Trainer:
    """The optimiser, schedule and shuffling generator of one retraining run."""

    model: nn.Module
    data: Prepared
    config: RetrainConfig
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator

    @classmethod
    def create(cls, model: nn.Module, data: Prepared, config: RetrainConfig, *, total_steps: int) -> Trainer:
        """Seed the generators and set up SGD with a cosine schedule over ``total_steps``."""
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
        return cls(model, data, config, optimizer, schedule, generator)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.data.x_train.shape[0] / self.config.batch_size))

    def run_epoch(
        self, *, max_steps: int | None = None, report: Callable[[int, float, float, float], None] | None = None
    ) -> tuple[float, float, list[float]]:
        """One pass over a fresh shuffle (or its first ``max_steps`` steps).

        Returns ``(mean loss, accuracy %, per-step losses)``; ``report(step, mean loss, accuracy %,
        samples/s)`` is called after every step.
        """
        model, data, size = self.model, self.data, self.config.batch_size
        device = _device_of(model)
        model.train()
        count = data.x_train.shape[0]
        order = torch.randperm(count, generator=self.generator)
        steps = self.steps_per_epoch if max_steps is None else min(max_steps, self.steps_per_epoch)
        losses: list[float] = []
        correct = seen = 0
        start = time.perf_counter()
        for step in range(steps):
            index = order[step * size : (step + 1) * size]
            xb, yb = data.x_train[index].to(device), data.y_train[index].to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                raise ConfigError(f"training diverged (loss {float(loss)} at step {step + 1}); lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            losses.append(float(loss.detach()))
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += int(yb.shape[0])
            if report is not None:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                report(step + 1, sum(losses) / len(losses), 100.0 * correct / seen, rate)
        return sum(losses) / max(1, len(losses)), 100.0 * correct / max(1, seen), losses

    def state(self) -> dict[str, Any]:
        """Optimiser, schedule and generator states (for a checkpoint)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": {"shuffle": self.generator.get_state(), "torch": torch.get_rng_state()},
        }

    def load_state(self, blob: Mapping[str, Any], path: Path) -> None:
        """Restore :meth:`state` (an :class:`InputError` naming ``path`` when it does not fit)."""
        try:
            self.optimizer.load_state_dict(blob["optimizer"])
            self.schedule.load_state_dict(blob["schedule"])
            self.generator.set_state(blob["rng"]["shuffle"])
            torch.set_rng_state(blob["rng"]["torch"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise InputError(
                f"{path}: checkpoint optimiser/generator state does not fit this run ({_reason(error)})"
            ) from None


# -------------------------------------------------------------------------------------- checkpoints


def _reason(error: Exception) -> str:
    """The first sentence of an exception's message (torch's can run to several lines)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    first = text.splitlines()[0].split(". ")[0]
    return first[:160]


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically (:func:`approxlut.fileio.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(dict(payload), handle), make_parents=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a retraining checkpoint (``weights_only=True``); one-line :class:`InputError` if bad."""
    if not path.is_file():
        raise InputError(f"nothing to resume: checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise InputError(f"{path}: not a readable checkpoint ({_reason(error)})") from None
    if not isinstance(blob, dict) or blob.get("kind") != CHECKPOINT_KIND:
        raise InputError(f"{path}: not a lutgen retraining checkpoint")
    if blob.get("format") != CHECKPOINT_FORMAT:
        found = blob.get("format")
        raise InputError(f"{path}: checkpoint format {found!r} is not supported (expected {CHECKPOINT_FORMAT})")
    missing = [k for k in ("identity", "epoch", "model", "trainer", "history") if k not in blob]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {', '.join(missing)}")
    try:
        blob["identity"] = json.loads(blob["identity"])
        blob["history"] = json.loads(blob["history"])
        blob["history"]["epochs"] = [EpochRecord(**e) for e in blob["history"]["epochs"]]
        blob["history"]["before_accuracy"] = float(blob["history"]["before_accuracy"])
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(f"{path}: checkpoint identity/history is damaged ({error})") from None
    epoch = blob["epoch"]
    if not isinstance(epoch, int) or epoch < 0 or epoch != len(blob["history"]["epochs"]):
        raise InputError(f"{path}: checkpoint epoch {epoch!r} does not match its history")
    state = blob["model"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(f"{path}: checkpoint model state must be a dict of named tensors")
    return blob


def _check_identity(path: Path, stored: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    for key in sorted(set(stored) | set(current)):
        if stored.get(key) != current.get(key):
            raise InputError(
                f"{path}: checkpoint was written for {key}={_short(stored.get(key))}, this run has "
                f"{key}={_short(current.get(key))}; resume with the same options or write to another --out"
            )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


#: State keys that approximate layers manage themselves: derived from the weight, or optional.
_SELF_MANAGED = ("weight_quant.scale", "weight_quant.zero_point", "bias_correction")


def _load_model_state(path: Path, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    def checked(keys: Mapping[str, torch.Tensor]) -> set[str]:
        return {k for k in keys if not k.endswith(_SELF_MANAGED)}

    expected = model.state_dict()
    missing = sorted(checked(expected) - checked(state))
    unexpected = sorted(checked(state) - checked(expected))
    mismatched = [k for k in checked(expected) if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, model has {tuple(expected[k].shape)}")
        raise InputError(f"{path}: checkpoint does not match the model ({'; '.join(parts)})")
    try:
        model.load_state_dict(dict(state), strict=True)
    except (RuntimeError, ConfigError) as error:
        raise InputError(f"{path}: cannot load the checkpoint's model state: {str(error).splitlines()[0]}") from None


# ------------------------------------------------------------------------------------------ retrain


def _settle_windows(
    model: nn.Module,
    data: Prepared,
    mapping: AssignmentMapping,
    config: RetrainConfig,
    luts: Mapping[str, Lut],
    *,
    verbose: bool,
) -> dict[str, int | None]:
    """Half window per table hash, as ``config.half_window`` says (``None`` everywhere for STE: unused)."""
    if config.grad == "ste":
        return dict.fromkeys(luts)
    if config.half_window == "auto":
        from .halfwindow import choose_half_windows

        choices = choose_half_windows(model, data, mapping, config=config, verbose=verbose)
        return {h: c.half_window for h, c in choices.items()}
    if config.half_window is None:
        return {h: (None if lut.grad_a is not None else DEFAULT_HALF_WINDOW) for h, lut in luts.items()}
    assert isinstance(config.half_window, int)
    return dict.fromkeys(luts, config.half_window)


def retrain(
    model: nn.Module,
    data: Prepared,
    assignment: AssignmentMapping | Mapping[str, Any] | Spec,
    *,
    grad: str = "difference",
    half_window: HalfWindow = DEFAULT_HALF_WINDOW,
    epochs: int = 5,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    config: RetrainConfig | None = None,
    identity: Mapping[str, Any] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    verbose: bool = True,
) -> RetrainResult:
    """Retrain ``model`` through the multipliers of ``assignment``; return accuracies before and after.

    Args:
        model: a trained classifier (float, or already approximate); it is not modified.
        data: the dataset shaped for the model (:meth:`approxlut.nn.data.Dataset.prepare`).
        assignment: what :func:`approximate` takes (one multiplier spec, a layer mapping, ...).
        grad, half_window, epochs, lr, batch_size, seed: see :class:`RetrainConfig`.
        out: checkpoint path, written after every epoch.
        resume: continue from the checkpoint at ``out`` (same options required).
        config: all hyperparameters at once (overrides the keyword arguments above).
        identity: extra JSON-able facts a resumed checkpoint must match (e.g. model name, weights file).
        on_epoch: called with each epoch's record after its checkpoint is written.
        verbose: draw progress bars on stderr.
    """
    if config is None:
        config = RetrainConfig(
            grad=grad, half_window=half_window, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed
        )
    if resume and out is None:
        raise ConfigError("resume needs the checkpoint path (out)")
    path = Path(out) if out is not None else None
    mapping = AssignmentMapping.coerce(assignment)
    luts = assignment_luts(mapping)
    stored = read_checkpoint(path) if resume and path is not None else None

    current = {
        **{f.name: getattr(config, f.name) for f in fields(config)},
        "assignment": describe_assignment(mapping),
        "data": data.key,
        "luts": sorted([lut.name, h] for h, lut in luts.items()),
        **dict(identity or {}),
    }
    if stored is not None:
        assert path is not None
        _check_identity(path, stored["identity"]["run"], json.loads(json.dumps(current)))
        windows = {h: w for h, w in stored["identity"]["half_windows"].items()}
    else:
        windows = _settle_windows(model, data, mapping, config, luts, verbose=verbose)

    runnable = with_gradients(mapping, config.grad, windows)
    if stored is not None:
        approx = approximate(model, runnable)
    else:
        approx = approximate(model, runnable, calibration_data=calibration_batches(data, config))
    steps = max(1, math.ceil(data.x_train.shape[0] / config.batch_size))
    trainer = Trainer.create(approx, data, config, total_steps=config.epochs * steps)

    if stored is not None:
        assert path is not None
        _load_model_state(path, approx, stored["model"])
        trainer.load_state(stored["trainer"], path)
        before = stored["history"]["before_accuracy"]
        history: list[EpochRecord] = list(stored["history"]["epochs"])
    else:
        before = test_accuracy(approx, data)
        history = []
    resumed_at = len(history)
    if resumed_at > config.epochs:
        raise InputError(f"{path}: checkpoint has {resumed_at} epochs, more than the {config.epochs} asked for")

    window_names = {luts[h].name: w for h, w in windows.items()}
    saved_identity = json.dumps({"run": current, "half_windows": windows})
    with make_progress(transient=not verbose) as progress:
        total = (config.epochs - resumed_at) * trainer.steps_per_epoch
        task = add_task(progress, f"retraining ({config.grad})", total)
        for epoch in range(resumed_at + 1, config.epochs + 1):

            def report(step: int, loss: float, acc: float, rate: float, epoch: int = epoch) -> None:
                progress.update(
                    task,
                    advance=1,
                    info=f"epoch {epoch}/{config.epochs} loss {loss:.3f} acc {acc:.1f}% {rate:.0f} samples/s",
                )

            start = time.perf_counter()
            loss, train_acc, _ = trainer.run_epoch(report=report)
            train_seconds = time.perf_counter() - start
            acc = test_accuracy(approx, data)
            seconds = time.perf_counter() - start
            history.append(
                EpochRecord(
                    epoch=epoch,
                    train_loss=loss,
                    train_accuracy=train_acc,
                    test_accuracy=acc,
                    seconds=seconds,
                    samples_per_s=data.x_train.shape[0] / max(train_seconds, 1e-9),
                )
            )
            if path is not None:
                save_checkpoint(
                    path,
                    {
                        "kind": CHECKPOINT_KIND,
                        "format": CHECKPOINT_FORMAT,
                        "identity": saved_identity,
                        "epoch": epoch,
                        "model": {k: v.detach().cpu() for k, v in approx.state_dict().items()},
                        "trainer": trainer.state(),
                        "history": json.dumps({"before_accuracy": before, "epochs": [asdict(e) for e in history]}),
                    },
                )
            if on_epoch is not None:
                on_epoch(history[-1])
    approx.eval()
    return RetrainResult(
        before_accuracy=before,
        epochs=tuple(history),
        half_windows=window_names,
        grad=config.grad,
        checkpoint=path,
        resumed_at=resumed_at,
        model=approx,
    )


# ------------------------------------------------------------------------------------ the CLI job


@dataclass(frozen=True)
class RetrainOptions:
    """Everything ``lutgen retrain`` takes (see the command's help)."""

    model: str
    assign: str
    weights: Path | None = None
    data: Path | None = None
    dataset: str | None = None
    grad: str = "difference"
    half_window: str = str(DEFAULT_HALF_WINDOW)
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 64
    seed: int = 0
    out: Path | None = None
    resume: bool = False
    device: str | None = None


@dataclass(frozen=True)
class RetrainReport:
    """What ``lutgen retrain`` prints: the run's result and where it came from."""

    model: str
    dataset: str
    device: str
    float_accuracy: float
    result: RetrainResult
    assign: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "device": self.device,
            "float_accuracy_pct": self.float_accuracy,
            **self.result.to_dict(),
        }


def default_checkpoint(options: RetrainOptions, *, weights: str, data_key: Any) -> Path:
    """Where ``lutgen retrain`` keeps its checkpoint without ``--out``: ``$LUTGEN_CACHE/retrain``, named by the run.

    The same options (model, weights, data, assignment, hyperparameters) give the same path, so
    ``--resume`` finds it again.
    """
    identity = {
        "model": options.model,
        "weights": weights,
        "data": data_key,
        **{f.name: getattr(options, f.name) for f in fields(options) if f.name not in _NOT_IDENTITY},
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return _checkpoint_dir() / f"{_checkpoint_stem(options.model)}-{digest}.pt"


def _checkpoint_dir() -> Path:
    from .train import cache_dir

    return cache_dir().parent / "retrain"


def _checkpoint_stem(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_")[:60]


def _check_resumable(options: RetrainOptions) -> None:
    """Before any training: ``--resume`` needs a checkpoint (``--out``, or one of this model in the cache)."""
    if options.out is not None:
        if not options.out.is_file():
            raise InputError(f"nothing to resume: checkpoint {options.out} does not exist")
        return
    folder = _checkpoint_dir()
    if not any(folder.glob(f"{glob.escape(_checkpoint_stem(options.model))}-*.pt")):
        raise InputError(f"nothing to resume: no checkpoint of {options.model} in {folder} (run without --resume)")


#: Options that do not change what a retraining run computes (left out of :func:`default_checkpoint`).
_NOT_IDENTITY = ("model", "weights", "data", "out", "resume", "device")


def parse_half_window(text: str) -> int | str:
    """``"auto"`` or a non-negative int from the command line."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--half-window {text!r}: expected a non-negative int or 'auto'") from None
    if value < 0:
        raise ConfigError(f"--half-window {text!r}: expected a non-negative int or 'auto'")
    return value


def run_retrain(options: RetrainOptions, *, verbose: bool = True) -> RetrainReport:
    """Resolve model, weights, data and assignment; retrain; return the report."""
    from .evaluate import parse_assignment
    from .train import float_model

    if options.assign.strip().lower() == "auto":
        raise ConfigError(
            "retrain takes a fixed assignment: run `lutgen evaluate --assign auto --save assignment.json` "
            "first, then `lutgen retrain --assign assignment.json`"
        )
    half_window = parse_half_window(options.half_window)
    device = torch.device(check_device(options.device or default_device()))
    if options.resume:
        _check_resumable(options)  # before the float model is trained, not after
    elif options.out is not None:
        check_writable(options.out, make_parents=True)  # before an epoch of work, not after
    mapping = parse_assignment(options.assign, LayerConfig("exact"))
    loaded = float_model(
        options.model,
        dataset=options.dataset,
        data_dir=options.data,
        weights=options.weights,
        seed=options.seed,
        verbose=verbose,
    )
    model, data = loaded.model, loaded.data
    weights_id = str(loaded.weights)
    model.to(device)
    float_accuracy = test_accuracy(model, data)
    config = RetrainConfig(
        grad=options.grad,
        half_window=half_window,
        epochs=options.epochs,
        lr=options.lr,
        batch_size=options.batch_size,
        seed=options.seed,
    )
    out = options.out or default_checkpoint(options, weights=weights_id, data_key=data.key)
    if options.out is None:
        check_writable(out, make_parents=True)  # the cache folder, before the first epoch
    result = retrain(
        model,
        data,
        mapping,
        config=config,
        out=out,
        resume=options.resume,
        identity={"model": options.model, "weights": weights_id},
        verbose=verbose,
    )
    return RetrainReport(options.model, data.name, str(device), float_accuracy, result, options.assign)


def render_retrain(report: RetrainReport, console: Any) -> None:
    """The final table: accuracy before retraining and after each epoch, time and throughput per epoch."""
    from rich.table import Table

    result = report.result
    windows = ", ".join(f"{n}: w={w if w is not None else 'own'}" for n, w in result.half_windows.items())
    if result.grad == "ste":
        windows = ", ".join(result.half_windows)
    table = Table(
        title=f"retraining {report.model} on {report.dataset} ({result.grad} gradients; {windows or 'no LUT layers'})"
    )
    for column in ("epoch", "train loss", "train acc %", "test acc %", "time s", "samples/s"):
        table.add_column(column, justify="right")
    table.add_row("float", "", "", f"{report.float_accuracy:.2f}", "", "")
    table.add_row("before", "", "", f"{result.before_accuracy:.2f}", "", "")
    for e in result.epochs:
        table.add_row(
            str(e.epoch),
            f"{e.train_loss:.4f}",
            f"{e.train_accuracy:.2f}",
            f"{e.test_accuracy:.2f}",
            f"{e.seconds:.1f}",
            f"{e.samples_per_s:.0f}",
        )
    console.print(table)
    gain = result.after_accuracy - result.before_accuracy
    console.print(
        f"test accuracy {result.before_accuracy:.2f} % -> {result.after_accuracy:.2f} % ({gain:+.2f} points)"
        + (f"; resumed after epoch {result.resumed_at}" if result.resumed_at else "")
    )
    if result.checkpoint is not None:
        console.print(f"retrained weights: {result.checkpoint}", soft_wrap=True)
        console.print(
            f"reuse them: lutgen evaluate --model {report.model} --weights {result.checkpoint} "
            f"--assign {shlex.quote(report.assign)}",
            soft_wrap=True,
            markup=False,
        )
