"""Float training with a cache, so that every command works on a fresh machine.

Without ``--weights`` a model is trained once per (model, build arguments, data, recipe) and its
weights are kept in ``~/.cache/lutgen/models`` (``LUTGEN_CACHE`` overrides the ``~/.cache/lutgen``
part). Weights are always read with ``torch.load(..., weights_only=True)``.

The default recipes are sized for the built-in digits (1437 training images): on 2 CPU cores the
scalable models are built at a quarter of their published width, which trains VGG-19 at 32x32 in
about a minute to ~97 % test accuracy.

Training is deterministic for a recipe (:func:`approxlut.nn.reproducible.deterministic`): seeded
initialisation and data order, deterministic algorithms and a thread count fixed by the recipe
(2 on the digits, 8 otherwise), not by the machine's cores. Machines with the same instruction set
then train the same weights; :func:`approxlut.nn.reproducible.state_sha256` tells.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, LutgenError
from ..fileio import atomic_write, check_writable
from .data import Prepared
from .progress import add_task, make_progress
from .reproducible import deterministic
from .zoo import ModelSpec

CACHE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Float training hyperparameters (SGD with Nesterov momentum and a one-cycle schedule, or Adam).

    ``threads`` is the intra-op thread count of the run: the weights depend on it, so it is fixed.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class Recipe:
    """How to build and train a zoo model for a dataset: the width multiplier and the training config."""

    width: float
    config: TrainConfig


def default_recipe(spec: ModelSpec, dataset: str) -> Recipe:
    """The recipe used when the user gives no weights: small and quick on the built-in digits."""
    small = dataset == "digits"
    width = 0.25 if small and spec.scalable else 1.0
    threads = 2 if small else 8
    if spec.name in ("vit", "transformer"):  # Adam; the ViT needs more epochs on 1437 images (96-97 % over seeds)
        epochs = 60 if spec.name == "vit" else 30
        return Recipe(width, TrainConfig(epochs=epochs, lr=2e-3, weight_decay=0.0, optimizer="adam", threads=threads))
    if spec.input_kind == "sequence" or spec.task == "reconstruction":
        config = TrainConfig(epochs=20 if small else 8, lr=3e-3, weight_decay=0.0, optimizer="adam", threads=threads)
        return Recipe(width, config)
    if spec.name == "lenet5":
        return Recipe(width, TrainConfig(epochs=20 if small else 8, lr=0.05, threads=threads))
    return Recipe(width, TrainConfig(epochs=10 if small else 30, lr=0.05, threads=threads))


def cache_dir() -> Path:
    """``$LUTGEN_CACHE/models`` or ``~/.cache/lutgen/models``."""
    base = os.environ.get("LUTGEN_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "lutgen") / "models"


def cache_path(model_name: str, model_kwargs: Mapping[str, Any], data: Prepared, config: TrainConfig) -> Path:
    """Where the weights of this (model, build arguments, data, recipe) live in the cache."""
    identity = {
        "format": CACHE_FORMAT,
        "model": model_name,
        "kwargs": dict(sorted(model_kwargs.items())),
        "data": data.key,
        "config": asdict(config),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_")[:60]
    return cache_dir() / f"{stem}-{data.name}-{digest}.pt"


@dataclass(frozen=True)
class TrainResult:
    """Where the weights came from and what they reach on the test split."""

    path: Path
    cached: bool
    seconds: float
    test_metric: float


def trained_weights(
    spec: ModelSpec,
    model: nn.Module,
    model_kwargs: Mapping[str, Any],
    data: Prepared,
    config: TrainConfig,
    *,
    verbose: bool = True,
) -> TrainResult:
    """Load ``model``'s cached float weights, or train it now and cache them."""
    path = cache_path(spec.name, model_kwargs, data, config)
    if path.is_file():
        meta = load_weights(model, path, cached=True)
        return TrainResult(path, True, 0.0, float(meta.get("test_metric", math.nan)))
    check_writable(path, make_parents=True)  # (a cache that cannot keep them is found before the training)
    start = time.perf_counter()
    train_model(model, data, config, task=spec.task, verbose=verbose)
    seconds = time.perf_counter() - start
    metric = evaluate_metric(model, data.x_test, data.y_test, task=spec.task)
    meta = {"model": spec.name, "data": data.key, "config": asdict(config), "test_metric": metric, "seconds": seconds}
    save_weights(model, path, meta)
    return TrainResult(path, False, seconds, metric)


