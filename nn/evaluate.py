"""The ``lutgen evaluate`` job: a model through approximate multipliers, layer by layer.

Resolves the model (zoo name or ``module:callable``), its weights (``--weights`` or cached float
training), the dataset, the candidate multipliers (library filter or names), then reports float,
quantised-exact and approximate accuracy, a per-layer table and the relative multiplier energy
``Σ MACs·P(mult) / Σ MACs·P(exact)``. ``assign="auto"`` runs :func:`approxlut.nn.assign.auto_assign`.
"""

from __future__ import annotations

import difflib
import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from ..errors import ConfigError, InputError, LibraryError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..library.filters import Filter
from ..lutgen.lut import Lut
from ..schema import dumps_json
from ..tasks import check_engine_options, open_engine
from .assign import AutoResult, Candidate, auto_assign, build_assigned, check_verify
from .config import AssignmentMapping, LayerConfig, read_saved
from .multipliers import load_multiplier
from .predict import predict_errors, record_operands
from .progress import Stopwatch, add_task, make_progress
from .swap import approx_layers, approximate, layer_macs
from .train import float_model


@dataclass(frozen=True)
class EvaluateOptions:
    """Everything ``lutgen evaluate`` takes (see the command's help)."""

    model: str
    weights: Path | None = None
    data: Path | None = None
    dataset: str | None = None
    assign: str = "auto"
    budget: float = 1.0
    candidates: str = "bits=8,signed"
    limit: int | None = None
    seed: int = 0
    calibration_samples: int = 256
    bias_correction: bool | None = None
    batch_size: int = 128
    verify: int = 5
    workers: int | None = None
    ray_address: str | None = None


@dataclass(frozen=True)
class LayerRow:
    """One line of the per-layer table."""

    name: str
    macs: int
    multiplier: str
    mae: float | None
    power: float | None
    relative_power: float | None = None
    cost_basis: str | None = None
    unknown_power: str | None = None  # why ``relative_power`` is unknown


