"""Automatic per-layer multiplier assignment under an accuracy budget, emulating only what has no closed form.

1. **Operands** (one float pass, :func:`approxlut.nn.predict.record_operands`): per layer, histograms of
   activation codes and the weight codes; each (layer, multiplier) error mean and variance per output
   channel then follow in closed form. The mean is folded into the bias (``bias_correction``).
2. **Characterisation** (one task per (layer, multiplier), :func:`characterise`): the closed form assumes
   independent activations, but real ones are correlated across a receptive field, and by how much that
   matters depends on the multiplier's error structure (a truncation's error is nearly a function of the
   activation and adds up coherently; a rounding's does not: measured/predicted std differs by up to 5x
   between multipliers in one VGG-19 layer). So every pair's prediction is scaled by its own ratio,
   measured with the LUT engine on a few calibration samples. Nothing in a pair's figures depends on
   which other candidates are searched.
3. **Sensitivity**: a Fisher (Gauss-Newton) diagonal per output channel, from one backward pass with
   labels drawn from the model's own softmax, weights the output channels; one antithetic pair of float
   passes per layer with Gaussian noise of a fixed reference shape measures the real loss increase, which
   calibrates the layer's proxy. The loss increase of a layer is then additive:
   ``ΔL(l, m) = c_l · ½ Σ_o F_lo σ²_lmo``. Layers without a closed form (recurrent layers, whose gate
   products feed back through time, and transposed convolutions: :func:`measured_layers`) are measured
   instead: ``ΔL(l, m)`` is the float model's loss increase with the layer's output moved by its real error
   under ``m`` (LUT engine, :func:`measure_loss`), and steps 5 and 6 run them the same way.
4. **Front** (:mod:`approxlut.nn.front`): dominated and duplicate options are pruned per layer, the
   multiple-choice knapsack's convex-hull path is refined by NSGA-II (pymoo) into the energy-loss front.
5. **Prediction**: points spread over the front, then more near where the predicted accuracy crosses the
   budget, are simulated in all layers at once on float kernels (each multiplier's error table split by
   SVD into a few rank-one terms, so a layer's error is a few float convolutions of transformed codes,
   plus closed-form noise for the small residual).
6. **Verification**: ``verify`` points spread over the region where the prediction is uncertain run
   through the real LUT engine, then as many again between the cheapest verified pass and the next
   verified miss, then points spread past the best pass; the cheapest verified point within the budget is
   the answer (all-exact at worst). A round with room to spare, and the last round, take only points that
   may still pass: predicted within the budget plus a margin calibrated by the verified points near the
   budget (the most by which the prediction overstated their drop); such a round may verify fewer points.

Candidates may mix signed and unsigned multipliers of one width: each is characterised, simulated and verified
under its own quantisation (symmetric for signed, affine for unsigned; :func:`scheme_twins`), so each layer takes
the scheme of its multiplier; their powers must then be on one scale (the caller's relative powers). A layer's loss
proxy is calibrated under each scheme, and one noise stream serves both kinds in a simulation, so every pair and
every assignment of one kind is predicted as a search of that kind alone predicts it.

Steps 2, 5 and 6 are pure tasks (:mod:`approxlut.tasks`): in-process by default, on Ray with workers.
"""

from __future__ import annotations

import bisect
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..clitypes import MAX_VERIFY
from ..errors import ConfigError, LutgenError
from ..library.basis import MODEL
from ..lutgen.lut import Lut
from ..tasks import Engine, InProcess
from ..threads import one_blas_thread
from .config import AssignmentMapping, LayerConfig
from .front import Front, build_front
from .modes import work_mode
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
    searchable,
)
from .products import ApproxProduct
from .progress import Stopwatch
from .swap import approx_layers, approximate


@dataclass(frozen=True)
class Candidate:
    """A multiplier the search may use.

    Attributes:
        name: its library name.
        lut: its table.
        relative_power: its power over the power of the exact multiplier *of the same cost source*.
        mae: MAE % for reports.
        basis: the cost source (``"lutgen model"``, ``"published v2022"``, ...).
        power_mw: its own power figure for reports (``None`` if unknown).
    """

    name: str
    lut: Lut
    relative_power: float
    mae: float
    basis: str = MODEL
    power_mw: float | None = None


@dataclass(frozen=True)
class Option:
    """One (layer, multiplier) choice with its predicted effect."""

    candidate: Candidate | None  # None: the exact multiplier
    energy: float  # MACs · relative power (exact: MACs)
    loss: float  # predicted loss increase (nats); measured for a layer without a closed form
    mean: np.ndarray | None  # output-unit error mean per channel (folded into the bias); None: not predicted
    std: np.ndarray | None  # output-unit error std per channel; None: not predicted

    @property
    def name(self) -> str:
        return self.candidate.name if self.candidate is not None else "exact"


@dataclass
class FrontPoint:
    """An assignment on the energy-loss front with its predicted and (if run) verified accuracy (percent)."""

    index: int
    choice: dict[str, int]
    energy: float
    loss: float
    origin: str
    predicted_accuracy: float | None = None
    verified_accuracy: float | None = None


