"""The per-multiplier half-window search for difference-based gradient LUTs (``--half-window auto``).

The DATE'25 flow tried ``w`` in {1, 2, 4, 8, 16, 32, 64} for each multiplier on a short training run
and kept the one with the lowest training loss. :func:`search_half_window` does that for one table
given a trial function; :func:`choose_half_windows` builds the trials from short retraining runs of a
model (every trial starts from the same calibrated model with the same seed and batches, only the
multiplier's gradient tables differ; the trials follow the run's retraining protocol, without the
divergence guard, so a trial that diverges scores an infinite loss) and caches each choice in the
library's catalogue, keyed by the table's content hash (and the protocol, other than lutgen's), so
later runs reuse it (a ``half_windows.json`` that earlier versions wrote beside
the catalogue is imported once, see :data:`approxlut.library.catalogue.LEGACY_HALF_WINDOWS`).

Candidates that give identical gradient tables (e.g. every window too wide for a 4-bit operand has
only border slopes) are tried once, under the smallest such ``w``.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut
from .config import AssignmentMapping
from .data import Prepared
from .progress import add_task, make_progress

if TYPE_CHECKING:
    from .retrain import RetrainConfig

CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_STEPS = 30


@dataclass(frozen=True)
class HalfWindowChoice:
    """The half window chosen for one multiplier.

    Attributes:
        lut_hash: the table's content hash.
        name: the multiplier's name.
        half_window: the chosen ``w``.
        losses: ``w`` -> the trial's loss (mean training loss over the second half of its short run).
        cached: whether the choice came from the library instead of a search now.
    """

    lut_hash: str
    name: str
    half_window: int
    losses: dict[int, float]
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The cached form (the hash is the key it is stored under)."""
        return {
            "name": self.name,
            "half_window": self.half_window,
            "losses": {str(k): v for k, v in self.losses.items()},
        }


def distinct_windows(lut: Lut, candidates: Iterable[int] = CANDIDATES) -> list[int]:
    """``candidates`` (sorted) without those whose gradient tables equal a smaller candidate's."""
    seen: set[str] = set()
    kept: list[int] = []
    for w in sorted(set(candidates)):
        if not isinstance(w, int) or isinstance(w, bool) or w < 0:
            raise ConfigError(f"half-window candidate {w!r} must be a non-negative int")
        with_w = lut.with_gradients(w)
        assert with_w.grad_a is not None and with_w.grad_b is not None
        digest = hashlib.sha256(np.ascontiguousarray(with_w.grad_a).tobytes())
        digest.update(np.ascontiguousarray(with_w.grad_b).tobytes())
        key = digest.hexdigest()
        if key not in seen:
            seen.add(key)
            kept.append(w)
    return kept


def search_half_window(
    lut: Lut, trial: Callable[[int], float], *, candidates: Iterable[int] = CANDIDATES
) -> HalfWindowChoice:
    """Run ``trial(w)`` (a loss, lower is better) for each distinct candidate; keep the lowest (ties: smaller w)."""
    losses: dict[int, float] = {}
    for w in distinct_windows(lut, candidates):
        losses[w] = float(trial(w))
    if not losses:
        raise ConfigError("no half-window candidates to try")
    finite = {w: v for w, v in losses.items() if np.isfinite(v)}
    if not finite:
        raise ConfigError(f"every half-window trial of '{lut.name}' diverged; lower the learning rate")
    best = min(finite, key=lambda w: (finite[w], w))
    return HalfWindowChoice(lut.hash, lut.name, best, losses)


# ------------------------------------------------------------------------------------------- caching


def choice_key(lut_hash: str, protocol: str = "lutgen") -> str:
    """The catalogue key of a table's choice: its hash, suffixed ``@protocol`` for other protocols than lutgen's."""
    return lut_hash if protocol == "lutgen" else f"{lut_hash}@{protocol}"


