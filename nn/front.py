"""The energy-loss front of per-layer multiplier choices: pruning, the knapsack hull, NSGA-II refinement.

Each layer ``l`` has options ``i`` with an energy ``e[l][i]`` and a predicted loss increase ``d[l][i]``
(option 0 is the exact multiplier); an assignment picks one option per layer, and its energy and loss
are the sums over layers (the additive model of :mod:`approxlut.nn.assign`). The front is the set of
assignments no other assignment beats in both. It is built in three steps:

1. **Pruning**: an option another option of the same layer beats in both (or equals: duplicates) can
   never be on the front; only the exact option and the non-dominated ones stay.
2. **Knapsack hull**: the multiple-choice knapsack's convex-hull path from all-exact to the cheapest
   assignment (every layer's hull steps, ordered by energy saved per loss added). For a superset of
   candidates every hull is at least as low, so this path never gets worse as the library grows; but
   the knapsack front is not convex, and the points between hull vertices matter near a budget.
3. **Pareto sets layer by layer** (:func:`pareto_sets`): the exact front of the additive model, by
   merging each layer's options into the non-dominated partial sums. Where it stays under ``limit``
   points it is exact, and then a superset of candidates gives a front that beats or equals *every*
   assignment of the subset. Beyond the limit the partial sums are thinned (evenly along the front).
4. **NSGA-II** (pymoo), seeded with the hull path and the (thinned) Pareto set, refines the front where
   step 3 had to thin (an exact Pareto set leaves it nothing to find: it is skipped); the union of all three,
   filtered to its non-dominated points, is the front.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Front:
    """Assignments on the energy-loss front, most expensive (all-exact) first.

    Attributes:
        choices: int ``[P, L]``, the option index of each layer.
        energy: ``[P]``, summed option energies (strictly decreasing).
        loss: ``[P]``, summed predicted losses.
        origin: per point, ``"exact"``, ``"knapsack"`` (a hull vertex), ``"pareto"`` (the layer-by-layer
            Pareto sets) or ``"nsga2"`` (found by NSGA-II only).
    """

    choices: np.ndarray
    energy: np.ndarray
    loss: np.ndarray
    origin: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.energy.shape[0])


def prune(energy: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the options worth keeping, by decreasing energy: option 0 and the non-dominated ones.

    Of options with equal energy and loss only the first (lowest index) is kept.

    Example:
        >>> prune(np.array([10.0, 6, 7, 6, 3]), np.array([0.0, 1, 2, 1, 5])).tolist()
        [0, 1, 4]
    """
    order = sorted(range(len(energy)), key=lambda i: (energy[i], loss[i], i))
    kept: list[int] = []
    best = math.inf
    for i in order:
        if loss[i] < best:
            kept.append(i)
            best = float(loss[i])
    if 0 not in kept:
        kept.append(0)
    return np.array(sorted(kept, key=lambda i: (-energy[i], loss[i], i)), dtype=np.int64)