@dataclass
class AutoResult:
    """What :func:`auto_assign` found: the chosen point, the whole front, each layer's options."""

    options: dict[str, list[Option]]
    chosen: FrontPoint
    front: list[FrontPoint]
    exact_energy: float
    baseline_accuracy: float
    float_accuracy: float
    seconds: dict[str, float] = field(default_factory=dict)
    pruned: int = 0
    measured: tuple[str, ...] = ()  # layers whose options were measured, not predicted (see measured_layers)
    unsearched: dict[str, str] = field(default_factory=dict)  # layer -> why it kept its multiplier
    same_table: dict[str, str] = field(default_factory=dict)  # candidate left out -> the one kept with its table

    @property
    def choice(self) -> dict[str, Option]:
        """The chosen option of each layer."""
        return self.choice_of(self.chosen)

    @property
    def verified(self) -> list[FrontPoint]:
        """Points verified with the LUT engine (all-exact, measured as the baseline, not counted)."""
        return [p for p in self.front if p.verified_accuracy is not None and p.index > 0]

    def choice_of(self, point: FrontPoint) -> dict[str, Option]:
        """The option of each layer at ``point``."""
        return {layer: self.options[layer][i] for layer, i in point.choice.items()}

    def assignment(self, exact: LayerConfig, point: FrontPoint | None = None) -> AssignmentMapping:
        """The multipliers of ``point`` (default: the chosen one) as an assignment (other layers: ``exact``)."""
        choice = self.choice_of(point or self.chosen)
        names = {
            layer: (exact if option.candidate is None else _with_multiplier(exact, option.candidate.name))
            for layer, option in choice.items()
        }
        return AssignmentMapping.build(default=exact, names=names)


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
    try:
        with work_mode(model):
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
        model.zero_grad(set_to_none=True)
    return {name: (total / x.shape[0]).numpy() for name, total in sums.items()}


