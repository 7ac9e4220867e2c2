"""Find the products that modules compute with functions, at run time, and route them through approximate
multipliers: ``torch.matmul``/``@``/``mm``/``bmm``, ``einsum`` (batched-matmul forms), ``F.linear``,
``F.scaled_dot_product_attention`` (both matmuls, softmax in float between them) and
``nn.MultiheadAttention`` (in-projection, both matmuls; its ``out_proj`` runs as a ``Linear`` layer).

**Mechanism: a ``TorchFunctionMode``, not torch.fx.** fx traces symbolically, so it cannot follow
data-dependent control flow (``if x.shape[1] > n``, loops over a tensor's length), stops at leaf modules
(it would not see inside ``nn.MultiheadAttention``) and needs a rewrite of the user's model. A
``TorchFunctionMode`` sees every torch function call as the unmodified model runs, whatever its Python does.
What it lacks is the caller, so every module gets a forward pre-hook and an always-called forward hook
that keep a per-thread stack of the modules being run; a product is named after the innermost module and
its call index within that module's forward, per kind: the first ``@`` in ``blocks.0.attn`` is
``blocks.0.attn.matmul``, the second ``blocks.0.attn.matmul_1``; the two products of an attention call are
``qk`` and ``av``. The names are the same in every run (they do not depend on how many calls follow) and
are real module paths: each product is an :class:`~approxlut.nn.products.ApproxProduct` attached under its
name to the module that makes the call, created the first time the call is seen (calibration).

Calls made by approximable layers themselves (``nn.Linear``, convolutions, RNNs, approximate layers) are
not products: those layers are swapped as a whole. A torch function's own Python body cannot run with the
mode active (it would dispatch to the mode again), so ``nn.MultiheadAttention``'s functional forward is
re-expressed here with the same equations; options that change it (``add_bias_kv``, ``add_zero_attn``,
static keys) are refused unless its products are left in float.

The mode is entered when the outermost hooked module starts and left when it returns (also on errors).
The capture's hooks stay outermost on each module (re-ordered at every call), so other hooks' torch calls
belong to the module they are attached to; hooks on a product run inside the product's computation, where
nothing is captured.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError
from .config import AssignmentMapping, LayerConfig
from .layers import ApproxModule
from .products import ApproxProduct
from .quant import Calibratable

CAPTURE_ATTR = "_lutgen_capture"
"""The plain attribute of the root module that holds its capture (not a child module: containers such as
``nn.Sequential`` run every child)."""

PRODUCT_KINDS = ("matmul", "mm", "bmm", "einsum", "linear", "qk", "av", "in_proj", "q_proj", "k_proj", "v_proj")
PRODUCT_NAME = re.compile(rf"({'|'.join(PRODUCT_KINDS)})(_\d+)?(_product)?")
"""The last component of a product's name."""


@dataclass
class _Frame:
    """A module being run: its name, the module, its product counters and whether its calls are products."""

    name: str
    module: nn.Module
    skip: bool
    counters: dict[str, int] = field(default_factory=dict)


class _ThreadState(threading.local):
    """Per thread: the module stack and active mode of each capture, and the product-computation depth."""

    def __init__(self) -> None:
        self.stacks: dict[int, list[_Frame]] = {}
        self.modes: dict[int, TorchFunctionMode] = {}
        self.busy = 0


_STATE = _ThreadState()


@contextmanager
def _busy() -> Iterator[None]:
    """Inside: torch calls are the products' own arithmetic, never products (for every capture)."""
    _STATE.busy += 1
    try:
        yield
    finally:
        _STATE.busy -= 1


def _join(owner: str, local: str) -> str:
    return f"{owner}.{local}" if owner else local


