"""The ``lutgen`` command: a click group of thin commands over the packages.

Circuit commands (``sim``, ``library``) must not import torch: heavy imports happen inside the
commands that need them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from click.exceptions import NoArgsIsHelpError

from .clitypes import (
    MAX_HALF_WINDOW,
    MAX_VERIFY,
    CellSource,
    Device,
    Engine,
    FiniteFloat,
    ModelReference,
    RayAddress,
    seed_option,
)
from .environ import environ_scope
from .errors import ConfigError, LutgenError
from .tasks import MAX_WORKERS

if TYPE_CHECKING:
    from .library.filters import Filter

F = TypeVar("F", bound=Callable[..., Any])

#: Most Monte-Carlo samples ``lutgen sim --samples`` takes (2^30; the default is 2^22).
MAX_SAMPLES = 1 << 30
#: Ranges of the retraining options: a learning rate above 10 diverges at once; the others are sizes.
MAX_LR = 10.0
MAX_EPOCHS = 10_000
MAX_BATCH = 1 << 16
MAX_THREADS = 1024
#: Most timed runs per ``bench`` case: a full bench at 1000 takes hours already.
MAX_REPEAT = 1000


def reports_errors(func: F) -> F:
    """Turn :class:`LutgenError` into one line on stderr and its exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LutgenError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


def _operand_options(func: F) -> F:
    """``--signed/--unsigned`` and ``--operands``: how a netlist's operands are read (``sim``, ``synth als``)."""
    func = click.option("--operands", help="Input bus names of operand a and b, e.g. IN1,IN2.")(func)
    return click.option(
        "--signed/--unsigned",
        default=None,
        help=(
            "Operand encoding (default: what the name says, mul8s_; else signed where a Verilog module declares its "
            "operand ports signed; else unsigned)."
        ),
    )(func)


class _OneLineErrors(click.Group):
    """The top-level group: click's usage errors also come out as one line (``error: ...``, exit code 2); a group
    given no command (``lutgen``, ``lutgen synth``) prints its help, as ``-h``/``--help`` do (exit code 0)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help() if error.ctx is not None else error.format_message())
            sys.exit(0)
        except click.ClickException as error:
            ctx: click.Context | None = getattr(error, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            message = " ".join(error.format_message().split())
            click.echo(f"error: {where}{message}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lutgen")
def main() -> None:
    """lutgen: approximate multipliers to lookup tables, and DNNs run through them."""


def _echo_json(command: str, body: dict[str, Any]) -> None:
    """Print a command's ``--json`` object (``schema_version`` and ``command`` first; see docs/json.md)."""
    from .schema import dumps

    click.echo(dumps(command, body))