@dataclass
class EvaluateResult:
    """What ``lutgen evaluate`` reports; :meth:`to_dict` is the ``--json`` object."""

    model: str
    dataset: str
    samples: int
    width: float | None
    float_accuracy: float
    quantised_accuracy: float
    approx_accuracy: float
    relative_energy: float | None
    layers: list[LayerRow]
    assignment: dict[str, Any]
    budget: float | None = None
    front: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: what an auto search ran with, for the ``--save`` file (``seed``, ``bias_correction``); empty otherwise
    search: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object (keys as in :mod:`approxlut.schema`: accuracies in percent, energy a fraction)."""
        return {
            "model": self.model,
            "width": self.width,
            "dataset": self.dataset,
            "test_samples": self.samples,
            "float_accuracy_pct": self.float_accuracy,
            "quantised_accuracy_pct": self.quantised_accuracy,
            "approx_accuracy_pct": self.approx_accuracy,
            "relative_energy": self.relative_energy,
            "layers": [
                {
                    "name": r.name,
                    "macs": r.macs,
                    "multiplier": r.multiplier,
                    "mae_pct": r.mae,
                    "power_mw": r.power,
                    "relative_power": r.relative_power,
                    "cost_basis": r.cost_basis,
                }
                for r in self.layers
            ],
            "assignment": self.assignment,
            "budget_points": self.budget,
            "front": list(self.front),
            "timings_s": dict(self.seconds),
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------ candidates


def parse_candidates(text: str) -> tuple[Filter | None, list[str]]:
    """``'bits=8,signed,max_mae=0.5'`` -> a library filter (:mod:`approxlut.library.filters`); ``'a,b,c'`` -> names."""
    from ..library.filters import FLAGS, Filter

    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("--candidates is empty: give a library filter (bits=8,signed) or names")
    is_filter = ["=" in item or item.lower() in FLAGS for item in items]
    others = [item.lower() for item, kept in zip(items, is_filter, strict=True) if not kept]
    mistyped = any(any(difflib.get_close_matches(item, FLAGS, n=1, cutoff=0.75)) for item in others)
    if all(is_filter) or (any(is_filter) and mistyped):  # (a mistyped flag is the filter's to name)
        return Filter.parse(text, where="--candidates"), []
    if any(is_filter):
        raise ConfigError("--candidates: give either a filter (bits=8,signed) or a list of names, not both")
    return None, items


@dataclass(frozen=True)
class CandidateSet:
    """The multipliers ``--candidates`` selects, each with its cost basis.

    Attributes:
        entries: approximate library entries that have a cost basis; where signed and unsigned ones are mixed, also
            the exact multiplier of the other signedness (a layer may save by its unsigned quantisation alone).
        relative: ``full_name`` -> ``(relative power, basis)`` of each entry and of ``exact``, all against exact
            multipliers of ``exact``'s signedness (each from its own source).
        exact: the exact entry reported for layers left exact (lutgen's modelled one where there is one); signed
            where the candidates mix signed and unsigned ones.
        left_out: one line per entry left out (no exact multiplier of its cost source).
        other_sign: approximate entries of the candidates' widths and the other signedness that the same filter
            would select; 0 for a list of names or a filter without ``signed``/``unsigned``.
        other_filter: the same filter without its signedness (it searches both kinds).
    """

    entries: list[Any]
    relative: dict[str, tuple[float, Any]]
    exact: Any
    left_out: list[str]
    other_sign: int = 0
    other_filter: str = ""

    @property
    def mixed(self) -> bool:
        """Whether signed and unsigned multipliers are both candidates."""
        return len({e.signed for e in self.entries} | {self.exact.signed}) > 1


def library_candidates(text: str) -> CandidateSet:
    """The library entries selected by ``--candidates``, their cost bases and the exact entry.

    Candidates must share their widths; signed and unsigned ones may mix (each layer is then quantised for its
    multiplier, and every power is measured against the signed exact multiplier).
    """
    from ..library import Library
    from ..library.basis import exact_multiplier, is_exact, relative_power

    lib = Library.open_default()
    chosen, names = parse_candidates(text)
    entries = [lib.entry(n) for n in names] if chosen is None else chosen.select(lib)
    if not entries:
        raise ConfigError(f"--candidates {text!r} selects no multipliers in the library at {lib.root}")
    widths = Counter((e.bits_a, e.bits_b) for e in entries)
    if len(widths) > 1:
        found = ", ".join(f"{n} {a}x{b}" for (a, b), n in sorted(widths.items()))
        fix = "name multipliers of one width" if chosen is None else "add a width (e.g. 'bits=8')"
        raise ConfigError(f"--candidates {text!r} mixes widths of multiplier ({found}); {fix}")
    ((bits_a, bits_b),) = widths
    signs = {e.signed for e in entries}
    signed = True in signs  # (the baseline: symmetric quantisation, unless every candidate is unsigned)
    exact = exact_multiplier(lib, bits_a, bits_b, signed)
    if exact is None:
        kind = "signed" if signed else "unsigned"
        raise ConfigError(f"the library has no exact {bits_a}x{bits_b} {kind} multiplier to measure energy against")
    searched = [e for e in entries if not is_exact(e) or e.signed != signed]
    if len(signs) > 1:
        other = exact_multiplier(lib, bits_a, bits_b, not signed)
        if other is not None and all(e.full_name != other.full_name for e in searched):
            searched.append(other)
    relative: dict[str, tuple[float, Any]] = {}
    kept, left_out = [], []
    for entry in [*searched, exact]:
        try:
            relative[entry.full_name] = relative_power(lib, entry, signed=signed)
        except LibraryError as error:
            left_out.append(str(error))
            continue
        if entry is not exact:
            kept.append(entry)
    if exact.full_name not in relative:
        relative[exact.full_name] = (1.0, None)
    if chosen is None or chosen.signed is None:
        return CandidateSet(kept, relative, exact, left_out)
    flipped = replace(chosen, signed=not chosen.signed, bits=(bits_a, bits_b))  # (one width: a filter evaluate takes)
    others = [e for e in flipped.select(lib) if (e.bits_a, e.bits_b) == (bits_a, bits_b) and not is_exact(e)]
    both = replace(chosen, signed=None, bits=(bits_a, bits_b))
    return CandidateSet(kept, relative, exact, left_out, len(others), str(both))


# ------------------------------------------------------------------------------------------- assignment


def saved_search(saved: Any) -> dict[str, Any]:
    """What the auto search that wrote a saved ``--assign`` file (its JSON: :func:`read_saved`) ran with (its
    ``search`` section), or ``{}``."""
    search = saved.get("search") if isinstance(saved, dict) else None
    return dict(search) if isinstance(search, dict) else {}


def parse_assignment(spec: str, exact: LayerConfig, *, saved: Any = None) -> AssignmentMapping:
    """``--assign`` text (see :meth:`AssignmentMapping.parse`, ``saved`` too); layers it does not name stay
    quantised-exact.

    ``layer=NAME,...`` lists without a ``default=`` item and JSON files without ``"default"`` get ``exact`` (in
    the candidates' width and scheme) as their default instead of ``float``, and ``exact`` itself means that same
    config.
    """
    mapping = AssignmentMapping.parse(spec, default=exact, saved=saved)
    if mapping.default == LayerConfig("exact"):
        mapping = mapping.with_default(exact)
    return mapping


# ---------------------------------------------------------------------------------------------- the job


@torch.no_grad()
def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, label: str, batch_size: int = 128, console: Console
) -> float:
    """Top-1 accuracy in percent with a progress bar."""
    model.eval()
    correct = 0
    with make_progress(console=console) as progress:
        task = add_task(progress, label, x.shape[0])
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
            progress.update(task, advance=min(batch_size, x.shape[0] - start))
    return 100.0 * correct / max(1, x.shape[0])


def run_evaluate(options: EvaluateOptions, *, console: Console | None = None) -> EvaluateResult:
    """Run the evaluate job (progress and status on ``console``, stderr by default)."""
    console = console or Console(stderr=True)
    clock = Stopwatch()
    lap, timings = clock.lap, clock.seconds
    torch.manual_seed(options.seed)
    if not math.isfinite(options.budget) or options.budget < 0:
        raise ConfigError(f"--budget must be a finite number >= 0 of accuracy points, got {options.budget}")
    saved = None
    if options.assign == "auto":
        check_engine_options(workers=options.workers, address=options.ray_address)
        check_verify(options.verify)
    else:  # a bad assignment, or a multiplier it names that cannot be read, is reported before any training
        saved = read_saved(options.assign)  # (read once: every use below sees one version of the file)
        for config in AssignmentMapping.parse(options.assign, saved=saved).configs():
            if isinstance(config.multiplier, str) and config.multiplier not in ("float", "exact"):
                load_multiplier(config.multiplier)
    chosen_set = library_candidates(options.candidates)  # and so are bad candidates
    if options.assign == "auto" and not chosen_set.entries:
        why = "; ".join(chosen_set.left_out) or "an exact multiplier is the baseline every layer starts from"
        raise ConfigError(f"--candidates {options.candidates!r} leaves no approximate multiplier to search ({why})")
    exact_entry = chosen_set.exact
    loaded = float_model(
        options.model, dataset=options.dataset, data_dir=options.data, weights=options.weights, seed=options.seed
    )
    model, data = loaded.model, loaded.data
    notes = []
    if loaded.trained is not None:
        how = "cached" if loaded.trained.cached else f"trained in {loaded.trained.seconds:.0f} s"
        notes.append(f"float weights {how}: {loaded.weights}")
    bias_correction = options.bias_correction
    search = saved_search(saved)
    if search.get("seed", options.seed) != options.seed:
        notes.append(
            f"the front of {options.assign.partition('#')[0]} was searched and verified with --seed {search['seed']}; "
            f"this run's --seed {options.seed} gives other weights or calibration samples, so its accuracy may differ"
        )
    default_correction = loaded.retrained is None  # (retrained weights compensate the error already)
    if loaded.retrained is not None:
        info = loaded.retrained
        notes.append(
            f"weights retrained through approximate multipliers ({info['grad']} gradients, {info['epoch']} epochs): "
            f"{info['checkpoint']}; activation ranges calibrated afresh"
        )
    if bias_correction is None and isinstance(search.get("bias_correction"), bool):
        bias_correction = search["bias_correction"]
        if bias_correction != default_correction:
            notes.append(f"bias correction {'on' if bias_correction else 'off'}, as the search that saved the file ran")
    if bias_correction is None and not default_correction:
        bias_correction = False
        notes.append("bias correction off for retrained weights (they compensate the error already)")
    if bias_correction is None:
        bias_correction = True
    model.eval()
    lap("model")

    limit = options.limit if options.limit is not None else data.x_test.shape[0]
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    x_eval, y_eval = data.x_test[:limit], data.y_test[:limit]
    generator = torch.Generator().manual_seed(options.seed)
    pick = torch.randperm(data.x_train.shape[0], generator=generator)[: options.calibration_samples]
    x_calib = data.x_train[pick]
    calib_batches = [x_calib[i : i + options.batch_size] for i in range(0, x_calib.shape[0], options.batch_size)]

    scheme = "symmetric" if exact_entry.signed else "affine"
    exact_config = LayerConfig("exact", bits=(exact_entry.bits_a, exact_entry.bits_b), scheme=scheme)
    by_name = {e.full_name: e for e in chosen_set.entries} | {exact_entry.full_name: exact_entry}
    lap("setup")

    evaluate: Callable[[nn.Module, str], float] = lambda m, label: accuracy(  # noqa: E731
        m, x_eval, y_eval, label=label, batch_size=options.batch_size, console=console
    )
    float_accuracy = evaluate(model, "float accuracy")
    lap("float")
    # products computed with functions (attention, @, einsum, F.linear) as named float modules, so that
    # the search sees them like layers; a model without any is left as it is
    model = approximate(model, "float", calib_batches, inplace=True)
    qmodel = approximate(model, exact_config, calib_batches)
    macs_all = layer_macs(model, x_eval[:1])
    baseline, assigned = qmodel, None
    if options.assign != "auto":  # (measured against the exact multipliers of the widths it assigns)
        mapping = parse_assignment(options.assign, exact_config, saved=saved)
        assigned = approximate(qmodel, mapping)
        baseline, widths_note = _exact_twin(qmodel, assigned, exact_config)
        notes += [widths_note] if widths_note else []
    quantised_accuracy = evaluate(baseline, "quantised-exact accuracy")
    lap("quantised")

    front: list[dict[str, Any]] = []
    if options.assign == "auto":
        notes += [f"left out: {line}" for line in chosen_set.left_out]
        if chosen_set.other_sign:
            other = "unsigned" if exact_entry.signed else "signed"
            notes.append(
                f"auto: {chosen_set.other_sign} {other} multipliers in the library were not candidates; "
                f"--candidates '{chosen_set.other_filter}' searches both kinds (each layer quantised for its "
                "multiplier)"
            )
        if chosen_set.mixed:
            notes.append(
                "auto: signed and unsigned candidates: each layer is quantised for its multiplier (symmetric for "
                "signed, affine for unsigned); every power is relative to the signed exact multiplier of its source"
            )
        candidates = [
            Candidate(
                e.full_name,
                load_multiplier(e.full_name),
                chosen_set.relative[e.full_name][0],
                float(e.mae_pct),
                chosen_set.relative[e.full_name][1].label,
                e.power_mw,
            )
            for e in chosen_set.entries
        ]
        with open_engine(workers=options.workers, address=options.ray_address) as engine:
            if engine.start_seconds:
                timings["ray_start"] = round(engine.start_seconds, 2)
            with console.status("auto assignment") as status:
                auto = auto_assign(
                    model,
                    qmodel,
                    candidates,
                    macs=macs_all,
                    x_calib=x_calib,
                    x_eval=x_eval,
                    y_eval=y_eval,
                    baseline_accuracy=quantised_accuracy,
                    budget=options.budget,
                    engine=engine,
                    batch_size=options.batch_size,
                    seed=options.seed,
                    verify=options.verify,
                    bias_correction=bias_correction,
                    status=lambda msg: status.update(f"auto assignment: {msg}"),
                )
        timings |= {f"search_{stage}": value for stage, value in auto.seconds.items()}
        approx_model = build_assigned(qmodel, auto.choice, bias_correction=bias_correction)
        approx_accuracy = auto.chosen.verified_accuracy
        assert approx_accuracy is not None
        mapping = auto.assignment(exact_config)
        front = _front_rows(auto, qmodel, macs_all, exact_config)
        searched = len(next(iter(auto.options.values()))) - 1  # (each layer's options: exact and one per table)
        notes.append(
            f"auto: {searched} candidate{'' if searched == 1 else 's'} ({engine.description}), {auto.pruned} dominated "
            "(layer, multiplier) "
            f"options pruned, front of {len(auto.front)} points "
            f"({sum(p.origin == 'nsga2' for p in auto.front)} from NSGA-II), "
            f"{len(auto.verified)} verified with the LUT engine"
        )
        if auto.same_table:
            pairs = ", ".join(f"{left} (= {kept})" for left, kept in auto.same_table.items())
            count = "1 candidate has" if len(auto.same_table) == 1 else f"{len(auto.same_table)} candidates have"
            notes.append(f"auto: {count} the table of another, searched in its place (the cheaper or first): {pairs}")
        if auto.measured:
            notes.append(_measured_note(auto.measured, macs_all))
        notes += [f"auto: {name} not searched (kept its multiplier): {why}" for name, why in auto.unsearched.items()]
    else:
        assert assigned is not None
        approx_model = assigned
        if bias_correction:
            _apply_bias_correction(model, approx_model, calib_batches)
        approx_accuracy = evaluate(approx_model, "approximate accuracy")
    lap("approximate")

    rows = _layer_rows(approx_model, macs_all, by_name, exact_entry)
    unknown: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if row.unknown_power is not None:
            unknown.setdefault((row.multiplier, row.unknown_power), []).append(row.name)
    notes += [f"energy unknown: {', '.join(names)} ({name}): {why}" for (name, why), names in unknown.items()]
    return EvaluateResult(
        model=options.model,
        dataset=data.name,
        samples=int(x_eval.shape[0]),
        width=loaded.width,
        float_accuracy=float_accuracy,
        quantised_accuracy=quantised_accuracy,
        approx_accuracy=approx_accuracy,
        relative_energy=_relative_energy(rows),
        layers=rows,
        assignment=mapping.to_dict(),
        budget=options.budget if options.assign == "auto" else None,
        front=front,
        seconds=timings,
        notes=notes,
        search={"seed": options.seed, "bias_correction": bias_correction} if options.assign == "auto" else {},
    )


def _exact_twin(qmodel: nn.Module, assigned: nn.Module, exact: LayerConfig) -> tuple[nn.Module, str | None]:
    """The quantised-exact model an assignment is measured against, with a note where it is not ``qmodel``.

    A layer the assignment runs at other widths than ``exact``'s (a multiplier or ``exact`` of other widths) runs
    the exact multiplier of its widths there, the others ``exact``: as the search measures against the exact
    multiplier of its candidates' widths, and each layer's power is relative to the exact multiplier of its own.
    """
    widths = {
        name: (layer.resolved.bits_a, layer.resolved.bits_b)
        for name, layer in approx_layers(assigned).items()
        if not layer.resolved.is_float and (layer.resolved.bits_a, layer.resolved.bits_b) != exact.bit_pair
    }
    if not widths:
        return qmodel, None
    twin = approximate(
        qmodel,
        AssignmentMapping.build(default=exact, names={n: replace(exact, bits=bits) for n, bits in widths.items()}),
    )
    by_width: dict[tuple[int, int], list[str]] = {}
    for name, bits in widths.items():
        by_width.setdefault(bits, []).append(name)
    listed = "; ".join(f"{', '.join(layers)} at {a}x{b}" for (a, b), layers in by_width.items())
    a, b = exact.bit_pair or (0, 0)
    return twin, (
        f"quantised-exact accuracy: layers assigned other widths than {a}x{b} run the exact multiplier of theirs "
        f"({listed})"
    )


def _measured_note(measured: tuple[str, ...], macs: dict[str, int]) -> str:
    """The note naming the layers ``--assign auto`` measured instead of predicting, with their share of the MACs."""
    share = sum(macs.get(n, 0) for n in measured) / max(1, sum(macs.values()))
    return (
        f"auto: {', '.join(measured)} ({share:.1%} of the MACs) measured, not predicted: no closed form for "
        "recurrent layers or transposed convolutions, so each multiplier's loss there came from the LUT engine"
    )


def _front_rows(auto: AutoResult, qmodel: nn.Module, macs: dict[str, int], exact: LayerConfig) -> list[dict[str, Any]]:
    """The simulated front points as JSON rows (relative energy over every approximable layer)."""
    # layers the search leaves exact (ones the LUT engine cannot run) still spend exact-multiplier energy
    other = sum(macs.get(n, 0) for n in approx_layers(qmodel) if n not in auto.chosen.choice)
    total = (auto.exact_energy + other) or 1.0
    return [
        {
            "relative_energy": (point.energy + other) / total,
            "predicted_accuracy_pct": point.predicted_accuracy,
            "verified_accuracy_pct": point.verified_accuracy,
            "found_by": point.origin,
            "chosen": point is auto.chosen,
            "assignment": auto.assignment(exact, point).to_dict(),
        }
        for point in auto.front
        if point.predicted_accuracy is not None
    ]


def _apply_bias_correction(float_model: nn.Module, approx_model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Fold each LUT layer's predicted mean error into its bias (closed form, from one float pass)."""
    layers = approx_layers(approx_model)
    stats = record_operands(float_model, approx_model, batches)
    for name, layer_stats in stats.items():
        layer = layers[name]
        lut = layer.resolved.lut
        if lut is None:
            continue
        (prediction,) = predict_errors([lut], layer_stats.operands)
        mean, _ = layer_stats.output_moments(prediction)
        layer.set_bias_correction(torch.as_tensor(-mean, dtype=torch.float32))


def _layer_rows(model: nn.Module, macs: dict[str, int], entries: dict[str, Any], exact: Any) -> list[LayerRow]:
    """Each approximate layer's multiplier with its power relative to the exact multiplier of ``exact``'s
    signedness (from the multiplier's own cost source): one scale for layers of either signedness."""
    from ..library import Library

    library = Library.open_default()  # (once for every row's look-ups)
    rows = []
    layers = approx_layers(model)
    for name in [*(n for n in macs if n in layers or macs[n] > 0), *(n for n in layers if n not in macs)]:
        layer = layers.get(name)
        if layer is None:  # (a layer assigned "float" is a torch layer again; its MACs count as exact ones)
            rows.append(LayerRow(name, int(macs[name]), "float", None, None))
            continue
        multiplier, lut = layer.multiplier_name, layer.resolved.lut
        entry = entries.get(multiplier)
        if entry is not None and lut is not None and entry.hash != lut.hash:
            entry = None  # (a file's table under a library entry's name: the name tells nothing)
        own_kind = layer.resolved.scheme == ("symmetric" if exact.signed else "affine")
        if entry is None and layer.resolved.is_exact_path and own_kind:
            entry, multiplier = exact, exact.full_name
        if entry is None and (lut is not None or layer.resolved.is_exact_path):
            entry = _library_entry(library, multiplier, lut)
        relative, basis, unknown = _relative_power(library, entry, exact.signed)
        mae = None if entry is None else float(entry.mae_pct)
        if mae is None and lut is not None and lut.bits_a + lut.bits_b <= 16:  # (a file's table: measured here)
            mae = float(lut.metrics().mae_pct)
        rows.append(
            LayerRow(
                name,
                int(macs.get(name, 0)),
                multiplier,
                mae,
                None if entry is None or entry.power_mw is None else float(entry.power_mw),
                relative,
                basis,
                unknown,
            )
        )
    return rows


def _library_entry(library: Any, name: str, lut: Lut | None) -> Any:
    """The library entry of a layer's multiplier: the one holding its table (by hash; the one called ``name``
    where several do), or for the exact path the one called ``name``; ``None`` where the library has none."""
    if lut is not None:
        holders = library.holding(lut.hash)
        return next((e for e in holders if name in (e.name, e.full_name)), holders[0] if holders else None)
    try:
        return library.entry(name)
    except LibraryError:
        return None


def _relative_power(library: Any, entry: Any, signed: bool) -> tuple[float | None, str | None, str | None]:
    """An entry's power relative to the exact multiplier of its own cost source and of ``signed``-ness, the basis
    label, and why the power is unknown where it is."""
    if entry is None:
        return None, None, "not a library multiplier, so no power figure"
    from ..library.basis import relative_power

    try:
        relative, basis = relative_power(library, entry, signed=signed)
    except LibraryError as error:
        return None, None, str(error)
    return relative, basis.label, None


def _relative_energy(rows: list[LayerRow]) -> float | None:
    """``Σ MACs · relative power / Σ MACs`` (float layers count as exact); ``None`` if a power is unknown."""
    total = sum(r.macs for r in rows)
    if total == 0 or any(r.relative_power is None for r in rows if r.multiplier != "float"):
        return None
    used = sum(r.macs * (r.relative_power if r.relative_power is not None else 1.0) for r in rows)
    return used / total


# ------------------------------------------------------------------------------------------- reporting


def render(result: EvaluateResult, console: Console) -> None:
    """Print the accuracies, the per-layer table, the energy and the front."""
    width = f" (width {result.width:g})" if result.width is not None and result.width != 1 else ""
    console.print(f"[bold]{result.model}[/bold]{width} on {result.dataset} ({result.samples} test samples)")
    console.print(f"  float accuracy            {result.float_accuracy:6.2f} %")
    console.print(f"  quantised-exact accuracy  {result.quantised_accuracy:6.2f} %")
    drop = result.quantised_accuracy - result.approx_accuracy
    budget = f" (budget {result.budget:g})" if result.budget is not None else ""
    console.print(f"  approximate accuracy      {result.approx_accuracy:6.2f} %  drop {drop:+.2f} points{budget}")
    table = Table(title="per-layer assignment")
    names = {  # never cut: the other columns wrap instead
        "layer": max((len(row.name) for row in result.layers), default=0),
        "multiplier": max((len(row.multiplier) for row in result.layers), default=0),
    }
    for column in ("layer", "MACs", "multiplier", "MAE %", "power mW", "rel. power", "cost basis"):
        table.add_column(
            column,
            justify="left" if column in ("layer", "multiplier", "cost basis") else "right",
            min_width=names.get(column),
            no_wrap=column in names,
        )
    for row in result.layers:
        table.add_row(
            row.name,
            f"{row.macs:,}",
            row.multiplier,
            "-" if row.mae is None else f"{row.mae:.4g}",
            "-" if row.power is None else f"{row.power:.4f}",
            "-" if row.relative_power is None else f"{row.relative_power:.3f}",
            row.cost_basis or "-",
        )
    console.print(table)
    if result.relative_energy is None:
        console.print("relative multiplier energy: unknown (the notes say why)")
    else:
        saved = 100 * (1 - result.relative_energy)
        console.print(f"relative multiplier energy: {result.relative_energy:.3f} of exact ({saved:.1f} % saved)")
    verified = [p for p in result.front if p["verified_accuracy_pct"] is not None]
    if verified:
        front = Table(title=f"verified front points ({len(result.front)} predicted: --json, --plot, --save)")
        for column in ("relative energy", "predicted acc %", "verified acc %", "drop", ""):
            front.add_column(column, justify="right")
        for point in verified:
            front.add_row(
                f"{point['relative_energy']:.3f}",
                f"{point['predicted_accuracy_pct']:.2f}",
                f"{point['verified_accuracy_pct']:.2f}",
                f"{result.quantised_accuracy - point['verified_accuracy_pct']:+.2f}",
                "chosen" if point["chosen"] else "all exact" if point.get("found_by") == "exact" else "",
            )  # (the all-exact point is the baseline, not one of those the notes count as verified)
        console.print(front)
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"[dim]time: {', '.join(f'{k} {v:.1f}s' for k, v in result.seconds.items())}[/dim]")


def check_plot(path: Path, assign: str) -> None:
    """Refuse ``--plot PATH`` before the run where it cannot be written after it: without ``--assign auto`` (no
    front) or in a format matplotlib does not write (the suffix names it; none: PNG)."""
    if assign.strip().lower() != "auto":
        raise ConfigError("--plot needs --assign auto (the front comes from the search)")
    from matplotlib.backend_bases import FigureCanvasBase

    # (PGF needs a LaTeX installation: matplotlib fails on it only when it writes, after the search)
    formats = {f for f in FigureCanvasBase.get_supported_filetypes() if f != "pgf"}
    suffix = path.suffix.lstrip(".").lower() or "png"
    if suffix not in formats:
        raise ConfigError(f"--plot {path}: cannot write a plot as .{suffix}; use one of {', '.join(sorted(formats))}")


def plot_pareto(result: EvaluateResult, path: Path) -> None:
    """Write the energy-accuracy front: predicted points, verified ones beside them, the chosen one marked.

    The view spans from a little below the budget line to the top of the front.
    """
    if not result.front:
        raise ConfigError("--plot needs --assign auto (the front comes from the search)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result.front
    energy = np.array([p["relative_energy"] for p in points])
    predicted = np.array([p["predicted_accuracy_pct"] for p in points])
    checked = [p for p in points if p["verified_accuracy_pct"] is not None]
    budget = result.budget or 0.0
    floor = max(result.quantised_accuracy - budget - max(1.0, budget), -0.5)  # (a huge budget: down to 0 %)
    top = max([*predicted, *(p["verified_accuracy_pct"] for p in checked), result.quantised_accuracy]) + 0.5
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(energy, predicted, "o-", color="tab:blue", markersize=4, label="predicted (low-rank error simulation)")
    for p in checked:
        ax.plot(
            [p["relative_energy"]] * 2, [p["predicted_accuracy_pct"], p["verified_accuracy_pct"]], ":", color="grey"
        )
    if checked:
        ax.plot(
            [p["relative_energy"] for p in checked],
            [p["verified_accuracy_pct"] for p in checked],
            "s",
            color="tab:red",
            markersize=7,
            label="verified (LUT engine)",
        )
    chosen = next(p for p in points if p["chosen"])
    ax.plot(
        chosen["relative_energy"],
        chosen["verified_accuracy_pct"],
        "*",
        color="gold",
        markeredgecolor="black",
        markersize=16,
        label=f"chosen: {chosen['relative_energy']:.3f} of exact energy",
    )
    ax.axhline(result.quantised_accuracy, color="grey", linestyle=":", label="quantised exact")
    if result.budget is not None:
        ax.axhline(result.quantised_accuracy - result.budget, color="tab:orange", linestyle="--", label="budget")
    visible = [
        p["relative_energy"]
        for p in points
        if max(p["predicted_accuracy_pct"], p["verified_accuracy_pct"] or 0) >= floor
    ]
    left = min(visible) if visible else float(energy.min())
    ax.set_xlim(left - 0.02, float(energy.max()) + 0.02)
    ax.set_ylim(floor, top)
    ax.set_xlabel("relative multiplier energy")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result.model} on {result.dataset}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    image = io.BytesIO()
    try:
        fig.savefig(image, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
    except (ValueError, RuntimeError) as error:  # (RuntimeError: a tool the format needs is missing)
        raise InputError(f"{path}: cannot write a plot in this format ({error})") from None
    finally:
        plt.close(fig)
    atomic_write_bytes(path, image.getvalue())


def save_assignment(result: EvaluateResult, path: Path) -> None:
    """Write the assignment JSON: ``--assign FILE.json`` reads the chosen one, ``FILE.json#N`` front point N.

    After an auto search the file also lists every front point (``front``, as in ``--json``) and what the search
    ran with (``search``: ``seed``, ``bias_correction``), which a replay of the file follows or notes.
    """
    data = dict(result.assignment)
    if result.front:
        data["front"] = result.front
    if result.search:
        data["search"] = result.search
    atomic_write_text(path, dumps_json(data, indent=2) + "\n")