class ProductCapture(Calibratable):
    """Holds a model's products, names them and creates them with the assignment's configs.

    It is kept as a plain attribute of the root module, so ``copy.deepcopy`` of the model copies it with
    the model (its hooks are partials of its bound methods and follow the copy).

    Attributes:
        rules: the assignment new products take their config from.
        products: every product created, by qualified name.
        observing: whether calibration is running (new products start observing).
    """

    def __init__(self, rules: AssignmentMapping, layer_types: tuple[type[nn.Module], ...]) -> None:
        self.rules = rules
        self.layer_types = layer_types
        self.products: dict[str, ApproxProduct] = {}
        self.observing = False

    # ------------------------------------------------------------------------------- module stack

    def install(self, root: nn.Module) -> None:
        """Hook every module of ``root`` that is not hooked yet (products and captures excepted)."""
        for name, module in root.named_modules():
            if isinstance(module, ApproxProduct) or self._hooked(module):
                continue
            module.register_forward_pre_hook(functools.partial(self._enter, name), prepend=True)
            module.register_forward_hook(functools.partial(self._leave, name), always_call=True)

    def _hooked(self, module: nn.Module) -> bool:
        return any(_owner(hook) is self for hook in module._forward_pre_hooks.values())

    def uninstall(self, root: nn.Module) -> None:
        """Remove this capture's hooks from every module of ``root``."""
        for module in root.modules():
            for hooks in (module._forward_pre_hooks, module._forward_hooks):
                for key in [k for k, hook in hooks.items() if _owner(hook) is self]:
                    del hooks[key]
                    module._forward_hooks_always_called.pop(key, None)

    def _enter(self, name: str, module: nn.Module, args: Any) -> None:
        # outermost: enter before and leave after every other hook (e.g. ones added since), so that their
        # torch calls count as the module's own (a Linear's hooks make no products)
        for hooks, last in ((module._forward_pre_hooks, False), (module._forward_hooks, True)):
            ordered = cast("OrderedDict[int, Any]", hooks)
            for key in [k for k, hook in ordered.items() if _owner(hook) is self]:
                ordered.move_to_end(key, last=last)
        stack = _STATE.stacks.setdefault(id(self), [])
        if not stack:
            mode = _CaptureMode(self)
            mode.__enter__()
            _STATE.modes[id(self)] = mode
        skip = isinstance(module, ApproxModule) or type(module) in self.layer_types
        stack.append(_Frame(name, module, skip))

    def _leave(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        stack = _STATE.stacks.get(id(self))
        if not stack:
            return
        stack.pop()
        if not stack:
            del _STATE.stacks[id(self)]
            _STATE.modes.pop(id(self)).__exit__(None, None, None)

    def frame(self) -> _Frame | None:
        """The innermost module being run, if its calls are products."""
        stack = _STATE.stacks.get(id(self))
        if not stack or stack[-1].skip or _STATE.busy:
            return None
        return stack[-1]

    # ------------------------------------------------------------------------------------ products

    def site(self, frame: _Frame, kind: str) -> tuple[str, str]:
        """The next call of ``kind`` in ``frame``'s forward: ``(local name, qualified name)``."""
        index = frame.counters.get(kind, 0)
        frame.counters[kind] = index + 1
        local = kind if index == 0 else f"{kind}_{index}"
        taken = getattr(frame.module, local, None)
        if taken is not None and not isinstance(taken, ApproxProduct):
            local = f"{local}_product"  # the module has an attribute of that name (e.g. out_proj)
        return local, _join(frame.name, local)

    def config_for(self, name: str) -> LayerConfig:
        """The config the rules give the product called ``name``."""
        return self.rules.config_for(name, ApproxProduct.__new__(ApproxProduct))

    def product(self, frame: _Frame, kind: str, *, weight_operand: bool, like: torch.Tensor) -> ApproxProduct:
        """The product of the next ``kind`` call in ``frame`` (created on first sight, on ``like``'s device)."""
        local, name = self.site(frame, kind)
        found = frame.module._modules.get(local)
        if isinstance(found, ApproxProduct):
            if found.weight_operand != weight_operand:
                what = "a weight" if found.weight_operand else "an activation"
                raise ConfigError(f"product '{name}' was first called with {what} as operand b; it changed")
            return found
        product = ApproxProduct(kind, weight_operand=weight_operand, config=LayerConfig("float"))
        try:
            product.set_config(self.config_for(name))
        except ConfigError as exc:
            raise ConfigError(f"layer '{name}': {exc}") from None
        product.to(like.device)
        product.train(frame.module.training)
        if self.observing:
            product.start_observing()
        frame.module.add_module(local, product)
        self.products[name] = product
        return product

    def refuse(self, frame: _Frame, kind: str, why: str) -> None:
        """Raise for an unsupported call unless the product it would be is assigned ``float``."""
        local, name = self.site(frame, kind)
        if not self.config_for(name).is_float:
            raise ConfigError(f"'{name}': {why}; assign it 'float' (e.g. --assign 're:.*{re.escape(local)}=float')")

    # --------------------------------------------------------------------------------- calibration

    def start_observing(self, *, reset: bool = True) -> None:
        self.observing = True

    def freeze(self) -> None:
        self.observing = False
        for product in self.products.values():
            product.freeze()


def _owner(hook: Any) -> Any:
    """The capture a hook belongs to (hooks are partials of its bound methods), else ``None``."""
    func = getattr(hook, "func", None)
    return getattr(func, "__self__", None)


class _CaptureMode(TorchFunctionMode):
    """Routes product calls made by the innermost hooked module to its products; everything else runs as is."""

    def __init__(self, capture: ProductCapture) -> None:
        super().__init__()
        self.capture = capture

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        handler = _HANDLERS.get(func)
        if handler is not None:
            frame = self.capture.frame()
            if frame is not None:
                with _busy():
                    result = handler(self.capture, frame, args, kwargs)
                if result is not NotImplemented:
                    return result
        return func(*args, **kwargs)


# ------------------------------------------------------------------------------------------ handlers


def _floats(*tensors: Any) -> bool:
    return all(isinstance(t, torch.Tensor) and t.dtype.is_floating_point and t.dim() > 0 for t in tensors)


def _run(
    capture: ProductCapture, frame: _Frame, kind: str, a: torch.Tensor, b: torch.Tensor, bias: Any = None
) -> torch.Tensor:
    """``a @ b`` (+ ``bias``) through the product of the next ``kind`` call; a 2-D parameter ``b`` is a weight."""
    if isinstance(b, nn.Parameter) and b.dim() == 2:
        return capture.product(frame, kind, weight_operand=True, like=a)(a, b.t(), bias)
    return capture.product(frame, kind, weight_operand=False, like=a)(a, b, bias)


def _matmul(kind: str, *, reflected: bool = False) -> Callable[..., Any]:
    dims = {"mm": 2, "bmm": 3}.get(kind)

    def handle(capture: ProductCapture, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or len(args) != 2 or not _floats(*args):
            return NotImplemented
        a, b = (args[1], args[0]) if reflected else args
        if dims is not None and not a.dim() == b.dim() == dims:
            return NotImplemented  # torch says what is wrong
        squeeze: list[int] = []
        if a.dim() == 1:
            a, squeeze = a.unsqueeze(0), [-2]
        if b.dim() == 1:
            b, squeeze = b.unsqueeze(-1), [*squeeze, -1]
        out = _run(capture, frame, kind, a, b)
        for dim in sorted(squeeze):
            out = out.squeeze(dim)
        return out

    return handle


def _linear(capture: ProductCapture, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    names = ("input", "weight", "bias")
    bound = dict(zip(names, args, strict=False)) | kwargs
    if set(bound) - set(names) or not _floats(bound.get("input"), bound.get("weight")):
        return NotImplemented
    x, w, bias = cast(torch.Tensor, bound["input"]), cast(torch.Tensor, bound["weight"]), bound.get("bias")
    if w.dim() != 2:
        return NotImplemented
    if isinstance(w, nn.Parameter):
        return capture.product(frame, "linear", weight_operand=True, like=x)(x, w, bias)
    return capture.product(frame, "linear", weight_operand=False, like=x)(x, w.t(), bias)


@dataclass(frozen=True)
class EinsumPlan:
    """A two-operand einsum as one batched matmul: permutations, sizes and the output's order."""

    a_order: list[int]
    b_order: list[int]
    batch: list[int]
    free_a: list[int]
    free_b: list[int]
    contracted: int
    out_order: list[int]


def einsum_plan(equation: str, a_shape: torch.Size, b_shape: torch.Size) -> EinsumPlan:
    """Plan ``einsum(equation, a, b)`` as ``a' [batch, M, K] @ b' [batch, K, N]`` (batch dims broadcast).

    Every index must occur once per operand and either in both operands (batch if kept, contracted if
    summed) or in one operand and the output (free).

    Raises:
        ConfigError: the equation is not of that form.
    """
    text = equation.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        raise ConfigError(f"einsum '{equation}' has {len(terms)} operands, not 2")
    shapes = (a_shape, b_shape)
    expanded = []
    widest = 0
    for term, shape in zip(terms, shapes, strict=True):
        letters = term.replace("...", "")
        extra = len(shape) - len(letters)
        if "..." not in term and extra:
            raise ConfigError(f"einsum '{equation}': '{term}' does not match an operand of {len(shape)} dims")
        widest = max(widest, extra if "..." in term else 0)
        dots = [chr(0x100 + i) for i in reversed(range(extra))]
        before, _, after = term.partition("...")
        expanded.append(list(before) + (dots if "..." in term else []) + list(after))
    if arrow:
        out_dots = [chr(0x100 + i) for i in reversed(range(widest))]
        before, _, after = out.partition("...")
        output = list(before) + (out_dots if "..." in out else []) + list(after)
    else:
        counts: dict[str, int] = {}
        for symbol in expanded[0] + expanded[1]:
            counts[symbol] = counts.get(symbol, 0) + 1
        output = [chr(0x100 + i) for i in reversed(range(widest))]
        output += sorted(s for s, c in counts.items() if c == 1 and ord(s) < 0x100)
    ta, tb = expanded
    if len(set(ta)) != len(ta) or len(set(tb)) != len(tb) or len(set(output)) != len(output):
        raise ConfigError(f"einsum '{equation}' repeats an index within one operand (a diagonal)")
    if set(output) - set(ta) - set(tb):
        raise ConfigError(f"einsum '{equation}': the output has indices of no operand")
    one_sided = (set(ta) ^ set(tb)) - set(output)
    if one_sided:
        raise ConfigError(f"einsum '{equation}' sums an index of one operand only ({''.join(sorted(one_sided))})")
    batch = [s for s in output if s in ta and s in tb]
    free_a = [s for s in output if s in ta and s not in tb]
    free_b = [s for s in output if s in tb and s not in ta]
    contracted = [s for s in ta if s in tb and s not in output]
    size = dict(zip(ta, a_shape, strict=True))
    b_size = dict(zip(tb, b_shape, strict=True))
    for s in contracted:
        if size[s] != b_size[s]:
            raise ConfigError(f"einsum '{equation}': index '{s}' has sizes {size[s]} and {b_size[s]}")
    k = 1
    for s in contracted:
        k *= size[s]
    batch_sizes = [max(size[s], b_size[s]) for s in batch]
    order = batch + free_a + free_b
    return EinsumPlan(
        a_order=[ta.index(s) for s in batch + free_a + contracted],
        b_order=[tb.index(s) for s in batch + contracted + free_b],
        batch=batch_sizes,
        free_a=[size[s] for s in free_a],
        free_b=[b_size[s] for s in free_b],
        contracted=k,
        out_order=[order.index(s) for s in output],
    )


def _einsum(capture: ProductCapture, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or not args or not isinstance(args[0], str):
        return NotImplemented
    equation = args[0]
    operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    if len(operands) == 1 or not _floats(*operands):
        return NotImplemented  # one operand: no product
    if len(operands) != 2:
        capture.refuse(frame, "einsum", f"einsum '{equation}' has {len(operands)} operands; only two-operand products")
        return NotImplemented
    a, b = operands
    try:
        plan = einsum_plan(equation, a.shape, b.shape)
    except ConfigError as exc:
        capture.refuse(frame, "einsum", f"{exc}; supported are batched-matmul forms such as 'bhqd,bhkd->bhqk'")
        return NotImplemented
    nb = len(plan.batch)
    a2 = a.permute(plan.a_order)
    a2 = a2.expand(*plan.batch, *a2.shape[nb:]).reshape(*plan.batch, math.prod(plan.free_a), plan.contracted)
    b2 = b.permute(plan.b_order)
    b2 = b2.expand(*plan.batch, *b2.shape[nb:]).reshape(*plan.batch, plan.contracted, math.prod(plan.free_b))
    out = capture.product(frame, "einsum", weight_operand=False, like=a)(a2, b2)
    return out.reshape(*plan.batch, *plan.free_a, *plan.free_b).permute(plan.out_order)


def attention(
    capture: ProductCapture,
    frame: _Frame,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    dropout_p: float,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(qk(q, kᵀ)·scale + mask) → dropout → av(·, v)``: the context and the attention weights.

    ``mask`` is additive (float, ``-inf`` where masked); softmax and dropout run in float.
    """
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = capture.product(frame, "qk", weight_operand=False, like=q)(q, k.transpose(-2, -1)) * factor
    if mask is not None:
        scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return capture.product(frame, "av", weight_operand=False, like=q)(weights, v), weights


def _additive(mask: torch.Tensor, *, allowed: bool, dtype: torch.dtype) -> torch.Tensor:
    """A float mask to add to scores; a bool mask marks allowed (``allowed=True``) or masked positions."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    blocked = ~mask if allowed else mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(blocked, float("-inf"))


_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _sdpa(capture: ProductCapture, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = dict(zip(_SDPA_ARGS, args, strict=False)) | kwargs
    if set(bound) - set(_SDPA_ARGS):
        return NotImplemented
    q, k, v = bound["query"], bound["key"], bound["value"]
    if not _floats(q, k, v):
        return NotImplemented
    if bound.get("enable_gqa") and q.dim() >= 3 and k.shape[-3] != q.shape[-3]:
        repeat = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(repeat, -3), v.repeat_interleave(repeat, -3)
    mask = bound.get("attn_mask")
    additive = None if mask is None else _additive(mask, allowed=True, dtype=q.dtype)
    if bound.get("is_causal"):
        causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        causal_mask = _additive(causal, allowed=True, dtype=q.dtype)
        additive = causal_mask if additive is None else additive + causal_mask
    out, _ = attention(
        capture, frame, q, k, v, additive, dropout_p=float(bound.get("dropout_p") or 0.0), scale=bound.get("scale")
    )
    return out


_MHA_ARGS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k",
    "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training", "key_padding_mask",
    "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
    "static_k", "static_v", "average_attn_weights", "is_causal",
)  # fmt: skip


def _mha(capture: ProductCapture, frame: _Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``F.multi_head_attention_forward`` with the same equations (sequence-first ``[L, N, E]`` or ``[L, E]``)."""
    p = dict(zip(_MHA_ARGS, args, strict=False)) | kwargs
    query, key, value = p["query"], p["key"], p["value"]
    if not _floats(query, key, value):
        return NotImplemented
    unsupported = [
        what
        for what, present in (
            ("add_bias_kv", p.get("bias_k") is not None or p.get("bias_v") is not None),
            ("add_zero_attn", bool(p.get("add_zero_attn"))),
            ("static keys/values", p.get("static_k") is not None or p.get("static_v") is not None),
        )
        if present
    ]
    if unsupported:
        if not capture.config_for(_join(frame.name, "qk")).is_float:
            raise ConfigError(
                f"'{frame.name}': nn.MultiheadAttention with {', '.join(unsupported)} is not supported; "
                f"assign its products float (e.g. --assign 're:{re.escape(frame.name)}\\..*=float')"
            )
        return NotImplemented
    heads, training = int(p["num_heads"]), bool(p.get("training", True))
    unbatched = query.dim() == 2
    padding = p.get("key_padding_mask")
    if unbatched:
        same = query is key and key is value
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if same:
            key = value = query
        padding = None if padding is None else padding.unsqueeze(0)
    tgt, batch, embed = query.shape
    src = key.shape[0]
    if embed % heads or embed != p["embed_dim_to_check"]:
        raise ConfigError(f"'{frame.name}': embedding dim {embed} does not fit {heads} heads")
    if p.get("is_causal") and p.get("attn_mask") is None:
        raise ConfigError(f"'{frame.name}': is_causal needs attn_mask (nn.MultiheadAttention's own rule)")
    bias = p.get("in_proj_bias")
    b_q, b_k, b_v = (None, None, None) if bias is None else bias.chunk(3)
    if not p.get("use_separate_proj_weight"):
        weight = p["in_proj_weight"]
        if query is key and key is value:
            q, k, v = capture.product(frame, "in_proj", weight_operand=True, like=query)(query, weight, bias).chunk(
                3, -1
            )
        else:
            w_q, w_k, w_v = weight.chunk(3)
            q = capture.product(frame, "q_proj", weight_operand=True, like=query)(query, w_q, b_q)
            k = capture.product(frame, "k_proj", weight_operand=True, like=key)(key, w_k, b_k)
            v = capture.product(frame, "v_proj", weight_operand=True, like=value)(value, w_v, b_v)
    else:
        q = capture.product(frame, "q_proj", weight_operand=True, like=query)(query, p["q_proj_weight"], b_q)
        k = capture.product(frame, "k_proj", weight_operand=True, like=key)(key, p["k_proj_weight"], b_k)
        v = capture.product(frame, "v_proj", weight_operand=True, like=value)(value, p["v_proj_weight"], b_v)
    head_dim = embed // heads
    q = q.reshape(tgt, batch, heads, head_dim).permute(1, 2, 0, 3)
    k = k.reshape(src, batch, heads, head_dim).permute(1, 2, 0, 3)
    v = v.reshape(src, batch, heads, head_dim).permute(1, 2, 0, 3)
    mask = None
    attn_mask = p.get("attn_mask")
    if attn_mask is not None:
        mask = _additive(attn_mask, allowed=False, dtype=q.dtype)
        if mask.dim() == 3:
            mask = mask.reshape(batch, heads, tgt, src)
    if padding is not None:
        pad = _additive(padding, allowed=False, dtype=q.dtype).reshape(batch, 1, 1, src)
        mask = pad if mask is None else mask + pad
    dropout = float(p.get("dropout_p") or 0.0) if training else 0.0
    context, attn = attention(capture, frame, q, k, v, mask, dropout_p=dropout, scale=None)
    context = context.permute(0, 2, 1, 3).reshape(batch, tgt, embed)  # batch first: MACs per sample
    out_proj = getattr(frame.module, "out_proj", None)
    if isinstance(out_proj, nn.Linear) and out_proj.weight is p["out_proj_weight"]:
        out = out_proj(context)  # a Linear layer of the model: swapped and named like every other layer
    else:
        out = F.linear(context, p["out_proj_weight"], p.get("out_proj_bias"))
    out = out.transpose(0, 1)
    weights: torch.Tensor | None = None
    if p.get("need_weights", True):
        weights = attn.mean(dim=1) if p.get("average_attn_weights", True) else attn
        if unbatched:
            weights = weights.squeeze(0)
    return (out.squeeze(1) if unbatched else out), weights


_HANDLERS: dict[Any, Callable[..., Any]] = {
    torch.matmul: _matmul("matmul"),
    torch.Tensor.matmul: _matmul("matmul"),
    torch.Tensor.__matmul__: _matmul("matmul"),
    torch.Tensor.__rmatmul__: _matmul("matmul", reflected=True),
    torch.mm: _matmul("mm"),
    torch.Tensor.mm: _matmul("mm"),
    torch.bmm: _matmul("bmm"),
    torch.Tensor.bmm: _matmul("bmm"),
    torch.einsum: _einsum,
    F.linear: _linear,
    F.scaled_dot_product_attention: _sdpa,
    F.multi_head_attention_forward: _mha,
}


# ----------------------------------------------------------------------------------------- install


def find_capture(model: nn.Module) -> ProductCapture | None:
    """The capture installed on ``model`` (its root), if any."""
    found = model.__dict__.get(CAPTURE_ATTR)
    return found if isinstance(found, ProductCapture) else None


def attach_capture(
    model: nn.Module, rules: AssignmentMapping, layer_types: tuple[type[nn.Module], ...]
) -> ProductCapture | None:
    """Install a capture on ``model`` (or update the rules of the one it has) and hook its modules.

    ``layer_types`` are the module types swapped as whole layers. A model that is itself a layer gets none.
    """
    capture = find_capture(model)
    if capture is None:
        if isinstance(model, ApproxModule) or type(model) in layer_types:
            return None
        capture = ProductCapture(rules, layer_types)
        model.__dict__[CAPTURE_ATTR] = capture
    capture.rules = rules
    capture.layer_types = layer_types
    capture.install(model)
    return capture


def detach_capture(model: nn.Module, *, keep_products: bool = False) -> None:
    """Remove the capture of ``model``, its hooks and (unless ``keep_products``) its products."""
    capture = find_capture(model)
    if capture is None:
        return
    capture.uninstall(model)
    if not keep_products:
        for name in list(capture.products):
            owner_name, _, local = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            owner._modules.pop(local, None)
    del model.__dict__[CAPTURE_ATTR]


def plausible_product_name(model: nn.Module, name: str) -> bool:
    """Whether ``name`` could name a product of ``model`` not seen yet (an existing module path, then a kind)."""
    owner, _, local = name.rpartition(".")
    if not PRODUCT_NAME.fullmatch(local):
        return False
    try:
        model.get_submodule(owner) if owner else model
    except AttributeError:
        return False
    return True


__all__ = [
    "CAPTURE_ATTR",
    "PRODUCT_KINDS",
    "EinsumPlan",
    "ProductCapture",
    "attach_capture",
    "attention",
    "detach_capture",
    "einsum_plan",
    "find_capture",
    "plausible_product_name",
]