def train_model(
    model: nn.Module, data: Prepared, config: TrainConfig, *, task: str = "classification", verbose: bool = True
) -> None:
    """Train ``model`` in float on ``data.x_train`` (deterministic: seeded, ``config.threads`` threads)."""
    with deterministic(config.threads):
        _train(model, data, config, task=task, verbose=verbose)


def _train(model: nn.Module, data: Prepared, config: TrainConfig, *, task: str, verbose: bool) -> None:
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    count = data.x_train.shape[0]
    steps = max(1, math.ceil(count / config.batch_size))
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps, pct_start=0.25
    )
    model.train()
    with make_progress(transient=not verbose) as progress:
        task_id = add_task(progress, f"training {type(model).__name__} on {data.name}", config.epochs * steps)
        for epoch in range(config.epochs):
            order = torch.randperm(count, generator=generator)
            total = 0.0
            for step in range(steps):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                loss = _loss(model, data.x_train[index], data.y_train[index], task)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach())
                progress.update(
                    task_id, advance=1, info=f"epoch {epoch + 1}/{config.epochs} loss {total / (step + 1):.3f}"
                )
    model.eval()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "reconstruction":
        recon, mu, logvar = model(x)
        bce = F.binary_cross_entropy(recon, x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (bce + kld) / x.shape[0]
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate_metric(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, task: str = "classification", batch_size: int = 256
) -> float:
    """Top-1 accuracy in percent (classification) or mean squared reconstruction error (reconstruction)."""
    model.eval()
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        if task == "reconstruction":
            total += float(F.mse_loss(model(xb)[0], xb, reduction="sum")) / xb[0].numel()
        else:
            total += float((model(xb).argmax(1) == y[start : start + batch_size]).sum())
    return total / max(1, x.shape[0]) * (1.0 if task == "reconstruction" else 100.0)


def save_weights(model: nn.Module, path: Path, meta: Mapping[str, Any]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically (a temporary file renamed into place)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "meta": json.loads(json.dumps(meta))}
    atomic_write(path, lambda handle: torch.save(payload, handle), make_parents=True)


def safe_load(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, or one-line :class:`InputError` naming ``what`` and why
    (torch's warnings about the file are not shown: the error says it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged or foreign files
        raise InputError(f"{path}: not a readable {what} ({short_reason(error)})") from None


def short_reason(error: Exception) -> str:
    """An exception's message in one short clause, its first sentence (torch's run to several lines); for a file
    ``torch.load`` refused as unsafe, why."""
    text = str(error).strip()
    if "Weights only load failed" in text:  # (torch's advice to load it unsafely is not passed on)
        return "it holds Python objects, not only tensors; lutgen reads weights with weights_only=True"
    if not any(c.isalpha() for c in text):  # (a bare key or number says nothing alone: "105")
        return f"{type(error).__name__} {text}".strip()
    return text.splitlines()[0].split(". ")[0][:160]


def load_weights(model: nn.Module, path: str | Path, *, cached: bool = False) -> dict[str, Any]:
    """Load a state dict (bare, or ``{"state_dict", "meta"}``) into ``model`` with ``weights_only=True``.

    Returns the file's metadata (empty for a bare state dict). A file that is not a weights file, or
    whose tensors do not fit the model, raises an error saying which file and why.
    """
    path = Path(path)
    what = "cached weights" if cached else "weights"
    hint = f"; delete {path} to retrain" if cached else ""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a {what} file")
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    blob = safe_load(path, f"torch weights file{hint}")
    meta: dict[str, Any] = {}
    state = blob
    if isinstance(blob, Mapping) and blob.get("kind") == RETRAIN_KIND:
        state, meta = _retrained_state(path, model)
    elif isinstance(blob, Mapping) and "state_dict" in blob:
        state = blob["state_dict"]
        meta = dict(blob.get("meta") or {})
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(
            f"{path}: {what} must be a state dict of named tensors, {{'state_dict': ...}} or a `lutgen retrain` "
            f"checkpoint{hint}"
        )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, model has {tuple(expected[k].shape)}")
        raise InputError(f"{path}: {what} do not match the model ({'; '.join(parts)}){hint}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise LutgenError(f"{path}: cannot load {what}: {str(error).splitlines()[0]}{hint}") from error
    model.eval()
    return meta


#: What ``lutgen retrain`` writes in its checkpoints' ``kind`` (:mod:`approxlut.nn.retrain`).
RETRAIN_KIND = "lutgen-retrain"
#: Buffers of approximate layers (activation/weight quantisers, their running ranges, bias correction) that a
#: float model lacks.
_QUANTISER_BUFFER = re.compile(r"(^|\.)(scale|zero_point|running_min|running_max|bias_correction)$")


def _retrained_state(path: Path, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The float weights in a retraining checkpoint (checked by :func:`read_checkpoint`) and what it says of itself.

    The approximate layers' own buffers (quantiser ranges, bias correction) are left out; any other key
    the float model lacks is an error. The metadata says which checkpoint, epoch and assignment.
    """
    from .retrain import read_checkpoint

    blob = read_checkpoint(path)
    expected = model.state_dict()
    state = blob["model"]
    foreign = sorted(k for k in state if k not in expected and not _QUANTISER_BUFFER.search(k))
    if foreign:
        raise InputError(f"{path}: retraining checkpoint does not match the model (unexpected {_few(foreign)})")
    run = blob["identity"].get("run", {})
    meta = {
        "retrained": {
            "checkpoint": str(path),
            "epoch": blob["epoch"],
            "model": run.get("model"),
            "grad": run.get("grad"),
            "assignment": run.get("assignment"),
            "test_accuracy": blob["history"]["epochs"][-1].test_accuracy if blob["history"]["epochs"] else None,
        }
    }
    return {k: v for k, v in state.items() if k in expected}, meta


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


@dataclass
class FloatModel:
    """A zoo model with its float weights and the data it was trained on, ready for evaluation."""

    spec: ModelSpec
    model: nn.Module
    data: Prepared
    weights: Path
    trained: TrainResult | None
    retrained: dict[str, Any] | None = None
    width: float | None = None


def float_model(
    name: str,
    *,
    dataset: str | None,
    data_dir: Path | None,
    weights: Path | None,
    seed: int,
    task: str = "classification",
    verbose: bool = True,
) -> FloatModel:
    """Build zoo model ``name`` for a dataset and give it float weights (``weights``, else trained and cached).

    Raises:
        ConfigError: the model is not a ``task`` model.
    """
    from ..errors import ConfigError
    from .data import load_dataset
    from .zoo import build_model, check_user_model, model_spec

    spec = model_spec(name)
    if spec.task != task:
        raise ConfigError(f"this command needs a {task} model; model '{name}' is a {spec.task} model")
    loaded = load_dataset(dataset, data_dir, seed=seed)
    recipe = default_recipe(spec, loaded.name)
    kwargs: dict[str, Any] = {"num_classes": loaded.num_classes, "in_channels": spec.channels, "input_size": spec.size}
    if spec.scalable:
        kwargs["width"] = recipe.width
    data = loaded.prepare(input_kind=spec.input_kind, channels=spec.channels, size=spec.size)
    model = build_model(name, **kwargs)
    check_user_model(name, model, data.x_train[:2])
    width = recipe.width if spec.scalable else None
    if weights is not None:
        meta = load_weights(model, weights)
        return FloatModel(spec, model, data, weights.resolve(), None, meta.get("retrained"), width)
    trained = trained_weights(spec, model, kwargs, data, recipe.config, verbose=verbose)
    return FloatModel(spec, model, data, trained.path, trained, None, width)