def _hull_steps(energy: np.ndarray, loss: np.ndarray) -> list[int]:
    """Indices of the lower convex hull of (loss, energy) from option 0 downwards in energy."""
    order = sorted(range(len(energy)), key=lambda i: (loss[i], energy[i], i))
    hull = [0]
    for i in order:
        if i == 0 or energy[i] >= energy[hull[-1]]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or above the segment a-i: drop it
            if (energy[b] - energy[a]) * (loss[i] - loss[a]) >= (energy[i] - energy[a]) * (loss[b] - loss[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def hull_path(energies: Sequence[np.ndarray], losses: Sequence[np.ndarray]) -> np.ndarray:
    """The multiple-choice knapsack's convex-hull path: ``[P, L]`` choices, all-exact first, cheapest last.

    Each step moves one layer one hull step further, in order of loss added per energy saved (ties:
    layer order), so every point is optimal for the additive model at its loss (a supported point).
    """
    steps: list[tuple[float, int, int]] = []
    for layer, (energy, loss) in enumerate(zip(energies, losses, strict=True)):
        for prev, nxt in itertools.pairwise(_hull_steps(energy, loss)):
            saving = energy[prev] - energy[nxt]
            added = max(loss[nxt] - loss[prev], 0.0)
            steps.append((added / saving if saving > 0 else math.inf, layer, nxt))
    steps.sort(key=lambda s: (s[0], s[1]))
    choice = np.zeros(len(energies), dtype=np.int64)
    path = [choice.copy()]
    for _, layer, nxt in steps:
        choice[layer] = nxt
        path.append(choice.copy())
    return np.array(path, dtype=np.int64).reshape(len(path), len(energies))


def totals(energies: Sequence[np.ndarray], losses: Sequence[np.ndarray], choices: np.ndarray) -> np.ndarray:
    """``[P, 2]``: summed energy and loss of each row of ``choices``."""
    energy = np.zeros(choices.shape[0])
    loss = np.zeros(choices.shape[0])
    for layer, (e, d) in enumerate(zip(energies, losses, strict=True)):
        energy += e[choices[:, layer]]
        loss += d[choices[:, layer]]
    return np.column_stack([energy, loss])


def nsga2(
    energies: Sequence[np.ndarray],
    losses: Sequence[np.ndarray],
    seeds: np.ndarray,
    *,
    seed: int = 0,
    population: int = 64,
    generations: int = 150,
) -> np.ndarray:
    """NSGA-II over per-layer option indices (pymoo), starting from ``seeds``; returns its final front.

    Options of each layer should be ordered by energy (neighbouring indices are similar choices, which
    is what the crossover and mutation operators assume).
    """
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    sizes = np.array([len(e) for e in energies])
    free = np.flatnonzero(sizes > 1)
    if free.size == 0:
        return seeds[:1].copy()
    base = seeds[0].copy()

    def expand(x: np.ndarray) -> np.ndarray:
        full = np.tile(base, (x.shape[0], 1))
        full[:, free] = np.clip(np.rint(x), 0, sizes[free] - 1).astype(np.int64)
        return full

    class _Problem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=free.size, n_obj=2, xl=np.zeros(free.size), xu=(sizes[free] - 1).astype(float))

        def _evaluate(self, x: np.ndarray, out: dict[str, np.ndarray], *args: object, **kwargs: object) -> None:
            out["F"] = totals(energies, losses, expand(x))

    rng = np.random.default_rng(seed)
    if seeds.shape[0] > population:
        pick = np.unique(np.linspace(0, seeds.shape[0] - 1, population).round().astype(int))
        seeds = seeds[pick]
    start = seeds[:, free].astype(float)
    extra = population - start.shape[0]
    if extra > 0:
        start = np.vstack([start, rng.integers(0, sizes[free], size=(extra, free.size)).astype(float)])
    algorithm = NSGA2(
        pop_size=population,
        sampling=start,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    result = minimize(_Problem(), algorithm, ("n_gen", generations), seed=seed, verbose=False)
    found = np.atleast_2d(result.X)
    return expand(found)


def nondominated(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` (``[P, 2]``, both minimised) that no other row beats, by the first column.

    Of equal rows only the first is kept.
    """
    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(points.shape[0]), points[:, 1], points[:, 0]))
    second = points[order, 1]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(second)[:-1]])
    return order[second < best_before].astype(np.int64)


def pareto_sets(
    energies: Sequence[np.ndarray], losses: Sequence[np.ndarray], *, limit: int = 20000
) -> tuple[np.ndarray, bool]:
    """The non-dominated assignments of the additive model, layer by layer: ``(choices [P, L], exact)``.

    After each layer the partial sums are filtered to their non-dominated points; if more than ``limit``
    remain, ``limit`` of them evenly spread along the front are kept and ``exact`` is False.
    """
    energy = np.zeros(1)
    loss = np.zeros(1)
    parents: list[np.ndarray] = []
    picks: list[np.ndarray] = []
    exact = True
    for e, d in zip(energies, losses, strict=True):
        total_e = (energy[:, None] + np.asarray(e, float)[None, :]).ravel()
        total_d = (loss[:, None] + np.asarray(d, float)[None, :]).ravel()
        keep = nondominated(np.column_stack([total_e, total_d]))
        if keep.size > limit:
            keep = keep[np.unique(np.linspace(0, keep.size - 1, limit).round().astype(np.int64))]
            exact = False
        parents.append(keep // len(e))
        picks.append(keep % len(e))
        energy, loss = total_e[keep], total_d[keep]
    choices = np.zeros((energy.size, len(parents)), dtype=np.int64)
    row = np.arange(energy.size)
    for layer in range(len(parents) - 1, -1, -1):
        choices[:, layer] = picks[layer][row]
        row = parents[layer][row]
    return choices, exact


def build_front(
    energies: Sequence[np.ndarray],
    losses: Sequence[np.ndarray],
    *,
    seed: int = 0,
    population: int = 64,
    generations: int = 150,
    limit: int = 20000,
) -> Front:
    """The energy-loss front over per-layer options (option 0 of every layer: exact); see the module doc.

    ``generations=0`` skips NSGA-II, as does an exact Pareto set (no point beats it: over a small space NSGA-II
    would only breed duplicates, tens of seconds of it); ``limit`` bounds the layer-by-layer Pareto sets (0: skip
    them).
    """
    kept = [prune(np.asarray(e, float), np.asarray(d, float)) for e, d in zip(energies, losses, strict=True)]
    sub_e = [np.asarray(e, float)[k] for e, k in zip(energies, kept, strict=True)]
    sub_d = [np.asarray(d, float)[k] for d, k in zip(losses, kept, strict=True)]
    # in the pruned lists option 0 is still the exact one (it has the highest energy)
    path = hull_path(sub_e, sub_d)
    parts = [("knapsack", path)]
    complete = False
    if limit > 0:
        exact_set, complete = pareto_sets(sub_e, sub_d, limit=limit)
        parts.append(("pareto", exact_set))
    if generations > 0 and not complete:
        seeds = np.vstack([rows for _, rows in parts])
        seeds = seeds[nondominated(totals(sub_e, sub_d, seeds))]
        found = nsga2(
            sub_e,
            sub_d,
            seeds[np.argsort(-totals(sub_e, sub_d, seeds)[:, 0], kind="stable")],
            seed=seed,
            population=population,
            generations=generations,
        )
        parts.append(("nsga2", found))
    everything = np.vstack([rows for _, rows in parts])
    labels = [label for label, rows in parts for _ in range(rows.shape[0])]
    scores = totals(sub_e, sub_d, everything)
    keep = [i for i in nondominated(scores).tolist() if everything[i].any()]
    keep.sort(key=lambda i: -scores[i, 0])
    exact = np.zeros((1, len(energies)), dtype=np.int64)
    rows = np.vstack([exact, everything[keep]]) if keep else exact
    origin = ("exact", *(labels[i] for i in keep))
    choices = np.column_stack([k[rows[:, layer]] for layer, k in enumerate(kept)]) if kept else rows
    result = totals([np.asarray(e, float) for e in energies], [np.asarray(d, float) for d in losses], choices)
    return Front(choices.astype(np.int64), result[:, 0], result[:, 1], origin)


__all__ = ["Front", "build_front", "hull_path", "nondominated", "nsga2", "pareto_sets", "prune", "totals"]