def _operands(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter("give two input bus names, e.g. --operands A,B", param_hint="'--operands'")
    return parts[0], parts[1]


def _half_window_option(help_text: str) -> Callable[[F], F]:
    """``--half-window W``: the gradient LUTs' half window, 0..``MAX_HALF_WINDOW`` (default 8)."""
    return click.option(
        "--half-window", type=click.IntRange(0, MAX_HALF_WINDOW), default=8, show_default=True, help=help_text
    )


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["verilog", "blif", "sop", "lutfp", "tfapprox", "npz"]),
    help="Force the input format (default: LUT files by content, netlists by extension).",
)
@_operand_options
@click.option("--top", help="Verilog: the top module (default: the one no other module instantiates).")
@click.option(
    "--cells",
    type=CellSource(),
    help="Verilog: the library the cells come from (osu, evoapprox8b; default: what the file header says), "
    "or a JSON file of extra cells.",
)
@click.option(
    "--mre-convention",
    type=click.Choice(["nonzero", "max1"]),
    help="MRE/WCRE: over non-zero products (EvoApproxLib 2019+) or |e|/max(1,|exact|) (EvoApprox8b); "
    "default: the convention of the library the file header names, else nonzero.",
)
@_half_window_option("Gradient LUTs: half window w of the DATE'25 difference-based smoothing.")
@click.option(
    "--grad",
    type=click.Choice(["difference", "ste"]),
    default="difference",
    show_default=True,
    help="Gradient LUTs: difference-based (DATE'25) or straight-through (exact products).",
)
@click.option("--compat", is_flag=True, help="Reproduce the DATE'25 script's first-operand border term.")
@click.option("--out", type=click.Path(path_type=Path), help="Output .npz (default: next to FILE).")
@click.option("--compress", is_flag=True, help="Write the .npz zip-compressed (smaller, slower; read the same way).")
@click.option("--no-write", is_flag=True, help="Do not write the LUT file.")
@click.option(
    "--samples",
    type=click.IntRange(64, MAX_SAMPLES),
    help="Monte-Carlo samples instead of exhaustive simulation (64..2^30; default: exhaustive up to 28 input "
    "bits, a table up to 24, else 2^22 samples).",
)
@seed_option("Seed of Monte-Carlo sampling (--samples, or netlists of more than 28 input bits)", optional=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def sim(
    file: Path,
    fmt: str | None,
    signed: bool | None,
    operands: str | None,
    top: str | None,
    cells: str | None,
    mre_convention: str | None,
    half_window: int,
    grad: str,
    compat: bool,
    out: Path | None,
    compress: bool,
    no_write: bool,
    samples: int | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """Simulate a multiplier netlist (Verilog, BLIF, SOP) or read a LUT file: metrics, LUT and gradient LUTs."""
    from .lutgen.job import run_sim
    from .lutgen.report import print_sim

    result = run_sim(
        file,
        signed=signed,
        fmt=fmt,
        operands=_operands(operands),
        half_window=half_window,
        grad=grad,
        compat=compat,
        out=out,
        write=not no_write,
        samples=samples,
        seed=seed,
        top=top,
        cells=cells,
        mre_convention=mre_convention,
        compress=compress,
    )
    if as_json:
        _echo_json("sim", result.as_json())
    else:
        print_sim(result)


# ------------------------------------------------------------------------------------------- library


def _library_option(func: F) -> F:
    return click.option(
        "--library",
        "library_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Library folder (default: $LUTGEN_LIBRARY, else ~/.local/share/lutgen/library).",
    )(func)


def _library_env_option(func: F) -> F:
    """``--library DIR`` for commands that read the library deep inside, and in Ray workers (which see the
    driver's ``LUTGEN_*`` environment): ``$LUTGEN_LIBRARY`` for the length of the command."""

    @wraps(func)
    def wrapper(*args: Any, library_dir: Path | None, **kwargs: Any) -> Any:
        if library_dir is None:
            return func(*args, **kwargs)
        from .library.config import ENV_VAR

        _require_library(library_dir)
        with environ_scope(**{ENV_VAR: str(library_dir.absolute())}):
            return func(*args, **kwargs)

    return _library_option(cast(F, wrapper))


#: ``evaluate`` options that steer the ``--assign auto`` search alone, by parameter name.
_AUTO_ONLY = {"budget": "--budget", "verify_points": "--verify", "workers": "--workers", "ray_address": "--ray-address"}


def _check_auto_only(assign: str) -> None:
    """Refuse a search option given on the command line with an assignment that runs no search (as ``--plot``)."""
    if assign == "auto":
        return
    ctx = click.get_current_context()
    for param, option in _AUTO_ONLY.items():
        if ctx.get_parameter_source(param) is click.core.ParameterSource.COMMANDLINE:
            raise ConfigError(f"{option} needs --assign auto (it steers the search; --assign {assign} runs none)")


def _ray_address(address: str | None, workers: int | None) -> str | None:
    """``--ray-address`` as the command uses it: ``None`` where empty, or where ``$RAY_ADDRESS`` gave it and
    ``--workers`` asks for local workers (the option given wins over the environment)."""
    source = click.get_current_context().get_parameter_source("ray_address")
    if not address or (workers is not None and source is click.core.ParameterSource.ENVIRONMENT):
        return None
    return address


@reports_errors
def _require_library(path: Path) -> None:
    """The library ``--library`` names must be there (exit 2, saying the option named it), whether or not the
    command goes on to read it."""
    from contextlib import suppress

    from .library import Library
    from .library.catalogue import SchemaUpgradeNeeded

    with suppress(SchemaUpgradeNeeded):  # (an older library is there: the command's own opening upgrades it)
        Library.open(path, readonly=True).close()


def _filter_options(func: F) -> F:
    """The library filter as options (the same language as ``--filter`` and ``evaluate --candidates``).

    The command receives them as one argument, ``chosen``: a :class:`approxlut.library.filters.Filter`.
    """

    @wraps(func)
    def wrapper(
        *args: Any,
        bits: str | None,
        signed: bool | None,
        origin: str | None,
        family: str | None,
        max_mae: float | None,
        filter_text: str | None,
        **kwargs: Any,
    ) -> Any:
        from .library.filters import Filter

        chosen = Filter.from_options(
            bits=bits, signed=signed, origin=origin, family=family, max_mae=max_mae, text=filter_text
        )
        return func(*args, chosen=chosen, **kwargs)

    decorators = [
        click.option("--bits", help="Operand widths: 8 (8x8) or 8x4."),
        click.option("--signed/--unsigned", default=None, help="Only signed / only unsigned multipliers."),
        click.option(
            "--origin",
            help="Only this origin: builtin, import, user, evoapprox (every EvoApproxLib release and EvoApprox8b), "
            "'evoapprox v2022' (one release), evoapprox8b.",
        ),
        click.option("--family", help="Only this family: truncated (or trunc), broken_array (bam), drum, ..."),
        click.option("--max-mae", type=FiniteFloat(0), help="Largest MAE in percent."),
        click.option(
            "--filter",
            "filter_text",
            help="The same filter as text, with more fields: 'bits=8,signed,max_power=0.3' (see docs/filters.md).",
        ),
    ]
    decorated: Any = reports_errors(wrapper)
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return decorated


@main.group()
def library() -> None:
    """The multiplier library: import, browse, compare and export approximate multipliers."""


@library.command("init")
@_library_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_init(library_dir: Path | None, as_json: bool) -> None:
    """Create the library and install the built-in multipliers (seconds); a built-in whose name an entry of the
    library holds with another table is left out, saying so."""
    import time

    from .library import Library
    from .library.builtin import install_builtin

    start = time.perf_counter()
    left_out: list[dict[str, str]] = []
    with Library.open(library_dir) as lib:
        entries = install_builtin(
            lib, on_left_out=lambda name, reason: left_out.append({"name": name, "reason": reason})
        )
        seconds = time.perf_counter() - start
        if as_json:
            _echo_json(
                "library init",
                {"library": str(lib.root), "builtin_entries": len(entries), "left_out": left_out, "elapsed_s": seconds},
            )
        else:
            click.echo(f"{len(entries)} built-in multipliers in {lib.root} ({seconds:.1f} s)")
            for item in left_out:
                click.echo(f"left out the built-in {item['name']}: {item['reason']}")


@library.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_library_option
@click.option(
    "--signed/--unsigned",
    default=None,
    help="Operand encoding of the files that do not say it (by their name, signed Verilog ports or a table's "
    "metadata, which win); default: unsigned.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Characterise the circuits on a local Ray instance with N workers (default: in-process; "
    "small imports stay in-process).",
)
@click.option(
    "--ray-address",
    type=RayAddress(),
    envvar="RAY_ADDRESS",
    help="Characterise the circuits on the Ray cluster at ADDR (or 'auto'; default: $RAY_ADDRESS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no progress bar; schema: docs/json.md).")
@reports_errors
def library_import(
    paths: tuple[Path, ...],
    library_dir: Path | None,
    signed: bool | None,
    workers: int | None,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Import netlist and LUT files and folders (recursively), e.g. a whole checkout of EvoApproxLib.

    Only this process writes the library; with --workers or --ray-address the circuits are simulated
    and measured as Ray tasks.
    """
    from .errors import InputError
    from .library import Library
    from .library.importer import import_paths, shown
    from .tasks import check_engine_options

    ray_address = _ray_address(ray_address, workers)
    check_engine_options(workers=workers, address=ray_address)
    with Library.open(library_dir) as lib:
        summary = import_paths(
            lib, list(paths), signed=signed, progress=not as_json, workers=workers, address=ray_address
        )
        root, created = lib.root, lib.created
    if as_json:
        _echo_json("library import", {"library": str(root), "library_created": created, **summary.as_dict()})
    else:
        if created:
            click.echo(
                f"created a new library at {root} (the built-in set joins it when a command next reads it, or now "
                "with `lutgen library init`)"
            )
        aliases = len(summary.aliases)
        click.echo(
            f"{len(summary.added)} added ({len(summary.added) - aliases} new circuits, {aliases} new names for "
            f"known tables), {len(summary.merged)} merged as alternative sources (twins), "
            f"{len(summary.unchanged)} already present, {len(summary.skipped)} skipped, {len(summary.failed)} failed"
            + (f", {len(summary.repaired)} damaged tables repaired" if summary.repaired else "")
        )
        if workers is not None or ray_address:
            ray_start = summary.timings.get("ray_start")
            click.echo(f"characterised {summary.engine}" + (f" (start-up {ray_start:.1f} s)" if ray_start else ""))
        for warning in summary.warnings:
            click.echo(f"  warning: {warning}", err=True)
        for path, message in summary.failed:
            where = shown(path)  # (a parse error names its file already, with the line)
            click.echo(f"  failed: {message if message.startswith(where) else f'{where}: {message}'}")
    if summary.failed:
        done = len(summary.added) + len(summary.merged) + len(summary.unchanged) + len(summary.repaired)
        others = "the others were" if done else "no other file was imported"
        raise InputError(f"{len(summary.failed)} file(s) could not be imported; {others}")


#: The column names of ``--sort`` and ``pareto --x/--y`` and what they mean (catalogue.COLUMN_ALIASES; a test
#: checks that every short name is here).
_COLUMNS_HELP = (
    "mae, wce, mre, wcre, ep in percent (the MAE%, WCE%, ... columns, which max_mae, max_wce, ... bound); "
    "power (mW), area (µm²), delay (ns), gates, bits; mse, med (mean |error|) and wce_abs (max |error|, JSON key wce), "
    "absolute; also the JSON keys with a unit (mae_pct, power_mw, ...)"
)


@library.command("list")
@_library_option
@_filter_options
@click.option(
    "--sort", help=f"Sort by a column: {_COLUMNS_HELP}; or name, release, origin, family. '-' prefix: descending."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_list(
    library_dir: Path | None,
    chosen: Filter,
    sort: str | None,
    as_json: bool,
) -> None:
    """List multipliers, filtered and sorted."""
    from .library import Library
    from .library.render import print_entries

    with Library.open_default(library_dir) as lib:
        chosen = chosen.resolved(lib.query())
        entries = chosen.select(lib, sort=sort)
        root = lib.root
    if as_json:
        _echo_json(
            "library list",
            {"library": str(root), "filter": str(chosen), "entries": [e.to_dict() for e in entries]},
        )
    else:
        print_entries(entries, title=f"{len(entries)} multipliers", library=root)


@library.command("show")
@click.argument("name")
@_library_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Save the error heat-map f - a*b as PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_show(name: str, library_dir: Path | None, plot: Path | None, as_json: bool) -> None:
    """All metrics of one multiplier and where it came from (NAME, RELEASE_NAME or a hash prefix)."""
    from .library import Library
    from .library.plots import check_plot_path
    from .library.render import print_entry

    if plot is not None:
        check_plot_path(plot)  # (before the library is read)
    with Library.open_default(library_dir) as lib:
        entry = lib.entry(name)
        if plot is not None:
            from .library.plots import error_heatmap

            lut = lib.load_lut(entry, gradients=False)
            error_heatmap(lut, plot, title=f"{entry.full_name}: f − a·b ({entry.kind})")
    if as_json:
        data = entry.to_dict()
        data["published_differences"] = {k: list(v) for k, v in entry.published_differences().items()}
        data["sampled_differences"] = {k: list(v) for k, v in entry.sampled_differences().items()}
        data["plot"] = str(plot) if plot is not None else None
        _echo_json("library show", data)
    else:
        print_entry(entry)
        if plot is not None:
            click.echo(f"wrote {plot}")


def _numeric_column(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``pareto --x/--y``: the numeric column a name refers to, or a usage error listing them."""
    from .library.catalogue import numeric_column

    try:
        return numeric_column(value)
    except LutgenError as error:
        raise click.BadParameter(str(error), ctx, param) from None


@library.command("pareto")
@_library_option
@click.option(
    "--x",
    "x_col",
    default="power",
    show_default=True,
    callback=_numeric_column,
    help=f"Numeric column on the x axis (minimised): {_COLUMNS_HELP}.",
)
@click.option(
    "--y",
    "y_col",
    default="mae",
    show_default=True,
    callback=_numeric_column,
    help="Numeric column on the y axis (minimised), named as for --x.",
)
@_filter_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the scatter with the front as PNG (one file per kind: NAME-8x8s.png when several).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_pareto(
    library_dir: Path | None,
    x_col: str,
    y_col: str,
    chosen: Filter,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Pareto fronts of the multipliers in two columns (e.g. power vs MAE), one per kind (widths, signedness).

    Multipliers of different widths never share a front: a 4x4 and a 16x16 circuit are not alternatives.
    """
    from .library import Library
    from .library.pareto import fronts_by_kind
    from .library.plots import check_plot_path
    from .library.render import print_front

    if plot is not None:
        check_plot_path(plot)  # (before the library is read; a plot per kind goes beside it)
    with Library.open_default(library_dir) as lib:
        chosen = chosen.resolved(lib.query())
        entries = chosen.select(lib)
    fronts = fronts_by_kind(entries, x_col, y_col)
    written = []
    if plot is not None:
        from .library.plots import pareto_plot

        for kind, (members, _) in fronts.items():
            target = plot if len(fronts) == 1 else plot.with_name(f"{plot.stem}-{kind}{plot.suffix}")
            written.append(pareto_plot(members, target, x=x_col, y=y_col, title=f"{kind}: {x_col} vs {y_col}"))
    if as_json:
        _echo_json(
            "library pareto",
            {
                "x": x_col,
                "y": y_col,
                "filter": str(chosen),
                "total": len(entries),
                "fronts": [
                    {"kind": kind, "total": len(members), "front": [e.to_dict() for e in front]}
                    for kind, (members, front) in fronts.items()
                ],
                "plots": [str(p) for p in written],
            },
        )
    else:
        if not fronts:
            click.echo("no multipliers match: no front")
        for kind, (members, front) in fronts.items():
            print_front(front, x_col, y_col, total=len(members), kind=kind)
        for path in written:
            click.echo(f"wrote {path}")


@library.command("export")
@click.argument("name")
@_library_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npz", "tfapprox", "lutfp"]),
    default="npz",
    show_default=True,
    help="Table format: lutgen .npz, TFApprox binary (unsigned 8x8), DATE'25 text LUT (unsigned).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: NAME.<ext> here).")
@click.option("--gradients", is_flag=True, help="lutfp: add the two gradient sections (the +bp file).")
@_half_window_option("Gradient LUTs (npz, lutfp --gradients): half window w of the difference-based smoothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_export(
    name: str, library_dir: Path | None, fmt: str, out: Path | None, gradients: bool, half_window: int, as_json: bool
) -> None:
    """Write a multiplier's LUT as lutgen .npz, a TFApprox binary table or a DATE'25 text LUT."""
    from .library import Library
    from .library.export import export_lut

    with Library.open_default(library_dir) as lib:
        full_name = lib.entry(name).full_name
        path = export_lut(lib, name, fmt, out, gradients=gradients, half_window=half_window)
        root = lib.root
    if as_json:
        body = {"library": str(root), "entry": full_name, "format": fmt, "out": str(path)}
        _echo_json("library export", {**body, "out_bytes": path.stat().st_size})
    else:
        click.echo(f"wrote {path}")


def _named_folder(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    """A folder argument that is not empty (``""`` would be the current folder, by accident)."""
    if not value.strip():
        raise click.BadParameter("an empty path; name the folder (use '.' for the current one)", ctx, param)
    return Path(value)


@library.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False), callback=_named_folder)
@_library_option
@_filter_options
@click.option(
    "--downloads/--no-downloads",
    default=True,
    show_default=True,
    help="Write each circuit's table files (npz, TFApprox, DATE'25 text; about 1 MB per 8x8 circuit).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_report(
    out_dir: Path,
    library_dir: Path | None,
    chosen: Filter,
    downloads: bool,
    as_json: bool,
) -> None:
    """Write a static HTML report into OUT_DIR: a filterable table, plots, a page per circuit with downloads."""
    from .library import Library
    from .library.report import write_report

    with Library.open_default(library_dir) as lib:
        summary = write_report(lib, out_dir, entries=chosen.select(lib), downloads=downloads)
        root = lib.root
    if as_json:
        body = {"library": str(root), "filter": str(chosen), "out": str(summary.index), "pages": summary.pages}
        plots = [str(summary.index.parent / name) for name in summary.plots]
        _echo_json("library report", {**body, "plots": plots, "written_bytes": summary.bytes})
        return
    click.echo(
        f"wrote {summary.index} ({summary.pages} circuit pages, {len(summary.plots)} plots, "
        f"{summary.bytes / 2**20:.1f} MB); open {summary.index.resolve().as_uri()}"
    )


@library.command("calibrate")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--bits", type=click.IntRange(2, 32), default=8, show_default=True, help="Use the NxN circuits.")
@click.option("--all-widths", is_flag=True, help="Use every circuit of the corpus, whatever its widths.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_calibrate(corpus_dir: Path, bits: int, all_widths: bool, as_json: bool) -> None:
    """Compare the power model with EvoApproxLib's published power (CORPUS_DIR holds metrics.csv)."""
    from .synth.power import calibrate

    result = calibrate(corpus_dir, bits=None if all_widths else bits)
    if as_json:
        _echo_json("library calibrate", result.as_dict())
    else:
        click.echo(
            f"power model vs published 45 nm power over {result.n} circuits: Spearman {result.spearman:.3f}, "
            f"median relative error {100 * result.median_rel_error:.1f} %"
        )
        if result.skipped:
            click.echo(f"{len(result.skipped)} circuits skipped, e.g. {result.skipped[0]}", err=True)


@library.command("remove")
@click.argument("name")
@_library_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_remove(name: str, library_dir: Path | None, as_json: bool) -> None:
    """Delete one multiplier from the library (its table goes too unless another entry shares it)."""
    from .library import Library

    with Library.open(library_dir, create=False) as lib:
        entry = lib.remove(name)
        root = lib.root
    if as_json:
        _echo_json("library remove", {"library": str(root), "entry": entry.full_name})
    else:
        click.echo(f"removed {entry.full_name}")


@library.command("check")
@_library_option
@click.option("--repair", is_flag=True, help="Mend what can be mended (see the command's description).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def library_check(library_dir: Path | None, repair: bool, as_json: bool) -> None:
    """Check the index, every row and every table (git fsck style); --repair mends what it can.

    Exit code 0 when the library is sound (or was fully repaired), 1 when problems remain.
    """
    from .library.check import check_library

    report = check_library(library_dir, repair=repair)
    if as_json:
        _echo_json("library check", report.as_dict())
    else:
        for finding in report.findings:
            state = "repaired" if finding.repaired else "problem"
            advice = f" ({finding.advice})" if finding.advice else ""
            click.echo(f"{state}: {finding.problem}{advice}")
        verdict = "sound" if report.healthy else "damaged"
        entries = f"{report.entries} entries" if report.indexed else "index not read"
        click.echo(f"{report.library}: {verdict}; {entries}, {report.tables} tables")
    if not report.healthy:
        from .errors import LibraryError

        left = sum(1 for f in report.findings if not f.repaired)
        hint = "" if repair else "; run `lutgen library check --repair`"
        raise LibraryError(f"the library at {report.library} has {left} problem(s) left{hint}")


@main.command("bench")
@click.option("--quick", is_flag=True, help="Tiny shapes and narrow networks (seconds; used by the tests).")
@click.option("--backward", is_flag=True, help="Also time forward+backward of the single layers.")
@click.option("--engine", type=Engine(), default=None, help="LUT-GEMM engine (default: the best path for the LUT).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None, help="torch intra-op threads.")
@click.option(
    "--lut",
    "lut_spec",
    default="approx",
    show_default=True,
    metavar="KIND|FILE|NAME",
    help="The multiplier: a built-in kind (approx: truncated sign-magnitude 8x8, error spans 63 values; wide: "
    "error spans 1023 values; trunc: decomposable; exact), a table file or netlist, or a library name.",
)
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Sweep every netlist/table in this folder over the ResNet-18 3x3 convolutions; print each table's "
    "ratios and path, and their distribution by path.",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, MAX_REPEAT),
    default=None,
    help="Timed runs per case, best kept (default: 3; 1 with --quick).",
)
@click.option("--no-networks", is_flag=True, help="Skip the whole-network cases.")
@click.option(
    "--isa",
    type=click.Choice(["scalar", "avx2", "avx512bw", "avx512vbmi"]),
    default=None,
    help="Run the LUT kernels on this ISA path (as $LUTGEN_CPU_ISA). With avx2 or scalar, native fp32 PyTorch "
    "is capped at AVX2 too (oneDNN, MKL): the ratios of an AVX2-only CPU.",
)
@click.option("--wide", is_flag=True, help="Full case and path names (the tables fit 80 columns without).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@_library_env_option
@reports_errors
def bench(
    quick: bool,
    backward: bool,
    engine: str | None,
    threads: int | None,
    lut_spec: str,
    corpus: Path | None,
    repeat: int | None,
    no_networks: bool,
    isa: str | None,
    wide: bool,
    as_json: bool,
) -> None:
    """Time native fp32 PyTorch vs the LUT engine vs the reference (ResNet-18/VGG-16 CIFAR shapes, attention)."""
    import torch
    from rich.console import Console

    from .native.bench import LUT_KINDS, NATIVE_ISA_ENV, bench_lut, limit_native_isa, render, render_corpus
    from .native.cpu_features import ISA_ENV
    from .threads import torch_threads

    console = Console(stderr=True, quiet=as_json, log_path=False)
    out = Console(width=200 if wide else 80)

    def progress(name: str) -> None:
        console.log(f"bench: {name}")

    # (an in-process caller gets its environment and thread count back)
    with environ_scope(ISA_ENV, *NATIVE_ISA_ENV), torch_threads(threads):
        if isa is not None:
            os.environ[ISA_ENV] = isa
            if isa in ("scalar", "avx2"):
                limit_native_isa("AVX2")
        if corpus is not None:
            from .nn.speed import bench_corpus

            report = bench_corpus(corpus, quick=quick, engine=engine, repeat=repeat, progress=progress)
            results = [r for row in report.rows for r in row.results]
            if as_json:
                _echo_json("bench", report.as_json())
            else:
                for part in render_corpus(report.rows, threads=torch.get_num_threads(), wide=wide):
                    out.print(part, highlight=False)
                for left_out in report.skipped:
                    out.print(f"left out {left_out['file']}: {left_out['reason']}", highlight=False)
        else:
            from .nn.multipliers import load_multiplier
            from .nn.speed import bench_multiplier

            lut = bench_lut(lut_spec) if lut_spec in LUT_KINDS else load_multiplier(lut_spec)
            results = bench_multiplier(
                lut,
                quick=quick,
                backward=backward,
                engine=engine,
                repeat=repeat,
                networks=not no_networks,
                progress=progress,
            )
            if as_json:
                _echo_json(
                    "bench", {"results": [r.as_dict() for r in results], "tables": [], "summary": [], "skipped": []}
                )
            else:
                for part in render(results, threads=torch.get_num_threads(), wide=wide):
                    out.print(part, highlight=False)
        failed = [r.case for r in results if not r.verified]
        if failed:
            raise LutgenError(f"bench: engine results differ from the reference in: {', '.join(failed)}")


class _FileOrCommandGroup(click.Group):
    """A group whose first argument is a file unless it names a subcommand (``lutgen synth FILE.v``)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["verilog", *args]
        return super().resolve_command(ctx, args)


#: `lutgen synth generate` kinds (synth.job.KINDS, listed here so the CLI imports no numpy up front).
_SYNTH_KINDS = (
    "array",
    "wallace",
    "dadda",
    "truncated",
    "broken_array",
    "perforated",
    "lower_or",
    "mitchell",
    "drum",
    "rounding",
)


@main.group("synth", cls=_FileOrCommandGroup, context_settings={"ignore_unknown_options": True})
def synth() -> None:
    """Make gate netlists: `lutgen synth FILE.v` (Yosys), `generate`, `als`."""


@synth.command("verilog")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top", help="Top module (default: the one no other module instantiates).")
@click.option(
    "--signed/--unsigned",
    default=None,
    help=(
        "Operand encoding for the metrics (default: what the name says, mul8s_; else signed where the top "
        "module declares its operand ports signed; else unsigned)."
    ),
)
@click.option("--operands", help="Input bus names of operand a and b, e.g. IN1,IN2.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the gate netlist (.blif or .v).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def synth_verilog(
    file: Path, top: str | None, signed: bool | None, operands: str | None, out: Path | None, as_json: bool
) -> None:
    """Synthesise behavioural Verilog with Yosys, simulate it and print its metrics and cost."""
    from .synth.job import print_jobs, run_verilog

    job = run_verilog(file, top=top, signed=signed, operands=_operands(operands), out=out)
    if as_json:
        _echo_json("synth verilog", job.as_json())
    else:
        print_jobs([job], title=f"{file.name} synthesised by Yosys")


@synth.command("generate")
@click.argument("kind", type=click.Choice(_SYNTH_KINDS))
@click.option("--bits", type=click.IntRange(1, 32), default=8, show_default=True, help="Width of operand a.")
@click.option("--bits-b", type=click.IntRange(1, 32), help="Width of operand b (default: --bits).")
@click.option("--signed/--unsigned", default=False, show_default=True, help="Two's complement operands (Baugh-Wooley).")
@click.option("--param", "params", multiple=True, help="Family parameter NAME=VALUE, e.g. k=4 (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the netlist (.blif or .v).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def synth_generate(
    kind: str, bits: int, bits_b: int | None, signed: bool, params: tuple[str, ...], out: Path | None, as_json: bool
) -> None:
    """Generate an exact or approximate multiplier (e.g. `generate truncated --bits 8 --param k=6`)."""
    from .synth.job import parse_params, print_jobs, run_generate

    job = run_generate(kind, bits, bits_b or bits, signed=signed, params=parse_params(params), out=out)
    if as_json:
        _echo_json("synth generate", job.as_json())
    else:
        print_jobs([job], title=f"generated {kind}")


@synth.command("als")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_operand_options
@click.option("--max-mae", type=FiniteFloat(0), help="Error bound: MAE % (EvoApproxLib definition).")
@click.option("--max-wce", type=FiniteFloat(0), help="Error bound: WCE %.")
@click.option("--objective", type=click.Choice(["gates", "power"]), default="gates", show_default=True)
@click.option("--steps", type=click.IntRange(1, 1000), default=80, show_default=True, help="Most substitutions.")
@click.option("--wires/--constants-only", default=True, help="Also replace gate outputs by gate inputs.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), help="Write each Pareto point as BLIF.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def synth_als(
    file: Path,
    signed: bool | None,
    operands: str | None,
    max_mae: float | None,
    max_wce: float | None,
    objective: str,
    steps: int,
    wires: bool,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    """Approximate a netlist by greedy net substitution under an error bound; print the Pareto points."""
    from .synth.job import print_jobs, run_als

    jobs = run_als(
        file,
        signed=signed,
        operands=_operands(operands),
        max_mae_pct=max_mae,
        max_wce_pct=max_wce,
        objective=objective,
        steps=steps,
        wires=wires,
        out_dir=out_dir,
    )
    if as_json:
        _echo_json("synth als", {"points": [job.as_json() for job in jobs]})
    else:
        print_jobs(jobs, title=f"{file.name}: approximate synthesis, Pareto points")


@main.group("native")
def native_group() -> None:
    """The native LUT-GEMM kernels: build them ahead of use, show what this machine runs."""


@native_group.command("build")
@click.option("--verbose", is_flag=True, help="Show the compiler's output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def native_build(verbose: bool, as_json: bool) -> None:
    """Compile the CPU kernels into the cache now (otherwise they build on first use)."""
    from .native.build import build_now

    report = build_now(verbose=verbose)
    if as_json:
        _echo_json("native build", report)
    else:
        click.echo(f"native kernels {report['status']} in {report['elapsed_s']} s: {report['cache_dir']}")
        click.echo(f"kernels: {', '.join(report['kernels'])}")


@native_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def native_info(as_json: bool) -> None:
    """Show the CPU features detected, the ISA paths, the chosen path, the cache and the build state."""
    from .native.build import native_info as collect

    info = collect()
    if as_json:
        _echo_json("native info", info)
        return
    flags = " ".join(f"{name}{'+' if present else '-'}" for name, present in info["flags"].items())
    forced = f" (forced by LUTGEN_CPU_ISA={info['forced_by_env']})" if info["forced_by_env"] else ""
    click.echo(f"cpu:          {info['cpu']}")
    click.echo(f"features:     {flags}")
    click.echo(f"isa paths:    {', '.join(info['isa_paths']) or 'none'}")
    click.echo(f"chosen path:  {info['chosen_path']}{forced}")
    click.echo(f"compiler:     {info['compiler'] or 'none found'}")
    click.echo(f"cache dir:    {info['cache_dir']}")
    click.echo(f"built:        {'yes' if info['built'] else 'no (builds on first use, or run: lutgen native build)'}")
    if info["compiled_kernels"]:
        click.echo(f"kernels:      {', '.join(info['compiled_kernels'])}")
    prices = info["kernel_costs"]
    if prices is None:
        click.echo(f"kernel costs: not measured yet (on first use; kept in {info['kernel_costs_file']})")
    else:
        widths = ", ".join(f"{bits} bits {value:.2f}" for bits, value in prices["lookup"].items())
        click.echo(
            f"kernel costs: {prices['source']}, per 64 look-ups of one plane: {widths}; widen {prices['widen']:.2f}, "
            f"fold {prices['fold']:.2f}, int8 product "
            + ("not exact here" if prices["exact_int8"] is None else f"{prices['exact_int8']:.2f}")
            + f", column {prices['column']:.2f}"
        )


@native_group.command("clean")
@click.option("--all", "all_builds", is_flag=True, help="Remove the current build too.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@reports_errors
def native_clean(all_builds: bool, as_json: bool) -> None:
    """Remove old CPU kernel builds from the cache (all but the current one; all with --all)."""
    from .native.build import clean_builds

    report = clean_builds(all_builds=all_builds)
    if as_json:
        _echo_json("native clean", report.as_json())
    else:
        for folder in report.removed:
            click.echo(f"removed {folder}")
        for folder in report.busy:
            click.echo(f"skipped {folder} (another process is building it)")
        freed = report.freed_bytes
        click.echo(f"freed {freed} bytes ({freed / 2**20:.1f} MiB) in {len(report.removed)} folder(s)")
    report.check()


def model_options(func: F) -> F:
    """The options that name a network and its data (shared by ``evaluate`` and ``retrain``)."""
    decorators = [
        click.option(
            "--model",
            "model_name",
            type=ModelReference(),
            required=True,
            help="Zoo model (lenet5, vgg19, resnet18, ...) or path/to/file.py:callable.",
        ),
        click.option(
            "--weights",
            type=click.Path(path_type=Path),
            help="Weights: a state dict or a `lutgen retrain` checkpoint; default: train in float and cache.",
        ),
        click.option(
            "--data", "data_dir", type=click.Path(path_type=Path), help="Local dataset directory (never downloaded)."
        ),
        click.option(
            "--dataset",
            type=click.Choice(["digits", "cifar10", "mnist", "fashion-mnist"]),
            help="Dataset (default: digits, the 8x8 digits shipped with scikit-learn; with --data: detected).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@main.command("evaluate")
@model_options
@click.option(
    "--assign",
    default="auto",
    show_default=True,
    help="auto | NAME (every layer) | assignment.json[#N: front point N of a --save file] | layer=NAME,... "
    "(other layers exact).",
)
@click.option(
    "--budget", type=FiniteFloat(0), default=1.0, show_default=True, help="auto: allowed accuracy drop in points."
)
@click.option(
    "--verify",
    "verify_points",
    type=click.IntRange(1, MAX_VERIFY),
    default=5,
    show_default=True,
    help="auto: front points verified with the LUT engine per round (three rounds).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="auto: run the search's tasks on a local Ray instance with N workers (default: in-process).",
)
@click.option(
    "--ray-address",
    type=RayAddress(),
    envvar="RAY_ADDRESS",
    help="auto: run the search's tasks on the Ray cluster at ADDR (or 'auto'; default: $RAY_ADDRESS).",
)
@click.option(
    "--candidates",
    default="bits=8,signed",
    show_default=True,
    help="auto: a library filter as for `library list --filter` (bits=N, signed|unsigned, origin=..., max_mae=X, "
    "...; docs/filters.md) or a comma-separated list of names.",
)
@click.option("--limit", type=click.IntRange(1), help="Evaluate on the first N test samples only.")
@seed_option("Seed of the data split, calibration subset and noise")
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help="Fold predicted mean error into biases (default: on; off for weights from `lutgen retrain`).",
)
@click.option(
    "--save",
    type=click.Path(path_type=Path),
    help="Write the assignment as JSON (auto: with every front point's, read back by --assign FILE#N).",
)
@click.option("--plot", type=click.Path(path_type=Path), help="auto: plot the energy-accuracy front (e.g. pareto.png).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@_library_env_option
@reports_errors
def evaluate_command(
    model_name: str,
    weights: Path | None,
    data_dir: Path | None,
    dataset: str | None,
    assign: str,
    budget: float,
    verify_points: int,
    workers: int | None,
    ray_address: str | None,
    candidates: str,
    limit: int | None,
    seed: int,
    bias_correction: bool | None,
    save: Path | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Run a model through approximate multipliers: accuracy, per-layer table, multiplier energy."""
    from rich.console import Console

    from .fileio import check_writable
    from .nn.evaluate import EvaluateOptions, check_plot, plot_pareto, render, run_evaluate, save_assignment

    assign = "auto" if assign.strip().lower() == "auto" else assign
    _check_auto_only(assign)
    ray_address = _ray_address(ray_address, workers)
    if save is not None and save.suffix.lower() != ".json":  # (--assign takes a saved file by that suffix)
        raise ConfigError(f"--save {save}: name the file .json, which --assign reads back")
    for target in (save, plot):  # before the run, not after it
        if target is not None:
            check_writable(target)
    if plot is not None:
        check_plot(plot, assign)

    options = EvaluateOptions(
        model=model_name,
        weights=weights,
        data=data_dir,
        dataset=dataset,
        assign=assign,
        budget=budget,
        candidates=candidates,
        limit=limit,
        seed=seed,
        bias_correction=bias_correction,
        verify=verify_points,
        workers=workers,
        ray_address=ray_address,
    )
    result = run_evaluate(options)
    written = []
    if save is not None:
        save_assignment(result, save)
        written.append(f"wrote {save} (the assignment; reuse it with --assign {save})")
    if plot is not None:
        plot_pareto(result, plot)
        written.append(f"wrote {plot} (the energy-accuracy front)")
    if as_json:
        _echo_json("evaluate", result.to_dict())
    else:
        render(result, Console(width=max(100, Console().width)))
    for line in written:
        click.echo(line, err=as_json)


@main.command("retrain")
@model_options
@click.option(
    "--assign",
    required=True,
    help="NAME (every layer) | assignment.json[#N: front point N of an `evaluate --save` file] | layer=NAME,... "
    "(other layers exact).",
)
@click.option(
    "--grad",
    type=click.Choice(["difference", "ste"]),
    default="difference",
    show_default=True,
    help="Backward through the multiplier: its gradient LUTs, or exact products (STE).",
)
@click.option(
    "--half-window",
    default="8",
    show_default=True,
    help="Gradient LUT half window: N, or 'auto' (per-multiplier search, cached in the library).",
)
@click.option(
    "--protocol",
    type=click.Choice(["lutgen", "date25"]),
    default="lutgen",
    show_default=True,
    help="lutgen: SGD+cosine, every layer, frozen ranges; date25: the DATE'25 code's Adam, convs only, running ranges.",
)
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=5, show_default=True)
@click.option(
    "--lr",
    type=FiniteFloat(0, MAX_LR, open_low=True),
    help="Peak learning rate (default: the protocol's, 0.01 or 0.001).",
)
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=64, show_default=True)
@seed_option("Seed of the data split, shuffling and initial state")
@click.option(
    "--guard/--no-guard",
    default=True,
    show_default=True,
    help="Catch a loss blow-up, restore the last good state and back off (warm-up, clipping).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="Intra-op threads (fix it to compare runs across machines).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint written after every epoch (default: $LUTGEN_CACHE/retrain/, named by the options; printed).",
)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint (--out, or the default; same options).")
@click.option("--device", type=Device(), help="torch device (default: cuda when present, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema: docs/json.md).")
@_library_env_option
@reports_errors
def retrain_command(
    model_name: str,
    weights: Path | None,
    data_dir: Path | None,
    dataset: str | None,
    assign: str,
    grad: str,
    half_window: str,
    protocol: str,
    epochs: int,
    lr: float | None,
    batch_size: int,
    seed: int,
    guard: bool,
    threads: int | None,
    out: Path | None,
    resume: bool,
    device: str | None,
    as_json: bool,
) -> None:
    """Retrain a model through its approximate multipliers (gradient LUTs or STE); accuracy before/after."""
    from rich.console import Console

    from .nn.retrain import RetrainOptions, render_retrain, run_retrain

    options = RetrainOptions(
        model=model_name,
        assign=assign,
        weights=weights,
        data=data_dir,
        dataset=dataset,
        grad=grad,
        half_window=half_window,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        out=out,
        resume=resume,
        device=device,
        protocol=protocol,
        guard=guard,
        threads=threads,
    )
    report = run_retrain(options)
    if as_json:
        _echo_json("retrain", report.to_dict())
    else:
        render_retrain(report, Console(width=max(100, Console().width)))


if __name__ == "__main__":  # (python -m approxlut.cli, as the lutgen command)
    main(prog_name="lutgen")
