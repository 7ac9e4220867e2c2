"""Auto assignment: the knapsack path is Pareto-optimal, and the chosen assignment respects the budget."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import LayerConfig, approximate, layer_macs
from approxlut.nn.assign import Candidate, Option, auto_assign, build_assigned, knapsack_path
from approxlut.nn.data import load_dataset
from approxlut.nn.train import TrainConfig, train_model
from approxlut.nn.zoo import build_model


def _option(energy: float, loss: float) -> Option:
    return Option(None, energy, loss, np.zeros(1), np.zeros(1))


def test_knapsack_path_is_monotone_and_pareto_optimal() -> None:
    rng = np.random.default_rng(0)
    layers = {}
    for layer in range(4):
        opts = [_option(10.0, 0.0)]
        for _ in range(4):
            opts.append(_option(float(rng.uniform(2, 12)), float(rng.uniform(0, 1))))
        layers[f"l{layer}"] = opts
    path = knapsack_path(layers)
    assert path[0].loss == 0 and all(i == 0 for i in path[0].choice.values())
    energies = [p.energy for p in path]
    losses = [p.loss for p in path]
    assert all(a > b for a, b in itertools.pairwise(energies))
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(losses))
    combos = [
        (sum(layers[n][i].energy for n, i in zip(layers, idx, strict=True)),
         sum(layers[n][i].loss for n, i in zip(layers, idx, strict=True)))
        for idx in itertools.product(range(5), repeat=4)
    ]  # fmt: skip
    for point in path:
        recomputed = sum(layers[n][i].energy for n, i in point.choice.items())
        assert recomputed == pytest.approx(point.energy)
        dominating = [c for c in combos if c[0] < point.energy - 1e-9 and c[1] < point.loss - 1e-9]
        assert not dominating, (point, dominating[:3])
    cheapest = min(c[0] for c in combos)
    assert path[-1].energy == pytest.approx(cheapest)


def _lut(shift: int, name: str) -> Lut:
    values = code_values(8, True)
    exact = np.multiply.outer(values, values)
    return Lut((exact >> shift << shift).astype(np.int32), 8, 8, True, name=name)


@pytest.fixture(scope="module")
def lenet_setup():
    torch.manual_seed(0)
    digits = load_dataset().prepare(channels=1, size=28)
    data = replace(digits, x_train=digits.x_train[:512], y_train=digits.y_train[:512])
    model = build_model("lenet5")
    train_model(model, data, TrainConfig(epochs=4, lr=0.05), verbose=False)
    x_eval, y_eval = digits.x_test[:64], digits.y_test[:64]
    exact = LayerConfig("exact", bits=8, scheme="symmetric")
    qmodel = approximate(model, exact, [data.x_train[:64]])
    return model, qmodel, data.x_train[:64], x_eval, y_eval


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("budget", [0.0, 1.0, 100.0])
def test_auto_assignment_respects_the_budget_on_its_verification_set(monkeypatch, lenet_setup, budget) -> None:
    monkeypatch.setenv("LUTGEN_ENGINE", "reference")
    model, qmodel, x_calib, x_eval, y_eval = lenet_setup
    candidates = [
        Candidate("trunc4", _lut(4, "trunc4"), power=0.8, mae=0.01),
        Candidate("trunc8", _lut(8, "trunc8"), power=0.5, mae=0.2),
        Candidate("trunc11", _lut(11, "trunc11"), power=0.2, mae=2.0),
    ]
    baseline = _accuracy(qmodel, x_eval, y_eval)
    runs = []
    result = auto_assign(
        model,
        qmodel,
        candidates,
        exact_power=1.0,
        macs=layer_macs(model, x_eval[:1]),
        x_calib=x_calib,
        x_eval=x_eval,
        y_eval=y_eval,
        baseline_accuracy=baseline,
        budget=budget,
        evaluate=lambda m, label: runs.append(label) or _accuracy(m, x_eval, y_eval),
        front_points=4,
        max_rounds=3,
        sensitivity_samples=32,
    )
    assert len(runs) == len(result.verified) <= 3
    chosen = result.chosen
    assert chosen.verified_accuracy is not None
    assert baseline - chosen.verified_accuracy <= budget
    again = _accuracy(build_assigned(qmodel, result.choice), x_eval, y_eval)
    assert again == chosen.verified_accuracy  # the reported figure is what the assignment does
    if budget >= 100:  # anything passes: the cheapest assignment of the path is taken
        assert chosen is result.path[-1] and chosen.energy < result.exact_energy
        assert {o.name for o in result.choice.values()} == {"trunc11"}
    mapping = result.assignment(LayerConfig("exact", bits=8, scheme="symmetric")).to_dict()
    assert set(mapping["layers"]) == set(result.choice)


def test_bias_correction_removes_the_mean_error(monkeypatch, lenet_setup) -> None:
    """A multiplier with a constant offset per product is exact after bias correction."""
    monkeypatch.setenv("LUTGEN_ENGINE", "reference")
    model, qmodel, x_calib, x_eval, _ = lenet_setup
    values = code_values(8, True)
    offset = Lut((np.multiply.outer(values, values) + 5).astype(np.int32), 8, 8, True, name="plus5")
    candidate = Candidate("plus5", offset, power=0.5, mae=0.0)
    from approxlut.nn.predict import predict_errors, record_operands

    stats = record_operands(model, qmodel, [x_calib])
    choice = {}
    for name, s in stats.items():
        (pred,) = predict_errors([offset], s.operands)
        mean, std = s.output_moments(pred)
        assert np.allclose(std, 0)
        choice[name] = Option(candidate, 0.0, 0.0, mean, std)
    corrected = build_assigned(qmodel, choice)
    with torch.no_grad():
        out_q, out_c = qmodel(x_eval[:16]), corrected(x_eval[:16])
    # only padding taps (code 0 of zero padding also gets +5) differ from the average correction
    assert torch.allclose(out_q, out_c, atol=1e-3 * float(out_q.abs().max()) + 0.05)


def test_low_rank_simulation_equals_the_lut_layer_error(monkeypatch, lenet_setup) -> None:
    """For an error table of exact rank 2 the float simulation reproduces the LUT layer's error."""
    monkeypatch.setenv("LUTGEN_ENGINE", "reference")
    from approxlut.nn.assign import _LowRankSimulation
    from approxlut.nn.predict import LowRankError, predict_errors, record_operands
    from approxlut.nn.swap import approx_layers

    model, qmodel, x_calib, x_eval, _ = lenet_setup
    codes = np.arange(256)
    error = 60 * np.multiply.outer(codes % 4, codes % 3) - 90 * np.multiply.outer(codes % 5 == 0, codes % 7 == 1)
    values = code_values(8, True)
    lut = Lut((np.multiply.outer(values, values) + error).astype(np.int32), 8, 8, True, name="rank2")
    low = LowRankError.of(lut, energy=0.999999)
    assert low.u.shape[0] == 2 and np.abs(low.residual).max() < 1e-9
    candidate = Candidate("rank2", lut, power=0.5, mae=0.0)
    stats = record_operands(model, qmodel, [x_calib])
    x = x_eval[:8]
    for name in ("features.3", "classifier.1"):
        (pred,) = predict_errors([lut], stats[name].operands)
        mean, std = stats[name].output_moments(pred)
        option = Option(candidate, 0.0, 0.0, mean, std)
        layer = dict(model.named_modules())[name]
        captured: dict[str, torch.Tensor] = {}
        handle = layer.register_forward_pre_hook(lambda m, i, store=captured: store.__setitem__("x", i[0]))
        with torch.no_grad():
            model(x)
            handle.remove()
            plain = layer(captured["x"])
            sim = _LowRankSimulation(model, qmodel, stats, {name: option}, {"rank2": low}, seed=0)
            simulated = layer(captured["x"]) - plain
            sim.remove()
            qlayer = approx_layers(qmodel)[name]
            exact_acc, scale = qlayer.accumulate(captured["x"])
            qlayer.set_config(LayerConfig(lut))
            lut_acc, _ = qlayer.accumulate(captured["x"])
            qlayer.set_config(LayerConfig("exact", bits=8, scheme="symmetric"))
        view = (1, -1, 1, 1) if simulated.dim() == 4 else (1, -1)
        real = (lut_acc - exact_acc) * scale.double().view(view) - torch.as_tensor(mean).view(view)
        # float32 outputs: the difference of two of them is exact to a few ulps of the output magnitude
        tolerance = 4e-6 * float(plain.abs().max()) + 1e-4 * float(real.abs().max())
        assert float(real.abs().max()) > 100 * tolerance  # the error is visible, the check not vacuous
        assert torch.allclose(simulated.double(), real, rtol=0, atol=tolerance)
