"""Automatic per-layer multiplier assignment under an accuracy budget, without emulation in the search.

1. **Operands** (one float pass, :func:`approxlut.nn.predict.record_operands`): per layer, histograms of
   activation codes and the weight codes; each (layer, multiplier) error mean and variance per output
   channel then follow in closed form. The mean is folded into the bias (``bias_correction``).
2. **Variance check** (one small LUT pass per layer on a few samples, with one reference multiplier):
   the closed form assumes independent activations; real activations are correlated across a receptive
   field, so each layer's measured/predicted standard deviation ratio scales its predictions.
3. **Sensitivity**: a Fisher (Gauss-Newton) diagonal per output channel, from one backward pass with
   labels drawn from the model's own softmax, weights the output channels; one antithetic pair of float passes per
   layer with Gaussian noise of the predicted std measures the real loss increase, which calibrates the
   layer's proxy. The loss increase of a layer is then additive: ``ΔL(l, m) = c_l · ½ Σ_o F_lo σ²_lmo``.
4. **Knapsack**: the multiple-choice knapsack (minimise ``Σ MACs·P`` subject to ``Σ ΔL ≤ budget``) is
   solved on its convex hull: every layer's options sorted into hull steps, all steps ordered by energy
   saved per loss added. This gives a monotone path from all-exact to the cheapest assignment.
5. **Prediction and choice**: points along the path are simulated in all layers at once on float kernels
   (each multiplier's error table split by SVD into a few rank-one terms, so a layer's error is a few
   float convolutions of transformed codes, plus closed-form noise for the small residual); the furthest
   point whose simulated accuracy drop is within the budget is chosen.
6. **Verification**: the chosen assignment runs through the real LUT engine; if it misses the budget, the
   path is walked back (reverting the steps with the worst loss per saving first) by bisection between
   the last verified pass and the first verified miss (``max_rounds`` LUT runs at most).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..lutgen.lut import Lut
from .config import AssignmentMapping, LayerConfig
from .predict import (
    LayerOperands,
    LayerStats,
    LowRankError,
    channel_dim,
    channel_sums,
    channel_view,
    predict_errors,
    predict_from_error,
    record_operands,
)
from .products import ApproxProduct
from .swap import approx_layers, approximate


@dataclass(frozen=True)
class Candidate:
    """A multiplier the search may use: its table, power and error for reports."""

    name: str
    lut: Lut
    power: float
    mae: float


@dataclass(frozen=True)
class Option:
    """One (layer, multiplier) choice with its predicted effect."""

    candidate: Candidate | None  # None: the exact multiplier
    energy: float  # MACs · power
    loss: float  # predicted loss increase (nats)
    mean: np.ndarray  # output-unit error mean per channel (folded into the bias)
    std: np.ndarray  # output-unit error std per channel

    @property
    def name(self) -> str:
        return self.candidate.name if self.candidate is not None else "exact"


@dataclass
class PathPoint:
    """An assignment along the knapsack path with its predicted and (if run) verified accuracy."""

    index: int
    choice: dict[str, int]
    energy: float
    loss: float
    predicted_accuracy: float | None = None
    verified_accuracy: float | None = None


@dataclass
class AutoResult:
    """What :func:`auto_assign` found."""

    choice: dict[str, Option]
    chosen: PathPoint
    path: list[PathPoint]
    exact_energy: float
    baseline_accuracy: float
    float_accuracy: float
    verified: list[PathPoint] = field(default_factory=list)

    def assignment(self, exact: LayerConfig) -> AssignmentMapping:
        """The chosen multipliers as an assignment (unlisted layers: ``exact``)."""
        names = {
            layer: (exact if option.candidate is None else LayerConfig(option.candidate.name))
            for layer, option in self.choice.items()
        }
        return AssignmentMapping.build(default=exact, names=names)


Evaluator = Callable[[nn.Module], float]


def _outputs(layers: dict[str, nn.Module]) -> dict[str, int]:
    return {n: int(getattr(m, "out_features", 0) or getattr(m, "out_channels", 0)) for n, m in layers.items()}


class _NoiseHooks:
    """Adds zero-mean Gaussian noise with a per-channel std to chosen layers' outputs (float model);
    ``dims`` says along which output dim each layer's channels lie (see :func:`channel_dim`)."""

    def __init__(self, model: nn.Module, stds: dict[str, np.ndarray], seed: int, dims: dict[str, int | None]) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.sign = 1.0
        modules = dict(model.named_modules())
        self.handles = []
        for name, std in stds.items():
            tensor = torch.as_tensor(std, dtype=torch.float32)

            def hook(
                module: nn.Module, inputs: Any, out: torch.Tensor, std: torch.Tensor = tensor, dim: Any = dims[name]
            ) -> torch.Tensor:
                noise = torch.randn(out.shape, generator=self.generator, dtype=out.dtype)
                return out + self.sign * noise * channel_view(out, std, dim)

            self.handles.append(modules[name].register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for start in range(0, x.shape[0], batch):
        logits = model(x[start : start + batch])
        target = y[start : start + batch]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    return loss / x.shape[0], 100.0 * correct / x.shape[0]


def _noisy(
    model: nn.Module,
    stds: dict[str, np.ndarray],
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    seed: int,
    dims: dict[str, int | None],
) -> tuple[float, float]:
    """Antithetic noise pair: the mean loss (first-order terms cancel) and the mean accuracy."""
    hooks = _NoiseHooks(model, stds, seed, dims)
    try:
        results = []
        for sign in (1.0, -1.0):
            hooks.generator.manual_seed(seed)
            hooks.sign = sign
            results.append(_loss_and_accuracy(model, x, y, batch))
    finally:
        hooks.remove()
    return (results[0][0] + results[1][0]) / 2, (results[0][1] + results[1][1]) / 2


def _fisher(
    model: nn.Module, names: list[str], x: torch.Tensor, batch: int, seed: int, dims: dict[str, int | None]
) -> dict[str, np.ndarray]:
    """Per output channel: ``E_i Σ_pos (∂ℓ_i/∂y)²`` with labels sampled from the model (Gauss-Newton diagonal)."""
    modules = dict(model.named_modules())
    sums = {name: torch.zeros(0, dtype=torch.float64) for name in names}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:

        def hook(module: nn.Module, inputs: Any, out: torch.Tensor, name: str = name) -> torch.Tensor:
            kept = out.clone()
            kept.retain_grad()
            outputs[name] = kept
            return kept * 1.0  # what flows on is another tensor: an in-place ReLU must not overwrite `kept`

        handles.append(modules[name].register_forward_hook(hook))
    generator = torch.Generator().manual_seed(seed)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for start in range(0, x.shape[0], batch):
            logits = model(x[start : start + batch])
            target = torch.multinomial(F.softmax(logits.detach().double(), 1), 1, generator=generator).squeeze(1)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(logits, target, reduction="sum").backward()
            for name, out in outputs.items():
                assert out.grad is not None
                per_channel = channel_sums(out.grad.double() ** 2, dims[name])
                sums[name] = per_channel if sums[name].numel() == 0 else sums[name] + per_channel
            outputs.clear()
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
        model.zero_grad(set_to_none=True)
    return {name: (total / x.shape[0]).numpy() for name, total in sums.items()}


class _LowRankSimulation:
    """Adds each layer's simulated multiplier error to a float model's outputs (see :class:`LowRankError`).

    The low-rank part runs as ``R`` float convolutions/linears of transformed codes; the residual is added
    as Gaussian noise of its closed-form std; the predicted mean is subtracted (the bias correction).
    """

    def __init__(
        self,
        float_model: nn.Module,
        qmodel: nn.Module,
        stats: dict[str, LayerStats],
        choice: dict[str, Option],
        low_rank: dict[str, LowRankError],
        seed: int,
    ) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        modules = dict(float_model.named_modules())
        qlayers = approx_layers(qmodel)
        self.handles = []
        for name, option in choice.items():
            if option.candidate is None:
                continue
            self.handles.append(
                modules[name].register_forward_hook(
                    self._hook(qlayers[name], stats[name], option, low_rank[option.candidate.name])
                )
            )

    def _hook(self, qlayer: Any, stats: LayerStats, option: Option, lowrank: LowRankError) -> Callable[..., Any]:
        from .layers import conv_pads

        dim = channel_dim(qlayer)
        if isinstance(qlayer, ApproxProduct):
            return self._product_hook(qlayer, stats, option, lowrank, dim)

        assert isinstance(stats.operands, LayerOperands)
        mask = (1 << stats.bits_a) - 1
        pad_code = int(qlayer.input_quant.zero_point) & mask
        shape = qlayer.weight.shape
        codes_w = torch.as_tensor(stats.operands.weight_codes)
        u = torch.as_tensor(lowrank.u, dtype=torch.float32)
        weights = [torch.as_tensor(v, dtype=torch.float32)[codes_w].reshape(shape) for v in lowrank.v]
        residual = predict_from_error(lowrank.residual, stats.operands).std * np.abs(stats.out_scale)
        scale = torch.as_tensor(stats.out_scale, dtype=torch.float32)
        mean = torch.as_tensor(option.mean, dtype=torch.float32)
        noise_std = torch.as_tensor(residual, dtype=torch.float32)
        is_linear = isinstance(qlayer, nn.Linear)
        flat_pads: list[int] = []
        if not is_linear:
            flat_pads = [
                p for pair in reversed(conv_pads(qlayer.padding, qlayer.kernel_size, qlayer.dilation)) for p in pair
            ]
        conv = F.conv1d if isinstance(qlayer, nn.Conv1d) else F.conv2d

        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            codes = qlayer.quantize_input(inputs[0])[0].to(torch.int64) & mask
            error = torch.zeros_like(out)
            for rank, weight in enumerate(weights):
                a = u[rank][codes]
                if is_linear:
                    error = error + F.linear(a, weight)
                else:
                    a = F.pad(a, flat_pads, value=float(u[rank][pad_code])) if any(flat_pads) else a
                    error = error + conv(a, weight, None, qlayer.stride, 0, qlayer.dilation, qlayer.groups)
            noise = torch.randn(out.shape, generator=self.generator, dtype=out.dtype)
            return (
                out
                + error * channel_view(out, scale, dim)
                - channel_view(out, mean, dim)
                + noise * channel_view(out, noise_std, dim)
            )

        return hook

    def _product_hook(
        self, qlayer: ApproxProduct, stats: LayerStats, option: Option, lowrank: LowRankError, dim: int | None
    ) -> Callable[..., Any]:
        """The simulation of a product: its low-rank error from both operands' transformed codes."""
        u = torch.as_tensor(lowrank.u, dtype=torch.float32)
        v = [torch.as_tensor(row, dtype=torch.float32) for row in lowrank.v]
        residual = predict_from_error(lowrank.residual, stats.operands).std * np.abs(stats.out_scale)
        scale = torch.as_tensor(stats.out_scale, dtype=torch.float32)
        mean = torch.as_tensor(option.mean, dtype=torch.float32)
        noise_std = torch.as_tensor(residual, dtype=torch.float32)

        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            error = qlayer.lowrank_error(inputs[0], inputs[1], u, v)
            noise = torch.randn(out.shape, generator=self.generator, dtype=out.dtype)
            return (
                out
                + error * channel_view(out, scale, dim)
                - channel_view(out, mean, dim)
                + noise * channel_view(out, noise_std, dim)
            )

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _hull_steps(options: list[Option]) -> list[int]:
    """Indices of the lower convex hull of (loss, energy) from the exact option (index 0) downwards in energy."""
    order = sorted(range(len(options)), key=lambda i: (options[i].loss, options[i].energy))
    hull = [0]
    for i in order:
        if i == 0 or options[i].energy >= options[hull[-1]].energy:
            continue
        while len(hull) >= 2:
            a, b = options[hull[-2]], options[hull[-1]]
            c = options[i]
            # b is above the segment a-c: drop it
            if (b.energy - a.energy) * (c.loss - a.loss) >= (c.energy - a.energy) * (b.loss - a.loss):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def knapsack_path(options: dict[str, list[Option]]) -> list[PathPoint]:
    """The convex-hull path of the multiple-choice knapsack: all-exact first, cheapest last.

    Each step moves one layer one hull step further, in order of energy saved per loss added.
    """
    steps: list[tuple[float, str, int]] = []
    for layer, opts in options.items():
        hull = _hull_steps(opts)
        for prev, nxt in itertools.pairwise(hull):
            saving = opts[prev].energy - opts[nxt].energy
            added = max(opts[nxt].loss - opts[prev].loss, 0.0)
            steps.append((added / saving if saving > 0 else math.inf, layer, nxt))
    steps.sort(key=lambda s: s[0])
    choice = dict.fromkeys(options, 0)
    energy = sum(opts[0].energy for opts in options.values())
    loss = 0.0
    path = [PathPoint(0, dict(choice), energy, loss)]
    for _, layer, nxt in steps:
        old = options[layer][choice[layer]]
        new = options[layer][nxt]
        energy += new.energy - old.energy
        loss += new.loss - old.loss
        choice[layer] = nxt
        path.append(PathPoint(len(path), dict(choice), energy, loss))
    return path


def auto_assign(
    float_model: nn.Module,
    qmodel: nn.Module,
    candidates: Sequence[Candidate],
    *,
    exact_power: float,
    macs: dict[str, int],
    x_calib: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    baseline_accuracy: float,
    budget: float,
    evaluate: Callable[[nn.Module, str], float],
    batch_size: int = 128,
    seed: int = 0,
    front_points: int = 10,
    max_rounds: int = 5,
    sensitivity_samples: int = 128,
    status: Callable[[str], None] = lambda _msg: None,
) -> AutoResult:
    """Choose a multiplier per layer of ``qmodel`` (quantised-exact, calibrated) under ``budget`` points.

    ``evaluate(model, label)`` measures accuracy with the real LUT engine (used only to verify);
    ``baseline_accuracy`` is the quantised-exact accuracy the budget is measured from.
    """
    if not candidates:
        raise ConfigError("no candidate multipliers for --assign auto; widen --candidates")
    status("recording operand histograms")
    stats = record_operands(
        float_model, qmodel, [x_calib[i : i + batch_size] for i in range(0, len(x_calib), batch_size)]
    )
    if not stats:
        raise ConfigError("the model has no Linear/Conv layers or products that auto assignment can approximate")
    names = list(stats)
    luts = [c.lut for c in candidates]
    _check_widths(stats, luts)

    status("predicting errors")
    predicted = {name: predict_errors(luts, stats[name].operands) for name in names}
    ratio = _variance_ratio(float_model, qmodel, stats, predicted, candidates, x_eval[: min(32, len(x_eval))])

    status("measuring sensitivity")
    qlayers = approx_layers(qmodel)
    dims = {name: channel_dim(qlayers[name]) for name in names}
    fisher = _fisher(float_model, names, x_eval[:sensitivity_samples], batch_size, seed, dims)
    _, float_accuracy = _loss_and_accuracy(float_model, x_eval, y_eval, batch_size)
    x_sens, y_sens = x_eval[:sensitivity_samples], y_eval[:sensitivity_samples]
    clean_loss, _ = _loss_and_accuracy(float_model, x_sens, y_sens, batch_size)
    options: dict[str, list[Option]] = {}
    for name in names:
        layer_stats: LayerStats = stats[name]
        outs = []
        zeros = np.zeros_like(layer_stats.out_scale)
        outs.append(Option(None, macs.get(name, 0) * exact_power, 0.0, zeros, zeros))
        for cand, pred in zip(candidates, predicted[name], strict=True):
            mean, std = layer_stats.output_moments(pred)
            std = std * ratio[name]
            outs.append(
                Option(cand, macs.get(name, 0) * cand.power, float(0.5 * (fisher[name] * std**2).sum()), mean, std)
            )
        # calibrate the proxy with one noise pass at the most aggressive candidate (scaled to a small loss)
        worst = max(outs[1:], key=lambda o: o.loss)
        target = 0.02
        scale = math.sqrt(target / worst.loss) if worst.loss > 0 else 1.0
        measured, _ = _noisy(float_model, {name: worst.std * scale}, x_sens, y_sens, batch_size, seed, dims)
        proxy = worst.loss * scale**2
        factor = max(measured - clean_loss, 0.05 * proxy) / proxy if proxy > 0 else 1.0
        options[name] = [Option(o.candidate, o.energy, o.loss * factor, o.mean, o.std) for o in outs]

    path = knapsack_path(options)
    exact_energy = path[0].energy

    low_rank = {c.name: LowRankError.of(c.lut) for c in candidates}

    def simulate(point: PathPoint) -> float:
        if point.predicted_accuracy is None:
            chosen = {n: options[n][i] for n, i in point.choice.items()}
            hooks = _LowRankSimulation(float_model, qmodel, stats, chosen, low_rank, seed + 1)
            try:
                _, point.predicted_accuracy = _loss_and_accuracy(float_model, x_eval, y_eval, batch_size)
            finally:
                hooks.remove()
        return point.predicted_accuracy

    status("simulating the energy-accuracy front")
    for index in np.unique(np.linspace(0, len(path) - 1, front_points).round().astype(int)):
        simulate(path[int(index)])
    lo, hi = 0, len(path) - 1  # find the furthest point whose simulated drop stays within the budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if float_accuracy - simulate(path[mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    # verify; on a miss, bisect the path between the last verified pass and the first verified miss
    index, passed, failed = lo, 0, None
    path[0].verified_accuracy = baseline_accuracy
    verified: list[PathPoint] = []
    for round_ in range(max_rounds):
        if index == passed:
            break
        point = path[index]
        status(f"verifying assignment {round_ + 1} with the LUT engine")
        model = build_assigned(qmodel, {n: options[n][i] for n, i in point.choice.items()})
        point.verified_accuracy = evaluate(model, f"verify {round_ + 1}")
        verified.append(point)
        if baseline_accuracy - point.verified_accuracy <= budget:
            passed = index
            if failed is None:
                break
        else:
            failed = index
        assert failed is not None
        index = (passed + failed) // 2
    index = passed
    chosen = path[index]
    choice = {n: options[n][i] for n, i in chosen.choice.items()}
    return AutoResult(choice, chosen, path, exact_energy, baseline_accuracy, float_accuracy, verified)


def build_assigned(qmodel: nn.Module, choice: dict[str, Option]) -> nn.Module:
    """A copy of ``qmodel`` with each layer's chosen multiplier and its bias correction."""
    names = {n: LayerConfig(o.candidate.lut) for n, o in choice.items() if o.candidate is not None}
    model = approximate(qmodel, AssignmentMapping.build(default=_current_default(qmodel), names=names))
    layers = approx_layers(model)
    for name, option in choice.items():
        if option.candidate is not None:
            layers[name].set_bias_correction(torch.as_tensor(-option.mean, dtype=torch.float32))
    return model


def _current_default(qmodel: nn.Module) -> LayerConfig:
    """The config the quantised-exact model was built with (kept for layers not reassigned)."""
    for layer in approx_layers(qmodel).values():
        return layer.config
    return LayerConfig("exact")


def _check_widths(stats: dict[str, LayerStats], luts: list[Lut]) -> None:
    for name, s in stats.items():
        for lut in luts:
            if (lut.bits_a, lut.bits_b) != (s.bits_a, s.bits_b) or (s.scheme == "symmetric") != lut.signed:
                raise ConfigError(
                    f"candidate '{lut.name}' ({lut.bits_a}x{lut.bits_b}, {'signed' if lut.signed else 'unsigned'}) "
                    f"does not match layer '{name}' quantised {s.bits_a}x{s.bits_b} {s.scheme}; "
                    "give candidates of one width and signedness"
                )


@torch.no_grad()
def _variance_ratio(
    float_model: nn.Module,
    qmodel: nn.Module,
    stats: dict[str, LayerStats],
    predicted: dict[str, list[Any]],
    candidates: Sequence[Candidate],
    x: torch.Tensor,
) -> dict[str, float]:
    """Per layer, measured / predicted error std for a reference multiplier on a few samples (≥ 1)."""
    layers = approx_layers(qmodel)
    modules = dict(float_model.named_modules())
    inputs: dict[str, tuple[Any, ...]] = {}
    handles = [
        modules[name].register_forward_pre_hook(
            lambda m, i, name=name: inputs.__setitem__(name, tuple(t.detach() for t in i[:2]))
        )
        for name in stats
    ]
    try:
        float_model(x)
    finally:
        for handle in handles:
            handle.remove()
    ratios = {}
    for name in stats:
        preds = predicted[name]
        # the reference: the candidate with the median predicted std in this layer
        order = np.argsort([float(p.std.mean()) for p in preds])
        ref = int(order[len(order) // 2])
        if float(preds[ref].std.mean()) <= 0 or name not in inputs:
            ratios[name] = 1.0
            continue
        layer: Any = layers[name]
        exact_config = layer.config
        exact_acc, _ = layer.accumulate(*inputs[name])
        layer.set_config(LayerConfig(candidates[ref].lut))
        try:
            approx_acc, _ = layer.accumulate(*inputs[name])
        finally:
            layer.set_config(exact_config)
        err = (approx_acc - exact_acc).double()
        dim = channel_dim(layer)
        rows = err.reshape(1, -1) if dim is None else err.movedim(dim, 0).reshape(err.shape[dim], -1)
        measured = rows.std(dim=1).numpy()
        # mean over channels: a per-tensor prediction (one value) compares with every channel measured
        ratios[name] = float(max(1.0, np.sqrt((measured**2).mean() / max((preds[ref].std ** 2).mean(), 1e-30))))
    return ratios


__all__ = ["AutoResult", "Candidate", "Option", "PathPoint", "auto_assign", "build_assigned", "knapsack_path"]
