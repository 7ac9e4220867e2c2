"""The JSON that every ``--json`` prints: one vocabulary, one versioned schema per command.

Each command prints one JSON object with ``schema_version`` (:data:`SCHEMA_VERSION`) and ``command``
(``"library list"``) first. Keys carry their unit in their name, as the library's columns do:
``mae_pct`` (percent), ``power_mw``, ``area_um2``, ``delay_ns``, ``elapsed_s`` (seconds),
``*_accuracy_pct``, ``relative_energy`` (a fraction of the exact multiplier's), ``*_bytes``. The
vocabulary (:data:`VOCABULARY`) says what every key means, and :func:`json_schema` gives the JSON
Schema (draft 2020-12) of a command's output; ``docs/json.md`` is generated from both
(``python -m approxlut.schema docs/json.md``), and the tests validate every command's output.
:func:`dumps` is the one way a command prints its object; NaN and infinities come out as ``null``.

A change that renames or removes a key, or changes its meaning, raises :data:`SCHEMA_VERSION`;
adding a key does not.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any

#: Raised when a key is renamed or removed, or its meaning changes.
SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}


def _maybe(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(schema), {"type": "null"}]}


def _array(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(items)}


#: key -> (JSON Schema of its value, what it means). One meaning per key across all commands.
VOCABULARY: dict[str, tuple[dict[str, Any], str]] = {
    "schema_version": (_INT, "version of this schema (raised when a key is renamed or removed)"),
    "command": (_STR, "the command that printed the object, e.g. `library list`"),
    # a circuit and its error metrics (EvoApproxLib's definitions)
    "name": (_STR, "circuit, model layer or case name"),
    "full_name": (_STR, "`<release>_<name>` when the circuit has a release, else the name"),
    "release": (_STR, "release the circuit was published in (`v2022`), empty when none"),
    "kind": (_STR, "operand widths and signedness, `8x8s`"),
    "bits_a": (_INT, "width of operand a (the activation)"),
    "bits_b": (_INT, "width of operand b (the weight)"),
    "signed": (_BOOL, "two's complement operands"),
    "signed_from": (
        _STR,
        (
            "why the operands were read so: `option`, `name` (mul8s_), `ports` (Verilog `input signed`), `default` or "
            "`file`"
        ),
    ),
    "note": (
        _maybe(_STR),
        "where the option, the file name and the ports disagree on signedness: what was read and why, as printed "
        "(null: they agree)",
    ),
    "input_format": (_STR, "what the input file was: `netlist`, `lutfp`, `tfapprox` or `npz`"),
    "gates": (_maybe(_INT), "gate count of the netlist (null for a table without one)"),
    "mae_pct": (_maybe(_NUM), "mean absolute error, percent of 2^(bits_a+bits_b)"),
    "wce_pct": (_maybe(_NUM), "worst-case absolute error, percent of 2^(bits_a+bits_b)"),
    "mre_pct": (_maybe(_NUM), "mean relative error, percent, under `mre_convention`"),
    "wcre_pct": (_maybe(_NUM), "worst-case relative error, percent, under `mre_convention`"),
    "mre_convention": (
        _STR,
        "how mre_pct and wcre_pct treat inputs whose exact product is 0: `nonzero` (left out; EvoApproxLib 2019+) "
        "or `max1` (/e/ / max(1, /exact/) over all inputs; EvoApprox8b)",
    ),
    "mre_convention_from": (_STR, "why that convention: `--mre-convention`, what the file header says, or `default`"),
    "cells": (
        _maybe(_OBJ),
        "definitions used for cells the netlist instantiates without defining: {profile (null: built-in), reason, "
        "used: {cell: note}}; null when none were used",
    ),
    "ep_pct": (_maybe(_NUM), "error probability, percent of input pairs"),
    "mse": (_maybe(_NUM), "mean squared error (absolute, product units squared)"),
    "med": (_maybe(_NUM), "mean absolute error (absolute, product units)"),
    "wce": (_maybe(_NUM), "worst-case absolute error (absolute, product units)"),
    "bias": (_maybe(_NUM), "mean error f - a*b (absolute, product units)"),
    "metrics_method": (_maybe(_STR), "`exhaustive`, or the Monte-Carlo sample that gave the metrics"),
    "input_pairs": (_INT, "input pairs simulated"),
    "hash": (_maybe(_STR), "content hash of the table (SHA-256; of a sample for circuits too wide for a table)"),
    "has_lut": (_BOOL, "the library keeps the table (false: metrics only, too wide)"),
    # hardware cost (45 nm)
    "power_mw": (_maybe(_NUM), "power, mW (45 nm)"),
    "area_um2": (_maybe(_NUM), "area, µm² (45 nm)"),
    "delay_ns": (_maybe(_NUM), "critical-path delay, ns (45 nm)"),
    "power_source": (_maybe(_STR), "`published` (EvoApproxLib) or `estimated` (lutgen's cell model)"),
    # provenance
    "source": (_STR, "file the circuit was imported from (or the generator)"),
    "alt_sources": (_array(_STR), "other files holding the same circuit (e.g. the `_pdk45.v` twin)"),
    "aliases": (_array(_STR), "other entries with the same table: the same circuit under other names"),
    "origin": (_STR, "`builtin`, `import`, `user` or `evoapprox <release>`"),
    "family": (_maybe(_STR), "approximation family (`truncated`, `broken_array`, ...)"),
    "params": (_OBJ, "the family's parameters"),
    "licence": (_maybe(_STR), "licence of the circuit"),
    "citation": (_maybe(_STR), "article to cite"),
    "published": (_OBJ, "figures as published, by EvoApproxLib's header keys (text, as printed)"),
    "published_differences": (_OBJ, "column -> [published text, measured] where an exhaustive figure differs"),
    "sampled_differences": (_OBJ, "column -> [published text, sampled] for sampled figures (worst cases: bounds)"),
    "created": (_STR, "when the entry was catalogued (ISO 8601, UTC)"),
    "id": (_INT, "row id in this library's index"),
    # files and places
    "library": (_STR, "library folder"),
    "library_created": (_BOOL, "the command created the library"),
    "out": (_maybe(_STR), "file written"),
    "format": (_STR, "format of the table written: `npz`, `tfapprox` or `lutfp`"),
    "pages": (_INT, "circuit pages written"),
    "written_bytes": (_INT, "bytes of every file written, together"),
    "out_bytes": (_maybe(_INT), "size of the file written, bytes"),
    "plot": (_maybe(_STR), "image written"),
    "plots": (_array(_STR), "images written"),
    "checkpoint": (_maybe(_STR), "retraining checkpoint written (reusable with `evaluate --weights`)"),
    "cache_dir": (_STR, "folder of the native kernel build"),
    # selections and fronts
    "filter": (_STR, "the library filter applied, in its text form (`bits=8,signed`)"),
    "entries": (_array(_OBJ), "library entries"),
    "builtin_entries": (_INT, "built-in multipliers in the library"),
    "left_out": (
        _array(_OBJ),
        "built-ins not installed because an entry of another table holds the name (a name holds one table): "
        "{name, reason}",
    ),
    "added": (_array(_STR), "entries added"),
    "new_circuits": (_INT, "entries added whose table the library did not hold before"),
    "added_aliases": (_array(_OBJ), "entries added whose table the library held already: {entry, aliases}"),
    "skipped": (_array(_OBJ), "files passed over on purpose (adders; twins in `bench --corpus`): {file, reason}"),
    "engine": (_STR, "where the tasks ran: `in-process`, `Ray, N local workers` or `Ray cluster, ...`"),
    "unchanged": (_array(_STR), "files already in the library"),
    "merged": (_array(_OBJ), "files merged into an existing entry as alternative sources: {file, entry}"),
    "failed": (_array({"type": ["object", "string"]}), "what could not be done, and why"),
    "repaired": (_array(_STR), "entries whose missing or damaged table file the command rebuilt"),
    "file": (_STR, "a file"),
    "entry": (_STR, "an entry's full name"),
    "error": (_STR, "one-line error message"),
    "x": (_STR, "column on the x axis"),
    "y": (_STR, "column on the y axis"),
    "total": (_INT, "entries considered"),
    "fronts": (_array(_OBJ), "one Pareto front per kind: {kind, total, front}"),
    "front": (
        _array(_OBJ),
        "points of a Pareto front: `library pareto`'s lowest x first; `evaluate`'s from the all-exact assignment "
        "(relative energy 1) to the cheapest",
    ),
    # integrity (`library check`)
    "repair": (_BOOL, "`--repair` was given: the command mended what it could"),
    "healthy": (_BOOL, "no problem is left (none was found, or every one was fixed)"),
    "index_entries": (_INT, "entries in the library's index"),
    "table_files": (_INT, "table files (`blobs/*.npz`) in the library folder"),
    "findings": (_array(_OBJ), "problems found, in the order checked: {problem, fixed, advice}"),
    "problem": (_STR, "one problem found, one line"),
    "fixed": (_BOOL, "this run mended the problem"),
    "advice": (_maybe(_STR), "what to do about a problem left as found (null when fixed)"),
    # calibration of the power model
    "spearman": (_NUM, "rank correlation of estimated vs published power"),
    "median_relative_error": (_NUM, "median |estimated - published| / published (a fraction)"),
    "circuits": (_INT, "circuits compared"),
    # synthesis
    "points": (_array(_OBJ), "Pareto points found by approximate synthesis"),
    "elapsed_s": (_NUM, "wall time, seconds"),
    # networks
    "model": (_STR, "zoo model name or `path/to/file.py:callable`"),
    "width": (_maybe(_NUM), "width multiplier the zoo model was built with (null: not scalable)"),
    "dataset": (_STR, "dataset name"),
    "device": (_STR, "torch device"),
    "test_samples": (_INT, "test samples evaluated"),
    "float_accuracy_pct": (_NUM, "top-1 accuracy of the float model, percent"),
    "quantised_accuracy_pct": (_NUM, "top-1 accuracy, quantised with exact products, percent"),
    "approx_accuracy_pct": (_NUM, "top-1 accuracy through the approximate multipliers, percent"),
    "predicted_accuracy_pct": (_maybe(_NUM), "accuracy the search predicted, percent"),
    "verified_accuracy_pct": (_maybe(_NUM), "accuracy measured with the LUT engine, percent"),
    "before_accuracy_pct": (_NUM, "test accuracy before retraining, percent"),
    "after_accuracy_pct": (_NUM, "test accuracy after the last epoch, percent"),
    "train_accuracy_pct": (_NUM, "training accuracy over the epoch, percent"),
    "test_accuracy_pct": (_NUM, "test accuracy after the epoch, percent"),
    "relative_energy": (
        _maybe(_NUM),
        "multiplier energy as a fraction of the exact multiplier's (float layers count as exact; null: a power "
        "unknown)",
    ),
    "budget_points": (_maybe(_NUM), "allowed accuracy drop, percentage points"),
    "chosen": (_BOOL, "the point the search chose"),
    "found_by": (
        _STR,
        "how the search found a front point: `exact`, `knapsack` (hull vertex), `pareto` (layer by layer), `nsga2`",
    ),
    "relative_power": (
        _maybe(_NUM),
        "power as a fraction of the power of the exact multiplier of the same cost source and of the baseline's "
        "signedness (the signed one where candidates mix)",
    ),
    "cost_basis": (
        _maybe(_STR),
        "cost source the relative power is measured in (lutgen model, or published + release or library)",
    ),
    "layers": (
        _array(_OBJ),
        "per-layer rows: {name, macs, multiplier, mae_pct, power_mw, relative_power, cost_basis}; multiplier "
        "'float' for a layer run in float",
    ),
    "macs": (_INT, "multiply-accumulates per sample"),
    "multiplier": (_STR, "multiplier a layer runs"),
    "assignment": (_OBJ, "the layer -> multiplier assignment (readable by `--assign FILE`)"),
    "timings_s": (_OBJ, "phase -> wall time, seconds"),
    "notes": (_array(_STR), "notes printed with the result"),
    "grad": (_STR, "backward through the multipliers: `difference` (gradient LUTs) or `ste`"),
    "half_windows": (_OBJ, "multiplier -> half window of its gradient LUTs (null: unused or its own)"),
    "epochs": (_array(_OBJ), "one record per epoch"),
    "epoch": (_INT, "epoch number, from 1"),
    "train_loss": (_NUM, "mean training loss over the epoch"),
    "samples_per_s": (_NUM, "training throughput, samples per second"),
    "resumed_at": (_INT, "epochs done before this run resumed (0: fresh run)"),
    "protocol": (_STR, "retraining protocol: `lutgen` (SGD, every layer) or `date25` (DATE'25 code: Adam, convs only)"),
    "threads": (_INT, "intra-op threads the run used (fixed: the numbers depend on it)"),
    "weights_sha256": (_STR, "SHA-256 of the float weights' tensors (names, dtypes, shapes, values)"),
    "guard_events": (_array(_OBJ), "blow-ups the divergence guard caught, and what it did"),
    "step": (_INT, "training step of the run, from 1"),
    "reason": (
        _STR,
        "why: what was wrong with a training step, or why a file was passed over (`library import`) "
        "or a built-in left out (`library init`)",
    ),
    "step_loss": (_maybe(_NUM), "training loss of one step (cross-entropy, nats; null when not finite)"),
    "grad_norm": (_maybe(_NUM), "L2 norm of one step's gradient over all parameters (null when not finite)"),
    "action": (_STR, "what the divergence guard did"),
    "warnings": (_array(_STR), "warnings printed with the result (problems that did not stop the command)"),
    # native kernels and benchmarks
    "status": (_STR, "`built` or `up to date`"),
    "kernels": (_array(_STR), "kernels in the build"),
    "cpu": (_STR, "CPU model"),
    "flags": (_OBJ, "CPU feature -> present"),
    "isa_paths": (_array(_STR), "kernel paths this CPU can run"),
    "chosen_path": (_STR, "kernel path chosen"),
    "forced_by_env": (_maybe(_STR), "path forced by LUTGEN_CPU_ISA"),
    "compiler": (_maybe(_STR), "C++ compiler found"),
    "built": (_BOOL, "the native kernels are built"),
    "compiled_kernels": (_array(_STR), "kernels in the current build"),
    "kernel_costs": (
        _maybe(_OBJ),
        "prices of the VBMI kernels' parts that plans are chosen by (`lookup` by code width, `widen`, `fold`, "
        "`fold_move`, `exact_int8` (null: not exact here), `exact_values`, `column` (a column's table per block of "
        "lanes and k step); units of the 6-bit look-up) and their "
        "`source` (`cached`, `default`); null until measured",
    ),
    "kernel_costs_file": (_STR, "where this machine's measured kernel costs are kept"),
    "removed": (_array(_STR), "folders removed"),
    "busy": (_array(_STR), "folders left because another process is building them"),
    "freed_bytes": (_INT, "bytes freed"),
    "results": (_array(_OBJ), "one timing per case"),
    "case": (_STR, "benchmark case"),
    "native_s": (_NUM, "native fp32 PyTorch time, seconds (best of the repeats)"),
    "engine_s": (_NUM, "LUT engine time, seconds (best of the repeats)"),
    "reference_s": (_maybe(_NUM), "pure-torch reference time, seconds"),
    "ratio": (_NUM, "engine_s / native_s"),
    "path": (_STR, "kernel path that ran"),
    "direction": (_STR, "`forward`, or `backward` (forward and backward timed together)"),
    "verified": (_BOOL, "the engine's result equals the reference bit for bit"),
    "native_isa": (_STR, "instruction sets native PyTorch was allowed"),
    "op_s": (_maybe(_NUM), "`nn` layer case: the LUT op alone on the layer's codes, seconds (null elsewhere)"),
    "tables": (_array(_OBJ), "corpus sweep (`bench --corpus`): one row per distinct table (empty otherwise)"),
    "plan": (
        _STR,
        "CPU engine plan class: `E0` exact product alone (an exact table), `E1`/`E2` exact product + one/two byte "
        "planes of the error, `T1`/`T2` one/two byte planes of the table, `other` (no plan), `all` in a summary over "
        "every table",
    ),
    "median_ratio": (_NUM, "median of the ratios (engine_s / native_s) over the cases"),
    "worst_ratio": (_NUM, "largest ratio (engine_s / native_s) over the cases"),
    "min_ratio": (_NUM, "smallest ratio (engine_s / native_s) over the cases"),
    "max_ratio": (_NUM, "largest ratio (engine_s / native_s) over every case of the group"),
    "median_worst_ratio": (_NUM, "median over the group's tables of each table's largest ratio"),
    "table_count": (_INT, "tables in the group"),
    "summary": (_array(_OBJ), "corpus sweep: the ratios by plan class and over all tables (empty otherwise)"),
}

#: Keys of a library entry (``Entry.to_dict``).
ENTRY_KEYS = (
    "id", "name", "release", "full_name", "kind", "bits_a", "bits_b", "signed", "hash", "has_lut", "source",
    "origin", "licence", "citation", "family", "params", "gates", "mae_pct", "wce_pct", "mre_pct", "wcre_pct",
    "ep_pct", "mse", "med", "wce", "bias", "metrics_method", "power_mw", "area_um2", "delay_ns", "power_source",
    "published", "created", "mre_convention", "alt_sources", "aliases",
)  # fmt: skip
_METRICS = ("mae_pct", "wce_pct", "mre_pct", "wcre_pct", "ep_pct", "mse", "med", "wce", "bias")
_SYNTH = ("name", "bits_a", "bits_b", "signed", "gates", *_METRICS, "metrics_method")
_SYNTH_COST = ("power_mw", "area_um2", "delay_ns", "out", "elapsed_s")
_SYNTH_JOB = (*_SYNTH, *_SYNTH_COST)

#: Nested objects: the keys of the items of an array, or of an object, by the key that holds them.
NESTED: dict[str, tuple[str, ...]] = {
    "entries": ENTRY_KEYS,
    "front": ENTRY_KEYS,
    "fronts": ("kind", "total", "front"),
    "merged": ("file", "entry"),
    "added_aliases": ("entry", "aliases"),
    "skipped": ("file", "reason"),
    "left_out": ("name", "reason"),
    "findings": ("problem", "fixed", "advice"),
    "layers": ("name", "macs", "multiplier", "mae_pct", "power_mw", "relative_power", "cost_basis"),
    "epochs": ("epoch", "train_loss", "train_accuracy_pct", "test_accuracy_pct", "elapsed_s", "samples_per_s"),
    "guard_events": ("epoch", "step", "reason", "step_loss", "grad_norm", "action"),
    "points": (*_SYNTH, "signed_from", "note", *_SYNTH_COST),
    "results": (
        "case", "native_s", "engine_s", "ratio", "path", "direction", "reference_s", "verified", "native_isa", "op_s",
    ),
    "tables": ("name", "signed", "plan", "path", "median_ratio", "worst_ratio", "verified"),
    "summary": ("plan", "table_count", "min_ratio", "median_ratio", "max_ratio", "median_worst_ratio"),
}  # fmt: skip
#: Nested objects whose keys depend on the command (``front`` of ``evaluate`` holds search points).
NESTED_BY_COMMAND: dict[tuple[str, str], tuple[str, ...]] = {
    ("evaluate", "front"): (
        "relative_energy",
        "predicted_accuracy_pct",
        "verified_accuracy_pct",
        "found_by",
        "chosen",
        "assignment",
    ),
    ("library import", "failed"): ("file", "error"),
}

#: Command -> the keys of its object (besides ``schema_version`` and ``command``). All are always present.
COMMANDS: dict[str, tuple[str, ...]] = {
    "sim": (
        *_SYNTH, "mre_convention", "mre_convention_from", "cells", "signed_from", "note", "input_format", "input_pairs",
        "hash", "out", "out_bytes", "elapsed_s",
    ),
    "library init": ("library", "builtin_entries", "left_out", "elapsed_s"),
    "library import": (
        "library", "library_created", "added", "new_circuits", "added_aliases", "unchanged", "merged", "repaired",
        "skipped", "failed", "warnings", "engine", "timings_s",
    ),
    "library list": ("library", "filter", "entries"),
    "library show": (*ENTRY_KEYS, "published_differences", "sampled_differences", "plot"),
    "library pareto": ("x", "y", "filter", "total", "fronts", "plots"),
    "library export": ("library", "entry", "format", "out", "out_bytes"),
    "library remove": ("library", "entry"),
    "library report": ("library", "filter", "out", "pages", "plots", "written_bytes"),
    "library calibrate": ("spearman", "median_relative_error", "circuits"),
    "library check": ("library", "repair", "healthy", "index_entries", "table_files", "findings"),
    "synth verilog": (*_SYNTH, "signed_from", "note", *_SYNTH_COST),
    "synth generate": _SYNTH_JOB,
    "synth als": ("points",),
    "native build": ("cache_dir", "status", "elapsed_s", "kernels"),
    "native info": (
        "cpu", "flags", "isa_paths", "chosen_path", "forced_by_env", "compiler", "cache_dir", "built",
        "compiled_kernels", "kernel_costs", "kernel_costs_file",
    ),
    "native clean": ("removed", "freed_bytes", "busy", "failed"),
    "bench": ("results", "tables", "summary", "skipped"),
    "evaluate": (
        "model", "width", "dataset", "test_samples", "float_accuracy_pct", "quantised_accuracy_pct",
        "approx_accuracy_pct", "relative_energy", "layers", "assignment", "budget_points", "front", "timings_s",
        "notes",
    ),
    "retrain": (
        "model", "dataset", "device", "float_accuracy_pct", "before_accuracy_pct", "after_accuracy_pct", "grad",
        "half_windows", "epochs", "checkpoint", "resumed_at", "protocol", "threads", "weights_sha256",
        "guard_events", "warnings",
    ),
}  # fmt: skip


def document(command: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The object a command prints: ``schema_version`` and ``command`` first, then ``body``."""
    return {"schema_version": SCHEMA_VERSION, "command": command, **body}