class _LowRankSimulation:
    """Adds each layer's simulated multiplier error to a float model's outputs (see :class:`LowRankError`).

    The low-rank part runs as ``R`` float convolutions/linears of transformed codes; the residual is added
    as its closed-form mean plus Gaussian noise of its closed-form std; the predicted mean is subtracted where
    given (the bias correction).
    """

    def __init__(
        self,
        float_model: nn.Module,
        chosen: dict[str, tuple[nn.Module, LayerStats, LowRankError, np.ndarray | None]],
        seed: int,
    ) -> None:
        """``chosen``: per layer, its quantised-exact twin under the multiplier's scheme, that twin's operand
        statistics, the multiplier's low-rank error and the bias correction (``None``: none). One noise stream
        serves all layers, drawn in the order the model runs them."""
        self.generator = torch.Generator().manual_seed(seed)
        modules = dict(float_model.named_modules())
        self.handles = [
            modules[name].register_forward_hook(self._hook(qlayer, stats, lowrank, mean))
            for name, (qlayer, stats, lowrank, mean) in chosen.items()
        ]

    def _hook(
        self, qlayer: Any, stats: LayerStats, lowrank: LowRankError, mean_np: np.ndarray | None
    ) -> Callable[..., Any]:
        from .layers import conv_pads

        dim = channel_dim(qlayer)
        if isinstance(qlayer, ApproxProduct):
            return self._product_hook(qlayer, stats, lowrank, mean_np, dim)
        assert isinstance(stats.operands, LayerOperands)
        mask = (1 << stats.bits_a) - 1
        pad_code = int(qlayer.input_quant.zero_point) & mask
        shape = qlayer.weight.shape
        codes_w = torch.as_tensor(stats.operands.weight_codes)
        u = torch.as_tensor(lowrank.u, dtype=torch.float32)
        weights = [torch.as_tensor(v, dtype=torch.float32)[codes_w].reshape(shape) for v in lowrank.v]
        offset, noise_std = self._residual(stats, lowrank, mean_np)
        scale = torch.as_tensor(stats.out_scale, dtype=torch.float32)
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
            return self._add(out, error, scale, offset, noise_std, dim)

        return hook

    @staticmethod
    def _residual(
        stats: LayerStats, lowrank: LowRankError, mean_np: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per channel, in output units: the offset added to the low-rank error (the residual's mean, less the bias
        correction where given) and the std of the residual's noise.

        The residual keeps the part of the error table the truncated SVD leaves, mean included: a multiplier that
        ignores low bits of a leaves much of its mean there, and the bias correction subtracts the whole table's.
        """
        mean, std = stats.output_moments(predict_from_error(lowrank.residual, stats.operands))
        offset = mean if mean_np is None else mean - mean_np
        return torch.as_tensor(offset, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)

    def _add(
        self,
        out: torch.Tensor,
        error: torch.Tensor,
        scale: torch.Tensor,
        offset: torch.Tensor,
        noise_std: torch.Tensor,
        dim: int | None,
    ) -> torch.Tensor:
        """``out`` plus the scaled low-rank error, the offset (see :meth:`_residual`) and the residual noise."""
        noise = torch.randn(out.shape, generator=self.generator, dtype=out.dtype)
        shifted = out + error * channel_view(out, scale, dim) + channel_view(out, offset, dim)
        return shifted + noise * channel_view(out, noise_std, dim)

    def _product_hook(
        self,
        qlayer: ApproxProduct,
        stats: LayerStats,
        lowrank: LowRankError,
        mean_np: np.ndarray | None,
        dim: int | None,
    ) -> Callable[..., Any]:
        """The simulation of a product: its low-rank error from both operands' transformed codes."""
        u = torch.as_tensor(lowrank.u, dtype=torch.float32)
        v = [torch.as_tensor(row, dtype=torch.float32) for row in lowrank.v]
        offset, noise_std = self._residual(stats, lowrank, mean_np)
        scale = torch.as_tensor(stats.out_scale, dtype=torch.float32)

        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            error = qlayer.lowrank_error(inputs[0], inputs[1], u, v)
            return self._add(out, error, scale, offset, noise_std, dim)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class _MeasuredError:
    """Adds a layer's real multiplier error to a float model's output: its approximate twin's output with the
    multiplier minus its quantised-exact twin's, both run through the LUT engine (for layers the closed form does
    not cover, e.g. recurrent ones, whose gate products feed back through time).

    ``exact`` may give a layer's calls recorded beforehand (:func:`exact_outputs`): a call whose inputs are those
    of the next record takes its quantised-exact output from it; any other call (one whose input carries an
    error added upstream or earlier, or an extra call) runs the twin.
    """

    def __init__(
        self,
        float_model: nn.Module,
        qmodel: nn.Module,
        luts: dict[str, Lut],
        exact: dict[str, Sequence[ExactCall]] | None = None,
    ) -> None:
        modules = dict(float_model.named_modules())
        qlayers = approx_layers(qmodel)
        recorded = exact or {}
        self.handles = [
            modules[name].register_forward_hook(self._hook(qlayers[name], lut, recorded.get(name)), with_kwargs=True)
            for name, lut in luts.items()
        ]

    @staticmethod
    def _hook(qlayer: nn.Module, lut: Lut, exact: Sequence[ExactCall] | None) -> Callable[..., Any]:
        probe = _probe(qlayer, lut)
        calls = list(exact or ())
        cursor = 0

        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
            nonlocal cursor
            if cursor < len(calls) and _same(calls[cursor].inputs, (args, kwargs)):
                twin = calls[cursor].output
                cursor += 1
            else:
                twin = qlayer(*args, **kwargs)
            return _plus_difference(out, probe(*args, **kwargs), twin)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _plus_difference(out: Any, approx: Any, exact: Any) -> Any:
    """``out + (approx - exact)`` over a tensor or nested tuples of tensors (an RNN's ``(output, (h, c))``)."""
    if isinstance(out, torch.Tensor):
        return out + (approx - exact).to(out.dtype)
    if isinstance(out, tuple):
        parts = tuple(_plus_difference(*trio) for trio in zip(out, approx, exact, strict=True))
        return type(out)(*parts) if hasattr(out, "_fields") else parts  # (a named tuple takes its fields)
    raise ConfigError(f"cannot add a measured error to a layer output of type {type(out).__name__}")


def _cannot_measure(float_model: nn.Module, qmodel: nn.Module, name: str, lut: Lut, x: torch.Tensor) -> str | None:
    """Why layer ``name`` cannot run through the LUT engine (its error measured on ``x``), or ``None`` where it
    can (the candidates share their widths, so one multiplier tells)."""
    hooks = _MeasuredError(float_model, qmodel, {name: lut})
    try:
        with torch.no_grad():
            float_model(x)
    except LutgenError as error:
        return str(error)
    finally:
        hooks.remove()
    return None


def _probe(layer: nn.Module, lut: Lut) -> Any:
    """A copy of ``layer`` running ``lut`` (with the layer's calibration settings, as the assigned model runs it)
    that shares its (read-only) weights. Its buffers are its own: under the other quantisation scheme (an
    unsigned multiplier in a symmetric layer) its quantisers hold other parameters, which a forward pass of
    either layer may rewrite in place (a recurrent layer's weight quantisers)."""
    shared = {id(t): t for t in layer.parameters()}
    probe: Any = copy.deepcopy(layer, memo=shared)
    probe.set_config(_with_multiplier(probe.config, lut))
    return probe


# ------------------------------------------------------------------------------------------ the tasks


@dataclass(frozen=True)
class Characterisation:
    """One (layer, multiplier) pair's predicted output error per channel, in output units.

    Attributes:
        mean: closed-form mean (folded into the bias).
        std: closed-form std scaled by ``ratio``.
        ratio: measured / closed-form std on the sample (pooled over channels).
    """

    mean: np.ndarray
    std: np.ndarray
    ratio: float


@torch.no_grad()
def characterise(
    layer: nn.Module, inputs: tuple[torch.Tensor, ...], exact: torch.Tensor, stats: LayerStats, lut: Lut
) -> Characterisation:
    """Task: the error ``lut`` causes in ``layer`` (its quantised-exact twin), predicted and measured.

    ``inputs`` is a sample of the layer's inputs (both operands for a product) and ``exact`` its exact
    integer accumulator on them; the layer itself is left as it was (a copy runs the LUT).
    """
    (prediction,) = predict_errors([lut], stats.operands)
    mean, std = stats.output_moments(prediction)
    approx, _ = _probe(layer, lut).accumulate(*inputs)
    error = (approx - exact).double()
    dim = channel_dim(layer)
    rows = error.reshape(1, -1) if dim is None else error.movedim(dim, 0).reshape(error.shape[dim], -1)
    measured = (rows.std(dim=1) if rows.shape[1] > 1 else torch.zeros(1)).numpy()
    measured = measured * np.abs(stats.out_scale)
    predicted = float((std**2).sum())
    if predicted <= 0:
        return Characterisation(mean, measured, 1.0)
    ratio = math.sqrt(float((measured**2).sum()) / predicted)
    return Characterisation(mean, std * ratio, ratio)


@dataclass(frozen=True)
class ExactCall:
    """One call of a layer: its inputs ``(args, kwargs)`` and its quantised-exact twin's output on them."""

    inputs: tuple[tuple[Any, ...], dict[str, Any]]
    output: Any


def _same(a: Any, b: Any) -> bool:
    """Whether two call inputs are equal: tensors bit for bit (shape and dtype too), containers item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a is b or a == b)


def _copied(value: Any) -> Any:
    """``value`` with every tensor in it (in tuples, lists, dicts) copied."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        items = [_copied(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)  # (named tuples by field)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value


@torch.no_grad()
def exact_outputs(
    float_model: nn.Module, qmodel: nn.Module, name: str, x: torch.Tensor, batch: int
) -> list[ExactCall] | None:
    """Layer ``name``'s calls on each batch of ``x`` as the float model feeds it, with its quantised-exact twin's
    outputs, or ``None`` where the layer runs more than once in a forward pass (a later call's input carries the
    error added to an earlier one, so its twin runs on that input anyway)."""
    layer = dict(float_model.named_modules())[name]
    qlayer = approx_layers(qmodel)[name]
    calls: list[ExactCall] = []

    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        # (a copy of the inputs: the model may change them in place after the call)
        calls.append(ExactCall((_copied(args), _copied(kwargs)), qlayer(*args, **kwargs)))

    handle = layer.register_forward_hook(record, with_kwargs=True)
    try:
        for start in range(0, x.shape[0], batch):
            before = len(calls)
            float_model(x[start : start + batch])
            if len(calls) != before + 1:
                return None
    finally:
        handle.remove()
    return calls


@torch.no_grad()
def measure_loss(
    float_model: nn.Module,
    qmodel: nn.Module,
    name: str,
    lut: Lut,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    clean_loss: float,
    exact: Sequence[ExactCall] | None = None,
) -> float:
    """Task: the loss increase (nats, at least 0) of the float model on ``x`` when layer ``name`` adds the real
    error of ``lut`` (see :class:`_MeasuredError`): the search's loss for a layer without a closed form.
    ``exact``: the layer's calls on ``x`` with their quantised-exact outputs (:func:`exact_outputs`), shared by
    every candidate."""
    hooks = _MeasuredError(float_model, qmodel, {name: lut}, None if exact is None else {name: exact})
    try:
        loss, _ = _loss_and_accuracy(float_model, x, y, batch)
    finally:
        hooks.remove()
    return max(loss - clean_loss, 0.0)


@torch.no_grad()
def simulate_accuracy(
    float_model: nn.Module,
    qmodel: nn.Module,
    twins: dict[bool, nn.Module],
    stats: dict[bool, dict[str, LayerStats]],
    low_rank: Sequence[LowRankError],
    luts: Sequence[Lut],
    choice: dict[str, int],
    means: dict[str, np.ndarray],
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    seed: int,
) -> float:
    """Task: accuracy (percent) of the float model with each layer's simulated multiplier error added.

    ``choice`` maps layers to candidate indices (into ``low_rank`` and ``luts``); ``means`` are the bias
    corrections (a layer not in it has none). ``twins`` and ``stats`` hold the quantised-exact model and its
    operand statistics for each signedness of the candidates (:func:`scheme_twins`): layers with statistics get
    their low-rank simulation under their multiplier's quantisation, the others (measured layers) their real
    error through the LUT engine, measured against ``qmodel``. Hooks are removed before returning.
    """
    hooks: list[_LowRankSimulation | _MeasuredError] = []
    try:
        qlayers = {signed: approx_layers(twin) for signed, twin in twins.items()}
        chosen: dict[str, tuple[nn.Module, LayerStats, LowRankError, np.ndarray | None]] = {}
        for layer, i in choice.items():
            kind = luts[i].signed
            if layer in stats[kind]:
                chosen[layer] = (qlayers[kind][layer], stats[kind][layer], low_rank[i], means.get(layer))
        # (one noise stream for both kinds: an assignment of one kind simulates as in a search of that kind alone)
        hooks.append(_LowRankSimulation(float_model, chosen, seed))
        searched = set().union(*stats.values())
        hooks.append(_MeasuredError(float_model, qmodel, {n: luts[i] for n, i in choice.items() if n not in searched}))
        return _loss_and_accuracy(float_model, x, y, batch)[1]
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def verify_accuracy(
    qmodel: nn.Module,
    luts: Sequence[Lut],
    choice: dict[str, int],
    means: dict[str, np.ndarray],
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
) -> float:
    """Task: accuracy (percent) of ``qmodel`` with each layer's LUT (indices into ``luts``) and bias correction."""
    model = _assigned_model(qmodel, {layer: luts[i] for layer, i in choice.items()}, means)
    return _loss_and_accuracy(model, x, y, batch)[1]


# ------------------------------------------------------------------------------------------ the search


def _layer_inputs(model: nn.Module, names: Sequence[str], x: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
    """Each named layer's input on ``x`` (both operands for a product; one float pass)."""
    modules = dict(model.named_modules())
    inputs: dict[str, tuple[torch.Tensor, ...]] = {}
    handles = [
        modules[name].register_forward_pre_hook(
            lambda m, i, name=name: inputs.__setitem__(name, tuple(t.detach() for t in i[:2]))
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def _spread(first: int, last: int, count: int, taken: set[int]) -> list[int]:
    """Up to ``count`` indices in ``first..last`` not in ``taken``, evenly spread (both ends included)."""
    return _even([i for i in range(first, last + 1) if i not in taken], count)


def _even(free: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` of the sorted indices ``free``, evenly spread over the list (both ends included)."""
    if len(free) <= count:
        return list(free)
    picks = np.linspace(0, len(free) - 1, count).round().astype(int)
    return sorted({free[i] for i in picks})


def _zone(drops: dict[int, float], budget: float, margin: float) -> tuple[int, int]:
    """Front indices ``(lo, hi)`` between which the predicted drop crosses the budget.

    ``hi``: the cheapest point predicted within ``budget + margin``; ``lo``: the cheapest point before it
    predicted within ``budget - margin`` (the all-exact point 0 if none).
    """
    hi = max((i for i, d in drops.items() if d <= budget + margin), default=0)
    lo = max((i for i, d in drops.items() if d <= budget - margin and i < hi), default=0)
    return lo, hi


def calibrated_margin(drops: dict[int, float], verified: dict[int, float], budget: float, margin: float) -> float:
    """How far past the budget a predicted drop may lie for its point to be worth verifying.

    ``margin`` until a point near the budget (predicted or verified within ``budget + margin``) is verified;
    then the most by which the prediction overstated such a point's drop (0 if it never did): a point predicted
    further out than the prediction has ever erred on the hopeful side is not expected to pass. Points far from
    the budget say little about the error near it and are left out.
    """
    near = [drops[i] - d for i, d in verified.items() if i > 0 and i in drops and min(d, drops[i]) <= budget + margin]
    return max(0.0, *near) if near else margin


def _hopeful(front_size: int, drops: dict[int, float], taken: set[int], first: int, ceiling: float) -> list[int]:
    """Indices ``first..front_size-1`` not in ``taken`` that may pass: simulated ones predicted within ``ceiling``;
    one not simulated where the simulated point before it or after it is (the loss grows along the front, so its
    drop most likely lies between theirs)."""
    simulated = sorted(drops)
    hopeful = []
    for i in range(first, front_size):
        if i in taken:
            continue
        if i in drops:
            if drops[i] <= ceiling:
                hopeful.append(i)
            continue
        k = bisect.bisect(simulated, i)
        neighbours = simulated[max(0, k - 1) : k + 1]
        if any(drops[j] <= ceiling for j in neighbours):
            hopeful.append(i)
    return hopeful


def verification_picks(
    front_size: int,
    drops: dict[int, float],
    verified: dict[int, float],
    budget: float,
    margin: float,
    count: int,
    *,
    beyond: bool = False,
) -> list[int]:
    """The next front indices to verify with the LUT engine (at most ``count``), from what is known.

    ``drops``: predicted accuracy drop per simulated index; ``verified``: verified drop per index (the
    all-exact point 0 among them). Before any verification beyond 0, the points spread over the zone
    where the prediction is uncertain (:func:`_zone`); after, the points between the cheapest verified
    pass and the next verified miss (or, if nothing cheaper was verified, as far again beyond: the
    prediction may be wrong there). Where that leaves fewer than ``count`` points, the round takes only
    points cheaper than the cheapest verified pass that may still pass: those predicted within the budget
    plus :func:`calibrated_margin`, a point not simulated by its simulated neighbours; cheaper ones first,
    then spread over the rest, and the round may verify fewer than ``count``. With ``beyond``: those
    hopeful points spread over all past the cheapest verified pass (a verified miss does not prove that
    every cheaper point misses).
    """
    last = front_size - 1
    taken = set(verified)
    passed = max(i for i, d in verified.items() if d <= budget + 1e-9)
    ceiling = budget + calibrated_margin(drops, verified, budget, margin)
    hopeful = _hopeful(front_size, drops, taken, passed + 1, ceiling)
    if beyond:
        return _even(hopeful, count)
    if taken <= {0}:
        lo, hi = _zone(drops, budget, margin)
        picks = _spread(max(lo, 1), max(hi, 1), count, taken) if last >= 1 else []
        reach = hi
    else:
        missed = [i for i in verified if i > passed]
        if missed:
            return _spread(passed + 1, min(missed) - 1, count, taken)
        reach = min(last, passed + max(passed - min(i for i in verified if i > 0), count))
        picks = _spread(passed + 1, reach, count, taken)
    cheaper = [i for i in hopeful if i > reach and i not in picks]
    picks += cheaper[: count - len(picks)]
    if len(picks) < count:
        picks += _even([i for i in hopeful if i not in picks], count - len(picks))
    return sorted(set(picks))


def check_verify(verify: int) -> None:
    """``--verify``: 1 .. :data:`MAX_VERIFY` front points per round (each costs one LUT-engine evaluation)."""
    if not 1 <= verify <= MAX_VERIFY:
        raise ConfigError(f"--verify must be 1..{MAX_VERIFY}, got {verify}")


def auto_assign(
    float_model: nn.Module,
    qmodel: nn.Module,
    candidates: Sequence[Candidate],
    *,
    macs: dict[str, int],
    x_calib: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    baseline_accuracy: float,
    budget: float,
    engine: Engine | None = None,
    batch_size: int = 128,
    seed: int = 0,
    verify: int = 5,
    rounds: int = 3,
    bias_correction: bool = True,
    front_points: int = 16,
    sensitivity_samples: int = 128,
    characterise_samples: int = 64,
    generations: int = 150,
    status: Callable[[str], None] = lambda _msg: None,
) -> AutoResult:
    """Choose a multiplier per layer of ``qmodel`` (quantised-exact, calibrated) under ``budget`` points.

    ``baseline_accuracy`` is the quantised-exact accuracy on ``x_eval`` the budget is measured from;
    up to ``verify`` front points per round (``rounds`` rounds, the last one past the best pass) run
    through the LUT engine, and the cheapest verified one within the budget is chosen. Same inputs and
    ``seed``, same result, on any ``engine``. With ``bias_correction`` each layer's predicted mean error is folded
    into its bias; without it the mean is error like the rest (predicted, simulated and verified so). Signed and
    unsigned candidates may mix (each layer is quantised for its multiplier); their ``relative_power`` must share
    one reference.
    """
    # (dropout and batch norm as at inference; numpy's BLAS threads would spin on the cores torch's threads need)
    with work_mode(float_model, qmodel), one_blas_thread():
        if not candidates:
            raise ConfigError("no candidate multipliers for --assign auto; widen --candidates")
        candidates, same_table = distinct_tables(candidates)
        check_verify(verify)
        engine = engine or InProcess()
        clock = Stopwatch(digits=3)
        lap = clock.lap
        status("recording operand histograms")
        batches = [x_calib[i : i + batch_size] for i in range(0, len(x_calib), batch_size)]
        stats = record_operands(float_model, qmodel, batches)
        qlayers = approx_layers(qmodel)
        measured = measured_layers(float_model, qmodel)
        widths = {n: (s.bits_a, s.bits_b) for n, s in stats.items()}
        for name in measured:
            resolved = qlayers[name].resolved
            widths[name] = (resolved.bits_a, resolved.bits_b)
        _check_widths(widths, [c.lut for c in candidates])
        # each signedness of the candidates runs under its own quantisation (its twin of qmodel and its statistics)
        twins = scheme_twins(qmodel, sorted({c.lut.signed for c in candidates}))
        kind_stats = {
            signed: stats if twin is qmodel else record_operands(float_model, twin, batches)
            for signed, twin in twins.items()
        }
        twin_layers = {signed: approx_layers(twin) for signed, twin in twins.items()}
        unsearched = {
            name: why
            for name in measured
            if (why := _cannot_measure(float_model, qmodel, name, candidates[0].lut, x_calib[:2])) is not None
        }
        measured = [name for name in measured if name not in unsearched]
        if not stats and not measured:
            raise ConfigError("the model has no approximate layers or products that auto assignment can choose for")
        searched = list(stats)
        names = searched + measured
        lap("operands")

        status(f"characterising {len(searched)} layers x {len(candidates)} multipliers ({engine.description})")
        sample = _layer_inputs(float_model, searched, x_calib[:characterise_samples])
        lut_refs = [engine.put(c.lut) for c in candidates]
        models = [engine.put(v) for v in (float_model, qmodel)]
        calls = []
        for name in searched:
            refs = {}
            for signed, layers in twin_layers.items():
                with torch.no_grad():
                    exact, _ = layers[name].accumulate(*sample[name])  # type: ignore[operator]
                refs[signed] = [engine.put(v) for v in (layers[name], sample[name], exact, kind_stats[signed][name])]
            calls += [(*refs[c.lut.signed], lut) for c, lut in zip(candidates, lut_refs, strict=True)]
        found = engine.map(characterise, calls)
        pairs = {name: found[k * len(candidates) : (k + 1) * len(candidates)] for k, name in enumerate(searched)}
        lap("characterise")

        status("measuring sensitivity")
        dims = {name: channel_dim(qlayers[name]) for name in searched}
        fisher = _fisher(float_model, searched, x_eval[:sensitivity_samples], batch_size, seed, dims)
        _, float_accuracy = _loss_and_accuracy(float_model, x_eval, y_eval, batch_size)
        x_sens, y_sens = x_eval[:sensitivity_samples], y_eval[:sensitivity_samples]
        clean_loss, _ = _loss_and_accuracy(float_model, x_sens, y_sens, batch_size)
        options: dict[str, list[Option]] = {}
        for name in searched:
            # each scheme's proxy calibrated under that scheme (its reference noise has that scheme's channel
            # scales), so a pair's loss is what a search of its kind alone predicts
            factors = {
                signed: _proxy_factor(
                    float_model, name, own[name], fisher[name], x_sens, y_sens, clean_loss, batch_size, seed, dims[name]
                )
                for signed, own in kind_stats.items()
            }
            zeros = np.zeros_like(stats[name].out_scale)
            layer_macs = macs.get(name, 0)
            options[name] = [Option(None, float(layer_macs), 0.0, zeros, zeros)] + [
                Option(
                    c,
                    layer_macs * c.relative_power,
                    float(0.5 * (fisher[name] * (p.std**2 if bias_correction else p.std**2 + p.mean**2)).sum())
                    * factors[c.lut.signed],
                    p.mean,
                    p.std,
                )
                for c, p in zip(candidates, pairs[name], strict=True)
            ]
        lap("sensitivity")

        if measured:
            status(
                f"measuring {len(measured)} layers x {len(candidates)} multipliers with the LUT engine (no closed form)"
            )
            sens = [engine.put(v) for v in (x_sens, y_sens)]
            calls = []
            for name in measured:
                exact_ref = engine.put(exact_outputs(float_model, qmodel, name, x_sens, batch_size))
                calls += [(*models, name, lut, *sens, batch_size, clean_loss, exact_ref) for lut in lut_refs]
            losses = engine.map(measure_loss, calls)
            for k, name in enumerate(measured):
                layer_macs = macs.get(name, 0)
                row = losses[k * len(candidates) : (k + 1) * len(candidates)]
                options[name] = [Option(None, float(layer_macs), 0.0, None, None)] + [
                    Option(c, layer_macs * c.relative_power, loss, None, None)
                    for c, loss in zip(candidates, row, strict=True)
                ]
            lap("measure")

        status("building the energy-loss front (knapsack hull, Pareto sets, NSGA-II where those are thinned)")
        built = build_front(
            [np.array([o.energy for o in options[n]]) for n in names],
            [np.array([o.loss for o in options[n]]) for n in names],
            seed=seed,
            generations=generations,
        )
        front = _points(built, names)
        pruned = sum(len(options[n]) - len(set(built.choices[:, k].tolist()) | {0}) for k, n in enumerate(names))
        lap("front")

        shift = baseline_accuracy - float_accuracy
        front[0].predicted_accuracy = baseline_accuracy
        front[0].verified_accuracy = baseline_accuracy
        shared = [*models, engine.put(twins), engine.put(kind_stats)]
        low_rank = engine.put([LowRankError.of(c.lut) for c in candidates])
        luts = engine.put([c.lut for c in candidates])
        data = [engine.put(v) for v in (x_eval, y_eval)]

        def assigned(point: FrontPoint) -> tuple[dict[str, int], dict[str, np.ndarray]]:
            """Candidate index (options list minus the exact option) of each approximate layer, and the bias
            correction of each predicted one."""
            used = {n: k for n, k in point.choice.items() if k > 0}
            means = {n: mean for n, k in used.items() if (mean := options[n][k].mean) is not None}
            return {n: k - 1 for n, k in used.items()}, means if bias_correction else {}

        def predict(indices: Sequence[int]) -> None:
            todo = [i for i in indices if front[i].predicted_accuracy is None]
            calls = [(*shared, low_rank, luts, *assigned(front[i]), *data, batch_size, seed + 1) for i in todo]
            for i, accuracy in zip(todo, engine.map(simulate_accuracy, calls), strict=True):
                front[i].predicted_accuracy = accuracy + shift

        def drops() -> dict[int, float]:
            return {
                p.index: baseline_accuracy - p.predicted_accuracy for p in front if p.predicted_accuracy is not None
            }

        status(f"simulating {front_points} points of the energy-accuracy front")
        margin = max(budget / 2, 200.0 / max(1, x_eval.shape[0]))
        energies = np.array([p.energy for p in front])
        targets = np.linspace(energies[-1], energies[0], front_points)
        predict(sorted({int(np.abs(energies - t).argmin()) for t in targets}))
        lo, hi = _zone(drops(), budget, margin)
        after = min((i for i in drops() if i > hi), default=len(front) - 1)
        predict(_spread(lo, after, max(1, front_points // 2), set(drops())))
        lap("simulate")

        verified = {0: 0.0}
        for round_ in range(rounds):
            final = round_ == rounds - 1 and rounds > 1
            picks = verification_picks(len(front), drops(), verified, budget, margin, verify, beyond=final)
            if not picks:
                continue
            status(f"verifying {len(picks)} front points with the LUT engine (round {round_ + 1})")
            predict(picks)
            calls = [(shared[1], luts, *assigned(front[i]), *data, batch_size) for i in picks]
            for i, accuracy in zip(picks, engine.map(verify_accuracy, calls), strict=True):
                front[i].verified_accuracy = accuracy
                verified[i] = baseline_accuracy - accuracy
        chosen = front[max(i for i, d in verified.items() if d <= budget + 1e-9)]
        lap("verify")
        return AutoResult(
            options,
            chosen,
            front,
            front[0].energy,
            baseline_accuracy,
            float_accuracy,
            clock.seconds,
            pruned,
            tuple(measured),
            unsearched,
            same_table,
        )


def distinct_tables(candidates: Sequence[Candidate]) -> tuple[list[Candidate], dict[str, str]]:
    """One candidate per table (the same circuit under two names, or with two cost figures: a library's own entry
    and a published one): the one of least relative power, the first on ties, in the given order; and each one
    left out mapped to the one kept (a name given twice is left out silently). Their errors are the same, so
    searching both could only find the dearer."""
    kept: dict[str, Candidate] = {}
    for candidate in candidates:
        held = kept.get(candidate.lut.hash)
        if held is None or candidate.relative_power < held.relative_power:
            kept[candidate.lut.hash] = candidate
    same = {c.name: kept[c.lut.hash].name for c in candidates if c.name != kept[c.lut.hash].name}
    distinct = []
    for candidate in candidates:
        if kept.get(candidate.lut.hash) is candidate:
            distinct.append(kept.pop(candidate.lut.hash))  # (popped: a candidate given twice is kept once)
    return distinct, same


def measured_layers(float_model: nn.Module, qmodel: nn.Module) -> list[str]:
    """The approximate layers of ``qmodel`` the search measures instead of predicting (no closed form: recurrent
    layers, transposed convolutions), in model order."""
    modules = dict(float_model.named_modules())
    return [
        name
        for name, layer in approx_layers(qmodel).items()
        if not searchable(layer) and not layer.resolved.is_float and name in modules
    ]


def _points(front: Front, names: Sequence[str]) -> list[FrontPoint]:
    return [
        FrontPoint(
            i,
            dict(zip(names, (int(c) for c in front.choices[i]), strict=True)),
            float(front.energy[i]),
            float(front.loss[i]),
            front.origin[i],
        )
        for i in range(len(front))
    ]


def _proxy_factor(
    model: nn.Module,
    name: str,
    stats: LayerStats,
    fisher: np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_loss: float,
    batch: int,
    seed: int,
    dim: int | None,
) -> float:
    """Measured / Fisher-proxy loss increase for noise of a fixed reference shape in layer ``name``.

    The reference is an error of std 1 per product in code units (``|out_scale| · √K`` per channel),
    scaled to a small loss: it depends on the layer alone, never on the candidates.
    """
    reference = np.abs(stats.out_scale) * math.sqrt(max(1, stats.operands.fan_in))
    proxy = float(0.5 * (fisher * reference**2).sum())
    if proxy <= 0:
        return 1.0
    target = 0.02
    scale = math.sqrt(target / proxy)
    measured, _ = _noisy(model, {name: reference * scale}, x, y, batch, seed, {name: dim})
    return max(measured - clean_loss, 0.05 * target) / target


def build_assigned(qmodel: nn.Module, choice: dict[str, Option], *, bias_correction: bool = True) -> nn.Module:
    """A copy of ``qmodel`` with each layer's chosen multiplier and (``bias_correction``) its bias correction."""
    chosen = {n: o for n, o in choice.items() if o.candidate is not None}
    return _assigned_model(
        qmodel,
        {n: o.candidate.lut for n, o in chosen.items() if o.candidate is not None},
        {n: o.mean for n, o in chosen.items() if o.mean is not None} if bias_correction else {},
    )


def _assigned_model(qmodel: nn.Module, luts: dict[str, Lut], means: dict[str, np.ndarray]) -> nn.Module:
    """A copy of ``qmodel`` with these layers' multipliers and bias corrections; every other layer as it was (a
    float one stays float)."""
    kept = {n: layer.config for n, layer in approx_layers(qmodel).items()}
    names = kept | {n: _with_multiplier(kept[n], lut) for n, lut in luts.items()}
    model = approximate(qmodel, AssignmentMapping.build(default="float", names=names))
    layers = approx_layers(model)
    for name, mean in means.items():
        layers[name].set_bias_correction(torch.as_tensor(-mean, dtype=torch.float32))
    return model


def _with_multiplier(config: LayerConfig, multiplier: str | Lut) -> LayerConfig:
    """``config`` running ``multiplier`` (its widths and scheme follow the multiplier; the calibration settings
    stay)."""
    return replace(config, multiplier=multiplier, bits=None, scheme="auto")


def scheme_twins(qmodel: nn.Module, signs: Sequence[bool]) -> dict[bool, nn.Module]:
    """The quantised-exact model for each signedness in ``signs`` (symmetric quantisation for signed multipliers,
    affine for unsigned): ``qmodel`` itself where its quantised layers use that scheme already, else a copy with
    each such layer's scheme switched, recalibrated from the activation statistics it kept (as running an
    unsigned multiplier in that layer would be)."""
    layers = approx_layers(qmodel)
    twins: dict[bool, nn.Module] = {}
    for signed in signs:
        scheme = "symmetric" if signed else "affine"
        switched = {
            name: replace(
                layer.config,
                multiplier="exact",
                bits=(layer.resolved.bits_a, layer.resolved.bits_b),
                scheme=scheme,
            )
            for name, layer in layers.items()
            if not layer.resolved.is_float and layer.resolved.scheme != scheme
        }
        if not switched:
            twins[signed] = qmodel
            continue
        names = {n: layer.config for n, layer in layers.items()} | switched
        twins[signed] = approximate(qmodel, AssignmentMapping.build(default="float", names=names))
    return twins


def _check_widths(widths: dict[str, tuple[int, int]], luts: list[Lut]) -> None:
    """Every candidate fits every layer's ``(bits_a, bits_b)`` (signed and unsigned ones alike: each is run under
    its own quantisation scheme)."""
    for name, (bits_a, bits_b) in widths.items():
        for lut in luts:
            if (lut.bits_a, lut.bits_b) != (bits_a, bits_b):
                raise ConfigError(
                    f"candidate '{lut.name}' ({lut.bits_a}x{lut.bits_b}) does not match layer '{name}' quantised "
                    f"{bits_a}x{bits_b}; give candidates of one width"
                )


__all__ = [
    "AutoResult",
    "Candidate",
    "Characterisation",
    "ExactCall",
    "FrontPoint",
    "Option",
    "auto_assign",
    "build_assigned",
    "calibrated_margin",
    "characterise",
    "distinct_tables",
    "exact_outputs",
    "measure_loss",
    "measured_layers",
    "scheme_twins",
    "simulate_accuracy",
    "verification_picks",
    "verify_accuracy",
]