def cached_choice(
    lut: Lut, *, library: str | os.PathLike[str] | None = None, protocol: str = "lutgen"
) -> HalfWindowChoice | None:
    """The stored choice for ``lut``'s table in the library (``--library`` / ``$LUTGEN_LIBRARY``), or ``None``."""
    from ..library import Library

    with Library.open_default(library) as lib:
        item = lib.half_window_choice(choice_key(lut.hash, protocol))
    if item is None:
        return None
    try:
        return HalfWindowChoice(
            lut.hash,
            str(item.get("name", lut.name)),
            int(item["half_window"]),
            {int(k): float(v) for k, v in item.get("losses", {}).items()},
            cached=True,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # damaged: searched again and overwritten


def store_choice(
    choice: HalfWindowChoice, *, library: str | os.PathLike[str] | None = None, protocol: str = "lutgen"
) -> None:
    """Remember ``choice`` in the library (one transaction; an older choice for the table is replaced).

    A read-only library keeps nothing: the choice is searched again next time.
    """
    from ..library import Library

    with Library.open_default(library) as lib:
        if not lib.readonly:
            lib.store_half_window_choice(choice_key(choice.lut_hash, protocol), choice.to_dict())


# -------------------------------------------------------------------------------------------- trials


def short_run_loss(losses: list[float]) -> float:
    """The loss a trial reports: the mean over the second half of its steps."""
    tail = losses[len(losses) // 2 :] or losses
    return float(sum(tail) / len(tail))


def choose_half_windows(
    model: nn.Module,
    data: Prepared,
    mapping: AssignmentMapping | Mapping[str, Any] | str | Lut,
    *,
    config: RetrainConfig | None = None,
    candidates: Iterable[int] = CANDIDATES,
    steps: int = DEFAULT_STEPS,
    library: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    verbose: bool = True,
) -> dict[str, HalfWindowChoice]:
    """The half window of every multiplier in ``mapping`` (by table hash): cached, or searched now.

    Each trial retrains a copy of the calibrated approximate model for ``steps`` steps (protocol,
    learning rate, batch size, momentum and seed from ``config``; the schedule runs over the trial)
    with the candidate's gradient tables for that multiplier and half window 8 for the others, and
    reports :func:`short_run_loss` (infinite for a trial whose loss stops being finite).
    ``refresh`` searches again even where a choice is cached.
    """
    from .retrain import (
        DEFAULT_HALF_WINDOW,
        RetrainConfig,
        Trainer,
        assignment_luts,
        prepare_model,
        protocol_mapping,
        with_gradients,
    )
    from .swap import approximate

    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"half-window search steps={steps!r} must be a positive int")
    config = replace(config or RetrainConfig(), grad="difference", half_window=DEFAULT_HALF_WINDOW)
    rules = protocol_mapping(model, AssignmentMapping.coerce(mapping), config)
    luts = assignment_luts(rules)
    chosen: dict[str, HalfWindowChoice] = {}
    todo: list[str] = []
    for h, lut in luts.items():
        found = None if refresh else cached_choice(lut, library=library, protocol=config.protocol)
        if found is not None:
            chosen[h] = found
        else:
            todo.append(h)
    if not todo:
        return chosen
    defaults = dict.fromkeys(luts, DEFAULT_HALF_WINDOW)
    base = prepare_model(model, data, with_gradients(rules, "difference", defaults), config)
    plan = {h: distinct_windows(luts[h], candidates) for h in todo}
    with make_progress(transient=not verbose) as progress:
        task = add_task(progress, "half-window search", sum(len(ws) for ws in plan.values()) * steps)

        for h in todo:
            lut = luts[h]

            def trial(w: int, h: str = h, lut: Lut = lut) -> float:
                candidate = copy.deepcopy(base)
                approximate(candidate, with_gradients(rules, "difference", {**defaults, h: w}), inplace=True)
                trainer = Trainer.create(candidate, data, config, total_steps=steps, guard=False)

                def report(step: int, loss: float, acc: float, rate: float) -> None:
                    progress.update(task, advance=1, info=f"{lut.name} w={w} loss {loss:.3f}")

                losses: list[float] = []
                while len(losses) < steps:
                    _, _, more = trainer.run_epoch(max_steps=steps - len(losses), report=report)
                    losses.extend(more)
                    if not more or not np.isfinite(more[-1]):
                        return float("inf")
                return short_run_loss(losses)

            choice = search_half_window(lut, trial, candidates=plan[h])
            store_choice(choice, library=library, protocol=config.protocol)
            chosen[h] = choice
    return chosen