def dumps(command: str, body: Mapping[str, Any]) -> str:
    """:func:`document` as one line of JSON: what every ``--json`` prints (through :func:`dumps_json`)."""
    return dumps_json(document(command, body))


def dumps_json(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes ``null`` for NaN and infinities (JSON has neither), never ``NaN``.

    numpy scalars are written as the numbers they hold. Every JSON lutgen prints or writes goes through it.
    """
    return json.dumps(_finite(data), allow_nan=False, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy scalar: the Python number (or bool) it holds
        if isinstance(value, bool):
            return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _object(keys: tuple[str, ...], command: str) -> dict[str, Any]:
    properties = {}
    for key in keys:
        value, _ = VOCABULARY[key]
        nested = NESTED_BY_COMMAND.get((command, key), NESTED.get(key))
        if nested is not None and value.get("type") == "array":
            value = _array(_object(nested, command))
        properties[key] = value
    return {"type": "object", "properties": properties, "required": list(keys), "additionalProperties": False}


def json_schema(command: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what ``lutgen <command> --json`` prints."""
    schema = _object(("schema_version", "command", *COMMANDS[command]), command)
    schema["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    schema["properties"]["command"] = {"const": command}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"lutgen {command} --json", **schema}


def markdown() -> str:
    """``docs/json.md``: the conventions, the vocabulary and the keys of every command."""
    lines = [
        "# lutgen's JSON output",
        "",
        "<!-- generated by `python -m approxlut.schema docs/json.md`; do not edit -->",
        "",
        f"Schema version **{SCHEMA_VERSION}**. Every `--json` prints one object whose first keys are",
        "`schema_version` and `command`. Keys carry their unit: `_pct` percent, `_mw` milliwatts, `_um2` square",
        "micrometres, `_ns` nanoseconds, `_s` seconds, `_bytes` bytes; `relative_energy` is a fraction of the exact",
        "multiplier's energy; `*_accuracy_pct` are top-1 accuracies in percent. One key means one thing in every",
        "command. Renaming or removing a key raises the version; adding one does not. The JSON Schema of a",
        "command's output: `approxlut.schema.json_schema('library list')`.",
        "",
        "## Commands",
        "",
        "| command | keys |",
        "|---|---|",
    ]
    for command, keys in COMMANDS.items():
        lines.append(f"| `lutgen {command} --json` | {', '.join(f'`{k}`' for k in keys)} |")
    lines += ["", "Nested objects:", "", "| in | keys of each item |", "|---|---|"]
    for key, keys in NESTED.items():
        lines.append(f"| `{key}` | {', '.join(f'`{k}`' for k in keys)} |")
    for (command, key), keys in NESTED_BY_COMMAND.items():
        lines.append(f"| `{key}` of `{command}` | {', '.join(f'`{k}`' for k in keys)} |")
    lines += ["", "## Vocabulary", "", "| key | meaning |", "|---|---|"]
    for key, (_, meaning) in VOCABULARY.items():
        lines.append(f"| `{key}` | {meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
    """``python -m approxlut.schema [FILE]``: write ``docs/json.md`` to FILE (atomically), else to stdout."""
    if not argv:
        sys.stdout.write(markdown())
        return
    from .fileio import atomic_write_text

    atomic_write_text(argv[0], markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
