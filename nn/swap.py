"""Module swap: put approximate layers into any ``nn.Module`` per an assignment, and take them out again.

Copied in spirit from torch.ao's ``swap_module`` (which is deprecated): a default float → approximate
class mapping returned as a copy, ``from_float``/``to_float`` on each layer, ``inplace=False`` by default,
hooks, training mode and device preserved, a module object used at several places swapped once (and
still shared), layers that are already approximate re-configured in place of being wrapped twice.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from ..errors import ConfigError
from .capture import attach_capture, detach_capture, plausible_product_name
from .config import AssignmentMapping, LayerConfig, Spec
from .layers import ApproxConv1d, ApproxConv2d, ApproxConvTranspose2d, ApproxLinear, ApproxModule
from .modes import work_mode
from .products import ApproxProduct
from .quant import calibrate
from .rnn import ApproxGRU, ApproxGRUCell, ApproxLSTM, ApproxLSTMCell, ApproxRNN, ApproxRNNCell

_DEFAULT_MAPPING: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: ApproxLinear,
    NonDynamicallyQuantizableLinear: ApproxLinear,  # nn.MultiheadAttention's out_proj
    nn.Conv1d: ApproxConv1d,
    nn.Conv2d: ApproxConv2d,
    nn.ConvTranspose2d: ApproxConvTranspose2d,
    nn.RNN: ApproxRNN,
    nn.LSTM: ApproxLSTM,
    nn.GRU: ApproxGRU,
    nn.RNNCell: ApproxRNNCell,
    nn.LSTMCell: ApproxLSTMCell,
    nn.GRUCell: ApproxGRUCell,
}


def default_mapping() -> dict[type[nn.Module], type[nn.Module]]:
    """Float module class → approximate class (a copy; edit it and pass it as ``mapping``)."""
    return dict(_DEFAULT_MAPPING)


def _replacement(
    name: str | list[str],
    module: nn.Module,
    assignment: AssignmentMapping,
    mapping: Mapping[type[nn.Module], type[nn.Module]],
) -> nn.Module | None:
    """The module that replaces ``module`` (``None``: keep it as it is)."""
    config = assignment.config_for(name, module)
    approx_cls = mapping.get(type(module))
    try:
        if isinstance(module, ApproxProduct):
            module.set_config(config)
            return None
        if isinstance(module, ApproxModule):
            if config.is_float:
                return module.to_float()
            module.set_config(config)
            return None
        if approx_cls is None or config.is_float:
            return None
        new: nn.Module = approx_cls.from_float(module, config)  # type: ignore[attr-defined]
    except ConfigError as exc:
        label = name if isinstance(name, str) else name[0]
        raise ConfigError(f"layer '{label or '<model>'}': {exc}") from None
    return new


def _swap(
    model: nn.Module, choose: Callable[[str, nn.Module], nn.Module | None], stop: Callable[[nn.Module], bool]
) -> nn.Module:
    """Replace modules by ``choose(name, module)`` (first name of a shared module), walking top-down.

    The walk does not descend into modules for which ``stop`` is true. Returns the (possibly replaced) root.
    """
    done: dict[int, nn.Module] = {}

    def visit(name: str, module: nn.Module) -> nn.Module:
        if id(module) in done:
            return done[id(module)]
        new = choose(name, module)
        result = module if new is None else new
        done[id(module)] = result
        if not stop(result):
            # _modules, not named_children(): the latter hides a second reference to a shared module
            for child_name, child in list(result._modules.items()):
                if child is None:
                    continue
                replaced = visit(f"{name}.{child_name}" if name else child_name, child)
                if replaced is not child:
                    setattr(result, child_name, replaced)
        return result

    return visit("", model)


def _check_names(
    model: nn.Module, rules: AssignmentMapping, table: Mapping[type[nn.Module], type[nn.Module]], *, discovered: bool
) -> None:
    """Exact layer names in ``rules`` must name approximable layers or products, and once the products are
    discovered every ``re:`` and ``type:`` rule must match one of them (a typo must not pass silently).

    Until the products are discovered, a name that could be a product of an existing module
    (``blocks.0.attn.qk``) is accepted, and so is any rule.
    """
    layers = [
        (name, m)
        for name, m in model.named_modules(remove_duplicate=False)
        if isinstance(m, ApproxModule) or type(m) in table
    ]
    known = [name for name, _ in layers]
    listed = ", ".join(repr(n) for n in known[:12]) + (", ..." if len(known) > 12 else "")
    unknown = sorted(
        name
        for name in {name for name, _ in rules.names} - set(known)
        if discovered or not plausible_product_name(model, name)
    )
    if unknown:
        raise ConfigError(
            f"assignment names unknown layers {', '.join(map(repr, unknown))}; approximable layers: {listed or 'none'}"
        )
    if not discovered:
        return
    idle = [f"'re:{p}'" for p, _ in rules.patterns if not any(re.fullmatch(p, name) for name in known)]
    idle += [f"'type:{t.__name__}'" for t, _ in rules.types if not any(isinstance(m, t) for _, m in layers)]
    if idle:
        raise ConfigError(
            f"assignment rule{'s' if len(idle) > 1 else ''} {', '.join(idle)} match{'' if len(idle) > 1 else 'es'} "
            f"no layer; approximable layers: {listed or 'none'}"
        )


def approximate(
    model: nn.Module,
    assignment: AssignmentMapping | Mapping[str, Any] | Spec,
    calibration_data: Iterable[Any] | None = None,
    inplace: bool = False,
    *,
    mapping: Mapping[type[nn.Module], type[nn.Module]] | None = None,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> nn.Module:
    """Swap the layers of ``model`` for approximate ones as ``assignment`` says; calibrate; return the model.

    Args:
        model: any module (the root itself may be a layer).
        assignment: an :class:`AssignmentMapping`, its JSON dict, ``{layer name: spec}``, or one spec
            (``"exact"``, a library name, a path or a ``Lut``) for every layer.
        calibration_data: an iterable of input batches (see :func:`approxlut.nn.quant.calibrate`) run once
            through the model to set activation ranges. Without it, activations are quantised per batch.
        inplace: modify ``model`` itself instead of a deep copy.
        mapping: float class → approximate class (default :func:`default_mapping`; exact types only).
        max_batches: stop calibration after this many batches.
        progress: called with the number of calibration batches done.

    Layers already approximate take the new config (``"float"`` turns them back into torch layers).
    A layer used at several places is swapped once (and stays shared); any of its names may be assigned.

    Products computed with functions inside modules (attention, ``@``, ``einsum``, ``F.linear``: see
    :mod:`approxlut.nn.capture`) are found while the calibration data runs and get their configs by name
    like layers (``blocks.0.attn.qk``); without calibration data they are created on first use. A model
    in which calibration finds none keeps no capture.

    Raises:
        ConfigError: an exact layer name in ``assignment`` is not an approximable layer or product of
            ``model``, or a multiplier cannot be resolved.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"approximate() needs an nn.Module, got {type(model).__name__}")
    rules = AssignmentMapping.coerce(assignment)
    table = dict(mapping) if mapping is not None else _DEFAULT_MAPPING
    _check_names(model, rules, table, discovered=False)
    if not inplace:
        model = copy.deepcopy(model)
    aliases: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        aliases.setdefault(id(module), []).append(name)
    model = _swap(
        model,
        lambda name, module: _replacement(aliases.get(id(module), [name]), module, rules, table),
        lambda module: isinstance(module, ApproxModule) or type(module) in table,
    )
    capture = attach_capture(model, rules, tuple(table))
    if calibration_data is not None:
        calibrate(model, calibration_data, max_batches=max_batches, progress=progress)
        if capture is not None and not capture.products:
            detach_capture(model)
    if calibration_data is not None:
        _check_names(model, rules, table, discovered=True)
    return model


