"""The energy-loss front: pruning, the knapsack hull path, NSGA-II refinement, and growth with the candidates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from approxlut.nn.front import build_front, hull_path, nondominated, pareto_sets, prune, totals


def _layers(rng: np.random.Generator, count: int, options: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random per-layer options; option 0 is exact (highest energy, no loss)."""
    energies, losses = [], []
    for _ in range(count):
        macs = float(rng.uniform(1, 10))
        energies.append(np.concatenate([[macs], macs * rng.uniform(0.1, 0.95, options)]))
        losses.append(np.concatenate([[0.0], rng.uniform(0, 1, options) ** 2]))
    return energies, losses


def test_prune_keeps_exact_and_the_non_dominated_options() -> None:
    energy = np.array([10.0, 6, 7, 6, 3, 3])
    loss = np.array([0.0, 1, 2, 1, 5, 6])
    kept = prune(energy, loss).tolist()
    assert kept == [0, 1, 4]  # 2 is beaten by 1, 3 duplicates 1, 5 is beaten by 4
    # exact stays even when an option beats it
    assert prune(np.array([10.0, 5]), np.array([0.0, 0.0])).tolist() == [0, 1]


def test_hull_path_is_monotone_and_pareto_optimal() -> None:
    rng = np.random.default_rng(0)
    energies, losses = _layers(rng, 4, 4)
    path = hull_path(energies, losses)
    assert not path[0].any()
    scores = totals(energies, losses, path)
    assert all(a > b for a, b in itertools.pairwise(scores[:, 0]))
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(scores[:, 1]))
    every = np.array(list(itertools.product(range(5), repeat=4)))
    combos = totals(energies, losses, every)
    for energy, loss in scores:
        beaten = (combos[:, 0] < energy - 1e-9) & (combos[:, 1] < loss - 1e-9)
        assert not beaten.any()
    assert scores[-1, 0] == pytest.approx(combos[:, 0].min())


def test_front_is_non_dominated_and_covers_the_hull() -> None:
    rng = np.random.default_rng(1)
    energies, losses = _layers(rng, 8, 6)
    front = build_front(energies, losses, seed=0, population=40, generations=60, limit=0)
    assert front.origin[0] == "exact" and not front.choices[0].any()
    assert np.allclose(totals(energies, losses, front.choices), np.column_stack([front.energy, front.loss]))
    assert all(a > b for a, b in itertools.pairwise(front.energy))
    points = np.column_stack([front.energy, front.loss])
    assert len(nondominated(points[1:])) == len(front) - 1
    hull = totals(energies, losses, hull_path(energies, losses))
    for energy, loss in hull:  # every hull point is on the front or beaten by a front point
        assert ((points[:, 0] <= energy + 1e-9) & (points[:, 1] <= loss + 1e-9)).any()
    # the knapsack front is not convex: NSGA-II finds points between the hull vertices
    assert "nsga2" in front.origin


def test_front_is_reproducible_with_a_seed() -> None:
    energies, losses = _layers(np.random.default_rng(2), 6, 5)
    a = build_front(energies, losses, seed=3, population=32, generations=40)
    b = build_front(energies, losses, seed=3, population=32, generations=40)
    assert np.array_equal(a.choices, b.choices)


def _subset(
    rng: np.random.Generator, energies: list[np.ndarray], losses: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, option 0 (the exact multiplier) and 4 of the 8 others, picked by ``rng``."""
    keep = [np.concatenate([[0], np.sort(rng.choice(np.arange(1, 9), 4, replace=False))]) for _ in energies]
    return [e[k] for e, k in zip(energies, keep, strict=True)], [d[k] for d, k in zip(losses, keep, strict=True)]


def _hull_energy_at(path_scores: np.ndarray, loss: float) -> float:
    """The hull path's energy at ``loss`` (linear between its vertices; beyond the last: its energy)."""
    return float(np.interp(loss, path_scores[:, 1], path_scores[:, 0]))


@pytest.mark.parametrize("seed", range(5))
def test_more_candidates_never_raise_the_hull(seed: int) -> None:
    """With a superset of options per layer, the hull path lies on or below the subset's at every loss."""
    rng = np.random.default_rng(seed)
    energies, losses = _layers(rng, 6, 8)
    sub_energies, sub_losses = _subset(rng, energies, losses)
    small = totals(sub_energies, sub_losses, hull_path(sub_energies, sub_losses))
    big = totals(energies, losses, hull_path(energies, losses))
    for energy, loss in small:
        assert _hull_energy_at(big, loss) <= energy + 1e-9


def test_pareto_sets_are_the_exact_front() -> None:
    energies, losses = _layers(np.random.default_rng(4), 4, 4)
    choices, exact = pareto_sets(energies, losses)
    every = np.array(list(itertools.product(range(5), repeat=4)))
    combos = totals(energies, losses, every)
    truth = combos[nondominated(combos)]
    found = totals(energies, losses, choices)
    assert exact and np.allclose(found[np.lexsort(found.T[::-1])], truth[np.lexsort(truth.T[::-1])])
    thinned, exact = pareto_sets(energies, losses, limit=5)
    assert not exact and thinned.shape[0] <= 5


@pytest.mark.parametrize("seed", range(3))
def test_a_superset_front_beats_or_equals_every_subset_assignment(seed: int) -> None:
    rng = np.random.default_rng(seed)
    energies, losses = _layers(rng, 7, 8)
    small = build_front(*_subset(rng, energies, losses))
    big = build_front(energies, losses)
    points = np.column_stack([big.energy, big.loss])
    for energy, loss in zip(small.energy, small.loss, strict=True):
        assert ((points[:, 0] <= energy + 1e-9) & (points[:, 1] <= loss + 1e-9)).any()


def test_an_exact_pareto_set_skips_nsga2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the layer-by-layer Pareto set is exact, NSGA-II has nothing to find and does not run (over a small
    space pymoo's duplicate elimination spun for 27 s on LeNet-5 with three 4-bit candidates); where the set is
    thinned it still runs."""
    import approxlut.nn.front as front_module

    energies, losses = _layers(np.random.default_rng(5), 5, 4)
    every = np.array(list(itertools.product(range(5), repeat=5)))
    combos = totals(energies, losses, every)
    truth = combos[nondominated(combos)]
    calls: list[int] = []
    real_nsga2 = front_module.nsga2

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return real_nsga2(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(front_module, "nsga2", counted)
    front = build_front(energies, losses, generations=20)
    assert not calls
    found = np.column_stack([front.energy, front.loss])  # (the all-exact point first, as in the truth)
    assert np.allclose(found[np.lexsort(found.T[::-1])], truth[np.lexsort(truth.T[::-1])])
    build_front(energies, losses, generations=20, limit=3)
    assert calls == [1]
