"""Approximation-aware retraining: fine-tune a model through its approximate multipliers.

:func:`retrain` swaps the layers of a trained float model for approximate ones (:func:`approximate`),
sets the activation ranges, measures the test accuracy, and then trains as a protocol says
(:mod:`approxlut.nn.protocol`: ``"lutgen"``, SGD with Nesterov momentum and a cosine schedule, every
layer approximated, ranges frozen after calibration; or ``"date25"``, the DATE'25 reference's Adam with
halvings, convolutions only, moving-average ranges). The forward pass runs the multiplier's table; the
backward pass goes through each multiplier's gradient LUTs (``grad="difference"``, DESIGN.md) or exact
products (``grad="ste"``), with straight-through quantiser gradients (zero outside the clamp range).
A divergence guard (:mod:`approxlut.nn.guard`) catches a run that blows up and backs off; a run that
ends at chance accuracy carries a warning.

The run is deterministic for a seed (:mod:`approxlut.nn.reproducible`): deterministic algorithms and,
with ``threads``, a fixed intra-op thread count. After every epoch a checkpoint is written atomically
(temporary file + ``os.replace``): model state, optimiser, step and guard state, the epoch, the random
generator states, the configuration and the history. ``resume=True`` continues from it and ends with
the same weights, bit for bit, as an uninterrupted run with the same seed (on the same machine and
thread count). Checkpoints are read with ``torch.load(..., weights_only=True)``.

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

from ..clitypes import MAX_HALF_WINDOW
from ..errors import ConfigError, InputError
from ..fileio import atomic_write, check_writable
from ..lutgen.lut import Lut
from .config import GRADS, AssignmentMapping, LayerConfig, Spec, saved_file
from .data import Prepared
from .devices import check_device, default_device
from .guard import DivergenceGuard, GuardEvent
from .modes import work_mode
from .multipliers import load_multiplier
from .progress import add_task, make_progress
from .protocol import CONVOLUTIONS, conv_only, get_protocol
from .quant import WeightQuantizer, track_running_ranges
from .reproducible import deterministic, state_sha256
from .swap import approx_layers, approximate
from .train import RETRAIN_KIND, safe_load, short_reason

CHECKPOINT_KIND = RETRAIN_KIND
CHECKPOINT_FORMAT = 2
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
        lr: peak learning rate (``None``: the protocol's; the protocol's schedule scales it).
        batch_size: samples per step.
        momentum: SGD (Nesterov) momentum (``None``: the protocol's; unused by Adam).
        weight_decay: L2 penalty (``None``: the protocol's).
        seed: seeds the shuffling and torch's global generator.
        calibration_batches: training batches (in file order) that first set the activation ranges
            (``None``: the protocol's; 0: the whole training set).
        protocol: ``"lutgen"`` or ``"date25"`` (:mod:`approxlut.nn.protocol`).
        guard: watch for a blow-up and back off (:mod:`approxlut.nn.guard`); without it a non-finite
            loss stops the run with an error.
        threads: intra-op threads for the run (``None``: torch's current count). The result depends
            on it, so fix it where runs must compare across machines.

    The ``None`` fields take the protocol's values on construction, so a config always holds numbers.
    """

    grad: str = "difference"
    half_window: HalfWindow = DEFAULT_HALF_WINDOW
    epochs: int = 5
    lr: float | None = None
    batch_size: int = 64
    momentum: float | None = None
    weight_decay: float | None = None
    seed: int = 0
    calibration_batches: int | None = None
    protocol: str = "lutgen"
    guard: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.grad not in GRADS:
            raise ConfigError(f"grad={self.grad!r}: expected one of {', '.join(GRADS)}")
        protocol = get_protocol(self.protocol)
        for name in ("lr", "momentum", "weight_decay", "calibration_batches"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(protocol, name))
        hw = self.half_window
        if not (hw is None or hw == "auto" or (isinstance(hw, int) and not isinstance(hw, bool) and hw >= 0)):
            raise ConfigError(f"half window {hw!r}: expected a non-negative int or 'auto'")
        for name in ("epochs", "batch_size", "calibration_batches"):
            value = getattr(self, name)
            low = 1 if name == "batch_size" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                kind = "positive" if low else "non-negative"
                raise ConfigError(f"{name}={value!r} must be a {kind} int")
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value!r} must be a non-negative number")
        threads = self.threads
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ConfigError(f"threads={threads!r} must be a positive int")

    def number(self, name: str) -> float:
        """A numeric field that the protocol has filled in (``lr``, ``momentum``, ``weight_decay``)."""
        value = getattr(self, name)
        assert isinstance(value, (int, float))
        return float(value)


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
        protocol: the retraining protocol.
        threads: the intra-op thread count the run had.
        guard_events: the blow-ups the divergence guard caught (empty without a guard).
        warnings: what a reader of the results must know (back-offs, chance accuracy), one line each.
    """

    before_accuracy: float
    epochs: tuple[EpochRecord, ...]
    half_windows: dict[str, int | None]
    grad: str
    checkpoint: Path | None
    resumed_at: int
    model: nn.Module = field(repr=False, compare=False)
    protocol: str = "lutgen"
    threads: int = 1
    guard_events: tuple[GuardEvent, ...] = ()
    warnings: tuple[str, ...] = ()

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
            "protocol": self.protocol,
            "threads": self.threads,
            "guard_events": [
                {
                    "epoch": e.epoch,
                    "step": e.step,
                    "reason": e.reason,
                    "step_loss": e.loss if math.isfinite(e.loss) else None,
                    "grad_norm": e.grad_norm if math.isfinite(e.grad_norm) else None,
                    "action": e.action,
                }
                for e in self.guard_events
            ],
            "warnings": list(self.warnings),
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
    """The first ``calibration_batches`` training batches in file order (all of them for 0; deterministic)."""
    x = data.x_train
    batches = [x[i : i + config.batch_size] for i in range(0, x.shape[0], config.batch_size)]
    return batches[: config.calibration_batches] if config.calibration_batches else batches


def protocol_mapping(model: nn.Module, mapping: AssignmentMapping, config: RetrainConfig) -> AssignmentMapping:
    """``mapping`` as the protocol runs it (convolutions only for ``date25``)."""
    return conv_only(model, mapping) if get_protocol(config.protocol).conv_only else mapping


@torch.no_grad()
def _calibrate_running(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """One pass in training mode, as the DATE'25 reference calibrates (batch-norm statistics move too)."""
    device = _device_of(model)
    with work_mode(model, training=True):
        for batch in batches:
            model(batch.to(device))