def to_float(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Undo :func:`approximate`: every approximate layer back to its torch layer (parameters kept), no products."""
    if not inplace:
        model = copy.deepcopy(model)
    detach_capture(model)
    return _swap(
        model,
        lambda _name, module: module.to_float() if isinstance(module, ApproxModule) else None,
        lambda module: isinstance(module, ApproxModule),
    )


def approx_layers(model: nn.Module) -> dict[str, ApproxModule]:
    """The approximate layers of ``model`` by qualified name (a shared layer under its first name)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ApproxModule)}


def approximable_layers(
    model: nn.Module, mapping: Mapping[type[nn.Module], type[nn.Module]] | None = None
) -> dict[str, nn.Module]:
    """Layers that :func:`approximate` can swap (or has swapped), by qualified name."""
    table = mapping if mapping is not None else _DEFAULT_MAPPING
    return {name: m for name, m in model.named_modules() if isinstance(m, ApproxModule) or type(m) in table}


def _gates(module: nn.Module) -> int:
    """Gate blocks per recurrent step (LSTM 4, GRU 3, plain RNN 1)."""
    if isinstance(module, nn.LSTMCell):
        return 4
    if isinstance(module, nn.GRUCell):
        return 3
    if isinstance(module, nn.RNNBase):
        return {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    return 1


def _recurrent_macs(module: nn.Module, x: Any) -> tuple[int, int]:
    """``(MACs of this call, batch size)`` of an RNN module or cell."""
    m: Any = module
    gates = _gates(module)
    if isinstance(module, nn.RNNCellBase):
        batch = x.shape[0] if x.dim() == 2 else 1
        return gates * m.hidden_size * (m.input_size + m.hidden_size) * batch, batch
    directions = 2 if m.bidirectional else 1
    per_step = 0
    for layer in range(m.num_layers):
        in_size = m.input_size if layer == 0 else m.hidden_size * directions
        per_step += directions * gates * m.hidden_size * (in_size + m.hidden_size)
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return per_step * int(x.data.shape[0]), int(x.batch_sizes[0])
    if x.dim() == 2:
        return per_step * int(x.shape[0]), 1
    batch, steps = (x.shape[0], x.shape[1]) if m.batch_first else (x.shape[1], x.shape[0])
    return per_step * int(steps) * int(batch), int(batch)


def _layer_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any, batch: int) -> tuple[int, int]:
    """``(MACs of this call, batch size)``; ``batch`` is the model's (products cannot tell theirs)."""
    x = inputs[0]
    if isinstance(module, ApproxProduct):
        return module.count_macs(inputs, output), batch
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return _recurrent_macs(module, x)
    if isinstance(module, nn.Linear):
        batch = output.shape[0] if output.dim() > 1 else 1
        return int(output.numel()) * module.in_features, batch
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return int(x.numel()) * (module.out_channels // module.groups) * kh * kw, x.shape[0]
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        batch = output.shape[0] if output.dim() == len(module.kernel_size) + 2 else 1
        taps = 1
        for size in module.kernel_size:
            taps *= size
        return int(output.numel()) * (module.in_channels // module.groups) * taps, batch
    raise ConfigError(f"cannot count MACs of {type(module).__name__}")


def layer_macs(model: nn.Module, example_input: Any) -> dict[str, int]:
    """Multiply-accumulates per sample of every approximable layer, measured by one forward pass.

    ``example_input`` is the model's input (a tensor, or a tuple of positional inputs); the batch size is
    read from each layer's input (for products, the first dim of the first input tensor). A layer called
    several times (shared, or inside a loop) adds up.
    """
    layers = approximable_layers(model)
    totals: dict[str, int] = dict.fromkeys(layers, 0)
    first = example_input[0] if isinstance(example_input, tuple) else example_input
    model_batch = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1
    handles = []
    for name, layer in layers.items():

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any, name: str = name) -> None:
            macs, batch = _layer_macs(module, inputs, output, model_batch)
            totals[name] += macs // max(int(batch), 1)

        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad(), work_mode(model):
            if isinstance(example_input, tuple):
                model(*example_input)
            else:
                model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return totals


__all__ = [
    "LayerConfig",
    "approx_layers",
    "approximable_layers",
    "approximate",
    "default_mapping",
    "layer_macs",
    "to_float",
]