def prepare_model(model: nn.Module, data: Prepared, mapping: AssignmentMapping, config: RetrainConfig) -> nn.Module:
    """The approximate model a run starts from: ``model`` swapped as ``mapping`` says, ranges as the protocol says."""
    protocol = get_protocol(config.protocol)
    if not protocol.running_ranges:
        return approximate(model, mapping, calibration_data=calibration_batches(data, config))
    approx = track_running_ranges(approximate(model, mapping), protocol.range_momentum)
    _calibrate_running(approx, calibration_batches(data, config))
    return approx


@torch.no_grad()
def test_accuracy(model: nn.Module, data: Prepared, *, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) on the test split; the model's training flags are restored."""
    device = _device_of(model)
    correct = 0
    with work_mode(model):
        for start in range(0, data.x_test.shape[0], batch_size):
            xb = data.x_test[start : start + batch_size].to(device)
            yb = data.y_test[start : start + batch_size].to(device)
            correct += int((model(xb).argmax(1) == yb).sum())
    return 100.0 * correct / max(1, data.x_test.shape[0])


@dataclass
class Trainer:
    """The optimiser, learning-rate schedule, shuffling generator and divergence guard of one retraining run."""

    model: nn.Module
    data: Prepared
    config: RetrainConfig
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    total_steps: int
    guard: DivergenceGuard | None
    on_event: Callable[[GuardEvent], None] | None = None
    step: int = 0

    @classmethod
    def create(
        cls,
        model: nn.Module,
        data: Prepared,
        config: RetrainConfig,
        *,
        total_steps: int,
        guard: bool | None = None,
        on_event: Callable[[GuardEvent], None] | None = None,
    ) -> Trainer:
        """Seed the generators and set up the protocol's optimiser over ``total_steps`` steps.

        ``guard`` overrides ``config.guard``; ``on_event`` hears of every blow-up the guard catches.
        """
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = get_protocol(config.protocol).make_optimizer(
            model.parameters(),
            lr=config.number("lr"),
            momentum=config.number("momentum"),
            weight_decay=config.number("weight_decay"),
        )
        trainer = cls(model, data, config, optimizer, generator, max(1, total_steps), None, on_event)
        if config.guard if guard is None else guard:
            trainer.guard = DivergenceGuard(model, optimizer, warmup_steps=trainer.steps_per_epoch)
        return trainer

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.data.x_train.shape[0] / self.config.batch_size))

    def learning_rate(self) -> float:
        """The learning rate of the next step: the peak x the protocol's schedule x the guard's back-off."""
        protocol = get_protocol(self.config.protocol)
        lr = self.config.number("lr") * protocol.lr_factor(self.step, self.steps_per_epoch, self.total_steps)
        return lr * (self.guard.lr_factor(self.step) if self.guard is not None else 1.0)

    def run_epoch(
        self, *, max_steps: int | None = None, report: Callable[[int, float, float, float], None] | None = None
    ) -> tuple[float, float, list[float]]:
        """One pass over a fresh shuffle (or its first ``max_steps`` steps).

        Returns ``(mean loss, accuracy %, per-step losses)`` over the steps that were applied; a step the
        guard undid is left out. Without an active guard, a non-finite loss ends the pass and is the
        last of the per-step losses. ``report(step, mean loss, accuracy %, samples/s)`` is called after
        every step.
        """
        model, data, size = self.model, self.data, self.config.batch_size
        device = _device_of(model)
        params = [p for p in model.parameters() if p.requires_grad]
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
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            value = float(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            grad_norm = math.nan
            if math.isfinite(value):
                loss.backward()
                clip = self.guard.clip_norm if self.guard is not None and self.guard.clip_norm else math.inf
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
            self.step += 1
            guard = self.guard if self.guard is not None and self.guard.active else None
            reason = guard.diagnose(value, grad_norm) if guard is not None else None
            if guard is not None and reason is not None:
                epoch = (self.step - 1) // self.steps_per_epoch + 1
                event = guard.back_off(epoch, self.step, reason, value, grad_norm)
                if self.on_event is not None:
                    self.on_event(event)
                continue
            if not math.isfinite(value) or not math.isfinite(grad_norm):
                losses.append(value)
                break
            self.optimizer.step()
            if guard is not None:
                guard.healthy(grad_norm)
            losses.append(value)
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += int(yb.shape[0])
            if report is not None:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                report(step + 1, sum(losses) / len(losses), 100.0 * correct / seen, rate)
        if self.guard is not None and max_steps is None:
            self.guard.end_epoch(self.step // self.steps_per_epoch, self.step)
        return sum(losses) / max(1, len(losses)), 100.0 * correct / max(1, seen), losses

    def state(self) -> dict[str, Any]:
        """Optimiser, step, generator and guard states (for a checkpoint after a whole epoch)."""
        epoch = self.step // self.steps_per_epoch
        return {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": {"shuffle": self.generator.get_state(), "torch": torch.get_rng_state()},
            "guard": self.guard.state(epoch) if self.guard is not None else None,
        }

    def load_state(self, blob: Mapping[str, Any], path: Path) -> None:
        """Restore :meth:`state` (an :class:`InputError` naming ``path`` when it does not fit)."""
        try:
            self.optimizer.load_state_dict(blob["optimizer"])
            self.step = int(blob["step"])
            self.generator.set_state(blob["rng"]["shuffle"])
            torch.set_rng_state(blob["rng"]["torch"])
            if self.guard is not None:
                self.guard.load_state(blob["guard"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise InputError(
                f"{path}: checkpoint optimiser/generator state does not fit this run ({short_reason(error)})"
            ) from None


# -------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically (:func:`approxlut.fileio.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(dict(payload), handle), make_parents=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a retraining checkpoint (``weights_only=True``); one-line :class:`InputError` if bad."""
    if not path.is_file():
        raise InputError(f"nothing to resume: checkpoint {path} does not exist")
    blob = safe_load(path, "checkpoint")
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
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise InputError(f"{path}: checkpoint identity/history is damaged ({error})") from None
    problem = _damaged_record(blob["identity"], blob["history"])
    if problem is not None:
        raise InputError(f"{path}: checkpoint identity/history is damaged ({problem})")
    epoch = blob["epoch"]
    if not isinstance(epoch, int) or epoch < 0 or epoch != len(blob["history"]["epochs"]):
        raise InputError(f"{path}: checkpoint epoch {epoch!r} does not match its history")
    state = blob["model"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(f"{path}: checkpoint model state must be a dict of named tensors")
    return blob


def _damaged_record(identity: Any, history: Mapping[str, Any]) -> str | None:
    """What is wrong with a checkpoint's decoded identity and history, or ``None``: the run's options an object,
    half windows ints in 0..:data:`~approxlut.clitypes.MAX_HALF_WINDOW` or ``None`` by table hash, epochs
    numbered from 1 with finite figures (they reach ``--json`` as they are)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("run"), dict):
        return "no run options"
    windows = identity.get("half_windows")
    if not isinstance(windows, dict) or not all(
        isinstance(h, str) and (w is None or (type(w) is int and 0 <= w <= MAX_HALF_WINDOW)) for h, w in windows.items()
    ):
        return f"half windows must be ints in 0..{MAX_HALF_WINDOW} (or null: the table's own) by table"
    for number, record in enumerate(history["epochs"], start=1):
        figures = [getattr(record, f.name) for f in fields(record) if f.name != "epoch"]
        if record.epoch != number or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in figures
        ):
            return f"epoch {number} of the history"
    if not math.isfinite(history["before_accuracy"]):
        return "the accuracy before retraining"
    return None


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


def _load_model_state(path: Path, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    # (state the layers manage themselves: their weight quantisers' buffers, derived from the weights (a layer's
    # ``weight_quant``, a recurrent layer's ``quant.ih_l0``), and the optional bias correction)
    derived = {
        f"{name}.{buffer}"
        for name, module in model.named_modules()
        if isinstance(module, WeightQuantizer)
        for buffer, _ in module.named_buffers(recurse=False)
    }

    def checked(keys: Mapping[str, torch.Tensor]) -> set[str]:
        return {k for k in keys if k not in derived and not k.endswith("bias_correction")}

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
    lr: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
    protocol: str = "lutgen",
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
        grad, half_window, epochs, lr, batch_size, seed, protocol: see :class:`RetrainConfig`.
        out: checkpoint path, written after every epoch.
        resume: continue from the checkpoint at ``out`` (same options required).
        config: all hyperparameters at once (overrides the keyword arguments above).
        identity: extra JSON-able facts a resumed checkpoint must match (e.g. model name, weights file).
        on_epoch: called with each epoch's record after its checkpoint is written.
        verbose: draw progress bars on stderr (guard events and warnings go to stderr in any case).

    Raises:
        ConfigError: the loss became non-finite with the guard off (or after it gave up).
    """
    if config is None:
        config = RetrainConfig(
            grad=grad,
            half_window=half_window,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            protocol=protocol,
        )
    if resume and out is None:
        raise ConfigError("resume needs the checkpoint path (out)")
    with deterministic(config.threads) as threads:
        return _retrain(model, data, assignment, config, threads, out, resume, identity, on_epoch, verbose)


def _retrain(
    model: nn.Module,
    data: Prepared,
    assignment: AssignmentMapping | Mapping[str, Any] | Spec,
    config: RetrainConfig,
    threads: int,
    out: str | Path | None,
    resume: bool,
    identity: Mapping[str, Any] | None,
    on_epoch: Callable[[EpochRecord], None] | None,
    verbose: bool,
) -> RetrainResult:
    path = Path(out) if out is not None else None
    mapping = protocol_mapping(model, AssignmentMapping.coerce(assignment), config)
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
        if set(windows) != set(luts):
            raise InputError(f"{path}: checkpoint's half windows are for other tables than this run's")
    else:
        windows = _settle_windows(model, data, mapping, config, luts, verbose=verbose)

    # calibrated on resume too: the calibration run creates the products (attention, @) whose state the
    # checkpoint holds; the checkpoint's values then replace the calibrated ones
    approx = prepare_model(model, data, with_gradients(mapping, config.grad, windows), config)
    steps = max(1, math.ceil(data.x_train.shape[0] / config.batch_size))
    with make_progress(transient=not verbose) as progress:

        def tell(event: GuardEvent) -> None:
            progress.console.print(event.message(), markup=False, highlight=False, soft_wrap=True)

        trainer = Trainer.create(approx, data, config, total_steps=config.epochs * steps, on_event=tell)
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

        saved_identity = json.dumps({"run": current, "half_windows": windows})
        total = (config.epochs - resumed_at) * trainer.steps_per_epoch
        task = add_task(progress, f"retraining ({config.grad}, {config.protocol})", total)
        for epoch in range(resumed_at + 1, config.epochs + 1):

            def report(step: int, loss: float, acc: float, rate: float, epoch: int = epoch) -> None:
                progress.update(
                    task,
                    advance=1,
                    info=f"epoch {epoch}/{config.epochs} loss {loss:.3f} acc {acc:.1f}% {rate:.0f} samples/s",
                )

            start = time.perf_counter()
            loss, train_acc, losses = trainer.run_epoch(report=report)
            if losses and not math.isfinite(losses[-1]):
                given_up = " (the divergence guard had given up)" if trainer.guard is not None else ""
                raise ConfigError(
                    f"training diverged (loss {losses[-1]} in epoch {epoch}){given_up}; lower the learning rate"
                )
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
        events = tuple(trainer.guard.events) if trainer.guard is not None else ()
        after = history[-1].test_accuracy if history else before
        notes = run_warnings(events, after, data.num_classes, retrained=bool(history))
        for note in notes:
            progress.console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
    approx.eval()
    return RetrainResult(
        before_accuracy=before,
        epochs=tuple(history),
        half_windows={luts[h].name: w for h, w in windows.items()},
        grad=config.grad,
        checkpoint=path,
        resumed_at=resumed_at,
        model=approx,
        protocol=config.protocol,
        threads=threads,
        guard_events=events,
        warnings=tuple(notes),
    )


#: A final test accuracy below this multiple of chance (100 / classes) is reported as chance level.
CHANCE_MARGIN = 1.5


def run_warnings(events: tuple[GuardEvent, ...], accuracy: float, num_classes: int, *, retrained: bool) -> list[str]:
    """The warnings a run's results carry: the guard's back-offs, and a final accuracy at chance level."""
    notes: list[str] = []
    if events:
        gave_up = any(e.action.startswith("gave up") for e in events)
        notes.append(
            f"the divergence guard caught {len(events)} blow-up(s) (first at epoch {events[0].epoch}, step "
            f"{events[0].step}: {events[0].reason})" + ("; it gave up" if gave_up else "; it backed off")
        )
    chance = 100.0 / max(1, num_classes)
    if retrained and num_classes > 1 and accuracy <= CHANCE_MARGIN * chance:
        notes.append(
            f"test accuracy after retraining {accuracy:.2f} % is at chance level ({chance:.2f} % for "
            f"{num_classes} classes): retraining failed"
        )
    return notes


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
    lr: float | None = None
    batch_size: int = 64
    seed: int = 0
    out: Path | None = None
    resume: bool = False
    device: str | None = None
    protocol: str = "lutgen"
    guard: bool = True
    threads: int | None = None


@dataclass(frozen=True)
class RetrainReport:
    """What ``lutgen retrain`` prints: the run's result and where it came from."""

    model: str
    dataset: str
    device: str
    float_accuracy: float
    result: RetrainResult
    assign: str = ""
    weights_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "device": self.device,
            "float_accuracy_pct": self.float_accuracy,
            "weights_sha256": self.weights_sha256,
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
    """``"auto"`` or an int in 0..:data:`~approxlut.clitypes.MAX_HALF_WINDOW` from the command line."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_HALF_WINDOW:
        raise ConfigError(f"--half-window {text!r}: expected an int in 0..{MAX_HALF_WINDOW} or 'auto'")
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
        check_writable(options.out)  # before an epoch of work, not after (a missing folder too, as --save)
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
    weights_sha256 = state_sha256(model.state_dict())
    model.to(device)
    float_accuracy = test_accuracy(model, data)
    config = RetrainConfig(
        grad=options.grad,
        half_window=half_window,
        epochs=options.epochs,
        lr=options.lr,
        batch_size=options.batch_size,
        seed=options.seed,
        protocol=options.protocol,
        guard=options.guard,
        threads=options.threads,
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
        identity={"model": options.model, "weights": weights_id, "weights_sha256": weights_sha256},
        verbose=verbose,
    )
    return RetrainReport(
        options.model,
        data.name,
        str(device),
        float_accuracy,
        result,
        assign=options.assign,
        weights_sha256=weights_sha256,
    )


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
        f"test accuracy {result.before_accuracy:.2f} % -> {result.after_accuracy:.2f} % ({gain:+.2f} points; "
        f"protocol {result.protocol})" + (f"; resumed after epoch {result.resumed_at}" if result.resumed_at else "")
    )
    for note in result.warnings:
        console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)
    conv_only = get_protocol(result.protocol).conv_only
    assign = _as_run(report.assign, result.model) if conv_only else report.assign
    if conv_only:
        console.print(
            f"protocol {result.protocol} ran only the convolutions through the multipliers (other layers quantised "
            "exact): name those layers `=exact` in --assign (or add `type:Linear=exact`) to evaluate that network"
            + (" (as the line below does)" if assign != report.assign else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if result.checkpoint is not None:
        console.print(f"retrained weights: {result.checkpoint}", soft_wrap=True)
        console.print(
            f"reuse them: lutgen evaluate --model {report.model} --weights {result.checkpoint} "
            f"--assign {shlex.quote(assign)}",
            soft_wrap=True,
            markup=False,
        )


def _as_run(assign: str, model: nn.Module) -> str:
    """``--assign`` text that evaluates what a convolutions-only protocol ran: every other layer that ran exact is
    named ``=exact`` (a name beats a default, type or regex rule); a ``NAME`` becomes ``default=NAME``; a file is
    left as it is."""
    text = assign.strip()
    if saved_file(text) is not None:
        return assign
    exact = [
        name
        for name, layer in approx_layers(model).items()
        if not isinstance(layer, CONVOLUTIONS) and layer.config.multiplier == "exact"
    ]
    if not exact:
        return assign
    return ",".join([text if "=" in text else f"default={text}", *(f"{name}=exact" for name in exact)])
